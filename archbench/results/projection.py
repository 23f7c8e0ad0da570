"""Time to accuracy, split in two: steps to a target (what a model learns, any machine) times a step's time
(one machine's). A study's learning curves, pooled across the machines that trained it at one numerics
identity, give the steps; a probe of this machine's step time (archbench.run.project) turns them into a
projected time to the target here, checked against the runs that were made here.

No torch here: the curves come from the records (`train.val_curve` every 1/val_per_epoch of an epoch, and
the history's epoch ends), and the step time is given.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from archbench.record import history_rows, load_record_or_empty, nested

PROJECTION_COLUMNS = ["study", "data", "model", "variant", "target_top1", "runs", "reached", "steps",
                      "steps_low", "steps_high", "step_s", "projected_s", "projected_low_s", "projected_high_s",
                      "measured_s", "measured_runs", "first", "budget_s", "best_val_top1_in_budget",
                      "best_in_budget"]


def curve(record: dict) -> pd.DataFrame:
    """The validation curve of one record: `step`, `val_top1`, `elapsed_s` (training seconds on its machine),
    from the within-epoch points and the epoch ends, in step order."""
    points = [point for point in (nested(record, "train", "val_curve") or []) if isinstance(point, dict)]
    points += [entry for entry in history_rows(record) if entry.get("val_top1") is not None]
    frame = pd.DataFrame([{"step": point.get("step"), "val_top1": point.get("val_top1"),
                           "elapsed_s": point.get("elapsed_s")} for point in points],
                         columns=["step", "val_top1", "elapsed_s"])
    frame = frame.apply(pd.to_numeric, errors="coerce").dropna(subset=["step", "val_top1"])
    return frame.sort_values("step", kind="stable").drop_duplicates("step", keep="last").reset_index(drop=True)


def curves(runs: pd.DataFrame) -> dict:
    """Record path -> its curve, for every trained run of `runs`."""
    return {row.path: curve(load_record_or_empty(row.path)) for row in runs.itertuples() if row.task == "train"}


def reachable_target(runs: pd.DataFrame, run_curves: dict) -> float:
    """The highest whole percent of validation top-1 that every run of `runs` reached: a target each model
    of the study gets to, so each has a time to it."""
    best = [run_curves[path]["val_top1"].max() for path in runs.path if len(run_curves.get(path, []))]
    return float(math.floor(min(best))) if best else math.nan


def first_reaching(points: pd.DataFrame, target: float) -> tuple[float, float] | None:
    """(step, training seconds) of the first curve point at or above `target`; None if none is."""
    reached = points[points["val_top1"] >= target]
    if reached.empty:
        return None
    first = reached.iloc[0]
    return float(first["step"]), float(first["elapsed_s"])


def _run_reaching(run_curves: dict, path, target: float) -> tuple[float, float] | None:
    """first_reaching on one run's curve; a run without a curve reaches nothing."""
    return first_reaching(run_curves.get(path, pd.DataFrame(columns=["step", "val_top1"])), target)


TIME_TO_TARGET_COLUMNS = ["model", "variant", "variant_label", "machine", "target_top1", "runs", "reached", "steps",
                          "seconds", "seconds_low", "seconds_high"]


def has_within_epoch_curve(runs: pd.DataFrame) -> bool:
    """Whether every run's curve has points inside epochs (train.val_per_epoch > 1): epoch ends alone are too
    coarse to time a target, which a short run reaches, if at all, at its one last point."""
    return bool(len(runs)) and all(
        len(nested(load_record_or_empty(path), "train", "val_curve") or []) > 0 for path in runs.path)


def time_to_target(runs: pd.DataFrame, run_curves: dict, target: float | None = None) -> pd.DataFrame:
    """Per model, variant and the machine that trained the runs (`trained_on` where accuracy pooled across
    machines, else `hardware`): steps to `target` validation top-1 (what the model learns, any machine) and the
    training seconds to it on that machine, mean with a 95% t interval over the runs that reached it. `target`
    None takes the reachable target of `runs` (the highest whole percent every run reached)."""
    goal = reachable_target(runs, run_curves) if target is None else float(target)
    machine = runs["trained_on"].fillna(runs["hardware"]) if "trained_on" in runs else runs["hardware"]
    rows = []
    for (model, variant, on), group in runs.assign(machine=machine).groupby(["model", "variant", "machine"],
                                                                            sort=True, dropna=False):
        reached = [point for path in group.path if (point := _run_reaching(run_curves, path, goal)) is not None]
        steps = _mean_interval([point[0] for point in reached])[0]
        seconds, low, high = _mean_interval([point[1] for point in reached if math.isfinite(point[1])])
        label = group["variant_label"].dropna() if "variant_label" in group else pd.Series(dtype=str)
        rows.append({"model": model, "variant": variant, "variant_label": label.iloc[0] if len(label) else None,
                     "machine": on, "target_top1": goal, "runs": len(group),
                     "reached": len(reached), "steps": steps, "seconds": seconds, "seconds_low": low,
                     "seconds_high": high})
    return pd.DataFrame(rows, columns=TIME_TO_TARGET_COLUMNS)


def project(runs: pd.DataFrame, run_curves: dict, step_s: dict, here: str | None, target: float | None = None,
            budget_s: float | None = None) -> pd.DataFrame:
    """One row per study, data, model and variant: steps to `target` (mean over the runs that reached it, with
    a 95% t interval over them), `step_s` (this machine's seconds per step, from `step_s[(study, model,
    variant)]`), the projected time to target here with its interval, and `measured_s` (the mean training
    seconds to target of the runs trained on `here`, a machine label as `trained_on` holds it). `target`
    None takes each study's reachable target. `first`: the model projected to get there first in its study.
    With `budget_s`: each model's mean best validation top-1 within that many seconds here, and the best.
    """
    rows = []
    for (study, data), group in runs[runs.task == "train"].groupby(["study", "data"], sort=True):
        goal = reachable_target(group, run_curves) if target is None else float(target)
        for (model, variant), model_runs in group.groupby(["model", "variant"], sort=True):
            rows.append(_model_row(study, data, model, variant, model_runs, run_curves, goal,
                                   step_s.get((study, model, variant)), here, budget_s))
    table = pd.DataFrame(rows, columns=PROJECTION_COLUMNS)
    for (study, data), group in table.groupby(["study", "data"], sort=False):
        projected = group["projected_s"].dropna()
        if len(projected):
            table.loc[projected.idxmin(), "first"] = True
        in_budget = group["best_val_top1_in_budget"].dropna()
        if len(in_budget):
            table.loc[in_budget.idxmax(), "best_in_budget"] = True
    return table


def _model_row(study, data, model, variant, model_runs, run_curves, target, step_s, here, budget_s) -> dict:
    reached, measured = [], []
    for row in model_runs.itertuples():
        point = _run_reaching(run_curves, row.path, target)
        if point is None:
            continue
        reached.append(point[0])
        if here is not None and getattr(row, "trained_on", row.hardware) == here and math.isfinite(point[1]):
            measured.append(point[1])
    steps, low, high = _mean_interval(reached)
    step_s = float(step_s) if step_s else math.nan
    best_in_budget = math.nan
    if budget_s is not None and math.isfinite(step_s):
        steps_in_budget = budget_s / step_s
        bests = [points.loc[points["step"] <= steps_in_budget, "val_top1"].max()
                 for points in (run_curves.get(path) for path in model_runs.path) if points is not None]
        bests = [value for value in bests if np.isfinite(value)]
        best_in_budget = float(np.mean(bests)) if bests else math.nan
    return {"study": study, "data": data, "model": model, "variant": variant, "target_top1": target,
            "runs": len(model_runs), "reached": len(reached), "steps": steps, "steps_low": low, "steps_high": high,
            "step_s": step_s, "projected_s": steps * step_s, "projected_low_s": low * step_s,
            "projected_high_s": high * step_s, "measured_s": float(np.mean(measured)) if measured else math.nan,
            "measured_runs": len(measured), "first": False, "budget_s": budget_s,
            "best_val_top1_in_budget": best_in_budget, "best_in_budget": False}


def _mean_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t interval; one value has no interval (NaN bounds), none no mean either."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) == 1:
        return mean, math.nan, math.nan
    half = float(scipy_stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, max(mean - half, 0.0), mean + half
