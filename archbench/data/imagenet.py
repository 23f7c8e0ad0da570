"""ImageNet (or any large image folder) streamed from disk: root/train/<class>/... and root/val/<class>/...

Too large to decode into memory, so the splits hold file lists and the loader's worker processes decode
each epoch: RandomResizedCrop + flip for training, resize to image_size/0.875 then center crop for evaluation
(256 -> 224 at the standard size).
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import registry
from .base import DataError, DataNotFoundError, FileSplit, RawData
from .imagefolder import index_entries, is_archive, tree_names

# The ImageNet training-set statistics everyone uses; computing them anew would decode 1.28M images.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_FRACTION = 0.875  # 224/256: the usual center-crop ratio for evaluation


@registry.register("imagenet", label="ImageNet", native=(224, 3), fixed_stats=(IMAGENET_MEAN, IMAGENET_STD),
                   train_images=1_281_167)
def read(request: registry.Request, files: list[Path]) -> RawData:
    """The train and val file lists; nothing is decoded here (files: unused, streaming is never cached)."""
    root = request.root
    if request.in_chans not in (None, 3):
        raise DataError(f"imagenet: data.in_chans={request.in_chans}; streaming loads RGB only, use 3 or null")
    if not root.exists():
        raise DataNotFoundError(
            f"imagenet: data.root {root} does not exist. Expected {root}/train/<wnid>/*.JPEG and "
            f"{root}/val/<wnid>/*.JPEG (ILSVRC-2012 from https://image-net.org, with val/ sorted into class "
            f"folders, e.g. by the widely used valprep.sh); point data.root at that folder")
    if root.is_file():
        hint = " extract it first;" if is_archive(root) else ""
        raise DataError(f"imagenet: {root} is a file;{hint} streaming needs a folder with train/ and val/ "
                        f"class folders")
    names = tree_names(root, "imagenet")
    if not names:
        raise DataError(f"imagenet: {root} is empty; expected {root}/train/<class>/ and {root}/val/<class>/ images")
    entries, class_names, test_folder = index_entries(names, root)
    class_index = {c: i for i, c in enumerate(class_names)}

    def file_split(part):
        chosen = sorted((e.path, name, e.class_name) for name, e in entries if e.part == part)
        files = [str(root / name) for _, name, _ in chosen]
        labels = torch.tensor([class_index[c] for _, _, c in chosen], dtype=torch.int64)
        return FileSplit(files, labels)

    return RawData(file_split("train"), file_split("test"), class_names,
                   {"test_folder": test_folder, "source": str(root)})
