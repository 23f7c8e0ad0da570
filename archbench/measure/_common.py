"""Helpers shared by the complexity and latency measurements (the device ones are archbench.base.device's)."""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn


def batch1_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """(C, H, W) or (1, C, H, W) -> (1, C, H, W): every count and latency is per image."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise ValueError(
            f"input_shape={tuple(input_shape)} is not one image: pass (C, H, W) or (1, C, H, W), "
            "e.g. (3, 32, 32); batch sizes are separate arguments")
    return shape


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration, then each submodule's own flag back.

    Restoring per submodule (not `model.train(was_training)`) keeps deliberately frozen
    parts, such as a BatchNorm held in eval inside a training model, as they were.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training
