"""The bottom layer for everything archbench writes: atomic writes, moving bad files aside, file locks.

A crash, a kill -9 or a full disk at any point leaves either the old file or the new one, never a mix;
nothing unreadable is deleted, only renamed so a person can look at it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, IO


# Write failures that are the machine's state, not a bug: they become one paragraph, never a traceback.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class WriteError(OSError):
    """A write refused by the file system (full disk, quota, read-only, permissions): the message names the
    path, what was kept and the fix. An OSError, so existing handlers of OSError still catch it."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.errno = code


def write_error(path: Path, err: OSError) -> WriteError:
    kept = (f"the previous {path} is intact (writes are atomic: nothing was half-written)" if path.exists()
            else f"no {path.name} was written and nothing before it was touched")
    fix = ("free space there (df -h shows it) or set results_dir to a folder on a disk with room"
           if err.errno in (errno.ENOSPC, errno.EDQUOT) else "make it writable or set results_dir to a writable folder")
    return WriteError(f"cannot write {path}: {err.strerror or err} (errno {err.errno}); {kept}. To continue, {fix}, "
                      f"then run the same command again: finished records are skipped and a run resumes from its "
                      f"last checkpoint.", err.errno)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write(file)` on a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise (write_error(path, err) if err.errno in STORAGE_ERRNOS else err) from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError) and err.errno in STORAGE_ERRNOS:
            raise write_error(path, err) from err
        raise


def nearest_existing(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable(folder: str | os.PathLike, setting: str = "results_dir") -> None:
    """Raise WriteError unless a file can be created in `folder` (or the nearest existing folder above it)."""
    folder = Path(folder)
    probe_in = nearest_existing(folder)
    try:
        fd, tmp = tempfile.mkstemp(dir=probe_in, prefix=".archbench-write-test.")
        os.close(fd)
        os.unlink(tmp)
    except OSError as err:
        raise WriteError(f"{setting}={folder} is not writable: creating a file in {probe_in} failed with "
                         f"'{err.strerror or err}' (errno {err.errno}); nothing was built or written. Set "
                         f"{setting}=/a/writable/folder (or fix the folder's permissions or mount)", err.errno) from err


def check_free_space(folder: str | os.PathLike, need_bytes: int, what: str, setting: str = "results_dir") -> None:
    """Raise WriteError when the disk under `folder` has less than `need_bytes` free."""
    probe_in = nearest_existing(Path(folder))
    free = shutil.disk_usage(probe_in).free
    if free < need_bytes:
        raise WriteError(f"{setting}={folder} has {free / 2**20:.1f} MiB free on its disk ({probe_in}), but this run "
                         f"writes about {need_bytes / 2**20:.1f} MiB ({what}); nothing was trained or written. Free "
                         f"space there or set {setting} to a folder on a disk with room", errno.ENOSPC)


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    atomic_write(path, lambda f: f.write(payload))


def atomic_write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=sort_keys, default=_json_default) + "\n").encode())


def _json_default(obj: Any) -> Any:
    # numpy scalars and paths show up in metrics and configs; everything else is a bug worth seeing.
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"record field of type {type(obj).__name__} is not JSON-serializable: {obj!r}")


def move_aside(path: str | os.PathLike, reason: str = "") -> Path:
    """Rename a bad file to `<name>.corrupt-<n>` so nothing is silently overwritten or lost."""
    path = Path(path)
    n = 0
    while (target := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.replace(path, target)
    return target


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = False):
    """An exclusive flock on `path`: yields True when held, False when another process holds it and not `wait`.

    The kernel drops the lock when its process dies, even by kill -9, so a stale lock cannot block a rerun.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
