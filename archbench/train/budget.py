"""Training budgets: exactly one of epochs, steps, seconds or training MACs.

The budget is what makes a comparison fair, so it is resolved to a concrete step plan before training
starts and recorded both as configured and as consumed. Each kind is one class, registered under its
`train.budget.<kind>` key; everything that depends on the kind (the step plan, progress, what was
consumed, the unit, the time left) is a method of that class, so a new kind is one class here and
nothing else: settings, the loop, the run and the command line read the registry.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

# train.budget.<kind> -> its class, in the order the record's budget_consumed lists them.
BUDGETS: dict[str, type[Budget]] = {}


def register(kind: str):
    """Class decorator: the budget class of `kind` (its config key)."""
    def add(cls: type[Budget]) -> type[Budget]:
        cls.KIND = kind
        BUDGETS[kind] = cls
        return cls
    return add


def budget_kinds() -> tuple[str, ...]:
    return tuple(BUDGETS)


@dataclass(frozen=True)
class Usage:
    """What a run has used so far, in every unit a budget can be counted in."""
    steps: int
    epochs: float  # fractional: steps / steps per epoch
    seconds: float  # training time, warm-up step and evaluation excluded
    images: int
    macs: float | None  # None when the model's training MACs are unknown


@dataclass(frozen=True)
class Budget:
    """One budget: its kind and value. `Budget("steps", 4)` builds the registered class of that kind.

    The loop asks it for a step plan and for progress, never for its kind.
    """
    kind: str
    value: float
    KIND: ClassVar[str] = ""
    UNIT: ClassVar[str] = ""  # the variant folder's suffix: standard-200ep-...
    WHOLE: ClassVar[bool] = False  # only whole numbers make sense (epochs, steps)
    NEEDS_TRAIN_MACS: ClassVar[bool] = False  # planning needs the model's training MACs per step

    def __new__(cls, kind: str | None = None, value=None):
        if cls is Budget:  # copy and pickle pass no arguments, and call the subclass itself
            cls = budget_class(kind)
        return object.__new__(cls)

    def __post_init__(self):
        if self.kind != self.KIND:
            raise ValueError(f"a {type(self).__name__} budget has kind {self.KIND!r}, not {self.kind!r}")

    def as_dict(self) -> dict:
        return {self.kind: self.value}

    def value_text(self) -> str:
        return f"{self.value:g}" if isinstance(self.value, float) else str(self.value)

    def __str__(self) -> str:
        return f"{self.value_text()} {self.kind}"

    def label(self) -> str:
        """The budget in a variant folder's name, e.g. 200ep."""
        return f"{self.value_text()}{self.UNIT}"

    def planned_steps(self, steps_per_epoch: int, train_macs_per_step: float | None = None,
                      images_per_step: int | None = None) -> int | None:
        """Optimizer steps the budget allows; None for a wall-clock budget, which ends on time instead."""
        if steps_per_epoch < 1:
            raise ValueError("the training split gives no full batch: lower train.batch_size or raise data.train_size")
        return self._steps(steps_per_epoch, train_macs_per_step, images_per_step)

    def _steps(self, steps_per_epoch: int, train_macs_per_step: float | None,
               images_per_step: int | None) -> int | None:
        raise NotImplementedError

    def progress(self, step: int, seconds: float, planned_steps: int | None) -> float:
        """Fraction of the budget used: drives the schedule and the stop, the same for every kind."""
        return step / planned_steps

    def planned_seconds(self, planned_steps: int | None, step_s: float) -> float:
        """Training time the plan takes at `step_s` seconds per step."""
        return planned_steps * step_s

    def remaining_s(self, step: int, seconds: float, planned_steps: int | None, step_s: float) -> float:
        """Training time left at `step_s` seconds per step: the ETA."""
        return (planned_steps - step) * step_s

    @staticmethod
    def consumed(usage: Usage):
        """What a run used, in this kind's unit."""
        raise NotImplementedError


@register("epochs")
class Epochs(Budget):
    UNIT, WHOLE = "ep", True

    def _steps(self, steps_per_epoch, train_macs_per_step, images_per_step):
        return self.value * steps_per_epoch

    @staticmethod
    def consumed(usage: Usage):
        return usage.epochs


@register("steps")
class Steps(Budget):
    UNIT, WHOLE = "st", True

    def _steps(self, steps_per_epoch, train_macs_per_step, images_per_step):
        return self.value

    @staticmethod
    def consumed(usage: Usage):
        return usage.steps


@register("seconds")
class Seconds(Budget):
    UNIT = "s"

    def _steps(self, steps_per_epoch, train_macs_per_step, images_per_step):
        return None

    def progress(self, step, seconds, planned_steps):
        return seconds / self.value

    def planned_seconds(self, planned_steps, step_s):
        return self.value

    def remaining_s(self, step, seconds, planned_steps, step_s):
        return self.value - seconds

    @staticmethod
    def consumed(usage: Usage):
        return usage.seconds


@register("macs")
class Macs(Budget):
    UNIT, NEEDS_TRAIN_MACS = "macs", True

    def _steps(self, steps_per_epoch, train_macs_per_step, images_per_step):
        if not train_macs_per_step:
            raise ValueError("a MACs budget needs the model's training MACs per step (profiling failed)")
        # Equal training compute: a model half as expensive per step gets twice the steps.
        return max(1, int(self.value // train_macs_per_step))

    @staticmethod
    def consumed(usage: Usage):
        return usage.macs


def budget_class(kind) -> type[Budget]:
    if kind not in BUDGETS:
        raise ValueError(f"train.budget kind {kind!r} is not one of: {', '.join(BUDGETS)}")
    return BUDGETS[kind]


def budget_consumed(usage: Usage) -> dict:
    """The record's budget_consumed: the run's usage in every kind's unit, so runs of different kinds compare."""
    return {kind: cls.consumed(usage) for kind, cls in BUDGETS.items()}


def parse_budget(**given) -> Budget:
    """One budget from the `train.budget.*` keys; none or several set is an error that says which."""
    unknown = [k for k in given if k not in BUDGETS]
    if unknown:
        raise ValueError(f"train.budget.{unknown[0]} is not a budget kind: use one of {', '.join(BUDGETS)}")
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) != 1:
        found = ", ".join(f"{k}={v}" for k, v in given.items()) or "none"
        raise ValueError(f"train.budget needs exactly one of {', '.join(BUDGETS)} set (found: {found}); "
                         "e.g. train.budget.epochs=10 and set the others to null")
    kind, value = next(iter(given.items()))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"train.budget.{kind}={value!r} must be a positive number")
    cls = BUDGETS[kind]
    if cls.WHOLE and int(value) != value:
        raise ValueError(f"train.budget.{kind}={value!r} must be a whole number")
    return cls(kind, int(value) if cls.WHOLE else float(value))


def total_steps(budget: Budget, steps_per_epoch: int, train_macs_per_step: float | None = None) -> int | None:
    """Optimizer steps the budget allows; None for a wall-clock budget, which ends on time instead."""
    return budget.planned_steps(steps_per_epoch, train_macs_per_step)
