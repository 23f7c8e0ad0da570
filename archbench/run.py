"""One run, top to bottom: validate -> skip or resume -> build -> profile -> train -> measure -> write record.

Takes a `RunSpec` of plain values (the entry point builds it from Hydra's config), so a run can be
started from Python or a test without Hydra. Bad input fails in `validate` or while building, before
the run's folder exists, so it never leaves a `failed` record or a half-made folder behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from archbench.record import (FINISHED, CorruptFileError, atomic_write_json, environment, new_record, now_iso,
                              read_record, record_dir)

log = logging.getLogger("archbench")

TASKS = ("train", "profile")
LOCK_POLICIES = ("skip", "wait")


class InvalidRunError(ValueError):
    """Bad input found before the run started: nothing was written."""


@dataclass
class RunSpec:
    model: str  # the name in the record and its folder (for timm models: the timm name)
    data: dict  # keyword arguments of archbench.data.load_dataset (name, root, image_size, ...)
    task: str = "train"
    study: str = "default"
    seed: int = 0
    device: str = "auto"
    results_dir: str = "results"
    force: bool = False
    on_locked: str = "skip"
    model_stem: str = "auto"
    model_source: str = "archbench"  # "timm": any timm model by its timm name (model=timm model.name=...)
    model_kwargs: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    # training recipe (see conf/train/*.yaml)
    recipe: str = "standard"
    batch_size: int = 128
    eval_batch_size: int = 512
    lr: float = 0.1
    lr_reference_batch: int = 128  # lr is scaled linearly: lr * batch_size / lr_reference_batch
    weight_decay: float = 5e-4
    make_optimizer: Callable | None = None
    schedule: Callable[[float], float] | None = None
    budget: dict = field(default_factory=lambda: {"epochs": 1})
    decay_norm_and_bias: bool = False
    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None
    ema_decay: float | None = None
    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    target_top1: float | None = None
    measure: dict = field(default_factory=dict)  # keyword arguments of archbench.measure.measure_latency
    progress_bar: bool = False
    config: dict = field(default_factory=dict)  # the resolved config, stored verbatim in the record

    @property
    def dataset_name(self) -> str:
        return self.data["name"]

    @property
    def builder_name(self) -> str:
        return f"timm/{self.model}" if self.model_source == "timm" else self.model

    @property
    def record_dir(self) -> Path:
        return record_dir(self.results_dir, self.study, self.dataset_name, self.model, self.seed)


# --------------------------------------------------------------------------------------------- validation

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def validate(spec: RunSpec) -> None:
    """Cheap checks of every value a run depends on, before anything is built or written."""
    from archbench.train.budget import parse_budget

    if spec.task not in TASKS:
        raise ValueError(f"task={spec.task!r} is not one of: {', '.join(TASKS)}")
    if spec.on_locked not in LOCK_POLICIES:
        raise ValueError(f"on_locked={spec.on_locked!r} is not one of: {', '.join(LOCK_POLICIES)}")
    if not isinstance(spec.seed, int) or isinstance(spec.seed, bool) or spec.seed < 0:
        raise ValueError(f"seed={spec.seed!r} must be a non-negative integer")
    spec.record_dir  # names usable as folders
    resolve_device(spec.device)
    if spec.task == "profile":
        return
    for key in ("batch_size", "eval_batch_size", "lr_reference_batch"):
        value = getattr(spec, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"train.{key}={value!r} must be a positive integer")
    if not _is_number(spec.lr) or spec.lr <= 0:
        raise ValueError(f"train.optimizer.lr={spec.lr!r} must be a positive number, e.g. 0.1")
    if not _is_number(spec.weight_decay) or spec.weight_decay < 0:
        raise ValueError(f"train.optimizer.weight_decay={spec.weight_decay!r} must be a number >= 0")
    if not _is_number(spec.label_smoothing) or not 0 <= spec.label_smoothing < 1:
        raise ValueError(f"train.label_smoothing={spec.label_smoothing!r} must be in [0, 1)")
    if spec.ema_decay is not None and not (_is_number(spec.ema_decay) and 0 < spec.ema_decay < 1):
        raise ValueError(f"train.ema_decay={spec.ema_decay!r} must be null or in (0, 1), e.g. 0.999")
    if spec.target_top1 is not None and not (_is_number(spec.target_top1) and 0 < spec.target_top1 <= 100):
        raise ValueError(f"train.target_top1={spec.target_top1!r} must be null or a percentage in (0, 100]")
    parse_budget(**spec.budget)
    if spec.make_optimizer is None or spec.schedule is None:
        raise ValueError("a training run needs train.optimizer and train.scheduler (see conf/train/standard.yaml)")


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but this machine has no CUDA device (torch {torch.__version__}, "
                             "cuda available: False): use device=cpu or device=auto")
        return device
    raise ValueError(f"device={device!r} is not one of: auto, cpu, cuda, cuda:<index>")


# ------------------------------------------------------------------------------------------ lock and skip

@contextlib.contextmanager
def run_lock(folder: Path, policy: str):
    """An exclusive flock on `<run folder>/.lock`: two sweeps never train the same record at once.

    The kernel drops the lock when its process dies, even by kill -9, so a stale lock cannot block a rerun.
    Yields True when held, False when another process holds it and the policy is "skip".
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if policy == "skip" else 0))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def finished_record(spec: RunSpec) -> dict | None:
    """The existing finished record for this run, if any (a corrupt one is moved aside and reported)."""
    try:
        record = read_record(spec.record_dir / "record.json")
    except CorruptFileError as err:
        log.warning("%s", err)
        return None
    return record if record and record.get("status") in FINISHED else None


def summary(spec: RunSpec, status: str, record: dict | None = None, wall_s: float | None = None) -> dict:
    metrics = (record or {}).get("metrics") or {}
    return {"model": spec.model, "data": spec.dataset_name, "seed": spec.seed, "study": spec.study,
            "status": status, "wall_s": wall_s, "test_top1": metrics.get("test_top1"),
            "record": str(spec.record_dir / "record.json")}


# ---------------------------------------------------------------------------------------------------- run

def run(spec: RunSpec) -> dict:
    """Run (or skip, or resume) one job and return a one-line summary for the sweep table."""
    tick = time.perf_counter()
    try:
        validate(spec)
    except (ValueError, TypeError) as err:
        raise InvalidRunError(str(err)) from err
    rank = int(os.environ.get("RANK", 0))
    if not spec.force and (done := finished_record(spec)) is not None:
        log.info("skip %s: record is %s (force=true reruns it)", spec.record_dir, done["status"])
        return summary(spec, "skipped", done, time.perf_counter() - tick)

    try:
        built = build(spec)  # data and model: bad input fails here, before any folder exists
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as err:
        raise InvalidRunError(str(err)) from err
    if rank != 0:
        return execute(spec, built, tick)
    with run_lock(spec.record_dir, spec.on_locked) as held:
        if not held:
            log.info("skip %s: another process holds its lock", spec.record_dir)
            return summary(spec, "locked", None, time.perf_counter() - tick)
        if not spec.force and (done := finished_record(spec)) is not None:  # finished while we waited
            return summary(spec, "skipped", done, time.perf_counter() - tick)
        if spec.force:
            (spec.record_dir / "checkpoint.ckpt").unlink(missing_ok=True)
        with _log_to_file(spec.record_dir / "run.log"):
            return execute(spec, built, tick)


@dataclass
class Built:
    model: Any
    family: str
    input_shape: tuple
    dataset: Any | None
    data_info: dict
    complexity: dict
    device: str


def build(spec: RunSpec) -> Built:
    import torch

    from archbench import data as data_lib
    from archbench import models
    from archbench.measure import profile_complexity

    device = resolve_device(spec.device)
    _seed_everything(spec.seed, spec.deterministic)
    if spec.task == "profile":
        # Profile-only: the data config's shape and class count, no dataset files.
        dataset = None
        in_chans, image_size, num_classes = spec.data["in_chans"], spec.data["image_size"], spec.data["num_classes"]
        data_info = {"name": spec.dataset_name, "image_size": image_size, "in_chans": in_chans,
                     "num_classes": num_classes, "profile_only": True}
    else:
        dataset = data_lib.load_dataset(**spec.data)
        in_chans, image_size, num_classes = dataset.in_chans, dataset.image_size, dataset.num_classes
        data_info = {"name": spec.dataset_name, "num_classes": num_classes, "image_size": image_size,
                     "in_chans": in_chans, "mean": list(dataset.mean), "std": list(dataset.std),
                     "class_names": list(dataset.class_names), **dataset.info}
        if len(dataset.train.labels) < spec.batch_size:
            raise ValueError(f"train.batch_size={spec.batch_size} is larger than the training split "
                             f"({len(dataset.train.labels)} images): lower it or raise data.train_size")
    model = models.create_model(spec.builder_name, num_classes=num_classes, in_chans=in_chans, input_size=image_size,
                                stem=spec.model_stem, **spec.model_kwargs)
    info = getattr(model, "archbench_info", {})
    input_shape = (1, in_chans, image_size, image_size)
    try:
        complexity = profile_complexity(model, input_shape)
    except RuntimeError as err:
        raise ValueError(f"model {spec.model!r} cannot run on {image_size}x{image_size} inputs from "
                         f"data={spec.dataset_name!r} ({err}); use a larger data.image_size or model.stem=cifar") from err
    complexity["stem"] = info.get("stem")
    return Built(model, info.get("family") or models.model_family(spec.builder_name), input_shape,
                 dataset, data_info, complexity, device)


def execute(spec: RunSpec, built: Built, tick: float) -> dict:
    """Train (or profile), measure and write the record; any crash still leaves a `failed` record."""
    from archbench.measure import measure_latency

    rank = int(os.environ.get("RANK", 0))
    record = new_record(task=spec.task, study=spec.study, model=spec.model, family=built.family,
                        data=spec.dataset_name, seed=spec.seed, config=spec.config,
                        env=environment(built.device),
                        synthetic=bool(getattr(built.dataset, "synthetic", False)) or spec.dataset_name == "synthetic")
    record.update(dataset=built.data_info, complexity=built.complexity)
    path = spec.record_dir / "record.json"
    try:
        if spec.task == "train":
            result = _train(spec, built, record)
            record.update(status=result.status, history=result.history, metrics=result.metrics, train=result.train)
        else:
            record["status"] = "complete"
        if record["status"] == "complete":
            record["latency"] = _latency(spec, built, measure_latency)
    except SystemExit:
        raise  # interrupted: the checkpoint is saved, the record is not final
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
        record["env"]["end_time"] = now_iso()
        if rank == 0:
            atomic_write_json(path, record)
            log.error("run failed; wrote %s", path)
        raise
    record["env"]["end_time"] = now_iso()
    if rank == 0:
        atomic_write_json(path, record)
        (spec.record_dir / "checkpoint.ckpt").unlink(missing_ok=True)  # finished: the record is the result
        log.info("wrote %s (status %s, test top-1 %s)", path, record["status"],
                 (record["metrics"] or {}).get("test_top1"))
    return summary(spec, record["status"], record, time.perf_counter() - tick)


def _train(spec: RunSpec, built: Built, record: dict):
    import torch

    from archbench.data import make_loaders
    from archbench.measure import device_peak_flops, peak_memory_bytes, reset_peak_memory, training_cost
    from archbench.train.budget import parse_budget
    from archbench.train.loop import EXIT_INTERRUPTED, TrainingInterrupted, TrainSettings, fit

    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = built.device
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = not spec.deterministic  # fastest kernels for fixed shapes
    reset_peak_memory(device)
    train_loader, val_loader, test_loader = make_loaders(
        built.dataset, batch_size=spec.batch_size, eval_batch_size=spec.eval_batch_size, device=device,
        augment=spec.augment, seed=spec.seed, rank=rank, world_size=world)
    flops_train = built.complexity.get("flops_train")
    settings = TrainSettings(
        budget=parse_budget(**spec.budget), batch_size=spec.batch_size, make_optimizer=spec.make_optimizer,
        lr=spec.lr * spec.batch_size * world / spec.lr_reference_batch, weight_decay=spec.weight_decay,
        schedule=spec.schedule, decay_norm_and_bias=spec.decay_norm_and_bias, label_smoothing=spec.label_smoothing,
        grad_clip_norm=spec.grad_clip_norm, ema_decay=spec.ema_decay, amp=spec.amp,
        channels_last=spec.channels_last, compile=spec.compile, target_top1=spec.target_top1,
        # Training MACs per image = FlopCounterMode's forward+backward FLOPs / 2 (one MAC = two FLOPs).
        train_macs_per_image=flops_train / 2 if flops_train else None, progress_bar=spec.progress_bar)
    try:
        result = fit(built.model, train_loader, val_loader, test_loader, settings, device=device,
                     checkpoint_path=spec.record_dir / "checkpoint.ckpt")
    except TrainingInterrupted as err:
        log.warning("%s; exiting with code %d so a requeue resumes it", err, EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from err
    train = result.train
    train["lr_scaled"] = settings.lr
    train["amp"], train["channels_last"], train["compile"] = spec.amp, spec.channels_last, spec.compile
    train["world_size"] = world
    train["peak_mem_bytes"] = peak_memory_bytes(device)
    peak = device_peak_flops(device)
    train["device_peak_flops_per_s"] = peak.get("flops_per_s")
    train["device_peak"] = peak
    if flops_train and train.get("img_per_s"):
        train.update(training_cost(flops_train, train["img_per_s"], peak.get("flops_per_s")))
    record["dataset"]["selection"] = result.metrics["selection"]
    built.model = result.model
    return result


def _latency(spec: RunSpec, built: Built, measure_latency) -> dict:
    options = {k: v for k, v in spec.measure.items() if k != "isolate"}
    if spec.measure.get("isolate"):
        from archbench.measure import measure_latency_isolated
        create = {"num_classes": built.data_info["num_classes"], "in_chans": built.input_shape[1],
                  "input_size": built.input_shape[2], "stem": spec.model_stem, **spec.model_kwargs}
        return measure_latency_isolated(spec.builder_name, create, built.input_shape, device=built.device, **options)
    return measure_latency(built.model, built.input_shape, device=built.device, **options)


def _seed_everything(seed: int, deterministic: bool) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # Bit-reproducible runs: slower kernels, and an error on any op without a deterministic version.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


@contextlib.contextmanager
def _log_to_file(path: Path):
    """The run's log beside its record (Hydra's own log file is off, so bad input leaves no folder)."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
