"""Names a reader sees: datasets by what they are, counts with the right plural."""
from __future__ import annotations

import math

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


def count_text(count, noun: str) -> str:
    """'1 seed', '3 seeds'; never '(1 seeds)'."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return f"? {noun}s"
    count = int(count)
    return f"{count} {noun}" if count == 1 else f"{count:,} {noun}s"
