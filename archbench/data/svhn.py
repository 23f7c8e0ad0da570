"""SVHN (cropped digits) in the official MATLAB format: root/{train,test,extra}_32x32.mat.

X is (32, 32, 3, N) uint8 and y is (N, 1) with digit 0 stored as label 10; we map it back to 0.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import registry
from .base import DataError, DataNotFoundError, RawData, Split
from .download import torchvision_download

CLASS_NAMES = [str(d) for d in range(10)]


def find_sources(root: Path, download: bool, extra: bool) -> list[Path]:
    parts = ["train", "test"] + (["extra"] if extra else [])
    files = [root / f"{part}_32x32.mat" for part in parts]
    if download:
        for part, path in zip(parts, files):
            if not path.is_file():
                torchvision_download("svhn", "SVHN", root, f"copy {path.name} into {root}/ by hand", split=part)
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise DataNotFoundError(
            f"svhn: missing {', '.join(str(f) for f in missing)}. Get the files with data.download=true (needs "
            f"internet), or download {', '.join(f.name for f in missing)} from http://ufldl.stanford.edu/housenumbers/ "
            f"(format 2, cropped digits) into {root}/, or point data.root at the folder that holds them.")
    return files


def read_mat(path: Path) -> Split:
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise DataError(f"svhn: cannot read {path} as a MATLAB file ({exc}); re-download it") from exc
    if "X" not in mat or "y" not in mat:
        raise DataError(f"svhn: {path} has no 'X'/'y' arrays; is it the cropped-digits (format 2) file?")
    images = torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).contiguous()  # (H, W, C, N) -> (N, C, H, W)
    labels = torch.from_numpy(mat["y"].astype("int64")).flatten() % 10  # digit 0 is stored as 10
    return Split(images, labels)


@registry.register("svhn", label="SVHN", native=(32, 3), val_cap=registry.CIFAR_SIZED_VAL, cache_options=("extra",),
                   train_images=73_257,
                   sources=lambda request: (find_sources(request.root, request.download, request.extra), None))
def read(request: registry.Request, files: list[Path]) -> RawData:
    by_part = {f.name.split("_")[0]: f for f in files}
    train = read_mat(by_part["train"])
    if "extra" in by_part:
        extra = read_mat(by_part["extra"])
        train = Split(torch.cat([train.images, extra.images]), torch.cat([train.labels, extra.labels]))
    return RawData(train, read_mat(by_part["test"]), CLASS_NAMES, {"extra": "extra" in by_part})
