"""Published numbers (archbench/models/reference.csv) beside measured results, only when comparable.

A published number is comparable with a run only when the run repeated the paper's experiment:
the paper's recipe unchanged (the settings the paper states), its full budget, and the full
training set with no validation hold-out (the papers train on all 50,000 CIFAR images and report
the last epoch). Anything less and the row is left out, with the reason said in the report.

The CSV is read with pandas rather than through `archbench.models`, which imports torch.
"""
from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass, field

import pandas as pd

from archbench.record import decode_json_column

from .labels import count_text
from .tables import MISSING, dirty_label, is_missing, mean_pm_std, number


@dataclass(frozen=True)
class PaperRecipe:
    """What a paper's training recipe fixes; conf/train/<name>.yaml holds the same values
    (tests/test_report.py checks that the two agree)."""
    families: frozenset
    epochs: int
    settings: dict = field(default_factory=dict)  # dotted recipe key -> the paper's value


_HE2015 = {"batch_size": 128, "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
           "optimizer.nesterov": False, "optimizer.weight_decay": 1e-4,
           "scheduler.milestones": [0.5, 0.75], "scheduler.gamma": 0.1}
# Recipe name (config.train.name) -> the paper's recipe and the model families it covers.
# he2015_deep is he2015 with the paper's warm-up for 110+ layers (also used for pre-activation).
PAPER_RECIPES = {
    "he2015": PaperRecipe(frozenset({"resnet_v1", "resnet_v2"}), 164, _HE2015),
    "he2015_deep": PaperRecipe(frozenset({"resnet_v1", "resnet_v2"}), 164, _HE2015),
    "wrn2016": PaperRecipe(frozenset({"wide_resnet"}), 200, {
        "batch_size": 128, "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
        "optimizer.nesterov": True, "optimizer.weight_decay": 5e-4,
        "scheduler.milestones": [0.3, 0.6, 0.8], "scheduler.gamma": 0.2}),
    "densenet2017": PaperRecipe(frozenset({"densenet"}), 300, {
        "batch_size": 64, "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
        "optimizer.nesterov": True, "optimizer.weight_decay": 1e-4,
        "scheduler.milestones": [0.5, 0.75], "scheduler.gamma": 0.1}),
    "resnext2017": PaperRecipe(frozenset({"resnext"}), 300, {
        "batch_size": 128, "optimizer.lr": 0.1, "optimizer.momentum": 0.9,
        "optimizer.nesterov": True, "optimizer.weight_decay": 5e-4,
        "scheduler.milestones": [0.5, 0.75], "scheduler.gamma": 0.1}),
    "fractalnet2017": PaperRecipe(frozenset({"fractalnet"}), 400, {
        "batch_size": 100, "optimizer.lr": 0.02, "optimizer.momentum": 0.9,
        "optimizer.nesterov": False, "optimizer.weight_decay": 0.0,
        "scheduler.milestones": [0.5, 0.75, 0.875, 0.9375], "scheduler.gamma": 0.1}),
}
# Extras no paper above used: a run that turns one on is not the paper's experiment.
_OFF_IN_PAPERS = {"label_smoothing": 0.0, "ema_decay": None, "grad_clip_norm": None}
# Training images in the papers' datasets, for records that do not say the full size.
FULL_TRAIN_IMAGES = {"cifar10": 50_000, "cifar100": 50_000}

REFERENCE_COLUMNS = ["model", "family", "paper", "source", "params_m", "gmacs", "input_size",
                     "dataset", "top1_err", "notes"]


def load_reference():
    """Return `(table, None)`, or `(None, note)` saying why published numbers are unavailable."""
    try:
        resource = importlib.resources.files("archbench") / "models" / "reference.csv"
        with resource.open("r", encoding="utf-8") as handle:
            table = pd.read_csv(handle)
    except FileNotFoundError:
        return None, "published numbers unavailable: archbench/models/reference.csv not found"
    except OSError as error:
        return None, f"published numbers unavailable: archbench/models/reference.csv ({error})"
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        return None, f"published numbers unavailable: archbench/models/reference.csv is unreadable ({error})"
    missing = [column for column in ("model", "dataset", "top1_err") if column not in table]
    if missing:
        return None, (f"published numbers unavailable: archbench/models/reference.csv lacks "
                      f"columns {missing}")
    return table, None


def normalize_dataset(name) -> str:
    """'CIFAR-10', 'cifar10' and 'C10' all become 'cifar10'; augmentation marks are dropped."""
    text = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return {"c10": "cifar10", "c100": "cifar100", "in1k": "imagenet", "imagenet1k": "imagenet",
            "ilsvrc2012": "imagenet"}.get(text, text)


def why_not_comparable(row, data) -> list[str]:
    """Why one summary row cannot stand beside its paper's number; empty when it can."""
    recipe = PAPER_RECIPES.get(str(row.recipe))
    if recipe is None or row.family not in recipe.families:
        return [f"trained with recipe {row.recipe}, not its paper's"]
    settings = _flat_recipe(getattr(row, "recipe_config", None))
    if not settings:
        return ["the record does not state its recipe settings"]
    reasons = []
    budget = {key[len("budget."):]: value for key, value in settings.items()
              if key.startswith("budget.") and value is not None}
    if budget != {"epochs": recipe.epochs}:
        given = ", ".join(f"{value:g} {key}" if isinstance(value, (int, float)) else
                          f"{key} {value}" for key, value in sorted(budget.items()))
        reasons.append(f"budget {given or 'not recorded'} instead of the paper's "
                       f"{recipe.epochs} epochs")
    changed = [key for key, value in recipe.settings.items()
               if not _same_setting(settings.get(key), value)]
    changed += [key for key, value in _OFF_IN_PAPERS.items()
                if not _same_setting(settings.get(key, value), value)]
    if changed:
        reasons.append(f"recipe changed from the paper's ({', '.join(changed)})")
    reasons += _training_set_reasons(row, data)
    return reasons


def _training_set_reasons(row, data) -> list[str]:
    reasons = []
    val_size = getattr(row, "val_size", None)
    if is_missing(val_size) or val_size != 0:
        held = "an unrecorded number of" if is_missing(val_size) else f"{val_size:,.0f}"
        reasons.append(f"{held} training images held out for validation (the papers use "
                       "none: val_size=0)")
    full = getattr(row, "full_train_size", None)
    if is_missing(full):
        full = FULL_TRAIN_IMAGES.get(normalize_dataset(data))
    train_size = getattr(row, "train_size", None)
    if is_missing(train_size) or full is None or train_size < full:
        of = f" of {full:,.0f}" if full else ""
        size = "an unrecorded number" if is_missing(train_size) else f"{train_size:,.0f}"
        reasons.append(f"trained on {size}{of} training images")
    return reasons


def _same_setting(measured, published) -> bool:
    if isinstance(published, float) and isinstance(measured, (int, float)):
        return abs(measured - published) <= 1e-9 * max(1.0, abs(published))
    return measured == published


def _flat_recipe(config_text) -> dict:
    try:
        config = decode_json_column(config_text)
    except ValueError:  # not JSON: nothing to compare
        return {}
    flat: dict = {}

    def walk(mapping, prefix):
        for key, value in mapping.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat[f"{prefix}{key}"] = value

    if isinstance(config, dict):
        walk(config, "")
    return flat


def published_beside_measured(summary: pd.DataFrame, data, reference: pd.DataFrame):
    """`(table, notes)`: a display table pairing each measured model that repeated its paper's
    experiment with the published rows on the same dataset (None when there are none), and one
    note per model whose published numbers are left out, saying why."""
    if reference is None or summary.empty or "recipe" not in summary:
        return None, []
    matches = reference[reference["dataset"].map(normalize_dataset) == normalize_dataset(data)]
    rows, notes = [], []
    for row in summary.sort_values("label").itertuples(index=False):
        published_rows = matches[matches["model"] == row.model]
        if published_rows.empty:
            continue
        reasons = why_not_comparable(row, data)
        if reasons:
            notes.append(f"{row.label}: published numbers not shown: {'; '.join(reasons)}.")
            continue
        for published in published_rows.itertuples(index=False):
            measured_error = 100.0 - row.test_top1_mean  # NaN stays NaN
            rows.append({
                "Model": dirty_label(row.label, getattr(row, "dirty_runs", 0)),
                "Recipe": row.recipe,
                "Seeds": count_text(row.test_top1_n, "seed"),
                "Paper": _text(getattr(published, "paper", None)),
                "Source": _text(getattr(published, "source", None)),
                "Paper dataset": _text(published.dataset),
                "Published top-1 error (%)": number(_float(published.top1_err), 2),
                "Measured top-1 error (%)": mean_pm_std(measured_error, row.test_top1_std),
                "Published params (M)": number(_float(getattr(published, "params_m", None)), 2),
                "Measured params (M)": number(row.params, 2, scale=1e6),
                "Published GMACs": number(_float(getattr(published, "gmacs", None)), 3),
                "Measured GMACs": number(row.macs, 3, scale=1e9),
                "Notes": _text(getattr(published, "notes", None)),
            })
    return (pd.DataFrame(rows) if rows else None), notes


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _text(value) -> str:
    return MISSING if is_missing(value) else str(value)
