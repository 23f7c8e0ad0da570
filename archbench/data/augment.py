"""Batched augmentation on the training device: per-sample random crop with padding, flip, cutout, normalization.

Crop and flip are one gather: each output pixel reads the source pixel it comes from (reflected or masked
at the padded border), so no padded copy is built and no per-sample Python loop runs. Random parameters
are drawn on the CPU from a seeded generator, so a batch is augmented the same on any device.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .base import DataError

AUGMENT_DEFAULTS = {
    "crop_padding": 4,  # the standard CIFAR recipe: pad 4, random 32x32 crop
    "padding_mode": "zero",  # as the ResNet/DenseNet CIFAR recipes and torchvision's RandomCrop; or "reflect"
    "flip": True,  # horizontal mirror with probability 1/2
    "cutout": 0,  # square side in pixels set to the mean (DeVries & Taylor, 2017); 0 disables
}
PADDING_MODES = ("reflect", "zero")


def check_augment(augment: dict | None) -> dict:
    """AUGMENT_DEFAULTS overridden by augment; unknown keys and bad values raise, naming them."""
    unknown = set(augment or {}) - set(AUGMENT_DEFAULTS)
    if unknown:
        raise DataError(f"unknown augment keys {sorted(unknown)}; known: {sorted(AUGMENT_DEFAULTS)}")
    settings = {**AUGMENT_DEFAULTS, **(augment or {})}
    for key in ("crop_padding", "cutout"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DataError(f"augment.{key}={value!r} must be an integer >= 0 (0 disables it)")
    if settings["padding_mode"] not in PADDING_MODES:
        raise DataError(f"augment.padding_mode={settings['padding_mode']!r}; use one of {PADDING_MODES}")
    if not isinstance(settings["flip"], bool):
        raise DataError(f"augment.flip={settings['flip']!r} must be true or false")
    return settings


@dataclass
class AugmentParams:
    """Per-sample random draws for one batch (CPU int64/bool tensors of length batch size)."""

    crop_y: torch.Tensor  # top of the crop window in padded coordinates, 0..2*padding
    crop_x: torch.Tensor
    flip: torch.Tensor
    cutout_y: torch.Tensor  # cutout square centre; may sit near a border, so the square can be clipped
    cutout_x: torch.Tensor

    def to(self, device) -> "AugmentParams":
        return AugmentParams(*(t.to(device, non_blocking=True) for t in
                               (self.crop_y, self.crop_x, self.flip, self.cutout_y, self.cutout_x)))


def sample_params(batch_size: int, height: int, width: int, generator: torch.Generator,
                  crop_padding: int = 0, flip: bool = False, cutout: int = 0) -> AugmentParams:
    def draw(high):
        return torch.randint(0, high, (batch_size,), generator=generator)

    return AugmentParams(
        crop_y=draw(2 * crop_padding + 1), crop_x=draw(2 * crop_padding + 1),
        flip=draw(2).bool() if flip else torch.zeros(batch_size, dtype=torch.bool),
        cutout_y=draw(height) if cutout else torch.zeros(batch_size, dtype=torch.int64),
        cutout_x=draw(width) if cutout else torch.zeros(batch_size, dtype=torch.int64),
    )


def reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Mirror indices in -size+1..2*size-2 into 0..size-1 without repeating the edge (like F.pad 'reflect')."""
    index = index.abs()
    return torch.where(index > size - 1, 2 * (size - 1) - index, index)


def crop_and_flip(images: torch.Tensor, params: AugmentParams, crop_padding: int, padding_mode: str) -> torch.Tensor:
    """Per-sample padded crop then horizontal flip, as a single gather; returns the dtype it was given."""
    batch, chans, height, width = images.shape
    device = images.device
    if crop_padding >= min(height, width) and padding_mode == "reflect":
        raise DataError(f"augment.crop_padding={crop_padding} must be smaller than the image ({height}x{width}) "
                        f"for reflect padding; lower it or use padding_mode=zero")
    rows = params.crop_y[:, None] - crop_padding + torch.arange(height, device=device)
    cols = torch.arange(width, device=device).expand(batch, width)
    cols = torch.where(params.flip[:, None], width - 1 - cols, cols)  # mirror the crop window
    cols = params.crop_x[:, None] - crop_padding + cols
    flat = images.reshape(batch, chans, height * width)
    if padding_mode == "reflect":
        source = reflect(rows, height)[:, :, None] * width + reflect(cols, width)[:, None, :]
    else:
        # padding pixels read a zero appended after each image, so crop, flip and padding stay one gather
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
        source = torch.where(inside, rows[:, :, None] * width + cols[:, None, :], height * width)
        flat = torch.cat([flat, flat.new_zeros(batch, chans, 1)], dim=2)
    source = source.reshape(batch, 1, height * width).expand(batch, chans, height * width)
    return flat.gather(2, source).reshape(batch, chans, height, width)


def cutout_mask(params: AugmentParams, size: int, height: int, width: int, device) -> torch.Tensor:
    """(B, 1, H, W) mask that is False inside each sample's cutout square."""
    top, left = params.cutout_y - size // 2, params.cutout_x - size // 2
    ys, xs = torch.arange(height, device=device), torch.arange(width, device=device)
    in_rows = (ys >= top[:, None]) & (ys < top[:, None] + size)
    in_cols = (xs >= left[:, None]) & (xs < left[:, None] + size)
    return ~(in_rows[:, :, None] & in_cols[:, None, :])[:, None]


@functools.lru_cache(maxsize=32)
def normalization(mean: tuple, std: tuple, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) per channel, made once per device: building them per batch would copy host to GPU
    and make the CPU wait for the GPU every step."""
    scale = torch.tensor([1 / (255 * s) for s in std], device=device).view(1, -1, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=device).view(1, -1, 1, 1)
    return scale, shift


def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 (x/255 - mean) / std, per channel."""
    scale, shift = normalization(tuple(mean), tuple(std), images.device)
    return images.float().mul_(scale).sub_(shift)  # in place: one float copy of the batch, no temporaries


def apply_augment(images: torch.Tensor, params: AugmentParams, crop_padding: int = 0, padding_mode: str = "zero",
                  cutout: int = 0, mean=None, std=None, flip: bool = True) -> torch.Tensor:
    """Augment a uint8 batch with given params; with mean/std also normalize (cutout then fills with the mean).

    flip=False promises params.flip is all False, so a batch with no crop skips the gather; the settings,
    not the drawn values, decide, because reading a GPU tensor here would stall the device every batch.
    """
    _, _, height, width = images.shape
    params = params.to(images.device)
    if crop_padding or flip:
        images = crop_and_flip(images, params, crop_padding, padding_mode)
    if mean is not None:
        images = normalize(images, mean, std)
    if cutout:
        images = images * cutout_mask(params, cutout, height, width, images.device).to(images.dtype)
    return images


def augment_batch(images: torch.Tensor, generator: torch.Generator, crop_padding: int = 4,
                  padding_mode: str = "zero", flip: bool = True, cutout: int = 0, mean=None, std=None
                  ) -> torch.Tensor:
    """Draw per-sample parameters from generator (a CPU generator) and augment uint8 images (B, C, H, W).

    Returns uint8 when mean/std are not given (cutout squares are black), else normalized float32
    (cutout squares are zero, i.e. the mean).
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise DataError(f"augment_batch expects uint8 (B, C, H, W) images, got {images.dtype} {tuple(images.shape)}")
    check_augment({"crop_padding": crop_padding, "padding_mode": padding_mode, "flip": flip, "cutout": cutout})
    batch, _, height, width = images.shape
    params = sample_params(batch, height, width, generator, crop_padding, flip, cutout)
    return apply_augment(images, params, crop_padding, padding_mode, cutout, mean, std, flip)
