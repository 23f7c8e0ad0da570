"""`python -m archbench.report [results_dir=results] [out=report] [study=NAME] [include_synthetic=true]`

Arguments use Hydra's key=value syntax but are parsed here: the report needs no config tree.
"""
from __future__ import annotations

import sys

USAGE = __doc__.splitlines()[0].strip("`")
DEFAULTS = {"results_dir": "results", "out": "report", "study": None, "include_synthetic": False}
TRUE_WORDS, FALSE_WORDS = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


class UsageError(ValueError):
    pass


def parse_arguments(arguments: list[str]) -> dict:
    options = dict(DEFAULTS)
    for argument in arguments:
        key, separator, value = argument.partition("=")
        key = key.lstrip("+")
        if not separator:
            raise UsageError(f"argument {argument!r} is not key=value; usage: {USAGE}")
        if key not in DEFAULTS:
            raise UsageError(f"unknown key {key!r}; valid keys: {', '.join(DEFAULTS)}")
        if key == "include_synthetic":
            options[key] = _boolean(key, value)
        elif key == "study" and value.lower() in ("", "null", "none"):
            options[key] = None
        elif not value:
            raise UsageError(f"{key}= needs a value, e.g. {key}={DEFAULTS[key]}")
        else:
            options[key] = value
    return options


def _boolean(key: str, value: str) -> bool:
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise UsageError(f"{key}={value!r} is not a boolean: use {key}=true or {key}=false")


def main(arguments=None) -> int:
    arguments = sys.argv[1:] if arguments is None else arguments
    if any(argument in ("-h", "--help", "help") for argument in arguments):
        print(f"usage: {USAGE}")
        return 0
    try:
        options = parse_arguments(arguments)
    except UsageError as error:
        print(f"archbench.report: {error}", file=sys.stderr)
        return 2
    from .build import ReportInputError, build_report

    try:
        out = build_report(**options)
    except (FileNotFoundError, FileExistsError, ReportInputError) as error:
        print(f"archbench.report: {error}", file=sys.stderr)
        return 1
    print(f"report written to {out}/README.md and {out}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
