"""Run records: where they live, what they hold, and how they reach disk without ever being half-written.

A record is the contract between a run and everything after it (sweep skip/resume, results, report).
Accuracies are percentages in [0, 100]; times are seconds unless the key ends in `_ms`.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
from pathlib import Path

import archbench
from archbench.files import atomic_write_bytes, atomic_write_json, move_aside  # noqa: F401 (re-exported)

# 2: identity (fingerprint, variant, settings), a normalised recipe section, variant folders, flags.
SCHEMA = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 records (no variant folder) are read with a variant derived from config
STATUSES = ("complete", "diverged", "failed")
# A record with one of these statuses is finished work: a rerun skips it (unless forced).
FINISHED = ("complete", "diverged")
RECORD_FILENAME = "record.json"
RECORD_FILE = "record.json"


def record_path(folder) -> Path: return Path(folder) / RECORD_FILE


def record_dir(results_dir: str | os.PathLike, study: str, data: str, model: str, variant: str, seed: int) -> Path:
    """Deterministic run folder: no timestamps, so a rerun finds (and resumes or skips) its own work.

    `<results_dir>/runs/<study>/<data>/<model>/<variant>/seed<k>`: `variant` names the settings
    (`standard-200ep-1a2b3c4d`), so runs that differ in anything but the seed never share a folder.
    """
    for label, value in (("study", study), ("data", data), ("model", model), ("variant", variant)):
        if not value or "/" in str(value) or str(value).startswith("."):
            raise ValueError(f"{label}={value!r} cannot name a results folder: use a non-empty name without '/'"
                             " or a leading '.'")
    return Path(results_dir) / "runs" / study / data / model / variant / f"seed{seed}"


def parse_record_path(path: str | os.PathLike) -> dict:
    """Study, data, model, variant and seed from a record's path; schema 1 paths have no variant."""
    parts = Path(path).parts
    if len(parts) < 5 or not parts[-2].startswith("seed"):
        return {}
    seed_text = parts[-2][len("seed"):]
    seed = int(seed_text) if seed_text.isdigit() else None
    if "runs" in parts and len(parts) - parts.index("runs") == 7:  # runs/study/data/model/variant/seedK/record.json
        return {"study": parts[-6], "data": parts[-5], "model": parts[-4], "variant": parts[-3], "seed": seed}
    return {"study": parts[-5], "data": parts[-4], "model": parts[-3], "variant": None, "seed": seed}


class CorruptFileError(RuntimeError):
    """A record or checkpoint on disk that cannot be read; it has been moved aside."""


def read_record(path: str | os.PathLike) -> dict | None:
    """The record at `path`, None when absent; a corrupt one is moved aside and reported, not crashed on."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
        if not isinstance(record, dict) or "status" not in record:
            raise ValueError("not a run record (no 'status' key)")
        return record
    except (ValueError, UnicodeDecodeError) as err:
        moved = move_aside(path, str(err))
        raise CorruptFileError(f"record {path} is unreadable ({err}); moved aside to {moved.name}") from err


# ---------------------------------------------------------------------------------------------- environment

def _git(*args: str) -> str | None:
    root = Path(archbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment(device: str) -> dict:
    """Everything needed to tell whether two records are comparable: code, libraries, hardware."""
    import torch

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
        "threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "start_time": now_iso(),
        "end_time": None,
    }


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


# ------------------------------------------------------------------------------------ record -> columns

def variant_settings(record: dict) -> tuple[str | None, dict]:
    """(variant, flattened identity settings without the seed) of a record of any readable schema.

    Schema 1 records predate identities: their variant is derived from the resolved config's model,
    data and train sections (locations and display-only keys left out), so their seeds still group.
    """
    from archbench.settings import flatten

    identity = record.get("identity")
    if isinstance(identity, dict) and identity.get("settings"):
        settings = {k: v for k, v in identity["settings"].items() if k != "seed"}
        return identity.get("variant"), flatten(settings)
    config = record.get("config") or {}
    data = {k: v for k, v in (config.get("data") or {}).items()
            if k not in ("root", "download", "cache_dir", "on_bad_image")}
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in ("eval_batch_size", "target_top1")}
    settings = {"task": record.get("task"), "model": config.get("model") or {}, "data": data,
                "recipe": train if record.get("task") == "train" else None}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{train.get('name') or record.get('task')}-v1-{digest}", flatten(settings)


def nested(mapping, *keys):
    """Nested lookup that tolerates missing or null levels."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _number(value):
    """A float, or NaN for anything that is not a real number (null, missing, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _present_or(value, fallback):
    return fallback if value is None else value


def _best_val_loss(record: dict):
    """Validation loss at the selected epoch (ties in validation accuracy are broken by it)."""
    best = (record.get("metrics") or {}).get("best_epoch")
    for entry in record.get("history") or []:
        if entry.get("epoch") == best:
            return entry.get("val_loss")
    return None


def hardware_label(device, device_name, cpu_model, threads) -> str:
    """Readable machine label, e.g. 'cpu: AMD EPYC 7B13, 2 threads' or 'cuda: NVIDIA H100'.

    CPU thread count is part of the label because CPU latency and throughput scale with it.
    """
    device = str(device) if device else "unknown device"
    kind = device.split(":")[0]
    if kind == "cpu":
        label = f"cpu: {cpu_model or device_name or 'unknown CPU'}"
        if isinstance(threads, (int, float)) and not isinstance(threads, bool) and math.isfinite(threads):
            label += f", {int(threads)} thread{'' if int(threads) == 1 else 's'}"
        return label
    return f"{kind}: {device_name or 'unknown model'}"


def record_key(record: dict, path: str | os.PathLike) -> dict:
    """Study, data, model, variant and seed from the record, else from its path."""
    from_path = parse_record_path(path)
    key = {k: _present_or(record.get(k), from_path.get(k)) for k in ("study", "data", "model", "seed")}
    key["variant"] = variant_settings(record)[0] or from_path.get("variant")
    return key


def _order_seed(record: dict, seed):
    """The seed of the run's data order: identity.settings.data.order_seed (schema 2), else the
    resolved config's data.order_seed (schema 1); null follows the run's seed."""
    order_seed = nested(record, "identity", "settings", "data", "order_seed")
    if order_seed is None:
        order_seed = nested(record, "config", "data", "order_seed")
    if isinstance(order_seed, bool) or not isinstance(order_seed, int):
        return seed
    return order_seed


# Flat columns of one run (what archbench.results.load returns), with units in the names: *_ms
# milliseconds, *_s seconds, *_bytes bytes, accuracies in percent; MACs count multiply-adds (fvcore).
def record_columns(record: dict, path: str | os.PathLike) -> dict:
    env = record.get("env") or {}
    latency = record.get("latency") or {}
    complexity = record.get("complexity") or {}
    train = record.get("train") or {}
    metrics = record.get("metrics") or {}
    dataset = record.get("dataset") or {}
    recipe = record.get("recipe") or nested(record, "config", "train") or {}
    threads = _present_or(env.get("threads"), latency.get("threads"))
    _, settings = variant_settings(record)
    key = record_key(record, path)
    return {
        **key,
        # Data order and augmentation draws (data.order_seed); a record without one (null, or made
        # before the setting existed) drew them from its seed, so the seed is its order seed.
        "order_seed": _order_seed(record, key["seed"]),
        "variant_settings": json.dumps(settings, sort_keys=True, default=str),
        "family": record.get("family"),
        "status": record.get("status"),
        "task": record.get("task"),
        "synthetic": bool(record.get("synthetic", False)),
        "near_chance": "near_chance" in (record.get("flags") or []),
        "hardware": hardware_label(env.get("device") or latency.get("device"),
                                   env.get("device_name") or latency.get("device_name"),
                                   env.get("cpu_model"), threads),
        "device": env.get("device"),
        "device_name": env.get("device_name"),
        "cpu_model": env.get("cpu_model"),
        "threads": _number(threads),
        "torch": env.get("torch"),
        "python": env.get("python"),
        "cuda": env.get("cuda"),
        "archbench_version": env.get("archbench_version"),
        "git_commit": env.get("git_commit"),
        "git_dirty": env.get("git_dirty"),
        "hostname": env.get("hostname"),
        "start_time": env.get("start_time"),
        "end_time": env.get("end_time"),
        "data_label": dataset.get("label") or nested(record, "config", "data", "label"),
        "recipe": recipe.get("name"),
        # Canonical text of the whole recipe, so a study can check that every model had the same one.
        "recipe_config": json.dumps(recipe, sort_keys=True) if recipe else None,
        "budget": json.dumps(recipe.get("budget"), sort_keys=True) if recipe.get("budget") is not None else None,
        "batch_size": _number(recipe.get("batch_size")),
        "lr": _number(recipe.get("lr", nested(recipe, "optimizer", "lr"))),
        "weight_decay": _number(recipe.get("weight_decay", nested(recipe, "optimizer", "weight_decay"))),
        "label_smoothing": _number(recipe.get("label_smoothing")),
        # Equal-effort tuning (archbench.tuning): which trial of which tuning study, or what a final run used.
        "tuning_study": nested(record, "tuning", "study"),
        "trial": _number(nested(record, "tuning", "trial")),
        "trials": _number(nested(record, "tuning", "trials")),
        "tuned_from": nested(record, "tuning", "tuned_from"),
        "selected_trial": _number(nested(record, "tuning", "selected_trial")),
        # Everything that can change the result, seed included: a tuned run with a trial's fingerprint repeats it.
        "fingerprint": nested(record, "identity", "fingerprint"),
        # Per-image test outcomes beside the record (archbench.outcomes); None for runs made before them.
        "outcomes_file": nested(record, "test_outcomes", "file"),
        "amp": train.get("amp"),
        # What the run resolved per model, which can differ between models of one study (a confound).
        "channels_last": train.get("channels_last"),
        "batch_size_halved": train.get("batch_size_halved"),
        "stem": complexity.get("stem"),
        "final_feature_map": "x".join(map(str, complexity["final_feature_map"]))
        if isinstance(complexity.get("final_feature_map"), list) else None,
        "train_size": _number(dataset.get("train_size")),
        "val_size": _number(dataset.get("val_size")),
        "test_size": _number(dataset.get("test_size")),
        "num_classes": _number(dataset.get("num_classes")),
        "image_size": _number(dataset.get("image_size")),
        "params": _number(complexity.get("params")),
        "trainable_params": _number(complexity.get("trainable_params")),
        "macs": _number(complexity.get("macs")),
        "flops_forward": _number(complexity.get("flops_forward")),
        "flops_train": _number(complexity.get("flops_train")),
        "activations": _number(complexity.get("activations")),
        "latency_device": latency.get("device"),
        "latency_b1_ms": _number(nested(latency, "batch_1", "median_ms")),
        "latency_b1_p10_ms": _number(nested(latency, "batch_1", "p10_ms")),
        "latency_b1_p90_ms": _number(nested(latency, "batch_1", "p90_ms")),
        "throughput_batch_size": _number(nested(latency, "throughput", "batch_size")),
        "throughput_img_s": _number(nested(latency, "throughput", "img_per_s")),
        "train_img_s": _number(train.get("img_per_s")),
        "wall_s": _number(train.get("wall_s")),  # training time only (job_wall_s is the whole job)
        "job_wall_s": _number(nested(record, "env", "job_wall_s")),
        "epochs": _number(train.get("epochs")),
        "steps": _number(train.get("steps")),
        **_speed_marks(record, latency, train, threads),
        "peak_mem_bytes": _number(train.get("peak_mem_bytes")),
        "train_j_per_image": _number(nested(record, "energy", "train_j_per_image")),  # NVML; absent off NVIDIA
        "inference_j_per_image": _number(nested(record, "energy", "inference_j_per_image")),
        "ttt_target": _number(nested(train, "time_to_target", "target_top1")),
        "ttt_s": _number(nested(train, "time_to_target", "seconds")),
        "ttt_epoch": _number(nested(train, "time_to_target", "epoch")),
        "val_top1": _number(metrics.get("val_top1")),
        "val_top5": _number(metrics.get("val_top5")),
        "val_loss": _number(_best_val_loss(record)),
        "test_top1": _number(metrics.get("test_top1")),
        "test_top5": _number(metrics.get("test_top5")),
        "test_top1_last": _number(metrics.get("test_top1_last")),
        "best_epoch": _number(metrics.get("best_epoch")),
        "path": str(path),
    }


def _speed_marks(record: dict, latency: dict, train: dict, threads) -> dict:
    """Whether the speed figures may be concluded from: why not (under load, MFU over 100%), else None.

    `mfu` is the MFU against the quiet peak of task=measure when there is one, and is left empty when
    that peak was taken under load or the ratio exceeds 1 (a peak measured too low); `mfu_raw` keeps it.
    """
    from archbench.quiet import legacy_under_load

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
    return {"mfu": None if note else _number(mfu), "mfu_raw": _number(mfu), "mfu_note": note,
            "latency_under_load": (under or {}).get("reason"),
            "latency_quiet": bool((latency.get("quiet") or {}).get("checked")) and under is None}
