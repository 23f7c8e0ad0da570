"""Fetching official files through torchvision, leaving nothing behind when the fetch fails."""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .base import DataError, DataNotFoundError


@contextlib.contextmanager
def undo_on_failure(root: Path):
    """Make root for a download; if the download fails, remove what it created and nothing else.

    A folder the attempt created goes whole. In a folder that was already there only new top-level
    entries go (a half-written archive, torchvision's FashionMNIST/): a data folder may hold other,
    large sets, so it is not walked, and what was there before is never touched.
    """
    if root.exists() and not root.is_dir():
        raise DataError(f"data.root={root} is a file; downloads need a folder: set data.root=/path/to/folder")
    created = next((p for p in reversed([root, *root.parents]) if not p.exists()), None)
    before = set() if created else set(os.listdir(root))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        if created:
            shutil.rmtree(created, ignore_errors=True)
        else:
            for entry in set(os.listdir(root)) - before:
                path = root / entry
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise


def torchvision_download(name: str, dataset_class: str, root: Path, by_hand: str, **kwargs) -> None:
    """torchvision.datasets.<dataset_class>(root, download=True, **kwargs); by_hand: how to get the files instead."""
    import torchvision.datasets

    with undo_on_failure(root):
        try:
            getattr(torchvision.datasets, dataset_class)(str(root), download=True, **kwargs)
        except Exception as exc:  # offline or blocked: report it with the expected path and the manual way
            raise DataNotFoundError(f"{name}: download into {root} failed ({exc}).\n"
                                    f"Check the network, or {by_hand} and run with data.download=false.") from exc
