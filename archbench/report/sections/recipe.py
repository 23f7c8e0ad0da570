"""A study's recipe and budget, stated once, and the settings in which its models still differ."""
from __future__ import annotations

import json

import pandas as pd

from archbench import results
from archbench.record import decode_json_column, encode_json_column
from archbench.results.tuning import RECIPE_PATHS
from archbench.settings import flatten

from ..document import BulletList, Caution, Code, Heading, Paragraph
from ..reference import PAPER_RECIPES
from .tuning import tuned_keys


def blocks(train_runs: pd.DataFrame, tuned: bool = False) -> list:
    """The recipe and budget, stated once; a loud warning when the models did not share it.

    A study whose models each use their own paper's recipe (paper_recipes) is by design not an
    identical-budget comparison: that is said plainly, and each recipe is stated once. In a
    `tuned` study (tuning trials, or reruns of the selected trials) the tunable values differ by
    design; the rest of the recipe must still be shared.
    """
    if train_runs.empty:
        return [Paragraph("Profile-only study: complexity and latency, no training.")]
    if tuned:
        train_runs = train_runs.assign(recipe_config=[_without_tunable(text) for text
                                                      in train_runs.recipe_config])
    configs_per_name = train_runs.groupby(train_runs.recipe.fillna("unnamed"))["recipe_config"]
    names = sorted(configs_per_name.groups)
    one_config_each = all(configs.fillna("null").nunique() == 1 for _name, configs in configs_per_name)
    blocks = [Heading("Recipe and budget", 3)]
    if len(names) == 1 and one_config_each:
        blocks.append(Paragraph(
            f"As configured, identical for every model and seed in this study, apart from the tuned values "
            f"({', '.join(RECIPE_PATHS)}: see the tuning tables):" if tuned else
            "As configured, identical for every model and seed in this study (settings it leaves to each "
            "model, such as train.amp=auto, may resolve differently: see below):"))
        return blocks + [_recipe_code(train_runs.recipe_config.iloc[0])]
    if one_config_each and all(name in PAPER_RECIPES for name in names):
        blocks.append(Paragraph(
            "Each model was trained with its own paper's recipe, to compare with the published "
            "numbers; the models are therefore NOT compared with each other under an identical "
            "budget. The recipes:"))
        for name, configs in configs_per_name:
            models = ", ".join(sorted(train_runs.model[configs.index].unique()))
            blocks += [Paragraph(f"{name} (used by {models}):"), _recipe_code(configs.iloc[0])]
        return blocks
    blocks.append(Caution(
        "records in this study disagree on the training recipe or budget, so its models "
        "were NOT compared under an identical budget. " + _recipe_differences(train_runs)))
    blocks.append(Paragraph("The most common recipe:"))
    return blocks + [_recipe_code(train_runs.recipe_config.fillna("null").mode().iloc[0])]


def study_confounds(study_runs: pd.DataFrame, kind) -> list:
    """Settings that differ between the study's models; a tuned study's tuned values differ by design.

    In a tuning study each model ran every candidate of the search space: a model whose candidates
    differ in nothing but the tuned values is named once, not once per candidate.
    """
    ignore = _tuned_settings() if kind in ("tuning", "tuned") else ()
    train = study_runs[study_runs.task == "train"]
    if kind == "tuning":
        train = _candidates_as_one_model(train, ignore)
    return results.confounds(train, ignore=ignore)


def confound_blocks(study_runs: pd.DataFrame, kind) -> list:
    """What each model actually got where the models differ beyond their architecture."""
    found = study_confounds(study_runs, kind)
    if not found:
        return []
    items = [results.confounds_text([item]) + "." for item in found]
    if kind == "tuning":
        items.insert(0, _candidates_text(study_runs[study_runs.task == "train"]))
    return [Paragraph("Settings that differ between models (the recipe above is what was configured; these are "
                      "what each model resolved to or was built with, and any gap between models includes their "
                      "effect):"),
            BulletList(items)]


def _tuned_settings() -> tuple[str, ...]:
    """The tunable values as flattened setting keys, e.g. 'recipe.optimizer.lr'."""
    return tuple(f"recipe.{'.'.join(path)}" for path in RECIPE_PATHS.values())


def _candidates_as_one_model(train_runs: pd.DataFrame, tuned: tuple[str, ...]) -> pd.DataFrame:
    """The runs with the variant label cleared where a model's variants differ only in the `tuned`
    settings; a model whose candidates also differ in anything else keeps its labels, so that
    difference stays named."""
    if train_runs.empty or "variant_settings" not in train_runs or "variant_label" not in train_runs:
        return train_runs
    labels = train_runs["variant_label"].copy()
    for _, runs in train_runs.groupby(["data", "model"], dropna=False, sort=False):
        untuned = {encode_json_column({key: value for key, value in decode_json_column(text).items()
                                       if key not in tuned})
                   for text in runs["variant_settings"]}
        if len(untuned) == 1:
            labels[runs.index] = ""
    return train_runs.assign(variant_label=labels)


def _candidates_text(train_runs: pd.DataFrame) -> str:
    """'tuning candidates: 4 per model (lr, weight_decay from the search space; ...).', the counts of
    usable trials per model."""
    counts = train_runs.groupby("model")["trial"].nunique()
    usual = counts.value_counts().sort_index(ascending=False).idxmax()
    fewer = "".join(f", {count} for {', '.join(sorted(models.index))}"
                    for count, models in counts[counts != usual].groupby(counts[counts != usual]))
    keys = tuned_keys(train_runs)
    drawn = f"{', '.join(keys)} from the search space; " if keys else ""
    return (f"tuning candidates: {usual} per model{fewer} ({drawn}the trials table lists each); below, a "
            "model stands for all its candidates.")


def _without_tunable(config_text):
    """A recipe's JSON text without the tunable values, which a tuned study varies on purpose."""
    if not isinstance(config_text, str):
        return config_text

    def strip(node):
        if not isinstance(node, dict):
            return node
        return {key: strip(value) for key, value in node.items() if key not in RECIPE_PATHS}

    return encode_json_column(strip(decode_json_column(config_text)))


def _recipe_code(config_text) -> Code:
    config = decode_json_column(config_text)
    if not config:
        return Code("not recorded")
    # Unset options (null) are left out: they say nothing about how the models were trained.
    settings = {key: value for key, value in _flatten(config).items() if value != "null"}
    return Code("\n".join(f"{key}: {value}" for key, value in settings.items()))


def _recipe_differences(train_runs: pd.DataFrame) -> str:
    flat = {index: _flatten(decode_json_column(text))
            for index, text in train_runs.recipe_config.items()}
    keys = sorted({key for entry in flat.values() for key in entry})
    differences = []
    for key in keys:
        by_value: dict = {}
        for index, entry in flat.items():
            by_value.setdefault(str(entry.get(key, "missing")), set()).add(
                train_runs.model[index])
        if len(by_value) > 1:
            described = "; ".join(f"{value} ({', '.join(sorted(models))})"
                                  for value, models in sorted(by_value.items()))
            differences.append(f"{key}: {described}")
    return "Differences: " + " | ".join(differences) + "."


def _flatten(mapping) -> dict:
    """Dotted keys, with lists, booleans and nulls spelled as JSON (as the recipe's YAML reads)."""
    if not isinstance(mapping, dict):
        return {}
    return {name: json.dumps(value) if isinstance(value, (list, bool, type(None))) else value
            for name, value in flatten(mapping).items() if value != {}}
