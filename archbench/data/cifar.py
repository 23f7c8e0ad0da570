"""CIFAR-10 and CIFAR-100 in the official python (pickle) format, torchvision's layout under root.

    root/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    root/cifar-100-python/{train, test, meta}
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch

from . import registry
from .base import DataNotFoundError, RawData, Split, resolve_root
from .download import torchvision_download

SOURCE_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
JPEG_PRESET = "cifar10_jpg"  # the image-folder preset of the same set, read offline from shared/
TRAIN_IMAGES = 50_000  # both sets
LAYOUTS = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "meta": "batches.meta",
        "label_key": b"labels",
        "names_key": b"label_names",
        "torchvision": "CIFAR10",
        "title": "CIFAR-10",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "meta": "meta",
        "label_key": b"fine_labels",  # the 100-class task; coarse_labels are the 20 superclasses
        "names_key": b"fine_label_names",
        "torchvision": "CIFAR100",
        "title": "CIFAR-100",
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
        layout = LAYOUTS[name]
        try:
            torchvision_download(name, layout["torchvision"], root,
                                 f"unpack the {layout['folder']}/ folder into {root}/", train=True)
        except DataNotFoundError as exc:
            raise DataNotFoundError("\n".join([str(exc), *offline_hint(name)])) from exc.__cause__
        missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataNotFoundError(missing_message(name, root, missing, files))
    return files


def missing_message(name: str, root: Path, missing: list[Path], files: list[Path]) -> str:
    """A few short lines: where the files were expected, the two ways to get them, and the offline preset."""
    layout = LAYOUTS[name]
    folder = root / layout["folder"]
    what = "is not there" if len(missing) == len(files) else f"lacks {', '.join(f.name for f in missing)}"
    return "\n".join([
        f"{name}: the official python version was expected in {folder}/, which {what}.",
        "Get it either way:",
        "  - data.download=true (needs internet), or",
        f"  - unpack the '{layout['title']} python version' archive from {SOURCE_URL} into {root}/",
        f"    (or set data.root=/path/to/folder, the folder that holds {layout['folder']}/).",
        *offline_hint(name)])


def offline_hint(name: str) -> list[str]:
    """The JPEG copy of CIFAR-10 ships beside the repository and needs no network: say so where it is."""
    if name != "cifar10":
        return []
    archive = resolve_root(registry.get(JPEG_PRESET).default_root)
    return [f"Offline, data={JPEG_PRESET} reads CIFAR-10 as JPEGs from {archive}, which is present."] \
        if archive.is_file() else []


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


def _register(name: str) -> None:
    @registry.register(name, label=LAYOUTS[name]["title"], native=(32, 3), val_cap=registry.CIFAR_SIZED_VAL,
                       train_images=TRAIN_IMAGES,
                       sources=lambda request: (find_sources(name, request.root, request.download), None))
    def read_official(request: registry.Request, files: list[Path]) -> RawData:
        return read(name, files)


for _name in LAYOUTS:
    _register(_name)
