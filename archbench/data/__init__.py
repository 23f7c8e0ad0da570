"""Datasets, held-out splits, decode-once cache and batched on-device augmentation.

    dataset = load_dataset("cifar10", root="data", val_size=5000, split_seed=0)
    train_loader, val_loader, test_loader = make_loaders(dataset, batch_size=512, device="cuda")
    for epoch in range(epochs):
        train_loader.set_epoch(epoch)
        for x, y in train_loader: ...

A new dataset is a module of this package that registers its reader by name (see archbench/data/registry.py),
plus its conf/data/<name>.yaml; every module here is imported, so nothing else lists it:

    @register("mine", label="My set", sources=find_my_files, train_images=50_000)
    def read_mine(request: Request, files: list[Path]) -> RawData: ...
"""
from .augment import AUGMENT_DEFAULTS, augment_batch, check_augment, normalize
from .base import DataError, DataNotFoundError, Dataset, FileSplit, RawData, Split
from .imagefolder import BadImageError, content_fingerprint
from .load import DATASETS, load_dataset
from .loaders import make_loaders
from .registry import Request, register, register_preset

__all__ = ["AUGMENT_DEFAULTS", "DATASETS", "BadImageError", "DataError", "DataNotFoundError", "Dataset", "FileSplit",
           "RawData", "Request", "Split", "augment_batch", "check_augment", "content_fingerprint", "load_dataset",
           "make_loaders", "normalize", "register", "register_preset"]
