"""Entry point: `python -m archbench [overrides]` (one run) or `python -m archbench -m ...` (a sweep).

The only module that touches Hydra: it composes the config, turns it into a plain `RunSpec` and hands
over to `archbench.run`. Names of config-group options are checked before Hydra starts, so a typo gets
the closest valid names instead of a traceback.
"""
from __future__ import annotations

import difflib
import logging
import os
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from archbench import sweep
from archbench.run import InvalidRunError, RunSpec, run, summary

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GROUPS = ("model", "data", "train", "measure", "experiment")
BUDGET_KEYS = ("epochs", "steps", "seconds", "macs")
EXIT_BAD_INPUT = 2
log = logging.getLogger("archbench")


def check_group_choices(argv: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """An error message for an unknown config-group option on the command line, else None."""
    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if not sep or key not in GROUPS or "(" in value or value in ("null", ""):
            continue
        choices = sorted(p.stem for p in (conf_dir / key).glob("*.yaml"))
        for choice in value.split(","):
            if choice not in choices:
                close = difflib.get_close_matches(choice, choices, n=5, cutoff=0.5)
                hint = f"closest: {', '.join(close)}" if close else f"choices: {', '.join(choices)}"
                return (f"unknown {key} {choice!r} ({hint}). Every {key} is a file in conf/{key}/; "
                        f"`ls conf/{key}` lists all {len(choices)}.")
    return None


def budget_from_overrides(budget: dict, overrides: list[str]) -> dict:
    """`train.budget.steps=100` on the command line replaces the recipe's budget instead of adding to it."""
    named = [k for k in BUDGET_KEYS if any(o.lstrip("+").startswith(f"train.budget.{k}=") for o in overrides)]
    if len(named) == 1:
        return {k: (budget.get(k) if k == named[0] else None) for k in BUDGET_KEYS}
    return budget


def _plain(node) -> dict:
    return OmegaConf.to_container(node, resolve=True) if node is not None else {}


def spec_from_config(cfg: DictConfig, overrides: list[str]) -> RunSpec:
    from hydra.utils import instantiate

    train, model, data = cfg.train, cfg.model, cfg.data
    data_args = OmegaConf.to_container(data, resolve=True)
    augment = data_args.pop("augment", {}) or {}
    for key in ("root", "cache_dir"):
        if data_args.get(key):  # relative to where the command was launched, whatever the launcher's cwd
            data_args[key] = os.path.abspath(os.path.expanduser(data_args[key]))
    config = OmegaConf.to_container(cfg, resolve=True)
    budget = budget_from_overrides(OmegaConf.to_container(train.budget, resolve=True), overrides)
    config["train"]["budget"] = budget
    progress = cfg.progress_bar
    return RunSpec(
        model=model.name, data=data_args, task=cfg.task, study=cfg.study, seed=cfg.seed, device=cfg.device,
        results_dir=os.path.abspath(cfg.results_dir), force=cfg.force, on_locked=cfg.on_locked,
        model_stem=model.get("stem", "auto"), model_kwargs=_plain(model.get("kwargs")),
        model_source="timm" if model.get("family") == "timm" else "archbench",
        augment=augment, recipe=train.name, batch_size=train.batch_size, eval_batch_size=train.eval_batch_size,
        lr=train.optimizer.lr, lr_reference_batch=train.lr_reference_batch,
        weight_decay=train.optimizer.get("weight_decay", 0.0),
        make_optimizer=instantiate(train.optimizer) if cfg.task == "train" else None,
        schedule=instantiate(train.scheduler) if cfg.task == "train" else None,
        budget=budget, decay_norm_and_bias=train.decay_norm_and_bias, label_smoothing=train.label_smoothing,
        grad_clip_norm=train.grad_clip_norm, ema_decay=train.ema_decay, amp=train.amp,
        channels_last=train.channels_last, compile=train.compile, deterministic=train.deterministic,
        target_top1=train.target_top1, measure=OmegaConf.to_container(cfg.measure, resolve=True),
        progress_bar=sys.stderr.isatty() if progress == "auto" else bool(progress), config=config)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> dict:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    overrides = list(hydra_cfg.overrides.task)
    if cfg.get("threads"):
        import torch
        torch.set_num_threads(int(cfg.threads))  # parallel jobs must not oversubscribe the cores
    try:
        spec = spec_from_config(cfg, overrides)
        result = run(spec)
    except InvalidRunError as err:
        if not multirun:
            print(f"archbench: error: {err}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        log.error("job %s: bad input: %s", overrides, err)
        result = {"model": cfg.model.get("name"), "seed": cfg.get("seed"), "status": "failed", "error": str(err)}
    except Exception as err:
        if not multirun:
            raise
        # A failing job must not stop the sweep; its record (status failed) holds the traceback.
        log.exception("job %s failed", overrides)
        result = {**summary(spec, "failed"), "error": f"{type(err).__name__}: {err}"}
    if multirun:
        sweep.write_job_summary(hydra_cfg.sweep.dir, hydra_cfg.job.num, {**result, "overrides": overrides})
    return result


def cli() -> None:
    message = check_group_choices(sys.argv[1:])
    if message:
        print(f"archbench: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    os.environ.setdefault("ARCHBENCH_SWEEP_ID", time.strftime("%Y-%m-%d_%H-%M-%S") + f"_{os.getpid()}")
    main()
    sys.exit(1 if sweep.FAILED_JOBS else 0)


if __name__ == "__main__":
    cli()
