"""Fashion-MNIST in the official IDX format (gzip), found in root, then the Debian package's folder, then downloaded."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from . import registry
from .base import DataError, DataNotFoundError, RawData, Split
from .download import torchvision_download

FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
SYSTEM_DIRS = [Path("/usr/share/datasets/fashion-mnist")]  # Debian package dataset-fashion-mnist
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_UBYTE = 0x08  # the IDX type code for unsigned bytes, the only one these files use


def candidate_dirs(root: Path) -> list[Path]:
    # root itself, torchvision's download layout under it, then system-wide copies
    return [root, root / "FashionMNIST" / "raw", *SYSTEM_DIRS]


def find_sources(root: Path, download: bool) -> list[Path]:
    for folder in candidate_dirs(root):
        if all((folder / f).is_file() for f in FILES):
            return [folder / f for f in FILES]
    if download:
        torchvision_download("fashion_mnist", "FashionMNIST", root,
                             "use `apt-get install dataset-fashion-mnist`", train=True)
        return [root / "FashionMNIST" / "raw" / f for f in FILES]
    raise DataNotFoundError(
        f"fashion_mnist: the four IDX files ({', '.join(FILES)}) are not in any of "
        f"{', '.join(str(d) for d in candidate_dirs(root))}. Get them with `apt-get install dataset-fashion-mnist` "
        f"(Debian/Ubuntu, installs {SYSTEM_DIRS[0]}) or with data.download=true (needs internet, saves under "
        f"{root / 'FashionMNIST' / 'raw'}), or put them in {root}/.")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file: 2 zero bytes, a type byte, a dimension count, big-endian int32 sizes, then the data."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != IDX_UBYTE:
        raise DataError(f"fashion_mnist: {path} is not an unsigned-byte IDX file (bad header); re-download it")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"fashion_mnist: {path} holds {body.size} bytes, header says {shape}; the file is truncated")
    return body.reshape(shape)


def read_pair(images_path: Path, labels_path: Path) -> Split:
    images = torch.from_numpy(read_idx(images_path).copy()).unsqueeze(1)  # (N, 28, 28) -> (N, 1, 28, 28)
    labels = torch.from_numpy(read_idx(labels_path).astype(np.int64))
    if len(images) != len(labels):
        raise DataError(f"fashion_mnist: {images_path} has {len(images)} images but {labels_path} "
                        f"has {len(labels)} labels; re-download the pair")
    return Split(images, labels)


@registry.register("fashion_mnist", label="Fashion-MNIST", native=(28, 1), val_cap=registry.CIFAR_SIZED_VAL,
                   train_images=60_000,
                   sources=lambda request: (find_sources(request.root, request.download), None))
def read(request: registry.Request, files: list[Path]) -> RawData:
    train_images, train_labels, test_images, test_labels = files
    return RawData(read_pair(train_images, train_labels), read_pair(test_images, test_labels), CLASS_NAMES)
