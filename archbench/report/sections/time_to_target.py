"""Time to a target accuracy, per model and the machine that trained it, for comparisons whose runs recorded
a learning curve inside epochs (train.val_per_epoch > 1). Steps to the target are what a model learns;
seconds are one machine's. The projection onto the reader's machine measures that machine, so it is a
command (`archbench-report project`), never part of a report that must rebuild byte for byte anywhere."""
from __future__ import annotations

import math

import pandas as pd

from archbench.base.timefmt import duration
from archbench.results.frames import model_label
from archbench.results.projection import curves, has_within_epoch_curve, time_to_target

from ..document import Paragraph


def blocks(context, comparison) -> list:
    runs = comparison.runs[comparison.runs.task == "train"]
    if not has_within_epoch_curve(runs):
        return []
    table = time_to_target(runs, curves(runs))
    if table.empty or not math.isfinite(table.target_top1.iloc[0]):
        return []
    target = table.target_top1.iloc[0]
    machines = sorted(table.machine.dropna().unique())
    return [Paragraph(
        f"Time to {target:.0f}% validation top-1 (the highest whole percent every run reached), from each run's "
        "validation curve: the first point at or above it. Steps to it do not depend on the machine; its "
        f"training seconds are those of the machine named ({len(machines)} here), as the runs timed their steps "
        "(beside whatever else that machine ran), mean over the runs with a 95% t interval. "
        "`archbench-report project results_dir=...` projects these steps onto your machine by "
        "timing a few of its steps (not part of this report, which rebuilds byte for byte anywhere)."),
        context.table(f"{comparison.stem}--time-to-target",
                      f"{comparison.study} / {comparison.label}: time to {target:.0f}% validation top-1 per model "
                      "and training machine, fastest first", _display(table), table)]


def _display(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for row in table.sort_values(["seconds", "model"], na_position="last").itertuples(index=False):
        interval = ("" if not math.isfinite(row.seconds_low) else
                    f" [{duration(row.seconds_low)}, {duration(row.seconds_high)}]")
        rows.append({"Model": model_label(row.model, row.variant_label),
                     "Trained on": row.machine, "Runs reaching it": f"{row.reached} of {row.runs}",
                     "Steps to it (mean)": "—" if not math.isfinite(row.steps) else f"{row.steps:,.0f}",
                     "Training time to it (mean [95% interval])":
                         "—" if not math.isfinite(row.seconds) else duration(row.seconds) + interval})
    return pd.DataFrame(rows)
