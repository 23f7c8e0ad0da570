"""Where records live and how they are read and written: the file name and folder layout, the atomic write,
the reader for a run that updates its own record, and the cached reader for analysis.

This is the only module that names the record file or parses it.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

from archbench.base.files import atomic_write_json, move_aside

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

