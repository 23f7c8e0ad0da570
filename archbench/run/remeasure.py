"""task=measure: latency, throughput and the device peak of a finished record, measured again in quiet.

Speed depends on the architecture, the input shape, the device and its threads, not on the trained
weights, so the model is built afresh from the record's own settings (no weights, no data files). Each
measurement waits for a quiet machine first (archbench.quiet) and says how quiet it was. Only the
record's `latency` section and its `measure` section (the quiet device peak and the MFU against it) are
rewritten, atomically and under the run's lock; its identity, metrics and training figures stay as they
were, and the replaced latency figures are kept in `latency.replaced` for comparison.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, NamedTuple

import torch

from archbench import models
from archbench.base.device import cpu_model
from archbench.base.files import exclusive_lock
from archbench.base.numerics import precision_name
from archbench.measure import device_peak_flops, measure_latency, measure_latency_isolated, training_cost
from archbench.measure.energy import gpu_neighbours
from archbench.quiet import QuietSettings, is_quiet, measure_quietly
from archbench.record import FINISHED, atomic_write_json, environment, now_iso, read_record
from archbench.run.spec import resolve_device
from archbench.settings import MeasureSettings, ModelSettings

log = logging.getLogger("archbench")

# One quiet peak per (device, precision, threads) per process: a study's records share it.
_PEAKS: dict[tuple, dict] = {}


class MeasureError(ValueError):
    """A record that cannot be re-measured (absent, unfinished, or missing what building its model needs)."""


def needs_measuring(record: dict, here: str | None = None) -> bool:
    """False once both the latency and (for a training record with an MFU) the peak were measured in quiet;
    a latency measured on another machine leaves the peak to the training machine, and is measured again
    once `here` (this machine's name) is the machine that trained the run."""
    latency = record.get("latency")
    if not is_quiet(latency):
        return True
    if latency.get("other_machine"):
        return here is not None and here == _trained_on(record)
    return _needs_peak(record) and not is_quiet((record.get("measure") or {}).get("device_peak"))


def _trained_on(record: dict) -> str | None:
    env = record.get("env") or {}
    return env.get("cpu_model") if str(env.get("device") or "cpu").startswith("cpu") else env.get("device_name")


def _this_machine(device: str) -> str:
    if device == "cpu":
        return cpu_model()
    return torch.cuda.get_device_name(torch.device(device))


def _needs_peak(record: dict) -> bool:
    train = record.get("train") or {}
    return record.get("task") == "train" and bool(train.get("img_per_s")) and \
        bool((record.get("complexity") or {}).get("flops_train"))


def remeasure_record(path: str | Path, measure: MeasureSettings, device: str = "auto", threads: int | None = None,
                     force: bool = False) -> tuple[str, dict]:
    """("measured", "skipped" or "kept", the record): re-measure the record at `path` in place; "kept" when
    the new figure was taken under load and the record already had a quiet one (left as it was).

    `threads` None measures with the threads the record was measured (or trained) with, so the figure
    stays comparable with its hardware label; `device` auto takes the record's own device.
    """
    path = Path(path)
    record = read_record(path)
    if record is None or record.get("status") not in FINISHED:
        raise MeasureError(f"task=measure needs a finished record at {path} (found "
                           f"{'none' if record is None else record.get('status')}): train or profile it first")
    device = _device(record, device)
    if not force and not needs_measuring(record, _this_machine(device)):
        log.info("skip %s: already measured in quiet (force=true measures again)", path)
        return "skipped", record
    quiet = measure.quiet or QuietSettings()
    threads = int(threads or _recorded_threads(record) or torch.get_num_threads())
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        # CUDA timing needs one host thread; the CPU's load matters only through the cores we use.
        busy_threads = threads if device == "cpu" else 1
        neighbours = gpu_neighbours(device)
        latency = measure_quietly(lambda: _latency(record, measure, device), quiet, busy_threads,
                                  gpu_neighbours=neighbours)
        trained_on = _trained_on(record)
        elsewhere = bool(trained_on and latency.get("device_name") and trained_on != latency["device_name"])
        # An MFU divides the training machine's throughput by a peak: only that machine's peak will do.
        peak_section = _peak_section(record, device, threads, quiet, busy_threads, neighbours) \
            if _needs_peak(record) and not elsewhere else None
    finally:
        torch.set_num_threads(previous_threads)
    stamp = _code_and_machine(device)
    latency.update(measured_by="task=measure", measured_at=now_iso(), measured_with=stamp)
    if peak_section is not None:
        peak_section["measured_with"] = stamp
    if elsewhere:
        # The report names this machine beside the figures (record column latency_hardware) and keeps the
        # training machine's MFU, which no other machine's peak can correct.
        latency["other_machine"] = f"measured on {latency['device_name']}, the run was trained on {trained_on}"
        log.warning("%s: %s; its MFU is left as it was", path, latency["other_machine"])
    old = record.get("latency") or {}
    if latency.get("under_load") and is_quiet(old) and not old.get("other_machine"):
        # A quiet figure is never replaced by a loaded one: keep it, and say what the new attempt saw.
        log.warning("%s: kept its quiet latency figure; the new one was taken under load (%s)", path,
                    latency["under_load"]["reason"])
        return "kept", record
    if old:
        latency["replaced"] = old.get("replaced") or _summary(old)
    with exclusive_lock(path.parent / ".lock", wait=True):
        record = read_record(path)  # fresh: only our sections change, whatever else happened meanwhile
        record["latency"] = latency
        if peak_section is not None:
            record["measure"] = peak_section
        atomic_write_json(path, record)
    note = f" UNDER LOAD: {latency['under_load']['reason']}" if latency.get("under_load") else " (quiet)"
    log.info("measured %s: batch-1 %.2f ms, %.0f img/s%s", path, latency["batch_1"]["median_ms"],
             latency["throughput"]["img_per_s"], note)
    return "measured", record


def _code_and_machine(device: str) -> dict:
    """The code and machine that took the new figures (the record's env stays the training run's)."""
    env = environment(device)
    return {key: env[key] for key in ("archbench_version", "git_commit", "git_dirty", "torch", "device",
                                      "device_name", "cpu_model", "hostname", "platform")}


def _recorded_threads(record: dict):
    return (record.get("latency") or {}).get("threads") or (record.get("env") or {}).get("threads") or \
        (record.get("config") or {}).get("threads")


def _device(record: dict, device: str) -> str:
    if device == "auto":
        recorded = (record.get("latency") or {}).get("device") or (record.get("env") or {}).get("device")
        if recorded and (recorded == "cpu" or _cuda_available()):
            return recorded
    return resolve_device(device)


def _cuda_available() -> bool:
    return torch.cuda.is_available()


class RecordModel(NamedTuple):
    model: Any  # a fresh torch.nn.Module: the record's architecture, untrained
    input_shape: tuple  # (1, channels, size, size)
    builder_name: str  # its name for archbench.models.create_model
    create: dict  # create_model's keyword arguments, for a measurement in a child process


def build_from_record(record: dict) -> RecordModel:
    """The record's model built afresh from its own settings (config.model and the dataset's shape): no
    weights and no data files, for what depends only on the architecture (speed, a training step's time).
    Raises MeasureError (a ValueError) when the record lacks what building it needs."""
    config = (record.get("config") or {}).get("model")
    dataset = record.get("dataset") or {}
    missing = [k for k in ("num_classes", "in_chans", "image_size") if dataset.get(k) is None]
    if not config or missing:
        raise MeasureError(f"record {record.get('model')!r} lacks what building its model needs "
                           f"({'config.model' if not config else 'dataset.' + ', dataset.'.join(missing)}); "
                           "re-run it (force=true) instead")
    settings = ModelSettings.from_config(config)
    model = models.create_model(settings.builder_name, num_classes=dataset["num_classes"],
                                in_chans=dataset["in_chans"], input_size=dataset["image_size"],
                                stem=settings.stem, **settings.kwargs)
    shape = (1, dataset["in_chans"], dataset["image_size"], dataset["image_size"])
    create = {"num_classes": dataset["num_classes"], "in_chans": dataset["in_chans"],
              "input_size": dataset["image_size"], "stem": settings.stem, **settings.kwargs}
    return RecordModel(model, shape, settings.builder_name, create)


def _latency(record: dict, measure: MeasureSettings, device: str) -> dict:
    model, shape, builder_name, create = build_from_record(record)
    if measure.isolate:
        return measure_latency_isolated(builder_name, create, shape, device=device, **measure.options)
    return measure_latency(model, shape, device=device, **measure.options)


def _peak_section(record: dict, device: str, threads: int, quiet: QuietSettings, busy_threads: int,
                  neighbours=None) -> dict:
    """The quiet peak in the precision the run trained in, and the run's MFU against it."""
    train = record["train"]
    precision = precision_name(train.get("amp"))
    key = (device, precision, threads)
    if key not in _PEAKS or not is_quiet(_PEAKS[key]):
        # refresh: the cached peak may have been measured beside a training job
        _PEAKS[key] = measure_quietly(lambda: device_peak_flops(device, precision=precision, refresh=True),
                                      quiet, busy_threads, gpu_neighbours=neighbours)
    peak = _PEAKS[key]
    per_device = train.get("img_per_s_per_device") or train["img_per_s"] / (train.get("world_size") or 1)
    cost = training_cost(record["complexity"]["flops_train"], per_device, peak.get("flops_per_s"))
    section = {"measured_by": "task=measure", "measured_at": now_iso(), "device_peak": peak,
               "device_peak_flops_per_s": peak.get("flops_per_s"), **cost,
               "mfu_basis": train.get("mfu_basis") or "single device",
               "train_img_per_s_per_device": per_device}
    if peak.get("under_load"):
        section["under_load"] = {"reason": f"device peak: {peak['under_load']['reason']}"}
    return section


def _summary(latency: dict) -> dict:
    """What the replaced latency section said, in brief: enough to see how much load had skewed it."""
    with contextlib.suppress(AttributeError, TypeError):
        return {"batch_1_median_ms": (latency.get("batch_1") or {}).get("median_ms"),
                "img_per_s": (latency.get("throughput") or {}).get("img_per_s"),
                "load_avg_1m": latency.get("load_avg_1m"), "threads": latency.get("threads"),
                "device_name": latency.get("device_name"), "quiet": latency.get("quiet"),
                "under_load": latency.get("under_load"), "deferred": latency.get("deferred")}
    return {}


def remeasure_paths(paths, measure: MeasureSettings, device: str = "auto", force: bool = False) -> list[dict]:
    """The sweep's closing pass: each record in turn, one model at a time; a failure is logged, not raised."""
    rows = []
    for path in paths:
        try:
            status, record = remeasure_record(path, measure, device=device, force=force)
            rows.append({"record": str(path), "status": status,
                         "under_load": ((record.get("latency") or {}).get("under_load") or {}).get("reason")})
        except Exception as err:  # one bad record must not cost the others their measurement
            log.exception("measuring %s failed", path)
            rows.append({"record": str(path), "status": "failed", "error": f"{type(err).__name__}: {err}"})
    return rows
