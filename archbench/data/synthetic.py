"""Synthetic images for smoke tests: random, but learnable, so a training smoke test can see accuracy rise.

Each class has a fixed random low-resolution pattern; an image is its class pattern, upsampled, plus noise.
Records made from it are flagged synthetic and the report leaves them out unless asked.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from . import registry
from .base import DataError, RawData, Split
from .split import seeded_generator

DEFAULT_TRAIN = 1000  # enough for a stratified split of 10 classes, small enough to make in milliseconds
TEST_FRACTION = 0.2
PATTERN_SIZE = 4  # class patterns are coarse, so they survive random crops and flips
NOISE = 48  # per-pixel noise amplitude in uint8 units: classes separable, but not trivially


def make_split(count: int, num_classes: int, in_chans: int, image_size: int, patterns: torch.Tensor,
               generator: torch.Generator) -> Split:
    labels = torch.arange(count) % num_classes  # balanced classes, so stratified splits are exact
    labels = labels[torch.randperm(count, generator=generator)]
    base = F.interpolate(patterns[labels], size=(image_size, image_size), mode="nearest")
    noise = torch.randint(-NOISE, NOISE + 1, (count, in_chans, image_size, image_size), generator=generator)
    return Split((base + noise).clamp_(0, 255).to(torch.uint8), labels)


@registry.register("synthetic", label="Synthetic", synthetic=True, default_root=None)
def read(request: registry.Request, files: list[Path]) -> RawData:
    """Images of any shape and class count, fixed by the split seed; files: unused, nothing is on disk."""
    image_size, in_chans = request.image_size or 32, request.in_chans or 3
    num_classes, train_count = request.num_classes or 10, request.synthetic_size or DEFAULT_TRAIN
    for key, value in (("image_size", image_size), ("in_chans", in_chans), ("num_classes", num_classes),
                       ("synthetic_size", train_count)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"synthetic: {key}={value!r} must be a positive integer")
    generator = seeded_generator(request.split_seed, "synthetic")
    patterns = torch.randint(0, 256, (num_classes, in_chans, PATTERN_SIZE, PATTERN_SIZE), generator=generator).float()
    test_count = max(num_classes, round(train_count * TEST_FRACTION))
    train = make_split(train_count, num_classes, in_chans, image_size, patterns, generator)
    test = make_split(test_count, num_classes, in_chans, image_size, patterns, generator)
    return RawData(train, test, [f"class_{i}" for i in range(num_classes)], {"source": "synthetic", "cache_key": None})
