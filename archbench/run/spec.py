"""What one run is: its settings (`RunSpec`), their run-level checks, the device, and the sweep table's row."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.base.device import DeviceError, resolve_device as device_of
from archbench.record import record_dir, record_path
from archbench.settings import (DataSettings, MeasureSettings, ModelSettings, Recipe, SettingsError, fingerprint,
                                run_identity, variant_name)

TASKS = ("train", "profile", "evaluate", "measure")
LOCK_POLICIES = ("skip", "wait")


class InvalidRunError(ValueError):
    """Bad input found before the run started: nothing was written."""


@dataclass
class RunSpec:
    model: ModelSettings
    data: DataSettings
    recipe: Recipe | None  # None for task=profile
    measure: MeasureSettings
    task: str = "train"
    study: str = "default"
    seed: int = 0
    device: str = "auto"
    results_dir: str = "results"
    force: bool = False
    on_locked: str = "skip"
    progress_bar: bool = False
    config: dict = field(default_factory=dict)  # the resolved config, stored verbatim in the record
    tuning: dict | None = None  # which trial of which tuning study, or a tuned run's selection
    evaluate: Any = None  # archbench.evaluate.EvaluateSettings: calibration and robustness after training
    logger: Any = None  # archbench.loggers.LoggerSettings: per-epoch metrics to CSV, TensorBoard or MLflow
    # Parallel jobs share the cores, so their speed is measured after the sweep (archbench.run.remeasure), not here.
    defer_speed: bool = False

    @classmethod
    def from_configs(cls, model: dict, data: dict, train: dict | None = None, measure: dict | None = None,
                     **run) -> "RunSpec":
        """Each stage's settings from its config group (plain dicts), e.g. from a test or a notebook."""
        task = run.get("task", "train")
        return cls(model=ModelSettings.from_config(model), data=DataSettings.from_config(data),
                   recipe=Recipe.from_config(train) if task in ("train", "evaluate", "measure") else None,
                   measure=MeasureSettings.from_config(measure or {}), **run)

    @property
    def dataset_name(self) -> str:
        return self.data.name

    @functools.cached_property
    def identity(self) -> dict:
        # task=evaluate and task=measure work on the training run's record, so they have that run's identity
        task = "train" if self.task in ("evaluate", "measure") else self.task
        return run_identity(task, self.seed, self.model, self.data, self.recipe, self.measure)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.identity)

    @property
    def variant(self) -> str:
        return variant_name(self.identity["task"], self.recipe, self.identity)

    @property
    def record_dir(self) -> Path:
        return record_dir(self.results_dir, self.study, self.dataset_name, self.model.name, self.variant, self.seed)


def validate(spec: RunSpec) -> None:
    """Cheap checks of the run-level values; each stage's settings checked their own when built."""
    if spec.task not in TASKS:
        raise SettingsError(f"task={spec.task!r} is not one of: {', '.join(TASKS)}")
    if spec.on_locked not in LOCK_POLICIES:
        raise SettingsError(f"on_locked={spec.on_locked!r} is not one of: {', '.join(LOCK_POLICIES)}")
    if not isinstance(spec.seed, int) or isinstance(spec.seed, bool) or spec.seed < 0:
        raise SettingsError(f"seed={spec.seed!r} must be a non-negative integer")
    if spec.task in ("train", "evaluate") and spec.recipe is None:
        raise SettingsError("a training run needs a recipe (train=standard; see conf/train/)")
    spec.record_dir  # names usable as folders
    resolve_device(spec.device)


def resolve_device(device: str) -> str:
    """The device a run uses (auto, cpu, cuda or cuda:N), refused as a setting when this machine lacks it."""
    try:
        return str(device_of(device))
    except DeviceError as err:
        raise SettingsError(str(err)) from None


def summary(spec: RunSpec, status: str, record: dict | None = None, wall_s: float | None = None) -> dict:
    metrics = (record or {}).get("metrics") or {}
    train = (record or {}).get("train") or {}
    return {"model": spec.model.name, "data": spec.dataset_name, "variant": spec.variant, "seed": spec.seed,
            "study": spec.study, "status": status, "job_wall_s": wall_s, "train_s": train.get("wall_s"),
            "test_top1": metrics.get("test_top1"), "record": str(record_path(spec.record_dir))}

