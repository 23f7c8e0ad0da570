"""load_dataset: find the source files, decode them once (or take the cache), split, and compute statistics."""
from __future__ import annotations

import difflib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import cache, cifar, fashion_mnist, imagefolder, imagenet, svhn, synthetic
from .base import DataError, Dataset, RawData, Split, resolve_root
from .imagefolder import BadImageError
from .split import channel_stats, resolve_count, split_indices

FORMATS = ("cifar10", "cifar100", "svhn", "fashion_mnist", "imagefolder", "imagenet", "synthetic")
# named presets of a format with a default root; their records and caches are kept under the preset's name
PRESETS = {"cifar10_jpg": ("imagefolder", "../shared/data/cifar10-jpg.tar.gz")}
DATASETS = FORMATS + tuple(PRESETS)
NATIVE = {"cifar10": (32, 3), "cifar100": (32, 3), "svhn": (32, 3), "fashion_mnist": (28, 1)}  # (size, channels)
CIFAR_SIZED = tuple(NATIVE)
CIFAR_SIZED_VAL = 5000  # the usual CIFAR hold-out; small-image sets use it (or 10% when that is fewer)
DEFAULT_VAL_FRACTION = 0.1  # everything else holds out 10% of the official training set
ON_BAD_IMAGE = ("skip", "error")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, as PIL's RGB -> L conversion


def load_dataset(name: str, root=None, download: bool = False, image_size: int | None = None,
                 in_chans: int | None = None, num_classes: int | None = None, val_size=None, split_seed: int = 0,
                 train_size=None, cache_dir=None, on_bad_image: str = "skip", extra: bool = False,
                 synthetic_size: int | None = None) -> Dataset:
    """Load dataset `name` split into train / val (held out from the official training set) / test.

    name: one of DATASETS; a preset (cifar10_jpg) is its format (imagefolder) with a default root.
    root: folder (or, for imagefolder, archive) holding the data; relative paths are taken against the
    current directory. val_size: None = default (5,000 for small-image sets, else 10%), int = count,
    float in (0, 1) = fraction, 0 = none (model selection then falls back to the last epoch).
    train_size: train on a stratified subset of this many images of the training split.
    image_size / in_chans: resize and convert channels (None keeps the dataset's own).
    extra: SVHN only, add the 531k 'extra' images to the training set.
    synthetic_size: synthetic only, number of training images before the validation hold-out.
    """
    started = time.perf_counter()
    check_options(name, image_size, in_chans, num_classes, split_seed, on_bad_image)
    fmt, default_root = PRESETS.get(name, (name, None))
    if fmt != "synthetic" and in_chans not in (None, 1, 3):
        raise DataError(f"data.in_chans={in_chans} is not supported for {name}; use 1 (grayscale), 3 (RGB) or null")
    root = root or default_root
    if fmt == "imagenet":
        return load_streaming(root, image_size, in_chans, num_classes, val_size, split_seed, train_size, started)
    if fmt == "synthetic":
        raw = synthetic.read(image_size, in_chans, num_classes, synthetic_size, split_seed)
        raw.extra.update(source="synthetic", cache_key=None)
        entry = None
    else:
        raw, entry = decoded(fmt, root, download, image_size, in_chans, on_bad_image, extra, cache_dir)
    class_names = list(raw.class_names)
    if num_classes is not None and num_classes != len(class_names):
        raise DataError(f"{name}: data.num_classes={num_classes} but the data has {len(class_names)} classes "
                        f"({raw.extra.get('source')}); set data.num_classes={len(class_names)} or null")

    val_count = default_val_count(fmt, len(raw.train)) if val_size is None else \
        resolve_count(val_size, len(raw.train), "val_size")
    train_count = None if train_size is None else resolve_count(train_size, len(raw.train) - val_count, "train_size")
    train_idx, val_idx = split_indices(raw.train.labels, val_count, train_count, split_seed)
    train, val = raw.train.subset(train_idx), raw.train.subset(val_idx)

    split_key = f"seed{split_seed}-val{val_count}-train{len(train_idx)}"
    stats = cache.load_stats(entry, split_key) if entry else None
    if stats is None:
        mean, std = channel_stats(train.images)
        stats = {"mean": mean, "std": std}
        if entry:
            cache.save_stats(entry, split_key, stats)
    _, chans, height, _ = train.images.shape
    info = {
        **raw.extra,
        "format": fmt,
        "full_train_size": len(raw.train),
        "train_size": len(train), "val_size": len(val), "test_size": len(raw.test),
        "selection": "val" if len(val) else "last",
        "split_seed": split_seed,
        "stats_from": "train split",
        "load_s": round(time.perf_counter() - started, 3),
    }
    return Dataset(name=name, train=train, val=val, test=raw.test, num_classes=len(class_names),
                   class_names=class_names, in_chans=chans, image_size=height, mean=tuple(stats["mean"]),
                   std=tuple(stats["std"]), synthetic=fmt == "synthetic", info=info)


def check_options(name, image_size, in_chans, num_classes, split_seed, on_bad_image) -> None:
    if name not in DATASETS:
        close = difflib.get_close_matches(str(name), DATASETS, n=3)
        raise DataError(f"unknown dataset {name!r}; did you mean {close}? known: {list(DATASETS)}")
    for key, value in (("image_size", image_size), ("in_chans", in_chans), ("num_classes", num_classes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"data.{key}={value!r} must be a positive integer or null")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise DataError(f"data.split_seed={split_seed!r} must be an integer")
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"data.on_bad_image={on_bad_image!r}; use one of {ON_BAD_IMAGE}")


def default_val_count(fmt: str, train_total: int) -> int:
    fraction = round(DEFAULT_VAL_FRACTION * train_total)
    return min(CIFAR_SIZED_VAL, fraction) if fmt in CIFAR_SIZED else fraction


def decoded(name, root, download, image_size, in_chans, on_bad_image, extra, cache_dir) -> tuple[RawData, Path]:
    """The decoded official train/test sets, from the cache when the source files and options are unchanged."""
    root = resolve_root(root)
    tree_root = None
    if name in ("cifar10", "cifar100"):
        sources = cifar.find_sources(name, root, download)
    elif name == "svhn":
        sources = svhn.find_sources(root, download, extra)
    elif name == "fashion_mnist":
        sources = fashion_mnist.find_sources(root, download)
    else:
        sources, tree_root = imagefolder.find_sources(root)
    native_size, native_chans = NATIVE.get(name, (None, None))
    options = {  # asking for the native shape is asking for no change: share the cache with null
        "image_size": None if image_size == native_size else image_size,
        "in_chans": None if in_chans == native_chans else in_chans,
        "extra": bool(extra) if name == "svhn" else None,
    }
    key = cache.cache_key(name, cache.source_fingerprint(sources, tree_root), options)
    entry = cache.entry_dir(cache.resolve_cache_dir(cache_dir), name, key)
    # where the files are now: a cache built from an identical copy elsewhere records the copy's path
    here = {"source": str(root if name == "imagefolder" else sources[0].parent), "cache_path": str(entry)}
    cached = cache.load_entry(entry)
    if cached is None:
        with cache.build_lock(entry):
            cached = cache.load_entry(entry)  # another process may have built it while we waited
            if cached is None:
                started = time.perf_counter()
                raw = read(name, root, sources, options["image_size"], options["in_chans"], on_bad_image)
                meta = {**raw.extra, **here, "cache_key": key, "options": options,
                        "decode_s": round(time.perf_counter() - started, 3)}
                cache.save_entry(entry, raw.train, raw.test, raw.class_names, meta)
                return RawData(raw.train, raw.test, raw.class_names, {**meta, "cache_hit": False}), entry
    train, test, class_names, meta = cached
    if on_bad_image == "error" and meta.get("bad_images"):
        raise BadImageError(f"{name}: {meta['bad_images']} image(s) under {root} cannot be decoded, e.g. "
                            f"{meta.get('bad_image_examples')}; remove or replace them, or set data.on_bad_image=skip")
    return RawData(train, test, class_names, {**meta, **here, "cache_hit": True}), entry


def read(name, root, sources, image_size, in_chans, on_bad_image) -> RawData:
    if name == "imagefolder":
        return imagefolder.read(root, image_size, in_chans, on_bad_image)
    if name in ("cifar10", "cifar100"):
        raw = cifar.read(name, sources)
    elif name == "svhn":
        raw = svhn.read(sources)
    else:
        raw = fashion_mnist.read(sources)
    raw.train, raw.test = conform(raw.train, image_size, in_chans), conform(raw.test, image_size, in_chans)
    return raw


def conform(split: Split, image_size: int | None, in_chans: int | None, chunk: int = 4096) -> Split:
    """Resize (antialiased bilinear) and convert channels (luma / replicate) when asked for another shape."""
    _, chans, height, width = split.images.shape
    resize = image_size is not None and (height, width) != (image_size, image_size)
    convert = in_chans is not None and in_chans != chans
    if not (resize or convert):
        return split
    size, out_chans = (image_size, image_size) if resize else (height, width), in_chans or chans
    parts = [split.images.new_empty(0, out_chans, *size)]
    for start in range(0, len(split), chunk):
        x = split.images[start:start + chunk].float()
        if convert and out_chans == 1:
            x = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif convert:
            x = x.expand(-1, 3, -1, -1)
        if resize:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        parts.append(x.round_().clamp_(0, 255).to(torch.uint8))
    images = torch.cat(parts)
    return Split(images.contiguous(), split.labels)


def load_streaming(root, image_size, in_chans, num_classes, val_size, split_seed, train_size, started) -> Dataset:
    """ImageNet-style: splits of file lists, decoded by the loader's workers; standard ImageNet statistics."""
    if in_chans not in (None, 3):
        raise DataError(f"imagenet: data.in_chans={in_chans}; streaming loads RGB only, use 3 or null")
    root = resolve_root(root)
    raw = imagenet.read(root)
    class_names = list(raw.class_names)
    if num_classes is not None and num_classes != len(class_names):
        raise DataError(f"imagenet: data.num_classes={num_classes} but {root}/train has {len(class_names)} class "
                        f"folders; set data.num_classes={len(class_names)} or null")
    val_count = round(DEFAULT_VAL_FRACTION * len(raw.train)) if val_size is None else \
        resolve_count(val_size, len(raw.train), "val_size")
    train_count = None if train_size is None else resolve_count(train_size, len(raw.train) - val_count, "train_size")
    train_idx, val_idx = split_indices(raw.train.labels, val_count, train_count, split_seed)
    train, val = raw.train.subset(train_idx), raw.train.subset(val_idx)
    info = {**raw.extra, "format": "imagenet", "source": str(root), "cache_key": None,
            "full_train_size": len(raw.train), "train_size": len(train), "val_size": len(val),
            "test_size": len(raw.test),
            "selection": "val" if len(val) else "last", "split_seed": split_seed,
            "stats_from": "standard ImageNet statistics", "streaming": True,
            "load_s": round(time.perf_counter() - started, 3)}
    return Dataset(name="imagenet", train=train, val=val, test=raw.test, num_classes=len(class_names),
                   class_names=class_names, in_chans=3, image_size=image_size or 224, mean=imagenet.IMAGENET_MEAN,
                   std=imagenet.IMAGENET_STD, synthetic=False, info=info)
