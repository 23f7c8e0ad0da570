"""Learning-rate schedules as pure functions of training progress in [0, 1].

Progress, not epoch count, drives every schedule, so the same recipe decays to its end under any budget
kind: an epoch budget, a step budget, an equal-MACs budget, or a wall-clock budget (progress =
elapsed / seconds). Being pure, a schedule needs no state in a checkpoint: the step (or elapsed time)
is enough to resume at exactly the same learning rate.

Each schedule returns the factor applied to the base learning rate.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} must be a fraction of training in [0, 1): e.g. 0.025 for 5 of 200 epochs")


@dataclass(frozen=True)
class Warmup:
    """Start below the base rate for the first `fraction` of training (deep nets diverge without it)."""
    fraction: float = 0.0
    start_factor: float = 0.1
    mode: str = "linear"  # "linear" ramps to 1; "constant" holds start_factor (He et al. 2015, ResNet-110)

    def __post_init__(self):
        _check_fraction("warmup fraction", self.fraction)
        if self.mode not in ("linear", "constant"):
            raise ValueError(f"warmup mode={self.mode!r} is not one of: linear, constant")

    def factor(self, progress: float) -> float | None:
        if progress >= self.fraction:
            return None
        if self.mode == "constant":
            return self.start_factor
        return self.start_factor + (1.0 - self.start_factor) * progress / self.fraction


@dataclass(frozen=True)
class Cosine:
    """Linear warm-up, then cosine decay to `final_factor` (zero by default) at progress 1."""
    warmup_fraction: float = 0.0
    warmup_start_factor: float = 0.0
    final_factor: float = 0.0

    def __call__(self, progress: float) -> float:
        warm = Warmup(self.warmup_fraction, self.warmup_start_factor, "linear").factor(progress)
        if warm is not None:
            return warm
        span = 1.0 - self.warmup_fraction
        t = min(max((progress - self.warmup_fraction) / span, 0.0), 1.0)
        return self.final_factor + (1.0 - self.final_factor) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class MultiStep:
    """Multiply by `gamma` at each milestone (fractions of training), as the 2015-2017 papers did."""
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_fraction: float = 0.0
    warmup_start_factor: float = 0.1
    warmup_mode: str = "constant"

    def __post_init__(self):
        object.__setattr__(self, "milestones", tuple(float(m) for m in self.milestones))
        for m in self.milestones:
            _check_fraction("milestone", m)
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"milestones={list(self.milestones)} must be increasing")

    def __call__(self, progress: float) -> float:
        warm = Warmup(self.warmup_fraction, self.warmup_start_factor, self.warmup_mode).factor(progress)
        if warm is not None:
            return warm
        return self.gamma ** bisect.bisect_right(self.milestones, progress)


@dataclass(frozen=True)
class Constant:
    def __call__(self, progress: float) -> float:
        return 1.0
