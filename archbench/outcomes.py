"""Per-image test outcomes beside a record: the predicted class and the label of every test image.

Every model of a study is scored on the same test images, so two models' errors are paired, not
independent; keeping which images each run got right lets `archbench.stats.paired_gap_interval`
use that pairing. A compressed .npz of two small integer arrays: a few tens of kB for 10,000 images.
numpy only (no torch), so results can be read on any machine.
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from archbench.base.files import atomic_write_bytes

OUTCOMES_FILENAME = "test_outcomes.npz"


def _smallest_uint(values: np.ndarray):
    top = int(values.max()) if values.size else 0
    return next(dtype for dtype in (np.uint8, np.uint16, np.uint32) if top <= np.iinfo(dtype).max)


def write_outcomes(path: str | os.PathLike, predicted, labels) -> dict:
    """Write (predicted class, label) per test image atomically; return the record's `test_outcomes` section."""
    predicted, labels = np.asarray(predicted).ravel(), np.asarray(labels).ravel()
    if predicted.shape != labels.shape or predicted.size == 0:
        raise ValueError(f"write_outcomes: predicted ({predicted.size}) and labels ({labels.size}) must be the same "
                         "non-zero number of test images")
    if min(predicted.min(), labels.min()) < 0:
        raise ValueError("write_outcomes: classes must be non-negative integers")
    dtype = _smallest_uint(np.concatenate([predicted, labels]))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, predicted=predicted.astype(dtype), labels=labels.astype(dtype))
    atomic_write_bytes(path, buffer.getvalue())
    correct = int((predicted == labels).sum())
    return {"file": Path(path).name, "images": int(predicted.size), "correct": correct,
            "top1": 100.0 * correct / predicted.size}


def read_outcomes(record_path: str | os.PathLike, record: dict) -> dict | None:
    """`{"predicted", "labels", "correct"}` arrays of the run whose record is at `record_path`, or None
    when the record has no `test_outcomes` (runs made before they were saved).

    Raises ValueError when the file is missing or disagrees with the record (another run's file).
    """
    section = record.get("test_outcomes")
    if not isinstance(section, dict) or not section.get("file"):
        return None
    path = Path(record_path).parent / section["file"]
    try:
        with np.load(path) as data:
            predicted, labels = data["predicted"].astype(np.int64), data["labels"].astype(np.int64)
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(f"{path}: the record names per-image outcomes that cannot be read ({err}); rerun the "
                         "run with force=true to write them again") from err
    correct = predicted == labels
    top1 = (record.get("metrics") or {}).get("test_top1")
    if len(correct) != section.get("images") or (
            isinstance(top1, (int, float)) and not math.isclose(100.0 * correct.mean(), top1, abs_tol=1e-6)):
        raise ValueError(f"{path}: {len(correct)} images with top-1 {100.0 * correct.mean():.4f}% do not match the "
                         f"record ({section.get('images')} images, test_top1 {top1}): the file belongs to another "
                         "run; rerun with force=true")
    return {"predicted": predicted, "labels": labels, "correct": correct}
