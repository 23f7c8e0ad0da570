"""The record format: its schema and statuses, the skeleton a run fills in, the environment stamp, the flags
a run sets, and which records are usable results.

Accuracies are percentages in [0, 100]; times are seconds unless the key ends in `_ms`.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import socket
import subprocess
from importlib.metadata import version
from pathlib import Path

import archbench
from archbench.base.device import cpu_model, machine_identity

# 2: identity (fingerprint, variant, settings), a normalised recipe section, variant folders, flags.
SCHEMA = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 records (no variant folder) are read with a variant derived from config
STATUSES = ("complete", "diverged", "failed")
# A record with one of these statuses is finished work: a rerun skips it (unless forced).
FINISHED = ("complete", "diverged")


def new_record(*, task: str, study: str, model: str, family: str, data: str, seed: int,
               config: dict, env: dict, identity: dict, recipe: dict | None, synthetic: bool = False,
               tuning: dict | None = None) -> dict:
    """A record skeleton with every top-level key present, so readers never guess which keys exist."""
    return {
        "schema": SCHEMA,
        "status": "failed",  # overwritten on success; a crash that still writes says so honestly
        "task": task,
        "study": study,
        "model": model,
        "family": family,
        "data": data,
        "seed": seed,
        "synthetic": synthetic,
        "identity": identity,  # fingerprint, variant and the settings behind them (archbench.settings)
        "numerics": None,      # what can change what it learns, machine aside: settings.numerics_identity
        "recipe": recipe,      # the normalised training recipe: what results and the report read
        "config": config,      # the whole resolved config, verbatim, for a person to read
        "flags": [],           # e.g. "near_chance": finished, but validation accuracy within noise of chance
        "tuning": tuning,      # a tuning trial (study, trial, trials, candidate) or a tuned run's selection
        "env": env,
        "dataset": None,
        "complexity": None,
        "latency": None,
        "train": None,
        "train_precision": None,  # amp/channels_last=auto: the probe's figures and why (archbench.train.precision)
        "metrics": None,
        "history": None,
        "calibration": None,   # ECE, NLL, Brier on test (temperature fitted on validation): archbench.evaluate
        "robustness": None,    # top-1 under corruptions, per corruption and severity
        "energy": None,        # joules per training and inference image (NVML), or why not: archbench.measure.energy
        "error": None,
    }


# ---------------------------------------------------------------------------------------------- environment

# Set by whoever runs a tree exported from a clean commit with `git archive` (the GPU call: that machine's copy
# has no history of its own, or sits inside another checkout whose state is not the exported one's).
EXPORTED_COMMIT_ENV = "ARCHBENCH_EXPORTED_COMMIT"


def _git(*args: str) -> str | None:
    root = Path(archbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _version(module: str) -> str | None:
    try:
        return version(module)
    except Exception:
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment(device: str) -> dict:
    """Everything needed to tell whether two records are comparable: code, libraries, hardware."""
    import torch  # here, not at the top: analysis reads records on machines without torch

    if os.environ.get(EXPORTED_COMMIT_ENV):
        # A tree exported with `git archive`: exactly that commit, whatever repository it may sit inside.
        commit, dirty = os.environ[EXPORTED_COMMIT_ENV], False
    else:
        commit = _git("rev-parse", "HEAD")
        dirty = None if commit is None else bool(_git("status", "--porcelain", "--untracked-files=no"))
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {
        "archbench_version": archbench.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "fvcore": _version("fvcore"),
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "device": device,
        "device_name": torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu",
        "cpu_model": cpu_model(),
        "machine": machine_identity(device),  # what tells this machine's speed apart from another's
        "threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "start_time": now_iso(),
        "end_time": None,
    }


# ------------------------------------------------------------------------------------------------ flags

def near_chance(top1: float | None, num_classes: int | None, count: int | None) -> bool:
    """True when an accuracy is within two binomial standard errors of guessing (100 / classes).

    Such a run finished but learned nothing a finite evaluation set can tell from chance.
    """
    if top1 is None or not num_classes or not count:
        return False
    chance = 1.0 / num_classes
    se = math.sqrt(chance * (1 - chance) / count)
    return top1 / 100.0 <= chance + 2 * se


# --------------------------------------------------------------------------------------------- statuses

# Accuracies a usable train record must hold as percentages, not fractions.
PERCENT_CHECKED = ("test_top1", "test_top5", "val_top1")


def unusable_reason(record: dict, row: dict, include_synthetic: bool) -> str | None:
    """Why this record must not be averaged in, or None when it is a usable result (`row`: its columns)."""
    schema = record.get("schema")
    if schema not in READABLE_SCHEMAS:
        if not isinstance(schema, int):
            return f"schema {schema!r} is not an archbench record schema (expected {SCHEMA})"
        if schema < min(READABLE_SCHEMAS):
            return (f"schema {schema} is older than the schemas this archbench reads "
                    f"({', '.join(map(str, READABLE_SCHEMAS))}): rerun or migrate")
        return f"schema {schema} is newer than this archbench's schema {SCHEMA}: upgrade archbench"
    status = record.get("status")
    if status in ("failed", "diverged"):
        error = error_text(record.get("error"))
        return f"{status}" + (f": {error}" if error else "")
    if status != "complete":
        return f"status {status!r} is not 'complete' (partial or interrupted run)"
    if row.get("synthetic") and not include_synthetic:
        return "synthetic data (a smoke test, not a result); include_synthetic=true to show it"
    missing = [key for key in ("study", "data", "model") if _is_missing(row.get(key))]
    if missing:
        return f"missing {', '.join(missing)}: cannot tell which comparison this run belongs to"
    if row.get("task") == "train":
        if _is_missing(row.get("test_top1")):
            return "train record without a test_top1 metric (partial run?)"
        for metric in PERCENT_CHECKED:
            value = row.get(metric)
            if not _is_missing(value) and not 0.0 <= value <= 100.0:
                return (f"{metric}={value} is outside [0, 100]: accuracies are percentages, "
                        "the writer must multiply fractions by 100")
    elif row.get("task") != "profile":
        return f"task {row.get('task')!r} is neither 'train' nor 'profile'"
    return None


def is_diverged_reason(reason) -> bool:
    """Whether an exclusion reason from `unusable_reason` says the run diverged (finished, but lost)."""
    return str(reason).startswith("diverged")


def error_text(error) -> str:
    """One short line from a record's error (a dict with type and message, or text)."""
    if error is None:
        return ""
    if isinstance(error, dict):
        text = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
    else:
        text = str(error)
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= 200 else first[:197] + "..."


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))

