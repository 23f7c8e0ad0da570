"""Held-out validation and training subsets, stratified by class and fixed by the split seed alone.

The split seed is independent of the training seed, so every model and every training seed sees the
same validation images; changing the training seed changes only the training randomness.
"""
from __future__ import annotations

import hashlib
import warnings

import torch

from .base import DataError


def seeded_generator(*parts) -> torch.Generator:
    """A CPU generator whose state depends only on parts (seed, epoch, rank, purpose...), on every platform."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def resolve_count(value, total: int, what: str) -> int:
    """Turn an int count or a fraction in (0, 1) into a number of images out of total."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{what}={value!r} is not a number; give a count (int), a fraction in (0, 1), or 0")
    if isinstance(value, float) and not value.is_integer():
        if not 0 < value < 1:
            raise DataError(f"{what}={value} is not a fraction in (0, 1); give a count (int) or a fraction")
        return int(round(value * total))
    count = int(value)
    if count < 0:
        raise DataError(f"{what}={value} is negative; give a count >= 0")
    return count


def class_quotas(labels: torch.Tensor, count: int) -> torch.Tensor:
    """How many of count to take from each class, proportional to class sizes (largest remainder)."""
    sizes = torch.bincount(labels).double()
    exact = sizes * count / sizes.sum()
    quotas = exact.floor().long()
    short = count - int(quotas.sum())
    if short:
        # classes with the largest fractional remainder round up; ties go to the lower class index
        order = sorted(range(len(sizes)), key=lambda c: (-(exact[c] - quotas[c]).item(), c))
        for c in order[:short]:
            quotas[c] += 1
    return quotas


def stratified_pick(labels: torch.Tensor, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (picked, rest): count images with the class mix of labels, chosen at random, both sorted."""
    if count == 0:
        return torch.empty(0, dtype=torch.int64), torch.arange(len(labels))
    quotas = class_quotas(labels, count)
    picked = []
    for c, quota in enumerate(quotas.tolist()):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:quota]])
    picked = torch.cat(picked).sort().values
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[picked] = False
    return picked, torch.nonzero(keep).flatten()


def split_indices(labels: torch.Tensor, val_size: int, train_size: int | None, split_seed: int,
                  class_names: list[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(train_indices, val_indices) into the official training set; disjoint, stratified, f(split_seed) only.

    A split too small for the classes is said out loud: a class left out of validation, or a split
    that cannot hold every class, warns (naming what the split did); a training split with fewer
    images than classes is refused, since some class could never be learned.
    """
    total = len(labels)
    classes = len(class_names) if class_names else (int(labels.max()) + 1 if total else 0)
    if val_size >= total:
        raise DataError(f"val_size={val_size} leaves no training images: the training set has only {total}; "
                        f"use a smaller data.val_size (or 0 to train on all of it)")
    val_idx, train_idx = stratified_pick(labels, val_size, seeded_generator(split_seed, "val"))
    if val_size:
        _say_unstratified(labels, labels[val_idx], classes, class_names, f"data.val_size={val_size}",
                          "validation", "they are trained on but not validated")
    if train_size is not None and train_size != len(train_idx):
        if not 0 < train_size <= len(train_idx):
            raise DataError(f"train_size={train_size} is out of range: {len(train_idx)} training images remain "
                            f"after holding out {val_size} for validation; use 1..{len(train_idx)} or null for all")
        if train_size < classes:
            raise DataError(f"data.train_size={train_size} is fewer than the {classes} classes: some classes would "
                            f"have no training image at all; use at least data.train_size={classes} "
                            f"(or null for all {len(train_idx)})")
        pool = labels[train_idx]
        sub, _ = stratified_pick(pool, train_size, seeded_generator(split_seed, "train_subset"))
        train_idx = train_idx[sub]
    if len(train_idx) < classes:
        raise DataError(f"the training split has {len(train_idx)} images for {classes} classes (after holding out "
                        f"data.val_size={val_size} of {total}): some classes would have no training image; use a "
                        f"smaller data.val_size or more images per class")
    _say_unstratified(labels, labels[train_idx], classes, class_names,
                      f"the training split ({len(train_idx)} images)", "training",
                      "the model cannot learn them; add images to them, or lower data.val_size or raise data.train_size")
    return train_idx, val_idx


def _say_unstratified(labels, picked_labels, classes: int, class_names, what: str, part: str, effect: str) -> None:
    """Warn when a stratified pick left out some class that has images: say which, and what the split did."""
    sizes = torch.bincount(labels, minlength=classes)
    got = torch.bincount(picked_labels, minlength=classes)
    missing = [c for c in range(classes) if sizes[c] > 0 and got[c] == 0]
    if not missing:
        return
    named = [f"{(class_names[c] if class_names else c)!r} ({int(sizes[c])} image{'s' if sizes[c] != 1 else ''})"
             for c in missing[:5]]
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    if len(picked_labels) < classes:
        why = (f"{what} is fewer than the {classes} classes, so it cannot be stratified (one image of each class "
               f"at least)")
    else:
        why = f"{what} is split in proportion to class sizes, and these classes are too small for a share of it"
    warnings.warn(f"{why}: {len(missing)} class(es) have no {part} images: {', '.join(named)}{more}; {effect}",
                  stacklevel=3)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images in [0, 1] units, accumulated in float64 chunk by chunk."""
    if len(images) == 0:
        raise DataError("cannot compute mean/std of an empty training split; check data.train_size and data.val_size")
    chans = images.shape[1]
    total = torch.zeros(chans, dtype=torch.float64)
    total_sq = torch.zeros(chans, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(torch.float64).div_(255).transpose(0, 1).reshape(chans, -1)
        total += x.sum(1)
        total_sq += (x * x).sum(1)
    n = images.numel() // chans
    mean = total / n
    std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(max(v, 1e-6), 6) for v in std.tolist())
