"""Datasets, held-out splits, decode-once cache and batched on-device augmentation.

    dataset = load_dataset("cifar10", root="data", val_size=5000, split_seed=0)
    train_loader, val_loader, test_loader = make_loaders(dataset, batch_size=512, device="cuda")
    for epoch in range(epochs):
        train_loader.set_epoch(epoch)
        for x, y in train_loader: ...
"""
from .augment import AUGMENT_DEFAULTS, augment_batch, normalize
from .base import DataError, DataNotFoundError, Dataset, FileSplit, Split
from .imagefolder import BadImageError
from .load import DATASETS, load_dataset
from .loaders import make_loaders

__all__ = ["AUGMENT_DEFAULTS", "DATASETS", "BadImageError", "DataError", "DataNotFoundError", "Dataset", "FileSplit",
           "Split", "augment_batch", "load_dataset", "make_loaders", "normalize"]
