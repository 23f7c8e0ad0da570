"""The types every data stage shares: splits, the dataset record, and the errors bad input raises."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch


class DataError(ValueError):
    """Bad data options or unusable data; the message names the value or path and the fix."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Expected data files are missing; the message gives the exact path and how to get the files."""


@dataclass
class Split:
    """Decoded images held in memory: uint8 (N, C, H, W) and int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise DataError(f"Split.images must be uint8 (N, C, H, W), "
                            f"got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise DataError(f"Split.labels must be int64 ({self.images.shape[0]},), "
                            f"got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> "Split":
        return Split(self.images[indices], self.labels[indices])

    @classmethod
    def empty(cls, chans: int, height: int, width: int) -> "Split":
        return cls(torch.empty(0, chans, height, width, dtype=torch.uint8), torch.empty(0, dtype=torch.int64))


@dataclass
class FileSplit:
    """Images left on disk (too many to hold in memory), decoded by loader workers as they stream."""

    files: list[str]
    labels: torch.Tensor

    def __post_init__(self):
        if self.labels.dtype != torch.int64 or self.labels.shape != (len(self.files),):
            raise DataError(f"FileSplit.labels must be int64 ({len(self.files)},), "
                            f"got {self.labels.dtype} {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, indices: torch.Tensor) -> "FileSplit":
        return FileSplit([self.files[i] for i in indices.tolist()], self.labels[indices])


@dataclass
class Dataset:
    """One dataset, split three ways, with everything a model and a record need to know about it."""

    name: str
    train: Split | FileSplit
    val: Split | FileSplit
    test: Split | FileSplit
    num_classes: int
    class_names: list[str]
    in_chans: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    synthetic: bool = False
    info: dict = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return isinstance(self.train, FileSplit)


@dataclass
class RawData:
    """What a format reader hands back before splitting: the official train and test sets."""

    train: Split | FileSplit
    test: Split | FileSplit
    class_names: list[str]
    extra: dict = field(default_factory=dict)  # JSON-serializable notes for Dataset.info (e.g. skipped images)


def resolve_root(root: str | Path | None, default: str = "data") -> Path:
    """Relative roots are taken against the current directory (the entry point makes them absolute first)."""
    return Path(default if root in (None, "") else root).expanduser().resolve()
