"""Run records: where they live, what they hold, and how they reach disk without ever being half-written.

A record is the contract between a run and everything after it (sweep skip/resume, results, report).
Accuracies are percentages in [0, 100]; times are seconds unless the key ends in `_ms`.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import archbench

SCHEMA = 1
STATUSES = ("complete", "diverged", "failed")
# A record with one of these statuses is finished work: a rerun skips it (unless forced).
FINISHED = ("complete", "diverged")


def record_dir(results_dir: str | os.PathLike, study: str, data: str, model: str, seed: int) -> Path:
    """Deterministic run folder: no timestamps, so a rerun finds (and resumes or skips) its own work."""
    for label, value in (("study", study), ("data", data), ("model", model)):
        if not value or "/" in str(value) or str(value).startswith("."):
            raise ValueError(f"{label}={value!r} cannot name a results folder: use a non-empty name without '/'"
                             " or a leading '.'")
    return Path(results_dir) / "runs" / study / data / model / f"seed{seed}"


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over the target.

    A crash or a full disk at any point leaves either the old file or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics and configs; everything else is a bug worth seeing.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"record field of type {type(obj).__name__} is not JSON-serializable: {obj!r}")


class CorruptFileError(RuntimeError):
    """A record or checkpoint on disk that cannot be read; it has been moved aside."""


def move_aside(path: str | os.PathLike, reason: str) -> Path:
    """Rename a bad file to `<name>.corrupt-<n>` so nothing is silently overwritten or lost."""
    path = Path(path)
    n = 0
    while (target := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, target)
    return target


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


def _cpu_model() -> str:
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
        "cpu_model": _cpu_model(),
        "threads": torch.get_num_threads(),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "start_time": now_iso(),
        "end_time": None,
    }


def new_record(*, task: str, study: str, model: str, family: str, data: str, seed: int,
               config: dict, env: dict, synthetic: bool = False) -> dict:
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
        "config": config,
        "env": env,
        "dataset": None,
        "complexity": None,
        "latency": None,
        "train": None,
        "metrics": None,
        "history": None,
        "error": None,
    }
