"""Top-1 accuracy under corruptions: per corruption and severity, their mean, and the drop from clean accuracy.

Clean and corrupted accuracies are measured on the same test images (the same subset, when one is drawn),
so the relative drop compares like with like.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from .corruptions import cached_corrupt_images, check_official_root, describe_generated, load_official

Predict = Callable[[np.ndarray], torch.Tensor]  # uint8 (n, C, H, W) -> logits (n, num_classes)


def subset_indices(n: int, size: int | None, seed: int) -> np.ndarray:
    """Sorted positions of a seeded uniform subset of the n test images (all of them when size is None or >= n)."""
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def top1(logits: torch.Tensor, labels) -> float:
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    return 100.0 * float(logits.argmax(dim=1).cpu().eq(labels).double().mean())


def robustness(predict: Predict, images: torch.Tensor, labels: torch.Tensor, corruptions: Sequence[str],
               severities: Sequence[int], test_subset: int | None = None, seed: int = 0,
               corruptions_root: str | Path | None = None, cache_dir: str | Path | None = None,
               source: str = "images", clean_logits: torch.Tensor | None = None) -> dict:
    """The record's robustness section for the clean test split (uint8 images (N, C, H, W), int64 labels).

    clean_logits: the model's logits on the whole clean test split, when the caller has them already.
    """
    if len(labels) == 0:
        raise ValueError("the test split is empty: there is nothing to corrupt")
    indices = subset_indices(len(labels), test_subset, seed)
    clean = images[torch.from_numpy(indices)].numpy()
    clean_labels = labels[torch.from_numpy(indices)].numpy()
    official = corruptions_root not in (None, "")
    if official:
        check_official_root(corruptions_root, corruptions)  # every file up front: fail before hours of work

    generation_s = inference_s = 0.0
    cached = 0
    labels_match = True
    start = time.perf_counter()
    clean_top1 = top1(predict(clean) if clean_logits is None else clean_logits[torch.from_numpy(indices)],
                      clean_labels)
    inference_s += time.perf_counter() - start
    table: dict[str, dict[str, float]] = {}
    for corruption in corruptions:
        table[corruption] = {}
        for severity in severities:
            start = time.perf_counter()
            if official:
                corrupted, set_labels = load_official(corruptions_root, corruption, severity, indices,
                                                      tuple(images.shape))
                labels_match &= bool(np.array_equal(set_labels, clean_labels))
            else:
                corrupted, hit = cached_corrupt_images(clean, corruption, severity, seed, cache_dir, source)
                set_labels, cached = clean_labels, cached + hit
            generation_s += time.perf_counter() - start
            start = time.perf_counter()
            table[corruption][str(severity)] = top1(predict(corrupted), set_labels)
            inference_s += time.perf_counter() - start

    cells = [acc for row in table.values() for acc in row.values()]
    mean = float(np.mean(cells))
    section = {
        "source": "official" if official else "generated",
        "method": (f"official .npy files from {Path(corruptions_root).expanduser().resolve()}" if official
                   else describe_generated(int(images.shape[-1]))),
        "images": int(len(indices)),
        "subset_seed": seed,
        "corruptions": list(corruptions),
        "severities": [int(s) for s in severities],
        "clean_top1": clean_top1,
        "top1": table,
        "mean_top1_by_severity": {str(s): float(np.mean([table[c][str(s)] for c in corruptions])) for s in severities},
        "mean_top1_by_corruption": {c: float(np.mean(list(table[c].values()))) for c in corruptions},
        "mean_corruption_top1": mean,
        # Percent of the clean accuracy lost; undefined for a model that gets nothing right on clean images.
        "relative_drop": 100.0 * (clean_top1 - mean) / clean_top1 if clean_top1 > 0 else None,
        "generation_s": generation_s,
        "inference_s": inference_s,
    }
    if official:
        # CIFAR-10-C follows the official test-set order; a reader that reorders the test set (an image
        # folder) makes the clean accuracy a different sample of the same distribution: say so.
        section["labels_match_test_order"] = labels_match
    else:
        section["cached_sets"] = cached
    return section
