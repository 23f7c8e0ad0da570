"""The metric declarations: every measured column of a run, where it is in the record and how runs are
summarised over it. A new metric is where it is computed plus one declaration here (or `register`); how
one shows in the report's tables is the report's business (archbench.report.metric_display)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from archbench.quiet import legacy_under_load

from .fields import nested, number_or_nan, record_threads


@dataclass(frozen=True)
class Metric:
    """One flat column of a run: where it is in the record and how runs are summarised.

    `source`: a path of keys into the record, or a function of the record. `summary`: "seeds" (mean, std,
    95% CI and count over seeds, like accuracy), "mean" (the mean over runs: it describes the model or the
    machine, not luck), or None (not summarised). `stage`: "load" for a column of `results.load`,
    "evaluation" for one that `results.with_evaluation` adds (the calibration and robustness sections).
    `machine_bound`: a figure of the machine (speed, time, memory, energy), never pooled across machines
    (archbench.results.pooling).
    """
    name: str
    source: tuple[str, ...] | Callable[[dict], Any]
    summary: str | None = None
    number: bool = True
    stage: str = "load"
    machine_bound: bool = False

    def read(self, record: dict):
        value = self.source(record) if callable(self.source) else nested(record, *self.source)
        return number_or_nan(value) if self.number else value


# ---------------------------------------------------------------------- metrics read by a function

def _best_val_loss(record: dict):
    """Validation loss at the selected epoch (ties in validation accuracy are broken by it)."""
    best = (record.get("metrics") or {}).get("best_epoch")
    for entry in record.get("history") or []:
        if entry.get("epoch") == best:
            return entry.get("val_loss")
    return None


def _speed_marks(record: dict) -> dict:
    """Whether the speed figures may be concluded from: why not (under load, MFU over 100%), else None.

    `mfu` is the MFU against the quiet peak of task=measure when there is one, and is left empty when
    that peak was taken under load or the ratio exceeds 1 (a peak measured too low); `mfu_raw` keeps it.
    """
    latency, train, threads = record.get("latency") or {}, record.get("train") or {}, record_threads(record)
    measured = record.get("measure") or {}
    mfu = measured.get("mfu") if measured.get("mfu") is not None else train.get("mfu")
    peak = measured.get("device_peak") if measured.get("mfu") is not None else train.get("device_peak")
    peak_load = legacy_under_load(peak, threads)
    note = None
    if isinstance(mfu, (int, float)) and mfu > 1:
        note = (f"MFU {100 * mfu:.0f}% is above 100%: the device peak it divides by was measured too low"
                + (f" ({peak_load['reason']})" if peak_load else "") + "; re-measure the peak with task=measure")
    elif isinstance(mfu, (int, float)) and peak_load:
        note = f"device peak {peak_load['reason']}"
    under = legacy_under_load(latency, threads) if latency and not latency.get("deferred") else None
    return {"mfu": None if note else number_or_nan(mfu), "mfu_raw": number_or_nan(mfu), "mfu_note": note,
            "latency_under_load": (under or {}).get("reason"),
            "latency_quiet": bool((latency.get("quiet") or {}).get("checked")) and under is None}


def _speed_mark(column: str) -> Callable[[dict], Any]:
    return lambda record: _speed_marks(record)[column]


def _latency_precision(record: dict) -> str | None:
    latency = record.get("latency") or {}
    if not latency.get("batch_1") or not latency.get("precision"):
        return None
    return " ".join(str(part) for part in (latency.get("precision"), latency.get("memory_format")) if part)


def _calibrated(record: dict, key: str):
    """A temperature-scaled calibration figure: "calibrated" in early drafts of the section."""
    section = record.get("calibration") or {}
    return (section.get("temperature_scaled") or section.get("calibrated") or {}).get(key)


def _corruption_method(record: dict):
    """A run without the optional corruptions package says why instead of a method."""
    section = record.get("robustness") or {}
    return section.get("method") or (f"not measured ({section['skipped']})" if section.get("skipped") else None)


# ---------------------------------------------------------------------------------- declarations

# Every measured column of a run, in the order of `results.load`'s columns; units in the names: *_ms
# milliseconds, *_s seconds, *_bytes bytes, accuracies in percent; MACs count multiply-adds (fvcore).
# A new metric is where it is computed plus one declaration here (or `register`).
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("params", ("complexity", "params"), "mean"),
    Metric("trainable_params", ("complexity", "trainable_params"), "mean"),
    Metric("macs", ("complexity", "macs"), "mean"),
    Metric("flops_forward", ("complexity", "flops_forward"), "mean"),
    Metric("flops_train", ("complexity", "flops_train"), "mean"),
    # fvcore's activation count of one forward pass.
    Metric("activations", ("complexity", "activations"), "mean"),
    Metric("latency_device", ("latency", "device"), number=False, machine_bound=True),
    # What latency and throughput were timed at (the measure settings), e.g. 'fp32 NCHW': not always the
    # precision the model trained in.
    Metric("latency_precision", _latency_precision, number=False, machine_bound=True),
    Metric("latency_b1_ms", ("latency", "batch_1", "median_ms"), "mean", machine_bound=True),
    Metric("latency_b1_p10_ms", ("latency", "batch_1", "p10_ms"), machine_bound=True),
    # Averaged per model too: a model whose median lies within the fastest one's p90 is not called slower.
    Metric("latency_b1_p90_ms", ("latency", "batch_1", "p90_ms"), "mean", machine_bound=True),
    Metric("throughput_batch_size", ("latency", "throughput", "batch_size"), machine_bound=True),
    Metric("throughput_img_s", ("latency", "throughput", "img_per_s"), "mean", machine_bound=True),
    Metric("train_img_s", ("train", "img_per_s"), "mean", machine_bound=True),
    # Training time only (job_wall_s is the whole job).
    Metric("wall_s", ("train", "wall_s"), "mean", machine_bound=True),
    Metric("job_wall_s", ("env", "job_wall_s"), machine_bound=True),
    Metric("epochs", ("train", "epochs")),
    Metric("steps", ("train", "steps")),
    # None (not NaN) when it cannot be shown: a peak under load, or over 100%.
    Metric("mfu", _speed_mark("mfu"), "mean", number=False, machine_bound=True),
    Metric("mfu_raw", _speed_mark("mfu_raw"), number=False, machine_bound=True),
    Metric("mfu_note", _speed_mark("mfu_note"), number=False, machine_bound=True),
    Metric("latency_under_load", _speed_mark("latency_under_load"), number=False, machine_bound=True),
    Metric("latency_quiet", _speed_mark("latency_quiet"), number=False, machine_bound=True),
    # Set when a parallel sweep's jobs shared the run's GPU: its training figures are those of that sharing.
    Metric("shared_device", ("train", "shared_device"), number=False, machine_bound=True),
    Metric("peak_mem_bytes", ("train", "peak_mem_bytes"), machine_bound=True),
    # NVML; absent off NVIDIA GPUs.
    Metric("train_j_per_image", ("energy", "train_j_per_image"), "mean", machine_bound=True),
    Metric("inference_j_per_image", ("energy", "inference_j_per_image"), "mean", machine_bound=True),
    Metric("ttt_target", ("train", "time_to_target", "target_top1")),
    Metric("ttt_s", ("train", "time_to_target", "seconds"), "mean", machine_bound=True),
    Metric("ttt_epoch", ("train", "time_to_target", "epoch")),
    Metric("val_top1", ("metrics", "val_top1"), "seeds"),
    Metric("val_top5", ("metrics", "val_top5")),
    # At the selected epoch (ties in validation accuracy are broken by it).
    Metric("val_loss", _best_val_loss),
    Metric("test_top1", ("metrics", "test_top1"), "seeds"),
    Metric("test_top5", ("metrics", "test_top5"), "seeds"),
    Metric("test_top1_last", ("metrics", "test_top1_last")),
    Metric("best_epoch", ("metrics", "best_epoch")),
    # Calibration on test with the temperature fitted on validation (archbench.evaluate): ECE in percent,
    # NLL in nats per image, Brier 0-2; top-1 under corruptions in percent.
    Metric("ece", ("calibration", "uncalibrated", "ece"), "seeds", stage="evaluation"),
    Metric("nll", ("calibration", "uncalibrated", "nll"), "seeds", stage="evaluation"),
    Metric("brier", ("calibration", "uncalibrated", "brier"), "seeds", stage="evaluation"),
    Metric("ece_calibrated", lambda record: _calibrated(record, "ece"), "seeds", stage="evaluation"),
    Metric("nll_calibrated", lambda record: _calibrated(record, "nll"), "seeds", stage="evaluation"),
    Metric("corruption_clean_top1", ("robustness", "clean_top1"), "seeds", stage="evaluation"),
    Metric("mean_corruption_top1", ("robustness", "mean_corruption_top1"), "seeds", stage="evaluation"),
    Metric("relative_corruption_drop", ("robustness", "relative_drop"), "seeds", stage="evaluation"),
    Metric("brier_calibrated", lambda record: _calibrated(record, "brier"), stage="evaluation"),
    Metric("temperature", ("calibration", "temperature"), stage="evaluation"),
    Metric("calibration_images", ("calibration", "images"), stage="evaluation"),
    Metric("corruption_images", ("robustness", "images"), stage="evaluation"),
    Metric("corruption_source", ("robustness", "source"), number=False, stage="evaluation"),
    Metric("corruption_method", _corruption_method, number=False, stage="evaluation"),
)}


def register(metric: Metric) -> Metric:
    """Declare a metric computed elsewhere (e.g. a new record section): it becomes a column of
    `results.load` (or of `with_evaluation`) and is summarised per `metric.summary`; a display declared
    for it (archbench.report.metric_display) shows it in the report's comparison tables."""
    if metric.name in METRICS:
        raise ValueError(f"metric {metric.name!r} is declared already")
    METRICS[metric.name] = metric
    return metric


def metrics(stage: str | None = None, summary: str | None = None) -> list[Metric]:
    """The declared metrics, in declaration order, of one stage and/or summary kind."""
    return [metric for metric in METRICS.values()
            if (stage is None or metric.stage == stage) and (summary is None or metric.summary == summary)]


def evaluation_columns(record: dict) -> dict:
    """The per-run columns of the calibration and robustness sections; NaN where a run has none."""
    return {metric.name: metric.read(record) for metric in metrics(stage="evaluation")}
