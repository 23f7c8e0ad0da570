"""load_dataset: look the name up in the registry, read its official train and test sets (from the decode-once
cache when the sources and options are unchanged), split, and compute statistics: the same steps for every name."""
from __future__ import annotations

import importlib
import pkgutil
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from . import cache, imagefolder, registry
from .base import DataError, Dataset, FileSplit, RawData, Split, resolve_root
from .imagefolder import BadImageError
from .split import channel_stats, resolve_count, split_indices


def _import_readers() -> None:
    # A reader registers itself by being a module of this package: adding a dataset touches its module and
    # its conf/data YAML, and no list here. Alphabetical, so the registry's order (DATASETS) is stable.
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name != __name__.rpartition(".")[2]:
            importlib.import_module(f"{__package__}.{module.name}")


_import_readers()
DATASETS = tuple(registry.names())  # every registered name, presets included
ON_BAD_IMAGE = ("skip", "error")
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, as PIL's RGB -> L conversion


def load_dataset(name: str, root=None, download: bool = False, image_size: int | None = None,
                 in_chans: int | None = None, num_classes: int | None = None, val_size=None, split_seed: int = 0,
                 train_size=None, cache_dir=None, on_bad_image: str = "skip", extra: bool = False,
                 synthetic_size: int | None = None, label: str | None = None) -> Dataset:
    """Load dataset `name` split into train / val (held out from the official training set) / test.

    name: a registered name (DATASETS); a preset (cifar10_jpg) is its format (imagefolder) with a default root.
    root: folder (or, for imagefolder, archive) holding the data; relative paths are taken against the
    current directory; imagefolder has no default. val_size: None = default (10% of the training set, at
    most 5,000 for the small-image sets), int = count, float in (0, 1) = fraction, 0 = none (model
    selection then falls back to the last epoch).
    train_size: train on a stratified subset of this many images of the training split.
    image_size / in_chans: resize and convert channels (None keeps the dataset's own).
    extra: SVHN only, add the 531k 'extra' images to the training set.
    synthetic_size: synthetic only, number of training images before the validation hold-out.
    label: display name for records and the report, in info["label"]; None = the registered one
    (an image folder's: its folder's or archive's own name).
    """
    started = time.perf_counter()
    reader = registry.get(name)
    check_options(image_size, in_chans, num_classes, split_seed, on_bad_image, label)
    request = registry.Request(name, request_root(reader, root), bool(download), image_size, in_chans, num_classes,
                               on_bad_image, bool(extra), synthetic_size, split_seed)
    raw, entry = decoded(reader, request, cache_dir) if reader.sources else (reader.read(request, []), None)
    class_names = list(raw.class_names)
    if num_classes is not None and num_classes != len(class_names):
        raise DataError(f"{name}: data.num_classes={num_classes} but the data has {len(class_names)} classes "
                        f"({raw.extra.get('source')}); set data.num_classes={len(class_names)} or null")

    val_count = default_val_count(reader, len(raw.train)) if val_size is None else \
        resolve_count(val_size, len(raw.train), "val_size")
    train_count = None if train_size is None else resolve_count(train_size, len(raw.train) - val_count, "train_size")
    train_idx, val_idx = split_indices(raw.train.labels, val_count, train_count, split_seed, class_names)
    train, val = raw.train.subset(train_idx), raw.train.subset(val_idx)
    mean, std = statistics(reader, train, entry, f"seed{split_seed}-val{val_count}-train{len(train_idx)}")

    streaming = isinstance(train, FileSplit)
    if streaming:  # decoded per epoch by the loader, at the asked size
        chans, height = reader.native[1], image_size or reader.native[0]
    else:
        _, chans, height, _ = train.images.shape
    info = {
        "cache_key": None,  # uncached readers; a cached one's meta says which entry it came from
        **raw.extra,
        "format": reader.format,
        "label": label or reader.label or imagefolder.source_label(request.root),
        "full_train_size": len(raw.train),
        "train_size": len(train), "val_size": len(val), "test_size": len(raw.test),
        "selection": "val" if len(val) else "last",
        "split_seed": split_seed,
        "stats_from": "train split" if reader.fixed_stats is None else f"standard {reader.label} statistics",
        **({"streaming": True} if streaming else {}),
        "load_s": round(time.perf_counter() - started, 3),
    }
    if chans == 3 and raw.extra.get("grayscale_images") == len(raw.train) + len(raw.test):
        # Not an error (a model made for RGB input may be wanted), but it costs memory and first-layer work
        # for no information, and a 1-channel run is a different model: say so rather than choose.
        warnings.warn(f"{name}: every image under {request.root} is grayscale, and data.in_chans=3 repeats its "
                      f"one channel three times; set data.in_chans=1 (or null: follow the images) to train on "
                      f"one channel", stacklevel=2)
    return Dataset(name=name, train=train, val=val, test=raw.test, num_classes=len(class_names),
                   class_names=class_names, in_chans=chans, image_size=height, mean=tuple(mean), std=tuple(std),
                   synthetic=reader.synthetic, info=info)


def check_options(image_size, in_chans, num_classes, split_seed, on_bad_image, label) -> None:
    for key, value in (("image_size", image_size), ("in_chans", in_chans), ("num_classes", num_classes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise DataError(f"data.{key}={value!r} must be a positive integer or null")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int):
        raise DataError(f"data.split_seed={split_seed!r} must be an integer")
    if on_bad_image not in ON_BAD_IMAGE:
        raise DataError(f"data.on_bad_image={on_bad_image!r}; use one of {ON_BAD_IMAGE}")
    if label is not None and (not isinstance(label, str) or not label.strip()):
        raise DataError(f"data.label={label!r} must be a non-empty string, or null for the dataset's own name")


def request_root(reader: registry.Reader, root) -> Path | None:
    if reader.synthetic:
        return None
    if root in (None, ""):
        if reader.needs_root():
            raise DataError(f"data={reader.name} needs data.root, the folder (or .tar, .tar.gz or .zip archive) "
                            f"that holds the data; it has no default.\n"
                            f"Set data.root=/path/to/folder, e.g. python -m archbench data={reader.name} "
                            f"data.root=/path/to/folder")
        root = reader.default_root
    return resolve_root(root)


def default_val_count(reader: registry.Reader, train_total: int) -> int:
    fraction = round(registry.DEFAULT_VAL_FRACTION * train_total)
    return fraction if reader.val_cap is None else min(reader.val_cap, fraction)


def statistics(reader: registry.Reader, train, entry: Path | None, split_key: str):
    """Per-channel (mean, std): the reader's standard ones, else the training split's (cached per split)."""
    if reader.fixed_stats is not None:
        return reader.fixed_stats
    stats = cache.load_stats(entry, split_key) if entry else None
    if stats is None:
        stats = dict(zip(("mean", "std"), channel_stats(train.images)))
        if entry:
            cache.save_stats(entry, split_key, stats)
    return stats["mean"], stats["std"]


def decoded(reader: registry.Reader, request: registry.Request, cache_dir) -> tuple[RawData, Path]:
    """The decoded official train/test sets, from the cache when the source files and options are unchanged."""
    name, root = reader.format, request.root
    if request.in_chans not in (None, 1, 3):
        raise DataError(f"data.in_chans={request.in_chans} is not supported for {request.name}; "
                        f"use 1 (grayscale), 3 (RGB) or null")
    sources, tree_root = reader.sources(request)
    native_size, native_chans = reader.native or (None, None)
    options = {  # asking for the native shape is asking for no change: share the cache with null
        "image_size": None if request.image_size == native_size else request.image_size,
        "in_chans": None if request.in_chans == native_chans else request.in_chans,
        "extra": None,  # present for every reader, so caches built before the registry keep their keys
        **{key: getattr(request, key) for key in reader.cache_options},
        **({"decoder": reader.decoder_version} if reader.decoder_version is not None else {}),
    }
    key = cache.cache_key(name, cache.source_fingerprint(sources, tree_root), options)
    entry = cache.entry_dir(cache.resolve_cache_dir(cache_dir), name, key)
    # where the files are now (a tree, one archive, or the folder of the files), and not where the
    # identical copy that built the cache was
    where = tree_root or (sources[0] if len(sources) == 1 else sources[0].parent)
    here = {"source": str(where), "cache_path": str(entry)}
    cached = cache.load_entry(entry)
    if cached is None:
        with cache.build_lock(entry):
            cached = cache.load_entry(entry)  # another process may have built it while we waited
            if cached is None:
                started = time.perf_counter()
                raw = reader.read(request, sources)
                if reader.native:
                    raw.train = conform(raw.train, options["image_size"], options["in_chans"])
                    raw.test = conform(raw.test, options["image_size"], options["in_chans"])
                meta = {**raw.extra, **here, "cache_key": key, "options": options,
                        "decode_s": round(time.perf_counter() - started, 3)}
                cache.save_entry(entry, raw.train, raw.test, raw.class_names, meta)
                return RawData(raw.train, raw.test, raw.class_names, {**meta, "cache_hit": False}), entry
    train, test, class_names, meta = cached
    if request.on_bad_image == "error" and meta.get("bad_images"):
        raise BadImageError(f"{request.name}: {meta['bad_images']} image(s) under {root} cannot be decoded, e.g. "
                            f"{meta.get('bad_image_examples')}; remove or replace them, or set data.on_bad_image=skip")
    return RawData(train, test, class_names, {**meta, **here, "cache_hit": True}), entry


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
