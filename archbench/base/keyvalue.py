"""Hydra-style key=value command lines for the entry points that need no config tree (the report, the export).

    options = parse_key_values(sys.argv[1:], {"results_dir": "results/runs", "include_synthetic": False},
                               usage=USAGE, booleans={"include_synthetic"}, error=UsageError)

Imports nothing heavy: the report's command line starts without torch or Hydra.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

# The words Hydra and OmegaConf read as booleans.
TRUE_WORDS, FALSE_WORDS = frozenset({"true", "yes", "on", "1"}), frozenset({"false", "no", "off", "0"})
NULL_WORDS = frozenset({"", "null", "none"})


def parse_key_values(arguments: Iterable[str], defaults: Mapping, *, usage: str, booleans: Collection[str] = (),
                     nullable: Collection[str] = (), error: type[Exception] = ValueError) -> dict:
    """`defaults` overridden by `key=value` arguments; each refusal raises `error` naming the fix.

    Only the keys of `defaults` are accepted ('+key=' too, as the training CLI spells adding one). Keys in
    `booleans` take true/false words; keys in `nullable` take null, none or nothing for None; every other
    key needs a value.
    """
    options = dict(defaults)
    for argument in arguments:
        key, separator, value = argument.partition("=")
        key = key.lstrip("+")
        if not separator:
            raise error(f"argument {argument!r} is not key=value; usage: {usage}")
        if key not in defaults:
            raise error(f"unknown key {key!r}; valid keys: {', '.join(defaults)}")
        if key in booleans:
            options[key] = parse_bool_word(key, value, error)
        elif key in nullable and value.lower() in NULL_WORDS:
            options[key] = None
        elif not value:
            example = f", e.g. {key}={defaults[key]}" if defaults[key] is not None else ""
            raise error(f"{key}= needs a value{example}; usage: {usage}")
        else:
            options[key] = value
    return options


def parse_bool_word(key: str, value: str, error: type[Exception] = ValueError) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise error(f"{key}={value!r} is not a boolean: use {key}=true or {key}=false")
