"""Entry point: `python -m archbench [overrides]` (one run) or `python -m archbench -m ...` (a sweep).

The only module that touches Hydra: it composes the config, turns each group into its stage's settings
object (archbench.settings; unknown keys refused) and hands a `RunSpec` to `archbench.run` (or to
`archbench.run.preflight` with `dry_run=true`). Names of config-group options are checked before Hydra starts, so a typo gets
the closest valid names instead of a traceback.
"""
from __future__ import annotations

import contextlib
import difflib
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from archbench import sweep
from archbench.base.files import STORAGE_ERRNOS, WriteError, write_error
from archbench.evaluate import EvaluateSettings
from archbench.run import InvalidRunError, RunSpec, format_plan, preflight, resolve_device, run, summary
from archbench.loggers import LoggerSettings, unavailable
from archbench.quiet import load_1m, threads_left_free
from archbench.settings import SettingsError, check_keys, parse_bool, parse_threads
from archbench.train.budget import budget_kinds
from archbench.train.loop import EXIT_INTERRUPTED, STOP_REQUESTED

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("model", "data", "train", "measure", "experiment", "logger", "evaluate", "paper")
EXIT_BAD_INPUT = 2
EXIT_WRITE_FAILED = 74  # BSD EX_IOERR: the disk refused a write; what was written before is intact
log = logging.getLogger("archbench")


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """An error message for an unknown config-group option on the command line, else None."""
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or "(" in value or value in ("null", ""):
            continue
        choices = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
        for choice in value.strip("[]").split(","):
            if choice not in choices:
                close = difflib.get_close_matches(choice, choices, n=5, cutoff=0.5)
                hint = f"closest: {', '.join(close)}" if close else f"choices: {', '.join(choices)}"
                return (f"unknown {key} {choice!r} ({hint}). Every {key} is a file in conf/{key}/; "
                        f"`ls conf/{key}` lists all {len(choices)}.")
    return None


_ABSENT = object()


def check_override_keys(argv: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """archbench's own message for `key=value` naming no key of the config (Hydra's would suggest `+key`).

    Composes the config with the command line's group choices (the first of a swept list) and looks each
    plain override up in it, exactly the keys Hydra would accept; on any trouble it says nothing and
    leaves the command to Hydra.
    """
    plain = [a for a in argv if "=" in a and not a.startswith(("-", "+", "~"))]
    keys = [a.partition("=")[0] for a in plain]
    if not [k for k in keys if k not in GROUPS and not k.startswith("hydra")]:
        return None
    try:
        from hydra import compose, initialize_config_dir

        choices = [f"{k}={a.partition('=')[2].split(',')[0]}" for k, a in zip(keys, plain)
                   if (k in GROUPS or "/" in k) and not k.startswith("hydra")]
        with initialize_config_dir(config_dir=str(conf_dir), version_base="1.3"):
            cfg = compose(config_name="config", overrides=choices)
    except Exception:
        return None
    known = sorted(_leaf_keys(OmegaConf.to_container(cfg, resolve=False)))
    for key in keys:
        if key in GROUPS or key.startswith("hydra") or "/" in key:
            continue
        if OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            try:
                check_keys("", {key: None}, known)
            except SettingsError as err:
                return str(err)
    return None


def _leaf_keys(mapping: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, value in mapping.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, dict):
            keys += _leaf_keys(value, f"{prefix}{key}.")
    return keys


def budget_from_overrides(budget: dict, overrides: list[str]) -> dict:
    """`train.budget.steps=100` on the command line replaces the recipe's budget instead of adding to it."""
    kinds = budget_kinds()
    named = [k for k in kinds if any(o.lstrip("+").startswith(f"train.budget.{k}=") for o in overrides)]
    if len(named) == 1:
        return {k: (budget.get(k) if k == named[0] else None) for k in kinds}
    return budget


# Top-level keys of conf/config.yaml (and the groups composed into it); anything else is a typo.
TOP_LEVEL_KEYS = ("model", "data", "train", "measure", "task", "study", "seed", "device", "results_dir", "force",
                  "on_locked", "progress_bar", "threads", "dry_run", "tuning", "trial", "tuned_from", "evaluate",
                  "logger", "hydra", "report")


def spec_from_config(cfg: DictConfig, overrides: list[str]) -> RunSpec:
    """Each stage's settings from its own config group; unknown keys are refused, naming the closest."""
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("hydra", None)  # present when composed with the compose API (tests), absent under @hydra.main
    check_keys("", {k: v for k, v in config.items() if k not in TOP_LEVEL_KEYS}, list(TOP_LEVEL_KEYS))
    parse_threads(config.get("threads"))  # refused here, before a dry run's plan or a run's record repeats it
    config["train"]["budget"] = budget_from_overrides(config["train"].get("budget") or {}, overrides)
    tuning = _apply_tuning(config, cfg) if config.get("trial") is not None or config.get("tuned_from") else None
    progress = parse_bool(cfg.progress_bar, "progress_bar", ("auto",))
    return RunSpec.from_configs(
        model=config["model"], data=config["data"], train=config["train"], measure=config["measure"],
        task=cfg.task, study=cfg.study, seed=cfg.seed, device=cfg.device, results_dir=os.path.abspath(cfg.results_dir),
        force=parse_bool(cfg.force, "force"), on_locked=cfg.on_locked, config=config, tuning=tuning,
        evaluate=_evaluate_settings(config.get("evaluate")), logger=_logger_settings(config.get("logger")),
        progress_bar=sys.stderr.isatty() if progress == "auto" else progress)


def _apply_tuning(config: dict, cfg: DictConfig) -> dict:
    """The record's tuning section; puts the trial's candidate (or the tuned stage's best) into config["train"].
    Bad tuning input is a SettingsError, as any other bad setting."""
    # The tuning protocol reads the results table (pandas, statsmodels): only a tuning study's jobs load it.
    from archbench.results.tuning import TuningError, apply_candidate, select, trial_settings

    if config.get("trial") is not None:  # one trial of an equal-effort tuning study: candidate k of the space
        if not config.get("tuning"):
            raise SettingsError(f"trial={config['trial']} needs a tuning space (tuning.space, tuning.trials): "
                                "see conf/experiment/tune_fmnist.yaml")
        try:
            candidate, tuning = trial_settings(config["tuning"], config["trial"], cfg.study)
        except TuningError as err:
            raise SettingsError(str(err)) from err
        config["train"] = apply_candidate(config["train"], candidate)
        return tuning
    try:  # the final stage: each model's best trial, chosen on validation only
        candidate, tuning = select(os.path.abspath(cfg.results_dir), config["tuned_from"],
                                   config["data"]["name"], config["model"]["name"], seed=cfg.seed)
    except TuningError as err:
        if not _is_dry_run(cfg.dry_run):
            raise SettingsError(str(err)) from err
        return {"problem": str(err)}  # the plan still times the job, with the recipe's own values
    config["train"] = apply_candidate(config["train"], candidate)
    return tuning


def _logger_settings(values: dict | None):
    settings = LoggerSettings.from_config(values)
    for why in unavailable(settings.names).values():
        # optional: the run goes on and its record says which logger was left out and why
        log.warning("%s; the run goes on without that logger", why)
    return settings


def _evaluate_settings(values: dict | None):
    try:
        return EvaluateSettings.from_dict(values)
    except ValueError as err:
        raise SettingsError(str(err)) from err


def apply_threads(threads: int | None, device: str, loadavg=load_1m) -> None:
    """torch's intra-op threads: `threads` when set (a parallel sweep sets cores / jobs, so jobs never
    oversubscribe the cores); null on a CPU beside other work: the cores it leaves free (quiet.threads_left_free)."""
    import torch

    if not threads and device == "cpu":
        threads, why = threads_left_free(torch.get_num_threads(), loadavg)
        if why:
            log.info("%s", why)
    if threads:
        torch.set_num_threads(threads)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> dict:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    spec = None
    if multirun:
        sweep.watch_for_stop()
    try:
        dry_run = parse_bool(cfg.dry_run, "dry_run")
        spec = spec_from_config(cfg, overrides)
        if multirun and sweep.stop_asked():  # the sweep is stopping: this job starts nothing
            return _job_result(hydra_cfg, overrides, summary(spec, sweep.INTERRUPTED_STATUS))
        apply_threads(cfg.get("threads"), resolve_device(spec.device))  # checked: a positive int or null
        if multirun and cfg.task == "measure" and sweep.parallel_launcher(hydra_cfg.launcher):
            raise SettingsError("task=measure times one model at a time, so it runs without a parallel launcher: "
                                "drop hydra/launcher=... (parallel jobs would be each other's load)")
        if multirun and sweep.parallel_launcher(hydra_cfg.launcher):
            spec.defer_speed = True  # measured by the sweep's closing pass (sweep.SweepSummary), in quiet
        if dry_run:
            result = {**preflight(spec), "dry_run": True}
            result["status"] = "failed" if result["problem"] else "planned"
        else:
            result = run(spec)
    except SystemExit as exit_:
        if not multirun or exit_.code != EXIT_INTERRUPTED:
            raise
        # Checkpoint saved: this job says so and the sweep goes on to skip the rest (no job raises into
        # the launcher, which would kill the other workers before they save theirs).
        STOP_REQUESTED.append(signal.SIGTERM)
        result = summary(spec, sweep.INTERRUPTED_STATUS)
    except (InvalidRunError, SettingsError) as err:
        if not multirun:
            print(f"archbench: error: {err}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        log.error("job %s: bad input: %s", overrides, err)
        result = {"model": cfg.model.get("name"), "data": cfg.data.get("name"), "seed": cfg.get("seed"),
                  "status": "failed", "error": str(err), "problem": str(err), "dry_run": _is_dry_run(cfg.dry_run)}
    except WriteError as err:
        if not multirun:
            print(f"archbench: error: {err}", file=sys.stderr)
            sys.exit(EXIT_WRITE_FAILED)
        log.error("job %s: %s", overrides, err)
        result = {**(summary(spec, "failed") if spec else {}), "status": "failed", "error": str(err)}
    except Exception as err:
        if not multirun or spec is None:
            raise
        # A failing job must not stop the sweep; its record (status failed) holds the traceback.
        log.exception("job %s failed", overrides)
        result = {**summary(spec, "failed"), "error": f"{type(err).__name__}: {err}"}
    if not multirun and _is_dry_run(cfg.dry_run):
        print(format_plan([result]))
        if result["problem"]:
            sys.exit(1)
    return _job_result(hydra_cfg, overrides, result) if multirun else result


def _job_result(hydra_cfg, overrides: list[str], result: dict) -> dict:
    """A sweep job's result, also written where the sweep's table reads it."""
    sweep.write_job_summary(hydra_cfg.sweep.dir, hydra_cfg.job.num,
                            {**result, "overrides": overrides, "job_num": hydra_cfg.job.num})
    return result


def _sweep_dir(results_dir: str, study: str, dry_run) -> str:
    """A sweep's bookkeeping folder; a dry run writes nothing under results_dir, so its goes to /tmp."""
    sweep_id = os.environ.get("ARCHBENCH_SWEEP_ID", "manual")
    if _is_dry_run(dry_run):
        return os.path.join(tempfile.gettempdir(), "archbench-dry-run", sweep_id)
    return os.path.join(results_dir, "sweeps", study, sweep_id)


OmegaConf.register_new_resolver("archbench_sweep_dir", _sweep_dir, replace=True)


def _forward_interrupts(dry_run: bool) -> None:
    """SIGTERM/SIGINT to a sweep's parent reach its local workers: each job in training saves a checkpoint at
    its next step, one in another phase finishes it, no new job starts, and the parent exits 75 once they
    have; a second signal stops at once (the launcher kills its workers: the last timed checkpoint stands)."""
    def forward(signum, frame):
        if sweep.INTERRUPTED or dry_run:  # a dry run has nothing to save: it stops at once
            sweep.INTERRUPTED.append(signum)
            raise KeyboardInterrupt
        sweep.INTERRUPTED.append(signum)
        STOP_REQUESTED.append(signum)  # a job of a sequential sweep runs in this process
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)  # the group signal below must not re-enter this handler
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgrp(), signal.SIGTERM)  # workers checkpoint on SIGTERM (loky ignores SIGINT)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, forward)
        print("archbench: stopping: each job saves a checkpoint at its next step (or ends its phase), no new "
              "job starts; a second Ctrl-C or SIGTERM stops at once", file=sys.stderr, flush=True)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)


def _is_dry_run(value) -> bool:
    return sweep.is_dry_run(value)  # a non-boolean is reported where the job reads it; never a dry run here


def local_dry_run(argv: list[str]) -> list[str]:
    """A dry run plans on this machine: a SLURM or joblib launcher is dropped, never submitted to."""
    values = [a.partition("=")[2] for a in argv if a.lstrip("+~").partition("=")[0] == "dry_run"]
    if not values or not _is_dry_run(values[-1]):  # every spelling Hydra takes: True, TRUE, true, yes...
        return argv
    kept = [a for a in argv if not a.lstrip("+~").startswith(("hydra/launcher=", "hydra.launcher."))]
    if len(kept) != len(argv):
        print("archbench: dry_run=true plans every job here, one after another; the launcher settings are "
              "ignored for the plan", file=sys.stderr)
    return kept


DRY_RUN_INTERRUPTED = ("archbench: dry run interrupted; a dry run writes nothing under results_dir, so there is "
                       "nothing to resume or clean up: run it again for the whole plan")


def cli() -> None:
    sys.argv[1:] = local_dry_run(sys.argv[1:])
    message = check_group_choices(sys.argv[1:]) or check_override_keys(sys.argv[1:])
    if message:
        print(f"archbench: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    os.environ.setdefault("ARCHBENCH_SWEEP_ID", time.strftime("%Y-%m-%d_%H-%M-%S") + f"_{os.getpid()}")
    multirun = any(arg in ("-m", "--multirun") for arg in sys.argv[1:])
    if multirun:
        os.environ[sweep.PARENT_ENV] = str(os.getpid())  # its workers tell themselves apart from it
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)  # own process group: an interrupt forwarded to it reaches only this sweep
    dry_values = [a.partition("=")[2] for a in sys.argv[1:] if a.lstrip("+~").partition("=")[0] == "dry_run"]
    dry_run = bool(dry_values) and _is_dry_run(dry_values[-1])
    if multirun:
        _forward_interrupts(dry_run)
    try:
        main()
    except (KeyboardInterrupt, Exception) as err:
        if dry_run and (sweep.INTERRUPTED or isinstance(err, KeyboardInterrupt)):
            print(DRY_RUN_INTERRUPTED, file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        if isinstance(err, OSError) and err.errno in STORAGE_ERRNOS:  # e.g. the sweep folder on a read-only disk
            if not isinstance(err, WriteError):
                err = write_error(Path(err.filename or "."), err)
            print(f"archbench: error: {err}", file=sys.stderr)
            sys.exit(EXIT_WRITE_FAILED)
        if sweep.INTERRUPTED:
            print(f"archbench: interrupted by signal {sweep.INTERRUPTED[0]}; each job resumes from its last "
                  f"checkpoint (at most train.checkpoint_every_s old) with the same command", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        raise
    if sweep.stop_asked():
        print(DRY_RUN_INTERRUPTED if dry_run else
              f"archbench: interrupted by signal {(sweep.INTERRUPTED or STOP_REQUESTED)[0]}; the jobs in training "
              f"saved their checkpoints, the same command resumes them", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(1 if sweep.FAILED_JOBS else 0)


if __name__ == "__main__":
    cli()
