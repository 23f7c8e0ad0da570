"""make_loaders: train / val / test iterators of normalized float batches on the training device.

In-memory splits are moved to the device once; a batch is then an index gather, one augmentation gather
and a fused normalization, with no per-sample Python work. Streaming splits (ImageNet) decode in worker
processes and finish on the device the same way. Epoch order and augmentation are functions of
(seed, epoch) alone, so a resumed run sees exactly the data it would have seen.
"""
from __future__ import annotations

import contextlib
import io
import math
import os

import numpy as np
import torch
from PIL import Image

from .augment import AugmentParams, apply_augment, check_augment, cutout_mask, normalize, sample_params
from .base import DataError, Dataset, FileSplit, Split
from .imagefolder import BadImageError
from .imagenet import EVAL_CROP_FRACTION
from .split import seeded_generator

NO_AUGMENT = {"crop_padding": 0, "padding_mode": "zero", "flip": False, "cutout": 0}
MAX_STREAM_WORKERS = 8  # enough to keep one GPU fed with 224 px JPEGs; more mostly adds memory
# Images augmented per chunk when a whole epoch is prepared at once: bounds the temporary memory.
EPOCH_PASS_CHUNK = 8192


def epoch_order(count: int, seed: int, epoch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's share of the epoch's permutation: all ranks draw the same one and take disjoint strides."""
    order = torch.randperm(count, generator=seeded_generator(seed, epoch, "order"))
    per_rank = count // world_size  # equal shares, so every rank runs the same number of steps
    return order[:per_rank * world_size][rank::world_size]


def batch_count(samples: int, batch_size: int, drop_last: bool) -> int:
    return samples // batch_size if drop_last else math.ceil(samples / batch_size)


@contextlib.contextmanager
def one_cpu_thread(device: torch.device):
    """Run CPU batch preparation on one thread, restoring the caller's thread count before the batch is used.

    Making a batch touches a few MB and is memory-bound, so a second thread gains little; on a shared
    CPU, though, intra-op threads wait at every op's barrier for a descheduled peer. Measured on 2 busy
    cores (load average ~4.8), one CIFAR batch of 512: ~5k img/s with 2 threads, ~30k with one.
    """
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TensorLoader:
    """Batches from an in-memory Split held on `device`.

    epoch_pass: augment and normalise the whole epoch (in its order) in one pass when it starts, so
    each training step is a slice; None = on a GPU only, where the launches per step are what cost
    (a CPU gains nothing and would hold a float copy of the epoch). The bytes are the same either way.
    """

    def __init__(self, split: Split, batch_size: int, device, mean, std, augment: dict | None = None,
                 shuffle: bool = False, drop_last: bool = False, seed: int = 0, rank: int = 0, world_size: int = 1,
                 epoch_pass: bool | None = None):
        self.device = torch.device(device)
        self.epoch_pass = self.device.type == "cuda" if epoch_pass is None else epoch_pass
        self.images = split.images.to(self.device)
        self.labels = split.labels.to(self.device)
        self.batch_size, self.mean, self.std = batch_size, tuple(mean), tuple(std)
        self.augment = check_augment(augment or NO_AUGMENT)
        self.shuffle, self.drop_last = shuffle, drop_last
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        # evaluation is not sharded: every rank scores the whole split and gets the same numbers
        self.num_samples = len(split) // world_size if shuffle else len(split)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return batch_count(self.num_samples, self.batch_size, self.drop_last)

    def __iter__(self):
        if self.shuffle:
            order = epoch_order(len(self.labels), self.seed, self.epoch, self.rank, self.world_size)
        else:
            order = torch.arange(len(self.labels))
        order = order[:len(self) * self.batch_size].to(self.device)
        augment = self.augment
        augmenting = augment["crop_padding"] or augment["flip"] or augment["cutout"]
        if augmenting:
            # one draw for the whole epoch, copied to the device once
            _, _, height, width = self.images.shape
            generator = seeded_generator(self.seed, self.epoch, self.rank, "augment")
            params = sample_params(len(order), height, width, generator, augment["crop_padding"], augment["flip"],
                                   augment["cutout"]).to(self.device)
            if self.epoch_pass:
                yield from self._prepared_epoch(order, params)
                return
        for start in range(0, len(order), self.batch_size):
            with one_cpu_thread(self.device):
                index = order[start:start + self.batch_size]
                x, y = self.images.index_select(0, index), self.labels.index_select(0, index)
                if augmenting:
                    batch_params = AugmentParams(*(t[start:start + self.batch_size] for t in (
                        params.crop_y, params.crop_x, params.flip, params.cutout_y, params.cutout_x)))
                    x = apply_augment(x, batch_params, augment["crop_padding"], augment["padding_mode"],
                                      augment["cutout"], self.mean, self.std, augment["flip"])
                else:
                    x = normalize(x, self.mean, self.std)
            yield x, y


    def _prepared_epoch(self, order: torch.Tensor, params: AugmentParams):
        """The epoch augmented and normalised in a few chunked passes, then yielded as slices.

        Each chunk is written into one float32 buffer of the whole epoch (len x C x H x W x 4 bytes: 553 MB
        for 45,000 CIFAR images), so the epoch's peak memory holds it once, not twice as a concatenation did."""
        augment, images = self.augment, None
        for start in range(0, len(order), EPOCH_PASS_CHUNK):
            part = AugmentParams(*(t[start:start + EPOCH_PASS_CHUNK] for t in (
                params.crop_y, params.crop_x, params.flip, params.cutout_y, params.cutout_x)))
            chunk = apply_augment(self.images.index_select(0, order[start:start + EPOCH_PASS_CHUNK]), part,
                                  augment["crop_padding"], augment["padding_mode"], augment["cutout"],
                                  self.mean, self.std, augment["flip"])
            if images is None:
                images = chunk.new_empty((len(order), *chunk.shape[1:]))
            images[start:start + len(chunk)] = chunk
            del chunk
        labels = self.labels.index_select(0, order)
        for start in range(0, len(order), self.batch_size):
            yield images[start:start + self.batch_size], labels[start:start + self.batch_size]


def random_resized_crop_box(width: int, height: int, generator: torch.Generator,
                            scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """Inception-style crop box (left, top, right, bottom): random area fraction and aspect ratio.

    torchvision's RandomResizedCrop draws from the global RNG; this draws from a per-sample generator,
    so the crop depends on (seed, epoch, sample) and not on which worker happened to load it.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        u = torch.rand(2, generator=generator).tolist()
        target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0])
        aspect = math.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * u[1])
        w, h = round(math.sqrt(target_area * aspect)), round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return left, top, left + w, top + h
    # fallback: the largest central crop within the ratio range, as torchvision does
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif in_ratio > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


class FileImages(torch.utils.data.Dataset):
    """Decodes one file per item; items are (index, epoch seed) pairs from EpochSampler, or plain indices."""

    def __init__(self, split: FileSplit, image_size: int, train: bool, flip: bool):
        self.files, self.labels = split.files, split.labels
        self.image_size, self.train, self.flip = image_size, train, flip

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item):
        index, epoch_seed = item if isinstance(item, tuple) else (item, 0)
        path = self.files[index]
        try:
            with open(path, "rb") as f:
                image = Image.open(io.BytesIO(f.read()))
                image.draft("RGB", (self.image_size, self.image_size))  # JPEG: decode at a reduced scale if large
                image = image.convert("RGB")
        except Exception as exc:  # corrupt or unreadable: name the file
            raise BadImageError(f"cannot decode {path} ({exc}); remove or replace it") from exc
        size = self.image_size
        if self.train:
            generator = seeded_generator(epoch_seed, index)
            box = random_resized_crop_box(*image.size, generator)
            image = image.resize((size, size), Image.BILINEAR, box=box)
            if self.flip and bool(torch.randint(0, 2, (1,), generator=generator)):
                image = image.transpose(Image.FLIP_LEFT_RIGHT)
        else:
            resize = round(size / EVAL_CROP_FRACTION)
            scale = resize / min(image.size)
            width, height = max(resize, round(image.width * scale)), max(resize, round(image.height * scale))
            image = image.resize((width, height), Image.BILINEAR)
            left, top = (width - size) // 2, (height - size) // 2
            image = image.crop((left, top, left + size, top + size))
        pixels = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)
        return pixels, self.labels[index]


class EpochSampler(torch.utils.data.Sampler):
    """(index, epoch seed) pairs for this rank's share of the epoch, in order = f(seed, epoch)."""

    def __init__(self, count: int, shuffle: bool, seed: int, rank: int, world_size: int):
        self.count, self.shuffle, self.seed, self.rank, self.world_size = count, shuffle, seed, rank, world_size
        self.epoch = 0

    def __len__(self) -> int:
        return self.count // self.world_size if self.shuffle else self.count

    def __iter__(self):
        if not self.shuffle:
            return iter((i, 0) for i in range(self.count))
        order = epoch_order(self.count, self.seed, self.epoch, self.rank, self.world_size)
        epoch_seed = int(torch.randint(0, 2**62, (1,), generator=seeded_generator(self.seed, self.epoch, "crops")))
        return iter((i, epoch_seed) for i in order.tolist())


class StreamingLoader:
    """Batches decoded by worker processes from a FileSplit, then normalized (and cut out) on the device."""

    def __init__(self, split: FileSplit, batch_size: int, device, mean, std, image_size: int,
                 augment: dict | None = None, shuffle: bool = False, drop_last: bool = False, seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int | None = None):
        self.device = torch.device(device)
        self.batch_size, self.mean, self.std = batch_size, tuple(mean), tuple(std)
        self.augment = check_augment(augment or NO_AUGMENT)
        self.seed, self.rank = seed, rank
        self.epoch = 0
        self.sampler = EpochSampler(len(split), shuffle, seed, rank, world_size)
        self.num_samples = len(self.sampler)
        workers = min(MAX_STREAM_WORKERS, os.cpu_count() or 1) if num_workers is None else num_workers
        self.loader = torch.utils.data.DataLoader(
            FileImages(split, image_size, train=shuffle, flip=self.augment["flip"]), batch_size=batch_size,
            sampler=self.sampler, num_workers=workers, drop_last=drop_last,
            pin_memory=self.device.type == "cuda",  # page-locked batches copy to the GPU asynchronously
            persistent_workers=workers > 0)  # the sampler, not worker state, carries the epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = self.sampler.epoch = epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        cutout = self.augment["cutout"]
        generator = seeded_generator(self.seed, self.epoch, self.rank, "augment")
        for x, y in self.loader:
            x = normalize(x.to(self.device, non_blocking=True), self.mean, self.std)
            if cutout:
                _, _, height, width = x.shape
                params = sample_params(len(x), height, width, generator, cutout=cutout).to(self.device)
                x = x * cutout_mask(params, cutout, height, width, self.device).to(x.dtype)
            yield x, y.to(self.device, non_blocking=True)


def make_loaders(dataset: Dataset, batch_size: int, eval_batch_size: int | None = None, device="cpu",
                 augment: dict | None = None, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = True, num_workers: int | None = None, order_seed: int | None = None):
    """(train_loader, val_loader or None, test_loader) yielding (x float32 normalized, y int64) on device.

    order_seed: fixes the training order and the augmentation draws; None follows seed. Passing the run's
    seed as seed and another value as order_seed separates the two sources of variance: the caller's
    seed keeps the weight initialization, order_seed alone decides which images come when, and how cropped.

    augment: keys of AUGMENT_DEFAULTS; None means AUGMENT_DEFAULTS (pass crop_padding=0, flip=False to
    turn augmentation off). Streaming (ImageNet) training always uses RandomResizedCrop, plus flip and
    cutout when set; crop_padding does not apply there. Evaluation loaders never augment, shuffle or drop.
    num_workers: decoding processes for streaming datasets (default: CPU count, at most 8).
    """
    for key, value in (("batch_size", batch_size), ("world_size", world_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DataError(f"{key}={value!r} must be a positive integer")
    if order_seed is not None and (isinstance(order_seed, bool) or not isinstance(order_seed, int)):
        raise DataError(f"data.order_seed={order_seed!r} must be an integer, or null to follow the seed")
    data_seed = seed if order_seed is None else order_seed
    if not 0 <= rank < world_size:
        raise DataError(f"rank={rank} is out of range for world_size={world_size}")
    eval_batch_size = eval_batch_size or batch_size
    augment = check_augment(augment)
    if len(dataset.train) // world_size < (batch_size if drop_last else 1):
        raise DataError(f"the training split has {len(dataset.train)} images, fewer than one batch of {batch_size} "
                        f"per rank ({world_size} ranks); lower batch_size or raise data.train_size")

    def build(split, train):
        common = dict(device=device, mean=dataset.mean, std=dataset.std, seed=data_seed, rank=rank,
                      world_size=world_size if train else 1, shuffle=train, drop_last=drop_last and train,
                      augment=augment if train else None, batch_size=batch_size if train else eval_batch_size)
        if isinstance(split, FileSplit):
            return StreamingLoader(split, image_size=dataset.image_size, num_workers=num_workers, **common)
        return TensorLoader(split, **common)

    val_loader = build(dataset.val, train=False) if len(dataset.val) else None
    return build(dataset.train, train=True), val_loader, build(dataset.test, train=False)
