"""Run records: where they live, what they hold, how they are read, and the flat columns they become.

A record is the contract between a run and everything after it (sweep skip/resume, results, report).
This module is its only reader and writer: nothing else names the file or parses it. Accuracies are
percentages in [0, 100]; times are seconds unless the key ends in `_ms`.
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
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import archbench
from archbench.base.device import cpu_label, cpu_model, machine_identity
from archbench.base.files import atomic_write_bytes, atomic_write_json, move_aside  # noqa: F401 (re-exported)

# 2: identity (fingerprint, variant, settings), a normalised recipe section, variant folders, flags.
SCHEMA = 2
READABLE_SCHEMAS = (1, 2)  # schema 1 records (no variant folder) are read with a variant derived from config
STATUSES = ("complete", "diverged", "failed")
# A record with one of these statuses is finished work: a rerun skips it (unless forced).
FINISHED = ("complete", "diverged")
RECORD_FILE = "record.json"
RECORD_FILENAME = RECORD_FILE  # the older name, still imported by callers


def record_path(folder) -> Path:
    return Path(folder) / RECORD_FILE


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


def find_records(results_dir: str | os.PathLike) -> list[Path]:
    """Every record under `results_dir`, at any depth, in path order."""
    return sorted(Path(results_dir).glob(f"**/{RECORD_FILE}"))


def seed_records(model_dir: str | os.PathLike, seed: int) -> list[Path]:
    """The records of one model and seed under every variant folder of `model_dir`."""
    return sorted(Path(model_dir).glob(f"*/seed{seed}/{RECORD_FILE}"))


def write_record(folder: str | os.PathLike, record: dict) -> Path:
    """Write `record` into run folder `folder` atomically; return its path."""
    path = record_path(folder)
    atomic_write_json(path, record)
    return path


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


# Parsed records by path, with a digest of the bytes they were parsed from: analysis reads a record from
# several places (loading, evaluation columns, history, per-image outcomes), and one report build parses
# each file once. The digest, not the modification time, decides, so a record rewritten within one clock
# tick is never served stale. Bounded, so a long session cannot grow it without limit.
_PARSED: OrderedDict[str, tuple[bytes, Any]] = OrderedDict()
_PARSED_MAX = 4096


def load_record(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """`(record, None)`, or `(None, reason)` for a file that is not a readable record; never moves anything.

    For analysis (results, report, tuning selection): the record returned may be shared with other
    readers of the same file, so it must not be changed; `read_record` is the reader for a run that
    updates its own record.
    """
    key = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        return None, f"unreadable: {error}"
    digest = hashlib.blake2b(raw, digest_size=16).digest()
    cached = _PARSED.get(key)
    if cached is not None and cached[0] == digest:
        _PARSED.move_to_end(key)
        record = cached[1]
    else:
        try:
            record = json.loads(raw.decode("utf-8"))
        except json.JSONDecodeError as error:
            return None, (f"unreadable: corrupt JSON ({error.msg}, line {error.lineno} column "
                          f"{error.colno}); rerun this run")
        except UnicodeDecodeError as error:
            return None, f"unreadable: {error}"
        _PARSED[key] = (digest, record)
        if len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    if not isinstance(record, dict):
        return None, f"unreadable: top level is a {type(record).__name__}, not a JSON object"
    return record, None


def load_record_or_empty(path: str | os.PathLike) -> dict:
    """The record at `path` for reading one section of it, `{}` when it cannot be read."""
    return load_record(path)[0] or {}


# --------------------------------------------------------------------------------------------- statuses

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


# Accuracies a usable train record must hold as percentages, not fractions.
PERCENT_CHECKED = ("test_top1", "test_top5", "val_top1")


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
        from importlib.metadata import version
        return version(module)
    except Exception:
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def environment(device: str) -> dict:
    """Everything needed to tell whether two records are comparable: code, libraries, hardware."""
    import torch

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


def hardware_label(device, device_name, cpu_model, threads, machine: dict | None = None) -> str:
    """Readable machine label, e.g. 'cpu: AMD EPYC (Zen 4, AVX512-BF16), 2 threads' or 'cuda: NVIDIA H100'.

    CPU thread count is part of the label because CPU latency and throughput scale with it; so are the
    microarchitecture and instruction sets (env.machine), where the record has them: records made before
    keep the bare model name, a less specific label that may cover several kinds of CPU.
    """
    device = str(device) if device else "unknown device"
    kind = device.split(":")[0]
    if kind == "cpu":
        label = f"cpu: {cpu_label(machine, cpu_model or device_name or 'unknown CPU')}"
        if isinstance(threads, (int, float)) and not isinstance(threads, bool) and math.isfinite(threads):
            label += f", {int(threads)} thread{'' if int(threads) == 1 else 's'}"
        return label
    return f"{kind}: {device_name or 'unknown model'}"


def record_hardware(record: dict) -> str:
    """The label of the machine that made `record` (its training machine): one comparison group's hardware."""
    env, latency = record.get("env") or {}, record.get("latency") or {}
    return hardware_label(env.get("device") or latency.get("device"),
                          env.get("device_name") or latency.get("device_name"), env.get("cpu_model"), _threads(record),
                          env.get("machine"))


def this_machine(device: str) -> str:
    """The label a run on `device` here would record, as `record_hardware` reads it back."""
    import torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return hardware_label(device, torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu", cpu_model(),
                          torch.get_num_threads(), machine_identity(device))


def _latency_hardware(latency: dict, hardware: str) -> str | None:
    """Where latency and throughput were measured: the training machine, unless task=measure timed them
    again elsewhere (`other_machine`), whose label it then is."""
    if not latency.get("batch_1"):
        return None
    if not latency.get("other_machine"):
        return hardware
    return hardware_label(latency.get("device"), latency.get("device_name"), None, latency.get("threads"))


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
# Who ran what, where and how is mapped here; what was measured comes from the METRICS declarations.
def record_columns(record: dict, path: str | os.PathLike) -> dict:
    env = record.get("env") or {}
    latency = record.get("latency") or {}
    complexity = record.get("complexity") or {}
    train = record.get("train") or {}
    dataset = record.get("dataset") or {}
    recipe = record.get("recipe") or nested(record, "config", "train") or {}
    threads = _threads(record)
    _, settings = variant_settings(record)
    key = record_key(record, path)
    hardware = record_hardware(record)
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
        "hardware": hardware,
        # Runs of one numerics identity learn alike on any machine (archbench.settings.numerics_identity).
        "numerics": nested(record, "numerics", "fingerprint"),
        # Where latency and throughput were measured: the training machine, or the one `task=measure`
        # re-measured them on (a speed is that machine's, whatever trained the weights).
        "latency_hardware": _latency_hardware(latency, hardware),
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
        **{metric.name: metric.read(record) for metric in METRICS.values() if metric.stage == "load"},
        "path": str(path),
    }


def _threads(record: dict):
    return _present_or(nested(record, "env", "threads"), nested(record, "latency", "threads"))


def _speed_marks(record: dict) -> dict:
    """Whether the speed figures may be concluded from: why not (under load, MFU over 100%), else None.

    `mfu` is the MFU against the quiet peak of task=measure when there is one, and is left empty when
    that peak was taken under load or the ratio exceeds 1 (a peak measured too low); `mfu_raw` keeps it.
    """
    from archbench.quiet import legacy_under_load

    latency, train, threads = record.get("latency") or {}, record.get("train") or {}, _threads(record)
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


# ------------------------------------------------------------------------------------ metric columns

@dataclass(frozen=True)
class Display:
    """How a metric shows in the report's tables (archbench.report.tables renders `style`).

    `heading` may hold `{device}` (where speed was timed) and `{trained_on}` (the training machine);
    `style` is one of tables.CELL_STYLES: `millions`, `number`, `speed` (a
    number marked when measured under load), `mfu`, `mean_pm_std` (over seeds); `optional` columns are
    left out of a table where no model has them (records made before the figure existed).
    """
    heading: str
    style: str = "number"
    digits: int = 2
    optional: bool = False


@dataclass(frozen=True)
class Metric:
    """One flat column of a run: where it is in the record, how runs are summarised and how it shows.

    `source`: a path of keys into the record, or a function of the record. `summary`: "seeds" (mean, std,
    95% CI and count over seeds, like accuracy), "mean" (the mean over runs: it describes the model or the
    machine, not luck), or None (not summarised). `stage`: "load" for a column of `results.load`,
    "evaluation" for one that `results.with_evaluation` adds (the calibration and robustness sections).
    `display`: its column in the report's comparison table, None for none. `machine_bound`: a figure of the
    machine (speed, time, memory, energy), never pooled across machines (archbench.results.pooling).
    """
    name: str
    source: tuple[str, ...] | Callable[[dict], Any]
    summary: str | None = None
    display: Display | None = None
    number: bool = True
    stage: str = "load"
    machine_bound: bool = False

    def read(self, record: dict):
        value = self.source(record) if callable(self.source) else nested(record, *self.source)
        return _number(value) if self.number else value


# Every measured column of a run, in the order of `results.load`'s columns; units in the names: *_ms
# milliseconds, *_s seconds, *_bytes bytes, accuracies in percent; MACs count multiply-adds (fvcore).
# A new metric that reaches the report is where it is computed plus one declaration here (or `register`).
METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("params", ("complexity", "params"), "mean", Display("Params (M)", "millions")),
    Metric("trainable_params", ("complexity", "trainable_params"), "mean"),
    Metric("macs", ("complexity", "macs"), "mean", Display("MACs (M)", "millions")),
    Metric("flops_forward", ("complexity", "flops_forward"), "mean", Display("FLOPs (M)", "millions")),
    Metric("flops_train", ("complexity", "flops_train"), "mean"),
    # fvcore's activation count of one forward pass.
    Metric("activations", ("complexity", "activations"), "mean", Display("Activations (M)", "millions")),
    Metric("latency_device", ("latency", "device"), number=False, machine_bound=True),
    # What latency and throughput were timed at (the measure settings), e.g. 'fp32 NCHW': not always the
    # precision the model trained in.
    Metric("latency_precision", _latency_precision, number=False, machine_bound=True),
    Metric("latency_b1_ms", ("latency", "batch_1", "median_ms"), "mean",
           Display("Batch-1 latency (ms, {device})", "speed", 2), machine_bound=True),
    Metric("latency_b1_p10_ms", ("latency", "batch_1", "p10_ms"), machine_bound=True),
    # Averaged per model too: a model whose median lies within the fastest one's p90 is not called slower.
    Metric("latency_b1_p90_ms", ("latency", "batch_1", "p90_ms"), "mean", machine_bound=True),
    Metric("throughput_batch_size", ("latency", "throughput", "batch_size"), machine_bound=True),
    Metric("throughput_img_s", ("latency", "throughput", "img_per_s"), "mean",
           Display("Throughput (img/s, {device})", "speed", 0), machine_bound=True),
    Metric("train_img_s", ("train", "img_per_s"), "mean",
           Display("Train (img/s, {trained_on}, during training)", "number", 0), machine_bound=True),
    # Training time only (job_wall_s is the whole job).
    Metric("wall_s", ("train", "wall_s"), "mean", Display("Training time (s, {trained_on})", "number", 0),
           machine_bound=True),
    Metric("job_wall_s", ("env", "job_wall_s"), machine_bound=True),
    Metric("epochs", ("train", "epochs")),
    Metric("steps", ("train", "steps")),
    # None (not NaN) when it cannot be shown: a peak under load, or over 100%.
    Metric("mfu", _speed_mark("mfu"), "mean", Display("MFU (%)", "mfu", 1), number=False, machine_bound=True),
    Metric("mfu_raw", _speed_mark("mfu_raw"), number=False, machine_bound=True),
    Metric("mfu_note", _speed_mark("mfu_note"), number=False, machine_bound=True),
    Metric("latency_under_load", _speed_mark("latency_under_load"), number=False, machine_bound=True),
    Metric("latency_quiet", _speed_mark("latency_quiet"), number=False, machine_bound=True),
    # Set when a parallel sweep's jobs shared the run's GPU: its training figures are those of that sharing.
    Metric("shared_device", ("train", "shared_device"), number=False, machine_bound=True),
    Metric("peak_mem_bytes", ("train", "peak_mem_bytes"), machine_bound=True),
    # NVML; absent off NVIDIA GPUs.
    Metric("train_j_per_image", ("energy", "train_j_per_image"), "mean",
           Display("Energy (J/train img)", "number", 4, optional=True), machine_bound=True),
    Metric("inference_j_per_image", ("energy", "inference_j_per_image"), "mean",
           Display("Energy (J/infer img)", "number", 4, optional=True), machine_bound=True),
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
    Metric("ece", ("calibration", "uncalibrated", "ece"), "seeds",
           Display("ECE (%)", "mean_pm_std", 2, optional=True), stage="evaluation"),
    Metric("nll", ("calibration", "uncalibrated", "nll"), "seeds",
           Display("NLL (nats)", "mean_pm_std", 3, optional=True), stage="evaluation"),
    Metric("brier", ("calibration", "uncalibrated", "brier"), "seeds", stage="evaluation"),
    Metric("ece_calibrated", lambda record: _calibrated(record, "ece"), "seeds", stage="evaluation"),
    Metric("nll_calibrated", lambda record: _calibrated(record, "nll"), "seeds", stage="evaluation"),
    Metric("corruption_clean_top1", ("robustness", "clean_top1"), "seeds", stage="evaluation"),
    Metric("mean_corruption_top1", ("robustness", "mean_corruption_top1"), "seeds",
           Display("Corrupted top-1 (%)", "mean_pm_std", 2, optional=True), stage="evaluation"),
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
    `results.load` (or of `with_evaluation`), is summarised per `metric.summary` and, with a `display`,
    shows in the report's comparison tables."""
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


def history_rows(record: dict) -> list[dict]:
    """The per-epoch entries of a record's training history (epoch, val_top1, elapsed_s, ...)."""
    return [entry for entry in record.get("history") or [] if isinstance(entry, dict)]


def reliability_rows(record: dict, scaling: str) -> list[dict]:
    """Reliability bins of one calibration scaling (`uncalibrated` or `temperature_scaled`): the bin's
    lower edge, confidence and accuracy in percent, and its count of images."""
    section = nested(record, "calibration", scaling)
    bins = section.get("reliability") if isinstance(section, dict) else None
    if not isinstance(bins, dict):
        return []
    columns = [bins.get(key) or [] for key in ("lower", "confidence", "accuracy", "count")]
    return [{"bin_lower": _number(lower), "confidence": _number(confidence),
             "accuracy": _number(accuracy), "count": _number(count)}
            for lower, confidence, accuracy, count in zip(*columns)]


def corruption_rows(record: dict) -> list[dict]:
    """Top-1 per corruption and severity, beside the run's clean top-1 on the same images."""
    section = record.get("robustness") or {}
    table = section.get("top1")
    if not isinstance(table, dict):
        return []
    return [{"corruption": corruption, "severity": int(severity), "top1": _number(top1),
             "clean_top1": _number(section.get("clean_top1"))}
            for corruption, by_severity in table.items() if isinstance(by_severity, dict)
            for severity, top1 in by_severity.items() if str(severity).isdigit()]


# ----------------------------------------------------------------------------------- provenance

# (name shown, where in the record): what `archbench.report compare` names when it differs between two runs.
PROVENANCE = [
    ("commit", ("env", "git_commit")),
    ("uncommitted changes", ("env", "git_dirty")),
    ("torch", ("env", "torch")),
    ("torchvision", ("env", "torchvision")),
    ("CUDA", ("env", "cuda")),
    ("cuDNN", ("env", "cudnn")),
    ("device", ("env", "device")),
    ("device name", ("env", "device_name")),
    ("CPU", ("env", "cpu_model")),
    ("threads", ("env", "threads")),
    ("training precision", ("train", "amp")),
    ("training channels_last", ("train", "channels_last")),
    ("latency precision", ("latency", "precision")),
    ("latency layout", ("latency", "memory_format")),
]


def provenance_columns(record: dict) -> dict:
    """`prov:<name>` (the value as text, "none" when absent) of each PROVENANCE field, and the run's own speed
    ranges: `latency_range` (p10, p90 ms) and `throughput_range` (img/s), None when not measured."""
    row = {f"prov:{name}": _provenance_text(nested(record, *keys)) for name, keys in PROVENANCE}
    latency = record.get("latency") or {}
    row["latency_range"] = _positive_pair(nested(latency, "batch_1", "p10_ms"), nested(latency, "batch_1", "p90_ms"))
    # A slow batch (p90 time) is a low throughput: the range of img/s runs from p90 to p10.
    batch, slow_ms, fast_ms = (nested(latency, "throughput", key) for key in ("batch_size", "p90_ms", "p10_ms"))
    row["throughput_range"] = (_positive_pair(1000 * batch / slow_ms, 1000 * batch / fast_ms)
                               if _positive(batch, slow_ms, fast_ms) else None)
    return row


def _provenance_text(value) -> str:
    return "none" if value is None else str(value)


def _positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)


def _positive_pair(low, high):
    return (float(low), float(high)) if _positive(low, high) else None
