"""Decode-once cache: the decoded uint8 tensors of a dataset, keyed by a hash of its source files and options.

Layout: <cache_dir>/<dataset>-<key[:16]>/data.pt (images and labels), meta.json (what was built from what),
stats-<split key>.json (per-channel mean/std of one training split). Writes are atomic (archbench.base.files),
so a crash or a parallel run never leaves a half-written cache behind.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from archbench.base.files import atomic_write, atomic_write_json, exclusive_lock

from .base import DataError, Split

CACHE_VERSION = 1  # bump when the decoded layout changes, so old caches are rebuilt rather than misread


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARCHBENCH_CACHE_DIR", "~/.cache/archbench")).expanduser()


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    return default_cache_dir() if cache_dir in (None, "") else Path(cache_dir).expanduser().resolve()


def file_digest(path: Path) -> str:
    """Content hash of one file: a copy of the same data hits the same cache, an edited file does not."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path, files: list[Path]) -> str:
    """Hash of a folder tree from each file's relative path, size and modification time.

    Reading every image of a large tree to hash it would cost as much as decoding it, so a tree is
    fingerprinted by its listing; adding, removing, renaming or rewriting a file changes the key.
    """
    h = hashlib.sha256()
    for path in sorted(files):
        st = path.stat()
        h.update(f"{path.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def source_fingerprint(sources: list[Path], tree_root: Path | None = None) -> list[list[str]]:
    """[name, digest] per source: files by content, or (with tree_root) the whole tree by listing."""
    if tree_root is not None:
        return [[".", tree_digest(tree_root, sources)]]
    return [[p.name, file_digest(p)] for p in sources]


def cache_key(dataset: str, fingerprint: list[list[str]], options: dict) -> str:
    payload = {"version": CACHE_VERSION, "dataset": dataset, "sources": fingerprint, "options": options}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def entry_dir(cache_dir: Path, dataset: str, key: str) -> Path:
    return cache_dir / f"{dataset}-{key[:16]}"


def build_lock(directory: Path):
    """Held while one process builds an entry, so parallel sweep jobs decode once, not N times."""
    return exclusive_lock(directory / "build.lock", wait=True)


def save_entry(directory: Path, train: Split, test: Split, class_names: list[str], meta: dict) -> None:
    payload = {
        "train_images": train.images, "train_labels": train.labels,
        "test_images": test.images, "test_labels": test.labels,
        "class_names": list(class_names),
    }
    atomic_write(directory / "data.pt", lambda f: torch.save(payload, f))
    atomic_write_json(directory / "meta.json", meta, sort_keys=True)  # written last: its presence marks a complete entry


def load_entry(directory: Path) -> tuple[Split, Split, list[str], dict] | None:
    """The cached splits, or None when the entry is absent or was never completed."""
    meta_path, data_path = directory / "meta.json", directory / "data.pt"
    if not (meta_path.is_file() and data_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text())
    try:
        payload = torch.load(data_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which and how to recover
        raise DataError(f"cache file {data_path} is unreadable ({exc}); delete {directory} to rebuild it") from exc
    train = Split(payload["train_images"], payload["train_labels"])
    test = Split(payload["test_images"], payload["test_labels"])
    return train, test, payload["class_names"], meta


def load_stats(directory: Path, split_key: str) -> dict | None:
    path = directory / f"stats-{split_key}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def save_stats(directory: Path, split_key: str, stats: dict) -> None:
    atomic_write_json(directory / f"stats-{split_key}.json", stats, sort_keys=True)
