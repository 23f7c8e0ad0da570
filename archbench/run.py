"""One run, top to bottom: validate -> skip or resume -> build -> profile -> train -> measure -> write record.

Takes a `RunSpec` of per-stage settings objects (archbench.settings; the entry point builds them from
Hydra's config groups), so a run can be started from Python or a test without Hydra. Bad input fails in
`validate` or while building, before the run's folder exists, so it never leaves a `failed` record or a
half-made folder behind. `preflight` does everything but train and write: the `dry_run=true` plan.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import random
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archbench.files import WriteError, check_free_space, check_writable, exclusive_lock
from archbench.record import (FINISHED, CorruptFileError, atomic_write_json, environment, near_chance, new_record,
                              now_iso, read_record, record_dir)
from archbench.settings import (DataSettings, MeasureSettings, ModelSettings, Recipe, SettingsError, differences,
                                fingerprint, run_identity, variant_name)

log = logging.getLogger("archbench")

TASKS = ("train", "profile", "evaluate", "measure")
LOCK_POLICIES = ("skip", "wait")
# The selected (best-validation) weights, beside the record: task=evaluate re-evaluates from them.
WEIGHTS_FILENAME = "weights.pt"
# Held while a job measures latency and throughput, so parallel jobs of one results folder take turns.
MEASURE_LOCK = ".measure.lock"
# A CPU run planned longer than this gets a hint to use a smaller budget before it starts.
LONG_RUN_S = 3600


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
    # Parallel jobs share the cores, so their speed is measured after the sweep (archbench.remeasure), not here.
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


# --------------------------------------------------------------------------------------------- validation

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
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"device={device!r} but this machine has no CUDA device (torch {torch.__version__}, "
                                "cuda available: False): use device=cpu or device=auto")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise SettingsError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA "
                                f"device(s): use device=cuda:0 ... cuda:{torch.cuda.device_count() - 1}")
        return device
    raise SettingsError(f"device={device!r} is not one of: auto, cpu, cuda, cuda:<index>")


# ------------------------------------------------------------------------------------------ lock and skip

@contextlib.contextmanager
def run_lock(folder: Path, policy: str):
    """An exclusive lock on `<run folder>/.lock`: two sweeps never train the same record at once."""
    with exclusive_lock(folder / ".lock", wait=policy == "wait") as held:
        yield held


def finished_record(spec: RunSpec) -> dict | None:
    """The existing finished record of exactly this run, if any (a corrupt one is moved aside and reported)."""
    try:
        record = read_record(spec.record_dir / "record.json")
    except CorruptFileError as err:
        log.warning("%s", err)
        return None
    if not record or record.get("status") not in FINISHED:
        return None
    if (record.get("identity") or {}).get("fingerprint") != spec.fingerprint:
        log.warning("%s holds a record of another identity; it is not reused (force=true replaces it)",
                    spec.record_dir)
        return None
    return record


def note_other_variants(spec: RunSpec) -> None:
    """Say how this run differs from the other settings already recorded for the same model and seed."""
    model_dir = spec.record_dir.parent.parent
    for other in sorted(model_dir.glob(f"*/seed{spec.seed}/record.json")):
        if other.parent == spec.record_dir:
            continue
        with contextlib.suppress(OSError, ValueError):
            settings = (json.loads(other.read_text()).get("identity") or {}).get("settings")
            if settings:
                diff = differences(settings, spec.identity)
                if any(d.startswith("data.content:") for d in diff):
                    log.info("the data changed since the record at %s was made: files under data.root=%s were "
                             "added, removed or rewritten, so this run is a new variant (%s), not a skip",
                             other.parent.parent.name, spec.data.load.get("root"), spec.variant)
                    diff = [d for d in diff if not d.startswith("data.content:")]
                    if not diff:
                        continue
                log.info("a record of other settings exists at %s; this run is a separate variant (%s): %s",
                         other.parent.parent.name, spec.variant, "; ".join(diff[:6]) or "no difference")


def summary(spec: RunSpec, status: str, record: dict | None = None, wall_s: float | None = None) -> dict:
    metrics = (record or {}).get("metrics") or {}
    train = (record or {}).get("train") or {}
    return {"model": spec.model.name, "data": spec.dataset_name, "variant": spec.variant, "seed": spec.seed,
            "study": spec.study, "status": status, "job_wall_s": wall_s, "train_s": train.get("wall_s"),
            "test_top1": metrics.get("test_top1"), "record": str(spec.record_dir / "record.json")}


# ---------------------------------------------------------------------------------------------------- run

def run(spec: RunSpec) -> dict:
    """Run (or skip, or resume) one job and return a one-line summary for the sweep table."""
    tick = time.perf_counter()
    try:
        validate(spec)
    except (ValueError, TypeError) as err:
        raise InvalidRunError(str(err)) from err
    rank = int(os.environ.get("RANK", 0))
    if spec.task == "evaluate":
        _check_writable(spec)
        return evaluate_run(spec, tick)
    if spec.task == "measure":
        return measure_run(spec, tick)
    if not spec.force and (done := finished_record(spec)) is not None:
        log.info("skip %s: record is %s (force=true reruns it)", spec.record_dir, done["status"])
        return summary(spec, "skipped", done, time.perf_counter() - tick)
    if rank == 0:
        _check_writable(spec)  # before anything is built: a read-only results_dir costs nothing
    note_other_variants(spec)

    log.info("building %s on %s: %s", spec.model.name, spec.dataset_name,
             "model and complexity count, then latency" if spec.task == "profile"
             else "data, model, complexity count (and latency after training)")
    try:
        built = build(spec)  # data and model: bad input fails here, before any folder exists
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError) as err:
        raise InvalidRunError(str(err)) from err
    if rank == 0 and spec.task == "train":
        try:
            check_free_space(spec.results_dir, *expected_write_bytes(spec, built))
        except WriteError as err:
            raise InvalidRunError(str(err)) from err
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1:
        built.device = _init_distributed(built.device)  # before any decision, so every rank takes rank 0's
    lock = run_lock(spec.record_dir, spec.on_locked) if rank == 0 else contextlib.nullcontext(True)
    with lock as held:
        decision = "run" if held else "locked"
        if held and rank == 0 and not spec.force and finished_record(spec) is not None:
            decision = "skipped"  # finished while we waited for the lock
        if world > 1:
            decision = _from_rank_0(decision)  # a rank alone would train and hang in the first collective
        if decision != "run":
            log.info("skip %s: %s", spec.record_dir, "another process holds its lock" if decision == "locked"
                     else "record is complete")
            return summary(spec, decision, finished_record(spec), time.perf_counter() - tick)
        if spec.force and rank == 0:
            (spec.record_dir / "checkpoint.ckpt").unlink(missing_ok=True)
        with _log_to_file(spec.record_dir / "run.log") if rank == 0 else contextlib.nullcontext():
            return execute(spec, built, tick)


def _check_writable(spec: RunSpec) -> None:
    try:
        check_writable(spec.results_dir)
    except WriteError as err:
        raise InvalidRunError(str(err)) from err


def expected_write_bytes(spec: RunSpec, built: "Built") -> tuple[int, str]:
    """(bytes, how they add up) a training run writes at its peak: the checkpoint twice (the new one is written
    beside the old before replacing it), the selected weights, the record and log."""
    params = int(built.complexity.get("params") or sum(p.numel() for p in built.model.parameters()))
    # fp32 weights, plus the optimizer's per-weight state (up to two for Adam) and an EMA copy when kept
    copies = 1 + 2 + (1 if spec.recipe.ema_decay else 0)
    checkpoint = 4 * params * copies
    slack = 8 << 20  # record, run log, loggers' files, file-system blocks
    need = 2 * checkpoint + 4 * params + slack
    return need, (f"a checkpoint of about {checkpoint / 2**20:.1f} MiB, twice while it is replaced, "
                  f"{4 * params / 2**20:.1f} MiB of weights, the record and log")


def _init_distributed(device: str) -> str:
    """Join the torchrun process group; returns this rank's device (cuda:<LOCAL_RANK> on GPUs)."""
    import torch

    if device.startswith("cuda"):
        # The device first, then the group bound to it: NCCL otherwise guesses a device per rank.
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        if device.startswith("cuda"):
            torch.distributed.init_process_group("nccl", device_id=torch.device(device))
        else:
            torch.distributed.init_process_group("gloo")
    return device


def _from_rank_0(decision):
    """Rank 0's value of a decision every rank must share (skip/lock, precision and layout)."""
    import torch

    box = [decision]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


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
    from archbench.measure import profile_complexity

    device = resolve_device(spec.device)
    _seed_everything(spec.seed, spec.recipe is not None and spec.recipe.deterministic)
    if spec.task == "profile":
        dataset, data_info = None, _profile_data_info(spec)  # the data config's shape and class count, no files
    else:
        dataset = load_data(spec.data)
        data_info = {"name": spec.dataset_name, "label": dataset.info.get("label") or spec.data.label,
                     "num_classes": dataset.num_classes, "image_size": dataset.image_size,
                     "in_chans": dataset.in_chans, "mean": list(dataset.mean), "std": list(dataset.std),
                     "class_names": list(dataset.class_names), **dataset.info}
        if len(dataset.train.labels) < spec.recipe.batch_size:
            raise ValueError(batch_too_large(spec, len(dataset.train.labels)))
    model, family, input_shape = _create_model(spec, data_info)
    try:
        complexity = profile_complexity(model, input_shape)
    except RuntimeError as err:
        raise ValueError(f"model {spec.model.name!r} cannot run on {input_shape[2]}x{input_shape[3]} inputs from "
                         f"data={spec.dataset_name!r} ({err}); use a larger data.image_size, or model.stem=cifar (overall stride 8) or cifar16 (stride 16)") from err
    complexity["stem"] = getattr(model, "archbench_info", {}).get("stem")
    return Built(model, family, input_shape, dataset, data_info, complexity, device)


def batch_too_large(spec: RunSpec, n_train: int) -> str:
    """The batch-size error, with the fix that is possible: a subset can grow, the full split cannot."""
    text = f"train.batch_size={spec.recipe.batch_size} is larger than the training split ({n_train} images): "
    if spec.data.load.get("train_size") is not None:
        return text + "lower it or raise data.train_size"
    return text + ("lower it (every training image is already used; a smaller data.val_size moves some back "
                   "into training, or use a larger dataset)")


def load_data(data: DataSettings):
    from archbench import data as data_lib

    return data_lib.load_dataset(**data.load, label=data.label)


def _profile_data_info(spec: RunSpec) -> dict:
    load = spec.data.load
    return {"name": spec.dataset_name, "label": spec.data.label, "image_size": load.get("image_size"),
            "in_chans": load.get("in_chans"), "num_classes": load.get("num_classes"), "profile_only": True}


def _create_model(spec: RunSpec, data_info: dict):
    from archbench import models

    model = models.create_model(spec.model.builder_name, num_classes=data_info["num_classes"],
                                in_chans=data_info["in_chans"], input_size=data_info["image_size"],
                                stem=spec.model.stem, **spec.model.kwargs)
    family = getattr(model, "archbench_info", {}).get("family") or models.model_family(spec.model.builder_name)
    return model, family, (1, data_info["in_chans"], data_info["image_size"], data_info["image_size"])


def execute(spec: RunSpec, built: Built, tick: float) -> dict:
    """Train (or profile), measure and write the record; any crash still leaves a `failed` record."""
    from archbench.measure import measure_latency

    rank = int(os.environ.get("RANK", 0))
    identity = {"fingerprint": spec.fingerprint, "variant": spec.variant, "settings": spec.identity}
    record = new_record(task=spec.task, study=spec.study, model=spec.model.name, family=built.family,
                        data=spec.dataset_name, seed=spec.seed, config=spec.config, identity=identity,
                        recipe=spec.recipe.describe() if spec.recipe else None, env=environment(built.device),
                        tuning=spec.tuning,
                        synthetic=bool(getattr(built.dataset, "synthetic", False)) or spec.dataset_name == "synthetic")
    record.update(dataset=built.data_info, complexity=built.complexity)
    path = spec.record_dir / "record.json"
    tracker = _tracker(spec, record) if rank == 0 else None
    try:
        if spec.task == "train":
            result = _train(spec, built, record, tracker)
            record.update(status=result.status, history=result.history, metrics=result.metrics, train=result.train)
            val = record["metrics"] or {}
            top1 = val.get("val_top1") if val.get("val_top1") is not None else val.get("test_top1")
            count = built.data_info.get("val_size") if val.get("val_top1") is not None else built.data_info.get("test_size")
            if result.status == "complete" and near_chance(top1, built.data_info.get("num_classes"), count):
                record["flags"].append("near_chance")
                log.warning("%s finished within noise of chance (top-1 %.2f%% with %s classes): flagged near_chance",
                            spec.model.name, top1, built.data_info.get("num_classes"))
        else:
            record["status"] = "complete"
        if record["status"] == "complete" and rank == 0 and spec.defer_speed:
            log.info("latency and throughput of %s: measured after the sweep, when no job trains beside it",
                     spec.model.name)
            record["latency"] = {"deferred": "parallel sweep: measured after training, one model at a time "
                                             "(task=measure)"}
        elif record["status"] == "complete" and rank == 0:  # one measurement, on rank 0's own device
            log.info("measuring latency and throughput of %s", spec.model.name)
            # Jobs sharing a machine (several on one GPU) measure one at a time, never two at once.
            with exclusive_lock(Path(spec.results_dir) / MEASURE_LOCK, wait=True):
                record["latency"] = _quiet_latency(spec, built, measure_latency)
        if record["status"] == "complete" and spec.task == "train" and rank == 0:
            _save_weights(spec.record_dir / WEIGHTS_FILENAME, built.model)
            if result.test_outcomes is not None:  # which test images it got right, so comparisons can pair them
                from archbench.outcomes import OUTCOMES_FILENAME, write_outcomes
                record["test_outcomes"] = write_outcomes(spec.record_dir / OUTCOMES_FILENAME, *result.test_outcomes)
            if spec.evaluate is not None and spec.evaluate.after_train:
                record.update(_evaluate(spec, built.model, built.dataset, built.device))
    except SystemExit:
        raise  # interrupted: the checkpoint is saved, the record is not final
    except BaseException as err:
        record["status"] = "failed"
        record["error"] = {"type": type(err).__name__, "message": str(err), "traceback": traceback.format_exc()}
        record["env"]["end_time"] = now_iso()
        if rank == 0:
            try:
                atomic_write_json(path, record)
                log.error("run failed; wrote %s", path)
            except OSError as write_err:  # a full disk fails this write too: the first error is the one to see
                log.error("run failed, and its failed record could not be written either (%s)", write_err)
        raise
    finally:
        if tracker is not None:
            tracker.log_final(record.get("metrics") or record.get("latency") or {}, record.get("complexity") or {})
            tracker.close()
    record["env"]["end_time"] = now_iso()
    record["env"]["job_wall_s"] = time.perf_counter() - tick  # the whole job: build, train, measure
    if rank == 0:
        atomic_write_json(path, record)
        (spec.record_dir / "checkpoint.ckpt").unlink(missing_ok=True)  # finished: the record is the result
        log.info("wrote %s (status %s)\n%s", path, record["status"], result_table(record))
    return summary(spec, record["status"], record, time.perf_counter() - tick)


def result_table(record: dict) -> str:
    """The few figures a person wants at the end of a run, as a small aligned table."""
    complexity, latency = record.get("complexity") or {}, record.get("latency") or {}
    metrics, train = record.get("metrics") or {}, record.get("train") or {}
    b1, tp = latency.get("batch_1") or {}, latency.get("throughput") or {}
    rows = [("model", record.get("model")), ("status", record.get("status")),
            ("params", _fmt(complexity.get("params"), "{:,.0f}")),
            ("MACs (multiply-adds)", _fmt(complexity.get("macs"), "{:,.0f}")),
            ("FLOPs forward", _fmt(complexity.get("flops_forward"), "{:,.0f}")),
            ("batch-1 latency median / p90", f"{_fmt(b1.get('median_ms'), '{:.2f}')} / {_fmt(b1.get('p90_ms'), '{:.2f}')} ms"),
            ("throughput", f"{_fmt(tp.get('img_per_s'), '{:,.0f}')} img/s at batch {tp.get('batch_size', '-')}")]
    if record.get("task") == "train":
        rows += [("test top-1 (selected on val)", _fmt(metrics.get("test_top1"), "{:.2f}%")),
                 ("val top-1", _fmt(metrics.get("val_top1"), "{:.2f}%")),
                 ("training time", _fmt(train.get("wall_s"), "{:.1f} s")),
                 ("training img/s", _fmt(train.get("img_per_s"), "{:,.0f}"))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _tracker(spec: RunSpec, record: dict):
    """The experiment loggers the user asked for (none by default); a failing one warns once, never fails the run."""
    if spec.logger is None or not spec.logger.names:
        return None
    from archbench.loggers import make_logger, unavailable

    missing = unavailable(spec.logger.names)
    if missing:  # an optional package: the record says which logger is left out and why
        record["logger"] = {"skipped": missing}
        for why in missing.values():
            log.warning("%s; the run goes on without that logger", why)
    tracker = make_logger([n for n in spec.logger.names if n not in missing], spec.record_dir,
                          spec.logger.mlflow_uri)
    tracker.log_hparams({"study": spec.study, "model": spec.model.name, "data": spec.dataset_name,
                         "seed": spec.seed, "variant": spec.variant, **record["identity"]["settings"]})
    return tracker


def _train(spec: RunSpec, built: Built, record: dict, tracker=None):
    import torch

    from archbench.data import make_loaders
    from archbench.measure import peak_memory_bytes, reset_peak_memory
    from archbench.measure.energy import EnergyMeter, inference_window, measure_energy
    from archbench.measure.peak import PEAK_INCLUDES_CPU, PEAK_INCLUDES_CUDA, allocated_bytes
    from archbench.train.loop import EXIT_INTERRUPTED, TrainingInterrupted, TrainSettings, fit

    recipe = spec.recipe
    world = int(os.environ.get("WORLD_SIZE", 1))
    rank = int(os.environ.get("RANK", 0))
    device = built.device
    if world > 1:
        device = _init_distributed(device)
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = not recipe.deterministic  # fastest kernels for fixed shapes
    train_loader, val_loader, test_loader = make_loaders(
        built.dataset, batch_size=recipe.batch_size, eval_batch_size=recipe.eval_batch_size, device=device,
        augment=spec.data.augment, seed=spec.seed, order_seed=spec.data.order_seed, rank=rank, world_size=world)
    reset_peak_memory(device)  # after the loaders: a dataset moved to the GPU is not training memory...
    resident = allocated_bytes(device)  # ...and is subtracted, since it stays allocated under the peak
    meter = EnergyMeter(device) if rank == 0 else None
    if meter is not None and meter.skipped and device.startswith("cuda"):
        log.warning("energy left out of the record: %s", meter.skipped)
    flops_train = built.complexity.get("flops_train")
    amp, channels_last = _precision(spec, built, device, record)
    settings = TrainSettings(
        budget=recipe.budget, batch_size=recipe.batch_size, make_optimizer=recipe.make_optimizer(),
        lr=recipe.scaled_lr(world), weight_decay=recipe.weight_decay, schedule=recipe.make_schedule(),
        decay_norm_and_bias=recipe.decay_norm_and_bias, label_smoothing=recipe.label_smoothing,
        grad_clip_norm=recipe.grad_clip_norm, ema_decay=recipe.ema_decay, amp=amp, channels_last=channels_last,
        compile=recipe.compile, target_top1=recipe.target_top1, identity=spec.fingerprint,
        checkpoint_every_s=recipe.checkpoint_every_s,
        on_epoch=tracker.log_epoch if tracker is not None else None,
        # Training MACs per image = FlopCounterMode's forward+backward FLOPs / 2 (one MAC = two FLOPs).
        train_macs_per_image=flops_train / 2 if flops_train else None, progress_bar=spec.progress_bar)
    steps_per_epoch = len(train_loader)
    planned = recipe.budget.planned_steps(steps_per_epoch, settings.train_macs_per_image * recipe.batch_size * world
                                          if settings.train_macs_per_image else None)
    log.info("plan: %s on %s (%d training images), recipe %s, budget %s = %s steps of batch %d, lr %.4g, "
             "%s, device %s", spec.model.name, built.data_info.get("label") or spec.dataset_name,
             len(built.dataset.train.labels), recipe.name, _budget_text(recipe.budget),
             planned if planned is not None else "as many", recipe.batch_size, settings.lr,
             f"precision {amp}, channels_last {channels_last}", device)
    try:
        window_start = meter.read() if meter is not None else None
        result = fit(built.model, train_loader, val_loader, test_loader, settings, device=device,
                     checkpoint_path=spec.record_dir / "checkpoint.ckpt")
        train_window = (window_start, meter.read()) if meter is not None else None
    except TrainingInterrupted as err:
        log.warning("%s; exiting with code %d so a requeue resumes it", err, EXIT_INTERRUPTED)
        raise SystemExit(EXIT_INTERRUPTED) from err
    train = result.train
    train["lr_scaled"] = settings.lr
    train["amp"], train["channels_last"], train["compile"] = amp, channels_last, recipe.compile
    train["world_size"] = world
    train["peak_mem_bytes"] = peak_memory_bytes(device) - (resident or 0)
    train["dataset_resident_bytes"] = resident
    train["peak_mem_includes"] = PEAK_INCLUDES_CUDA if device.startswith("cuda") else PEAK_INCLUDES_CPU
    if meter is not None:
        inference = inference_window(result.model, built.input_shape, device, recipe.eval_batch_size, amp,
                                     channels_last) if not meter.skipped else None
        # images this device trained (a DDP rank's share), the warm-up step's included: it is in the window
        record["energy"] = measure_energy(meter, train_window, result.train["steps"] * recipe.batch_size,
                                          inference)
    if rank == 0:  # only rank 0 writes the record: one peak measurement, not one per rank at once
        _add_utilisation(train, flops_train, device, amp, world)
    record["dataset"]["selection"] = result.metrics["selection"]
    built.model = result.model
    return result


def _add_utilisation(train: dict, flops_train, device: str, amp: str, world: int) -> None:
    """The device's peak in the precision that ran, and MFU against it (one device's share of the job)."""
    from archbench.measure import training_cost

    peak = _peak(device, amp)
    train["device_peak_flops_per_s"] = peak.get("flops_per_s")
    train["device_peak"] = peak
    if not (flops_train and train.get("img_per_s")):
        return
    train["img_per_s_per_device"] = train["img_per_s"] / world
    cost = training_cost(flops_train, train["img_per_s_per_device"], peak.get("flops_per_s"))
    if (cost["mfu"] or 0) > 1 and peak.get("cached"):
        # Training just beat the cached ceiling, so that peak was measured on a busy machine: measure again.
        log.warning("MFU %.2f > 1 against the cached %s peak (%.3g FLOP/s, measured at load %s): re-measuring it",
                    cost["mfu"], peak.get("precision"), peak["flops_per_s"], peak.get("load_avg_1m"))
        peak = _peak(device, amp, refresh=True)
        train["device_peak_flops_per_s"], train["device_peak"] = peak.get("flops_per_s"), peak
        cost = training_cost(flops_train, train["img_per_s_per_device"], peak.get("flops_per_s"))
    train.update(cost)
    train["mfu_basis"] = "per device" if world > 1 else "single device"


def _precision(spec: RunSpec, built: Built, device: str, record: dict) -> tuple[str, bool]:
    """The precision and memory layout that train: explicit values as given; `auto` by a measured probe."""
    recipe = spec.recipe
    amp, channels_last = recipe.amp, recipe.channels_last
    if amp != "auto" and channels_last != "auto":
        return amp, channels_last
    from archbench.train.precision import choose_precision
    cache = Path(os.environ.get("ARCHBENCH_CACHE_DIR") or Path.home() / ".cache" / "archbench") / "precision"
    world = int(os.environ.get("WORLD_SIZE", 1))
    choice = None
    if int(os.environ.get("RANK", 0)) == 0:
        log.info("precision probe: timing a few training steps of fp32/bf16 x NCHW/channels_last (cached per machine)")
        choice = choose_precision(built.model, built.input_shape[1:], recipe.batch_size,
                                  built.data_info["num_classes"], device, amp=amp, channels_last=channels_last,
                                  cache_dir=cache, model_name=spec.model.name)
    if world > 1:
        # Ranks probing on their own can choose differently under load (fp32 NCHW on one, bf16 channels_last
        # on another) and DDP then fails on mismatched parameter strides: rank 0 decides for all.
        choice = _from_rank_0(choice)
    log.info("precision probe: %s", choice.get("reason"))
    record["train_precision"] = choice  # what ran, the probe's figures and why
    return choice["amp"], choice["channels_last"]


def _peak(device: str, amp: str, refresh: bool = False) -> dict:
    """The device's measured peak in the precision that ran, so MFU is against the matching peak."""
    from archbench.measure import device_peak_flops

    precision = {"off": "fp32", "bf16": "bf16", "fp16": "fp16"}.get(amp, "fp32")
    return device_peak_flops(device, precision=precision, refresh=refresh)


def _budget_text(budget) -> str:
    return f"{budget.value:g} {budget.kind}" if isinstance(budget.value, float) else f"{budget.value} {budget.kind}"


def _latency(spec: RunSpec, built: Built, measure_latency) -> dict:
    options = dict(spec.measure.options)
    if spec.measure.isolate:
        from archbench.measure import measure_latency_isolated
        create = {"num_classes": built.data_info["num_classes"], "in_chans": built.input_shape[1],
                  "input_size": built.input_shape[2], "stem": spec.model.stem, **spec.model.kwargs}
        return measure_latency_isolated(spec.model.builder_name, create, built.input_shape, device=built.device,
                                        **options)
    return measure_latency(built.model, built.input_shape, device=built.device, **options)


def _quiet_latency(spec: RunSpec, built: Built, measure_latency) -> dict:
    """A single run measures at once (no wait, as before) but says how busy the machine was.

    Its own training just ended and still lifts the 1-minute load by up to its threads; a load above
    the limit plus that means something else ran beside it, and the figure is marked under_load.
    """
    import dataclasses

    import torch

    from archbench.quiet import QuietSettings, measure_quietly

    quiet = dataclasses.replace(spec.measure.quiet or QuietSettings(), timeout_s=0)
    threads = torch.get_num_threads() if built.device == "cpu" else 1
    own = threads if spec.task == "train" else 0
    quiet = dataclasses.replace(quiet, max_load_per_thread=quiet.max_load_per_thread + own / threads)
    return measure_quietly(lambda: _latency(spec, built, measure_latency), quiet, threads)


def measure_run(spec: RunSpec, tick: float) -> dict:
    """task=measure: the speed figures of this job's finished record (training or profile), taken again in quiet."""
    import dataclasses

    from archbench.remeasure import remeasure_record

    candidates = [dataclasses.replace(spec, task="train"), dataclasses.replace(spec, task="profile", recipe=None)]
    found = next((c for c in candidates if (c.record_dir / "record.json").exists()), None)
    model_dir = candidates[0].record_dir.parent.parent
    others = sorted(model_dir.glob(f"*/seed{spec.seed}/record.json"))
    if found is None and len(others) == 1:
        # Made by an older archbench whose settings fingerprint differently: speed depends only on the
        # architecture the record names, so its one record of this model and seed is the one to measure.
        log.info("task=measure: no record of this exact identity; measuring the study's one record of %s seed %d "
                 "(%s)", spec.model.name, spec.seed, others[0].parent.parent.name)
        status, record = remeasure_record(others[0], spec.measure, device=spec.device, force=spec.force)
        return {**summary(candidates[0], status, record, time.perf_counter() - tick), "record": str(others[0])}
    if found is None:
        raise InvalidRunError(f"task=measure found no record of this job at {candidates[0].record_dir} (training) "
                              f"or {candidates[1].record_dir} (profile): pass the study's own settings and its "
                              "results_dir (e.g. results_dir=results/reference), or run the study first")
    try:
        status, record = remeasure_record(found.record_dir / "record.json", spec.measure, device=spec.device,
                                          force=spec.force)
    except ValueError as err:
        raise InvalidRunError(str(err)) from err
    return summary(found, status, record, time.perf_counter() - tick)


def _save_weights(path: Path, model) -> None:
    import io

    import torch

    from archbench.files import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def _evaluate(spec: RunSpec, model, dataset, device: str) -> dict:
    """Calibration and corruption robustness of the selected weights (archbench.evaluate)."""
    from archbench.evaluate import evaluate

    log.info("evaluating calibration and corruption robustness of %s", spec.model.name)
    tick = time.perf_counter()
    sections = evaluate(model, dataset, device, spec.evaluate)
    for section in sections.values():
        if isinstance(section, dict):
            section.setdefault("evaluate_s", time.perf_counter() - tick)
    return sections


def evaluate_run(spec: RunSpec, tick: float) -> dict:
    """task=evaluate: add calibration and robustness to a finished run from its saved weights, no retraining.

    Everything already in the record stays byte-identical; only the evaluation sections are (re)written.
    """
    import torch

    path = spec.record_dir / "record.json"
    record = read_record(path)
    if record is None or record.get("status") != "complete":
        raise InvalidRunError(f"task=evaluate needs a complete training record at {path} (found "
                              f"{'none' if record is None else record.get('status')}): run the same command "
                              "with task=train first")
    weights = spec.record_dir / WEIGHTS_FILENAME
    if not weights.exists():
        raise InvalidRunError(f"task=evaluate: {path.parent} has no saved weights ({WEIGHTS_FILENAME}); runs made "
                              "before archbench saved weights must be retrained (force=true)")
    dataset = load_data(spec.data)
    model, _, _ = _create_model(spec, record["dataset"])
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as err:  # truncated, garbled or another model's: torch raises many types
        raise InvalidRunError(
            f"task=evaluate: the saved weights {weights} cannot be loaded ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); the record {path} was left unchanged. "
            f"Rebuild the weights by training again: the same command with task=train force=true (it replaces "
            f"the record with a new run of the same settings), then task=evaluate") from err
    device = resolve_device(spec.device)
    model.to(device).eval()
    record.update(_evaluate(spec, model, dataset, device))
    with run_lock(spec.record_dir, "wait"):
        atomic_write_json(path, record)
    log.info("added calibration and robustness to %s", path)
    return summary(spec, "evaluated", record, time.perf_counter() - tick)


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


# ------------------------------------------------------------------------------------------------ preflight

# Official training-split sizes, so a study can be planned on a machine that lacks the files.
KNOWN_TRAIN_SIZES = {"cifar10": 50_000, "cifar100": 50_000, "cifar10_jpg": 50_000, "fashion_mnist": 60_000,
                     "svhn": 73_257, "imagenet": 1_281_167}
PREFLIGHT_TIMED_STEPS = 2  # after one untimed step: enough for an estimate, cheap for a wide study


def preflight(spec: RunSpec, timed_steps: int = PREFLIGHT_TIMED_STEPS) -> dict:
    """Everything a run would do before training, and nothing under results_dir: the `dry_run` row.

    Validates, finds the data (naming what is missing), builds model, optimizer and schedule, runs one
    forward and backward step at the real batch size (synthetic values; halved if it does not fit),
    times a few steps on this device and estimates the whole run. `problem` is None when it would run.
    """
    row = {"model": spec.model.name, "data": spec.dataset_name, "seed": spec.seed, "variant": None,
           "action": "-", "planned_steps": None, "est_s": None, "problem": None}
    try:
        validate(spec)
        row["variant"] = spec.variant
        row["action"] = _planned_action(spec)
        row["problem"] = (spec.tuning or {}).get("problem")
        if row["action"] == "skip (complete)":
            return row
        try:
            check_writable(spec.results_dir)  # the real run would stop here; the plan says so
        except WriteError as err:
            row["problem"] = "; ".join(filter(None, [row["problem"], str(err)]))
        data_info, n_train, problem = _preflight_data(spec)
        row["problem"] = "; ".join(filter(None, [row["problem"], problem])) or None
        if spec.task == "profile":
            import torch
            model, _, input_shape = _create_model(spec, data_info)
            with torch.inference_mode():
                model.eval()(torch.zeros(input_shape))
            return row
        step_s, batch, note, train_macs = _time_steps(spec, data_info, timed_steps)
        if note:
            row["problem"] = "; ".join(filter(None, [row["problem"], note]))
        recipe = spec.recipe
        steps_per_epoch = max(n_train // recipe.batch_size, 1)
        macs_per_step = train_macs * recipe.batch_size if recipe.budget.kind == "macs" else None
        planned = recipe.budget.planned_steps(steps_per_epoch, macs_per_step)
        row["planned_steps"] = planned
        train_s = recipe.budget.value if planned is None else planned * step_s
        epochs = (planned or steps_per_epoch) / steps_per_epoch
        # Evaluation: a forward pass is about a third of a training step's work per image.
        eval_images = epochs * (data_info.get("val_size") or 0) + 2 * (data_info.get("test_size") or 0)
        row["est_s"] = train_s + eval_images * step_s / batch / 3
        row["epochs"] = epochs
    except (ValueError, TypeError, FileNotFoundError, NotADirectoryError, RuntimeError) as err:
        row["problem"] = "; ".join(filter(None, [row["problem"], f"{type(err).__name__}: {err}"]))
    return row


def _planned_action(spec: RunSpec) -> str:
    if not spec.force and finished_record(spec) is not None:
        return "skip (complete)"
    checkpoint = spec.record_dir / "checkpoint.ckpt"
    if checkpoint.exists() and not spec.force:
        from archbench.train.checkpoint import load_checkpoint_info
        step = load_checkpoint_info(checkpoint, spec.fingerprint)
        if step is not None:
            return f"resume at step {step}"
    return "run"


@functools.lru_cache(maxsize=8)
def _cached_dataset(key: str):
    return load_data(DataSettings(**json.loads(key)))


def _preflight_data(spec: RunSpec) -> tuple[dict, int, str | None]:
    """(shape info, training images, problem): the real dataset when present, its config's shape when not."""
    info = _profile_data_info(spec)
    if spec.task == "profile":
        return info, 0, None
    key = json.dumps({"name": spec.data.name, "label": spec.data.label, "order_seed": spec.data.order_seed,
                      "load": spec.data.load, "augment": spec.data.augment}, sort_keys=True, default=str)
    try:
        dataset = _cached_dataset(key)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        known = KNOWN_TRAIN_SIZES.get(spec.data.name, 0)
        n_train = spec.data.load.get("train_size") or max(known - 5000, 0)
        return {**info, "val_size": 5000, "test_size": 10_000}, n_train, f"data: {err}"
    info.update(num_classes=dataset.num_classes, image_size=dataset.image_size, in_chans=dataset.in_chans,
                val_size=len(dataset.val.labels) if dataset.val is not None else 0, test_size=len(dataset.test.labels))
    n_train = len(dataset.train.labels)
    if n_train < spec.recipe.batch_size:
        raise ValueError(batch_too_large(spec, n_train))
    return info, n_train, None


_STEP_TIMES: dict[str, tuple] = {}


def _time_steps(spec: RunSpec, data_info: dict, timed_steps: int):
    """(seconds per step at the batch that fits, that batch, note, training MACs per image).

    Builds the model, optimizer and schedule, then one untimed step (compilation, autotuning) and
    `timed_steps` timed ones on synthetic values of the real shape, in the run's precision, layout and
    compile mode: an explicit train.amp/channels_last as given; `auto` (chosen by a probe when the run
    starts) is timed as bf16 + channels_last on a GPU with bf16 tensor cores, else fp32 NCHW. Cached per network, shape and numerics in this process: a study's
    seeds and tuning trials are timed once. `ARCHBENCH_PREFLIGHT_BATCH` caps the batch (the test suite
    checks every study this way on 2 cores).
    """
    import torch

    from archbench.train.loop import param_groups

    recipe = spec.recipe
    input_shape = (1, data_info["in_chans"], data_info["image_size"], data_info["image_size"])
    # Speed depends on the network, shape, batch and numerics, not on the optimizer's values (trials share it),
    # nor measurably on the class count (one linear layer): CIFAR-10 and CIFAR-100 jobs share one timing.
    key = json.dumps([spec.model.identity(), input_shape, recipe.batch_size, recipe.amp,
                      recipe.channels_last, recipe.compile, recipe.optimizer.get("_target_"), spec.device,
                      recipe.budget.kind == "macs"], default=str)
    schedule = recipe.make_schedule()
    [schedule(p) for p in (0.0, 0.5, 1.0)]
    if key in _STEP_TIMES:
        return _STEP_TIMES[key]
    model, _, _ = _create_model(spec, data_info)
    train_macs = None
    if recipe.budget.kind == "macs":
        from archbench.measure import profile_complexity
        train_macs = profile_complexity(model, input_shape)["flops_train"] / 2
    device = resolve_device(spec.device)
    batch = min(recipe.batch_size, int(os.environ.get("ARCHBENCH_PREFLIGHT_BATCH", recipe.batch_size)))
    amp, channels_last = _planned_precision(recipe, device)
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = recipe.make_optimizer()(param_groups(model, recipe.weight_decay, recipe.decay_norm_and_bias),
                                        lr=recipe.scaled_lr())
    step_model = model
    if recipe.compile != "off":
        step_model = torch.compile(model, mode=None if recipe.compile == "default" else recipe.compile)
    autocast = (torch.autocast(torch.device(device).type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
                if amp in ("bf16", "fp16") else contextlib.nullcontext())
    note = None
    while True:
        try:
            x = torch.randn(batch, *input_shape[1:], device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, data_info["num_classes"], (batch,), device=device)
            times = []
            for _ in range(1 + timed_steps):
                tick = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss = torch.nn.functional.cross_entropy(step_model(x), y)
                loss.backward()  # fp16 loss scaling changes no step time worth planning for
                optimizer.step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - tick)
            break
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
            batch //= 2
            note = f"batch {recipe.batch_size} does not fit in memory; tried {batch}"
    step_s = (sum(times[1:]) / max(len(times) - 1, 1) if timed_steps else times[0]) * recipe.batch_size / batch
    _STEP_TIMES[key] = (step_s, batch, note, train_macs)
    return _STEP_TIMES[key]


def _planned_precision(recipe, device: str) -> tuple[str, bool]:
    """(amp, channels_last) that the preflight times: the run's, with `auto` resolved by the stated rule."""
    amp, channels_last = recipe.amp, recipe.channels_last
    if "auto" in (amp, channels_last):
        import torch
        bf16_gpu = device.startswith("cuda") and torch.cuda.is_bf16_supported(including_emulation=False)
        amp = ("bf16" if bf16_gpu else "off") if amp == "auto" else amp
        channels_last = bf16_gpu if channels_last == "auto" else channels_last
    return amp, bool(channels_last)


def format_plan(rows: list[dict]) -> str:
    """The dry-run table, then the total estimated time and the count of jobs with problems."""
    header = ["job", "model", "data", "seed", "variant", "action", "planned steps", "est. time", "problem"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        cells = [str(i), row.get("model"), row.get("data"), row.get("seed"), row.get("variant") or "-",
                 row.get("action"), _fmt(row.get("planned_steps"), "{:,}"), _duration(row.get("est_s")),
                 (row.get("problem") or "").replace("\n", " ")[:300]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    total = sum(r.get("est_s") or 0 for r in rows if (r.get("action") or "").startswith(("run", "resume")))
    problems = sum(1 for r in rows if r.get("problem"))
    lines += ["", f"{len(rows)} job(s); estimated training time on this device: {_duration(total)} "
                  f"({total / 3600:.1f} h) run one after another; {problems} with problems"]
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cores:
        lines.append(f"note: the 1-minute load average is {load:.1f} on {cores} cores: other work shares this "
                     "machine, so these timings (and the estimate) are pessimistic; rerun on an idle machine")
    if total > LONG_RUN_S and not any("cuda" in str(r.get("device", "")) for r in rows):
        lines.append("over an hour here: train=quick or a smaller train.budget.* gives a CPU-sized run")
    return "\n".join(lines)


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
