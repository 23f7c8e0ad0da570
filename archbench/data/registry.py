"""Dataset registry: every name load_dataset reads, each with its reader and what the shared pipeline must know.

A reader module registers each name it serves by decorating the function that returns the official
train and test sets:

    @register("svhn", label="SVHN", sources=find_svhn, native=(32, 3), cache_options=("extra",),
              train_images=73_257)
    def read_svhn(request: Request, files: list[Path]) -> RawData: ...

Every module of archbench.data is imported when the package is (archbench/data/load.py), so a dataset is
its reader module plus its conf/data/<name>.yaml: nothing else lists datasets.

load_dataset then treats every name alike: resolve the root, take or build the decode-once cache,
split, compute statistics. A preset (cifar10_jpg) is another name for a registered reader with its own
default root and label; its cache is kept under the reader's format, so both share decoded data.
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import DataError, RawData

DEFAULT_ROOT = "data"  # where the official-file readers look when data.root is not given
DEFAULT_VAL_FRACTION = 0.1  # the default hold-out: 10% of the official training set...
CIFAR_SIZED_VAL = 5000  # ...but at most the usual CIFAR hold-out for the small-image sets


@dataclass(frozen=True)
class Request:
    """What load_dataset was asked for, as a reader sees it (root already resolved to an absolute path)."""

    name: str
    root: Path | None
    download: bool = False
    image_size: int | None = None
    in_chans: int | None = None
    num_classes: int | None = None
    on_bad_image: str = "skip"
    extra: bool = False
    synthetic_size: int | None = None
    split_seed: int = 0


@dataclass(frozen=True)
class Reader:
    name: str
    format: str  # the reader's own name; a preset keeps its format's, which also names the cache folder
    read: Callable[[Request, list[Path]], RawData]
    label: str | None  # display label; None = the source's own name (an image folder's or archive's)
    # (files to fingerprint, tree root or None) for the decode-once cache; None = never cached
    # (generated in milliseconds, or streamed from disk every epoch)
    sources: Callable[[Request], tuple[list[Path], Path | None]] | None = None
    # (image_size, in_chans) the reader yields unless asked otherwise: decoded files are resized and
    # converted from it (asking for it changes nothing), a stream is cropped to this size by default
    native: tuple[int, int] | None = None
    default_root: str | None = DEFAULT_ROOT  # None: data.root must be given (unless synthetic)
    synthetic: bool = False  # generated, not read: no root, and records made from it are flagged
    val_cap: int | None = None  # the default hold-out is DEFAULT_VAL_FRACTION of training, at most this
    cache_options: tuple[str, ...] = ()  # Request fields besides size and channels that change the decoded data
    fixed_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (mean, std) not computed from the data
    # bumped when the reader decodes the same files differently, so its old cache entries are not reused
    decoder_version: int | None = None
    # the official training set's size, so a study can be planned on a machine that lacks the files
    train_images: int | None = None

    def needs_root(self) -> bool:
        return not self.synthetic and self.default_root is None


_READERS: dict[str, Reader] = {}


def _add(reader: Reader) -> None:
    if reader.name in _READERS:
        raise ValueError(f"dataset {reader.name!r} is already registered (format {_READERS[reader.name].format!r}); "
                         f"pick a different name or remove the duplicate registration")
    _READERS[reader.name] = reader


def register(name: str, *, label: str | None, **fields):
    """Decorator that registers read(request, files) -> RawData under name; fields are Reader's."""
    def decorator(read):
        _add(Reader(name=name, format=name, read=read, label=label, **fields))
        return read

    return decorator


def register_preset(name: str, *, of: str, root: str, label: str, **fields) -> None:
    """name reads like the registered reader `of`, from `root` unless data.root says otherwise; fields: Reader's."""
    _add(dataclasses.replace(get(of), name=name, default_root=root, label=label, **fields))


def names() -> list[str]:
    return list(_READERS)


def known_train_images(name: str) -> int | None:
    """The official training set's size as the reader declares it; None when unknown (own data, or no such name)."""
    reader = _READERS.get(name)
    return reader.train_images if reader else None


def get(name: str) -> Reader:
    if name not in _READERS:
        close = difflib.get_close_matches(str(name), list(_READERS), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise DataError(f"unknown dataset {name!r}; {hint}registered: {', '.join(_READERS)} "
                        f"(set data=<name>, or register a reader in archbench.data)")
    return _READERS[name]
