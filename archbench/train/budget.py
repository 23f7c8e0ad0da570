"""Training budgets: exactly one of epochs, steps, seconds or training MACs.

The budget is what makes a comparison fair, so it is resolved to a concrete step plan before training
starts and recorded both as configured and as consumed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

KINDS = ("epochs", "steps", "seconds", "macs")


@dataclass(frozen=True)
class Budget:
    """One budget: its kind and value. The loop asks it for a step plan and for progress, never for its kind."""
    kind: str
    value: float
    KINDS: ClassVar[tuple[str, ...]] = KINDS

    def as_dict(self) -> dict:
        return {self.kind: self.value}

    def planned_steps(self, steps_per_epoch: int, train_macs_per_step: float | None = None) -> int | None:
        """Optimizer steps the budget allows; None for a wall-clock budget, which ends on time instead."""
        return total_steps(self, steps_per_epoch, train_macs_per_step)

    def progress(self, step: int, seconds: float, planned_steps: int | None) -> float:
        """Fraction of the budget used: drives the schedule and the stop, the same for every kind."""
        if self.kind == "seconds":
            return seconds / self.value
        return step / planned_steps


def parse_budget(epochs=None, steps=None, seconds=None, macs=None) -> Budget:
    """One budget from the `train.budget.*` keys; none or several set is an error that says which."""
    given = {k: v for k, v in dict(epochs=epochs, steps=steps, seconds=seconds, macs=macs).items() if v is not None}
    if len(given) != 1:
        found = ", ".join(f"{k}={v}" for k, v in given.items()) or "none"
        raise ValueError(f"train.budget needs exactly one of {', '.join(KINDS)} set (found: {found}); "
                         "e.g. train.budget.epochs=10 and set the others to null")
    kind, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"train.budget.{kind}={value!r} must be a positive number")
    if kind in ("epochs", "steps") and int(value) != value:
        raise ValueError(f"train.budget.{kind}={value!r} must be a whole number")
    return Budget(kind, int(value) if kind in ("epochs", "steps") else float(value))


def total_steps(budget: Budget, steps_per_epoch: int, train_macs_per_step: float | None = None) -> int | None:
    """Optimizer steps the budget allows; None for a wall-clock budget, which ends on time instead."""
    if steps_per_epoch < 1:
        raise ValueError("the training split gives no full batch: lower train.batch_size or raise data.train_size")
    if budget.kind == "epochs":
        return budget.value * steps_per_epoch
    if budget.kind == "steps":
        return budget.value
    if budget.kind == "macs":
        if not train_macs_per_step:
            raise ValueError("a MACs budget needs the model's training MACs per step (profiling failed)")
        # Equal training compute: a model half as expensive per step gets twice the steps.
        return max(1, int(budget.value // train_macs_per_step))
    return None
