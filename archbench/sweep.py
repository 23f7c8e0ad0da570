"""Sweep bookkeeping: each job leaves a one-line summary; the sweep prints and saves them as a table.

Jobs may run in other processes (joblib) or on other machines (SLURM), so they report through small
JSON files in the sweep folder rather than through memory.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from hydra.experimental.callback import Callback

from archbench.files import atomic_write_bytes, atomic_write_json

log = logging.getLogger("archbench")
# Set at the end of a multirun; the entry point exits non-zero when any job failed.
FAILED_JOBS: list[dict] = []
# Signals that interrupted the sweep (set by the entry point's handler); the parent then exits 75.
INTERRUPTED: list[int] = []
# job_wall_s: the whole job (build, train, measure); train_s: training only, as in the report.
COLUMNS = ("model", "data", "variant", "seed", "status", "job_wall_s", "train_s", "test_top1")


def write_job_summary(sweep_dir: str, job_num: int, result: dict) -> None:
    atomic_write_json(Path(sweep_dir) / "jobs" / f"{job_num:05d}.json", result)


def read_job_summaries(sweep_dir: str | Path) -> list[dict]:
    rows = []
    for path in sorted(Path(sweep_dir).glob("jobs/*.json")):
        try:
            rows.append(json.loads(path.read_text()))
        except ValueError:
            rows.append({"status": "failed", "error": f"unreadable job summary {path}"})
    return rows


def format_table(rows: list[dict]) -> str:
    def cell(row, key):
        value = row.get(key)
        if isinstance(value, float):
            return f"{value:.2f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(r, k) for k in COLUMNS) + " |" for r in rows]
    counts = {}
    for r in rows:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items(), key=str)))
    return "\n".join(lines)


def parallel_launcher(launcher) -> bool:
    """Whether the jobs run side by side on this machine's cores (joblib with n_jobs != 1, submitit_local).

    SLURM jobs each get their own allocation (one GPU per job), so they keep measuring inside the job,
    still with the quiet check; a closing pass on the submitting node would time the wrong hardware.
    """
    target = str((launcher or {}).get("_target_", ""))
    if "Joblib" in target:
        return (launcher or {}).get("n_jobs", -1) != 1
    return "submitit" in target.lower() and "Local" in target


def measurement_pass(config, rows: list[dict]) -> list[dict]:
    """After a parallel sweep: each finished record's speed measured in turn, in quiet (archbench.remeasure)."""
    from omegaconf import OmegaConf

    from archbench.remeasure import remeasure_paths
    from archbench.settings import MeasureSettings

    # Only records whose speed waits for this pass (trained now, or left waiting by an interrupted pass):
    # a rerun that skips finished records leaves them as they are; `task=measure` re-measures on request.
    paths = [r["record"] for r in rows if r.get("status") in ("complete", "skipped") and r.get("record")
             and _speed_deferred(Path(r["record"]))]
    if not paths:
        return []
    measure = MeasureSettings.from_config(OmegaConf.to_container(config.measure, resolve=True))
    log.info("measuring the speed of %d record(s) one at a time, now that no job trains", len(paths))
    results = remeasure_paths(paths, measure, device=str(config.device))
    loaded = [r for r in results if r.get("under_load")]
    for r in loaded:
        log.warning("%s: speed measured under load: %s", r["record"], r["under_load"])
    log.info("measurement pass: %d measured, %d already quiet, %d under load, %d failed",
             sum(r["status"] == "measured" for r in results), sum(r["status"] == "skipped" for r in results),
             len(loaded), sum(r["status"] == "failed" for r in results))
    return results


def _speed_deferred(path: Path) -> bool:
    try:
        return bool((json.loads(path.read_text()).get("latency") or {}).get("deferred"))
    except (OSError, ValueError, AttributeError):
        return False


class SweepSummary(Callback):
    """Hydra callback: at the end of a multirun, print and save the table of jobs."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_job_summaries(sweep_dir)
        FAILED_JOBS[:] = [r for r in rows if r.get("status") == "failed"]
        if rows and all(r.get("dry_run") for r in rows):
            from archbench.run import format_plan
            log.info("dry run (nothing written under %s):\n%s", config.results_dir, format_plan(rows))
            return
        if parallel_launcher(config.hydra.get("launcher")) and config.get("task") in ("train", "profile"):
            for result in measurement_pass(config, rows):
                if result["status"] == "failed":
                    FAILED_JOBS.append({"model": result["record"], "error": result.get("error")})
        table = format_table(rows)
        atomic_write_bytes(sweep_dir / "summary.md", (table + "\n").encode())
        if config.get("task") != "measure":  # the study's table stays the one of the sweep that trained it
            study_dir = Path(config.results_dir) / "runs" / str(config.study)
            atomic_write_bytes(study_dir / "sweep_summary.md", (f"sweep {sweep_dir}\n\n{table}\n").encode())
        log.info("sweep summary (%s):\n%s", sweep_dir / "summary.md", table)
        for row in FAILED_JOBS:
            log.error("failed: %s seed %s: %s", row.get("model"), row.get("seed"), row.get("error"))
