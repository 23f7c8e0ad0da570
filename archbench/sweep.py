"""Sweep bookkeeping: each job leaves a one-line summary; the sweep prints and saves them as a table.

Jobs may run in other processes (joblib) or on other machines (SLURM), so they report through small
JSON files in the sweep folder rather than through memory.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from archbench.base.files import atomic_write_bytes, atomic_write_json
from archbench.base.timefmt import duration
from archbench.record import load_record_or_empty, nested
from archbench.run import format_plan
from archbench.run.remeasure import remeasure_paths
from archbench.train.loop import STOP_REQUESTED
from archbench.settings import MeasureSettings, SettingsError, parse_bool

log = logging.getLogger("archbench")
# Set at the end of a multirun; the entry point exits non-zero when any job failed.
FAILED_JOBS: list[dict] = []
# Signals that interrupted the sweep (set by the entry point's handler); the parent then exits 75.
INTERRUPTED: list[int] = []
# The sweep's parent process, named to its workers (they inherit the environment).
PARENT_ENV = "ARCHBENCH_SWEEP_PARENT"
INTERRUPTED_STATUS = "interrupted"
# job_wall_s: the whole job (build, train, measure); train_s: training only, as in the report.
COLUMNS = ("model", "data", "variant", "seed", "status", "job_wall_s", "train_s", "test_top1")


def watch_for_stop() -> None:
    """In a parallel sweep's worker: SIGTERM (forwarded by the parent) marks this process stopped instead of
    killing it, so a job outside training ends its phase and writes what it made, a job in training saves a
    checkpoint at its next step (train.loop's own handler), and no later job starts here (`stop_asked`)."""
    parent = os.environ.get(PARENT_ENV)
    if parent is None or str(os.getpid()) == parent or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, lambda signum, frame: STOP_REQUESTED.append(signum))


def stop_asked() -> bool:
    """A stop reached this process: the sweep's parent was signalled, or this worker was."""
    return bool(INTERRUPTED or STOP_REQUESTED)


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


def is_dry_run(value) -> bool:
    try:
        return bool(parse_bool(value, "dry_run"))
    except SettingsError:
        return False


def count_jobs(config) -> int | None:
    """How many jobs the basic sweeper makes of the sweep's parameters and command line; None when unknown."""
    try:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
        overrides = OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task))
        return sum(len(batch) for batch in BasicSweeper.split_arguments(overrides, None))
    except Exception:  # another sweeper, or a grammar this count does not follow: no estimate, no failure
        return None


def progress_line(done: list[dict], total: int | None, elapsed_s: float, now: float | None = None) -> str:
    """`sweep: 3 of 12 jobs done in 4 min 10 s; about 12 min left, ending about 18:42`, from the jobs so far.

    The rate is the sweep's own wall time per finished job, so parallel workers and skipped jobs count
    as they really went; a dry run's estimate is the sum of its planned jobs' estimates instead.
    """
    count = len(done)
    text = f"sweep: {count} of {total if total else '?'} jobs done in {duration(elapsed_s)}"
    if not total or not count or count >= total:
        return text
    left = elapsed_s / count * (total - count)
    end = time.strftime("%H:%M", time.localtime((now or time.time()) + left))
    return f"{text}; about {duration(left)} left, ending about {end} (from the jobs finished so far)"


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
    """After a parallel sweep: each finished record's speed measured in turn, in quiet (archbench.run.remeasure)."""
    # Only records whose speed waits for this pass (trained now, or left waiting by an interrupted pass):
    # a rerun that skips finished records leaves them as they are; `task=measure` re-measures on request.
    paths = [r["record"] for r in rows if r.get("status") in ("complete", "skipped") and r.get("record")
             and _speed_deferred(Path(r["record"]))]
    if not paths:
        return []
    measure = MeasureSettings.from_config(OmegaConf.to_container(config.measure, resolve=True))
    _end_idle_workers()
    log.info("measuring the speed of %d record(s) one at a time, now that no job trains", len(paths))
    tick = time.time()
    results = remeasure_paths(paths, measure, device=str(config.device))
    with contextlib.suppress(OSError):  # how long the pass took, for scripts that account for every phase
        atomic_write_json(Path(config.hydra.sweep.dir) / "measurement_pass.json",
                          {"records": len(paths), "seconds": round(time.time() - tick, 1)})
    loaded = [r for r in results if r.get("under_load")]
    for r in loaded:
        log.warning("%s: speed measured under load: %s", r["record"], r["under_load"])
    log.info("measurement pass: %d measured, %d already quiet, %d under load, %d failed",
             sum(r["status"] == "measured" for r in results), sum(r["status"] == "skipped" for r in results),
             len(loaded), sum(r["status"] == "failed" for r in results))
    return results


def _end_idle_workers() -> None:
    """Shut joblib's idle worker processes down: on a GPU each still holds its CUDA context, so the quiet
    check would see them as other processes on the device (and they hold its memory)."""
    try:
        from joblib.externals.loky import reusable_executor
    except ImportError:
        return
    executor = getattr(reusable_executor, "_executor", None)
    if executor is not None:
        with contextlib.suppress(Exception):  # a pool already broken or closed has nothing left to end
            executor.shutdown(wait=True, kill_workers=True)


def _speed_deferred(path: Path) -> bool:
    return bool(nested(load_record_or_empty(path), "latency", "deferred"))


class SweepSummary(Callback):
    """Hydra callback: the sweep's size at its start, an estimate as each job ends, the table of jobs at the end."""

    def on_multirun_start(self, config, **kwargs) -> None:
        total = count_jobs(config)
        dry = is_dry_run(config.get("dry_run"))
        with contextlib.suppress(OSError):  # a read-only results_dir is reported by the jobs, one paragraph each
            atomic_write_json(Path(config.hydra.sweep.dir) / "plan.json", {"total": total, "started": time.time()})
        if total:
            log.info("sweep: %d job(s)%s; %s", total, " to plan (dry run: nothing is written)" if dry else "",
                     "each job's plan follows as it is made" if dry else
                     "an estimate for the whole sweep follows as jobs finish (dry_run=true plans it ahead)")

    def on_job_end(self, config, job_return=None, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            plan = json.loads((sweep_dir / "plan.json").read_text())
        except (OSError, ValueError):
            return
        rows = read_job_summaries(sweep_dir)
        if is_dry_run(config.get("dry_run")):
            num = config.hydra.job.num
            mine = [r for r in rows if r.get("job_num") == num] or rows[-1:]
            line = format_plan(mine).splitlines()[2].replace("| 0 |", f"| {num} |", 1) if mine else "-"
            planned = sum(r.get("est_s") or 0 for r in rows if (r.get("action") or "").startswith(("run", "resume")))
            log.info("planned %d of %s: %s\n  estimated training time so far: %s", len(rows),
                     plan.get("total") or "?", line, duration(planned))
            return
        log.info("%s", progress_line(rows, plan.get("total"), time.time() - plan["started"]))

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = read_job_summaries(sweep_dir)
        FAILED_JOBS[:] = [r for r in rows if r.get("status") == "failed"]
        if rows and all(r.get("dry_run") for r in rows):
            log.info("dry run (nothing written under %s):\n%s", config.results_dir, format_plan(rows))
            return
        if stop_asked():
            log.info("interrupted: the closing measurement pass waits for the sweep's next, complete run")
        elif parallel_launcher(config.hydra.get("launcher")) and config.get("task") in ("train", "profile"):
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
