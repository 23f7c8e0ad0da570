"""How a declared metric shows in the report's tables: its heading, its cell style and digits, and whether
its column is left out where no model has it.

The metric itself (where it is in the record, how runs are summarised) is declared in
`archbench.record.metrics`; a metric without a display here is a column of the runs and summaries, and of
no report table.
"""
from __future__ import annotations

from dataclasses import dataclass

from archbench.record import METRICS, metrics


@dataclass(frozen=True)
class Display:
    """One metric's column in the report's tables (archbench.report.tables renders `style`).

    `heading` may hold `{device}` (where speed was timed) and `{trained_on}` (the training machine);
    `style` is one of tables.CELL_STYLES: `millions`, `number`, `speed` (a
    number marked when measured under load), `mfu`, `mean_pm_std` (over seeds); `optional` columns are
    left out of a table where no model has them (records made before the figure existed).
    """
    heading: str
    style: str = "number"
    digits: int = 2
    optional: bool = False


DISPLAYS: dict[str, Display] = {
    "params": Display("Params (M)", "millions"),
    "macs": Display("MACs (M)", "millions"),
    "flops_forward": Display("FLOPs (M)", "millions"),
    "activations": Display("Activations (M)", "millions"),
    "latency_b1_ms": Display("Batch-1 latency (ms, {device})", "speed", 2),
    "throughput_img_s": Display("Throughput (img/s, {device})", "speed", 0),
    "train_img_s": Display("Train (img/s, {trained_on}, during training)", "number", 0),
    "wall_s": Display("Training time (s, {trained_on})", "number", 0),
    "mfu": Display("MFU (%)", "mfu", 1),
    "train_j_per_image": Display("Energy (J/train img)", "number", 4, optional=True),
    "inference_j_per_image": Display("Energy (J/infer img)", "number", 4, optional=True),
    "ece": Display("ECE (%)", "mean_pm_std", 2, optional=True),
    "nll": Display("NLL (nats)", "mean_pm_std", 3, optional=True),
    "mean_corruption_top1": Display("Corrupted top-1 (%)", "mean_pm_std", 2, optional=True),
}


def declare_display(metric: str, display: Display) -> Display:
    """Show a declared metric (e.g. one that `archbench.record.register` added) in the report's comparison
    tables."""
    if metric not in METRICS:
        raise ValueError(f"{metric!r} is not a declared metric: declare it with archbench.record.register first")
    if metric in DISPLAYS:
        raise ValueError(f"metric {metric!r} has a display already")
    DISPLAYS[metric] = display
    return display


def displayed_metrics() -> list[str]:
    """The declared metrics that have a display, in declaration order (the order of their columns)."""
    return [metric.name for metric in metrics() if metric.name in DISPLAYS]
