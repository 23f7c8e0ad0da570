"""CIFAR-10 and CIFAR-100 in the official python (pickle) format, torchvision's layout under root.

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    root/cifar-100-python/{train, test, meta}
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from .base import DataNotFoundError, RawData, Split

LAYOUTS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": b"labels",
        "names_key": b"label_names",
        "torchvision": "CIFAR10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": b"fine_labels",  # the 100-class task; coarse_labels are the 20 superclasses
        "names_key": b"fine_label_names",
        "torchvision": "CIFAR100",
    },
}


def source_files(name: str, root: Path) -> list[Path]:
    layout = LAYOUTS[name]
    folder = root / layout["folder"]
    return [folder / f for f in layout["train"] + layout["test"] + [layout["meta"]]]


def find_sources(name: str, root: Path, download: bool) -> list[Path]:
    """The official files under root, downloaded through torchvision first when allowed and missing."""
    files = source_files(name, root)
    missing = [f for f in files if not f.is_file()]
    if missing and download:
        download_with_torchvision(name, root)
        missing = [f for f in files if not f.is_file()]
    if missing:
        layout = LAYOUTS[name]
        raise DataNotFoundError(
            f"{name}: missing {', '.join(str(f) for f in missing)}. Expected the official python version in "
            f"{root / layout['folder']}/. Get it with data.download=true (needs internet), or download and unpack "
            f"the '{name.upper()} python version' archive from https://www.cs.toronto.edu/~kriz/cifar.html into "
            f"{root}/, or point data.root at the folder that contains {layout['folder']}/.")
    return files


def download_with_torchvision(name: str, root: Path) -> None:
    import torchvision.datasets

    dataset_class = getattr(torchvision.datasets, LAYOUTS[name]["torchvision"])
    root.mkdir(parents=True, exist_ok=True)
    try:
        dataset_class(str(root), train=True, download=True)
    except Exception as exc:  # offline or blocked: report it with the expected path, as if nothing were there
        raise DataNotFoundError(
            f"{name}: download into {root} failed ({exc}); check the network, or copy the "
            f"{LAYOUTS[name]['folder']}/ folder into {root}/ by hand and run with data.download=false") from exc


def read_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    # rows are 3072 bytes: the red, green and blue 32x32 planes in that order, i.e. already CHW
    images = torch.from_numpy(batch[b"data"]).reshape(-1, 3, 32, 32)
    labels = torch.tensor(batch[label_key], dtype=torch.int64)
    return images, labels


def read(name: str, files: list[Path]) -> RawData:
    layout = LAYOUTS[name]
    by_name = {f.name: f for f in files}

    def read_all(names):
        parts = [read_batch(by_name[n], layout["label_key"]) for n in names]
        return Split(torch.cat([p[0] for p in parts]).contiguous(), torch.cat([p[1] for p in parts]))

    with open(by_name[layout["meta"]], "rb") as f:
        meta = pickle.load(f, encoding="bytes")
    class_names = [n.decode() for n in meta[layout["names_key"]]]
    return RawData(read_all(layout["train"]), read_all(layout["test"]), class_names)
