"""What the results modules share: the keys a run is grouped by, how a model is labelled, and small
helpers over run frames (values present, first present, rows matching keys)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

# A model is identified within a comparison by these keys; runs from different machines are
# never pooled, because latency, throughput and even accuracy (nondeterministic kernels) differ.
GROUP_KEYS = ["study", "data", "hardware"]
# One row of a comparison is one model under one setting (variant); within it only seeds vary.
MODEL_KEYS = GROUP_KEYS + ["model", "variant"]
RUN_KEYS = MODEL_KEYS + ["seed"]


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _short(key: str) -> str:
    """`recipe.optimizer.lr` -> `lr`: the last part, or the last two where one part is ambiguous."""
    parts = key.split(".")
    return parts[-1] if parts[-1] not in ("value", "name", "kind") else ".".join(parts[-2:])


def _differing_keys(settings: dict) -> list[str]:
    """The flattened setting keys whose values differ between variants (variant -> settings)."""
    keys = sorted({k for values in settings.values() for k in values})
    return [k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in settings.values()}) > 1]


# What tells two rows of one comparison apart: the model, and its variant once the records
# carry one. Derived from the keys so that a new identity key needs no change here.
ENTRY_KEYS = [key for key in MODEL_KEYS if key not in GROUP_KEYS]


def model_label(model, variant_label=None) -> str:
    """The model as a reader sees it: `resnet20`, or `resnet20 (lr=0.05)` for one variant of
    several."""
    text = str(model)
    if isinstance(variant_label, str) and variant_label.strip():
        text += f" ({variant_label.strip()})"
    return text


def _values(group: pd.DataFrame, column: str) -> pd.Series:
    if column not in group:
        return pd.Series(dtype=float)
    values = pd.to_numeric(group[column], errors="coerce")
    return values[np.isfinite(values)]


def _distinct_text(series, separator: str = ", "):
    """The distinct values of a column joined ('bf16' or 'bf16, off'); None when none is set."""
    if series is None:
        return None
    present = sorted({str(value) for value in series.dropna()})
    return separator.join(present) if present else None


# Joins the machines behind one summary row: their labels ('cpu: AMD EPYC, 1 thread') hold commas themselves.
MACHINE_SEPARATOR = "; "


def distinct_machines(series) -> str | None:
    """The machine labels of a column, one label or several joined by MACHINE_SEPARATOR; None when none."""
    return _distinct_text(series, MACHINE_SEPARATOR)


def machines_of(series) -> set[str]:
    """Each machine named in a column of machine labels, as written by `distinct_machines` or per run."""
    if series is None:
        return set()
    return {machine for value in series.dropna() for machine in str(value).split(MACHINE_SEPARATOR)}


def _first_present(series):
    if series is None:
        return None
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def _require_columns(frame: pd.DataFrame, columns, caller: str):
    missing = [column for column in columns if column not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"{caller}: missing columns {missing}; pass the DataFrame from "
                         "archbench.results.load(results_dir)")


def _first_of(*values):
    return next((value for value in values if not _is_missing(value)), None)


def _rows_with(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        mask &= _same(frame[key], value)
    return frame[mask]


def _same(series: pd.Series, value) -> pd.Series:
    if _is_missing(value):
        return series.isna()
    return series == value


# Config key -> what the data is, for records made before they carried a `data_label`.
DATASET_LABELS = {
    "cifar10_jpg": "CIFAR-10 (JPEG image folder)",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
    "imagenet": "ImageNet",
    "synthetic": "synthetic",
}


def dataset_label(data, data_label=None) -> str:
    """The record's own label when it has one, else the known name of the config key."""
    if isinstance(data_label, str) and data_label.strip():
        return data_label.strip()
    return DATASET_LABELS.get(str(data), str(data))


def frame_dataset_label(frame, data) -> str:
    """`dataset_label` for the rows of one dataset in a runs or summary table."""
    labels = frame["data_label"].dropna() if "data_label" in frame else []
    return dataset_label(data, labels.iloc[0] if len(labels) else None)
