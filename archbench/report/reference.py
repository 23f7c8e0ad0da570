"""Published numbers (archbench/models/reference.csv) beside measured results.

A published number is only comparable when the study trained with that paper's recipe on that
paper's dataset, so rows are shown only for recipes named after a paper, for models of the
families that paper covers, on the same dataset.

The CSV is read with pandas rather than through `archbench.models`, which imports torch.
"""
from __future__ import annotations

import importlib.resources
import re

import pandas as pd

from .tables import MISSING, is_missing, mean_pm_std, number

REFERENCE_COLUMNS = ["model", "family", "paper", "source", "params_m", "gmacs", "input_size",
                     "dataset", "top1_err", "notes"]

# Recipe name (config.train.name) -> model families whose paper defines that recipe.
# he2015_deep is he2015 with the paper's warm-up for 110+ layers (also used for pre-activation).
PAPER_RECIPES = {
    "he2015": {"resnet_v1", "resnet_v2"},
    "he2015_deep": {"resnet_v1", "resnet_v2"},
    "wrn2016": {"wide_resnet"},
    "densenet2017": {"densenet"},
}


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


def published_beside_measured(summary: pd.DataFrame, data, reference: pd.DataFrame):
    """Display table pairing each measured model that was trained with its paper's recipe with
    the published rows for it on the same dataset, or None when there are none."""
    if reference is None or summary.empty or "recipe" not in summary:
        return None
    paper_trained = summary[[family in PAPER_RECIPES.get(str(recipe), ())
                             for recipe, family in zip(summary["recipe"], summary["family"])]]
    matches = reference[reference["dataset"].map(normalize_dataset) == normalize_dataset(data)]
    rows = []
    for row in paper_trained.sort_values("model").itertuples(index=False):
        for published in matches[matches["model"] == row.model].itertuples(index=False):
            measured_error = 100.0 - row.test_top1_mean  # NaN stays NaN
            rows.append({
                "Model": row.model,
                "Recipe": row.recipe,
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
    return pd.DataFrame(rows) if rows else None


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _text(value) -> str:
    return MISSING if is_missing(value) else str(value)
