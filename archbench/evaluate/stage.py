"""The evaluation stage: a trained model and its dataset in, the record's calibration and robustness sections out.

    settings = EvaluateSettings(corruptions="all", severities=[1, 2, 3, 4, 5], test_subset=None)
    sections = evaluate(model, dataset, device, settings)   # {"calibration": {...}, "robustness": {...}}
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from archbench.data import Dataset, Split, normalize
from archbench.base.numerics import autocast_dtype

from .calibration import calibrate
from .corruptions import CORRUPTIONS, SEVERITIES, _load_library, check_corruption
from .robustness import robustness

log = logging.getLogger("archbench")


@dataclass
class EvaluateSettings:
    """Mirrors conf/evaluate/default.yaml key for key; see the comments there for why each default."""

    after_train: bool = True  # read by the run stage: evaluate at the end of every training run
    calibration: bool = True
    temperature: bool = True
    # Cheap CPU default: one corruption from each ImageNet-C family (noise, blur, weather, digital) plus
    # JPEG, the one a deployed model meets most. "all" = the benchmark's 15.
    corruptions: list[str] | str = field(default_factory=lambda: [
        "gaussian_noise", "defocus_blur", "fog", "contrast", "jpeg_compression"])
    severities: list[int] = field(default_factory=lambda: [1, 3, 5])
    test_subset: int | None = 1000
    seed: int = 0
    corruptions_root: str | None = None
    cache_dir: str | None = None
    batch_size: int = 500

    @classmethod
    def from_dict(cls, values: dict | None) -> "EvaluateSettings":
        """From a plain dict (the entry point's converted config); unknown keys raise, naming them."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown evaluate keys {unknown}; known: {sorted(known)}")
        return cls(**values).validate()

    @property
    def corruption_names(self) -> list[str]:
        return list(CORRUPTIONS) if self.corruptions == "all" else list(self.corruptions)

    def validate(self) -> "EvaluateSettings":
        """Raise ValueError naming the first bad key and its fix; return self so calls can chain."""
        for key in ("after_train", "calibration", "temperature"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"evaluate.{key}={getattr(self, key)!r} must be true or false")
        if self.temperature and not self.calibration:
            raise ValueError("evaluate.temperature=true needs evaluate.calibration=true (temperature scaling is "
                             "reported as calibration after scaling); set evaluate.temperature=false")
        if isinstance(self.corruptions, str):
            if self.corruptions != "all":
                raise ValueError(f"evaluate.corruptions={self.corruptions!r}: use \"all\" (the 15 benchmark "
                                 f"corruptions), a list of names, or [] to skip robustness")
        elif isinstance(self.corruptions, (list, tuple)):
            for name in self.corruptions:
                try:
                    check_corruption(name)
                except ValueError as exc:
                    raise ValueError(f"evaluate.corruptions: {exc}") from None
            if len(set(self.corruptions)) != len(self.corruptions):
                raise ValueError(f"evaluate.corruptions={list(self.corruptions)} names a corruption twice; "
                                 f"list each once")
        else:
            raise ValueError(f"evaluate.corruptions={self.corruptions!r} must be \"all\", a list of names or []")
        if not isinstance(self.severities, (list, tuple)) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s in SEVERITIES for s in self.severities):
            raise ValueError(f"evaluate.severities={self.severities!r} must be a list of integers "
                             f"from {list(SEVERITIES)}")
        if len(set(self.severities)) != len(self.severities):
            raise ValueError(f"evaluate.severities={list(self.severities)} repeats a severity; list each once")
        if self.corruption_names and not self.severities:
            raise ValueError("evaluate.severities=[] with corruptions listed: name at least one severity, "
                             "or set evaluate.corruptions=[] to skip robustness")
        if self.test_subset is not None and (isinstance(self.test_subset, bool) or not isinstance(self.test_subset, int)
                                             or self.test_subset < 1):
            raise ValueError(f"evaluate.test_subset={self.test_subset!r} must be a positive integer "
                             f"(images per corrupted set) or null for the whole test split")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"evaluate.seed={self.seed!r} must be an integer >= 0")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"evaluate.batch_size={self.batch_size!r} must be a positive integer")
        for key in ("corruptions_root", "cache_dir"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, (str, Path)):
                raise ValueError(f"evaluate.{key}={value!r} must be a path or null")
        return self


@torch.inference_mode()
def predict_logits(model: nn.Module, images, mean, std, device, batch_size: int = 500, amp: str = "off",
                   channels_last: bool = False) -> torch.Tensor:
    """float32 logits on the CPU for uint8 (N, C, H, W) images, normalized as in training, in eval mode,
    computed in `amp` and layout `channels_last` (the training run's, so they match its test top-1)."""
    images = torch.as_tensor(np.asarray(images)) if not isinstance(images, torch.Tensor) else images
    device = torch.device(device)
    dtype = autocast_dtype(amp)
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def forward(batch):
        x = normalize(batch.to(device, non_blocking=True), mean, std).contiguous(memory_format=layout)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            return model(x).float().cpu()

    was_training = model.training
    model.eval()  # BatchNorm in training mode would use batch statistics and overwrite its running ones
    try:
        out = [forward(images[i:i + batch_size]) for i in range(0, images.shape[0], batch_size)]
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("no images to predict on: the split is empty")
    return torch.cat(out)


def _in_memory(split, name: str, dataset: Dataset) -> Split:
    if not isinstance(split, Split):
        raise ValueError(f"dataset {dataset.name!r} streams its {name} split from disk; evaluation needs it in "
                         f"memory (a decoded Split), so it is not supported for this dataset yet")
    return split


def evaluate(model: nn.Module, dataset: Dataset, device, settings: EvaluateSettings | None = None,
             logits: dict[str, torch.Tensor] | None = None, amp: str = "off", channels_last: bool = False) -> dict:
    """{"calibration": ..., "robustness": ...} for a trained model; a section is None when switched off.

    Without the optional imagecorruptions-imaug package (and no official files), robustness is
    {"skipped": <why, naming the package>} and the rest is measured as usual. A section that fails for any
    other reason (a corruption library broken on this machine's numpy, say) is {"skipped": ..., "error":
    {type, message}}: the trained run keeps its other results. Predictions run in `amp` and `channels_last`
    (the training precision), and each section names them under "precision".

    Calibration uses the whole test split (15 bins need the images); the temperature is fitted on the
    validation split only. Robustness uses settings.test_subset test images, clean and corrupted alike.
    logits: {"val": (N_val, K), "test": (N_test, K)} the caller already has for these exact splits and
    weights (a training run's final evaluation), so they are not computed twice; either key may be absent.
    """
    settings = (settings or EvaluateSettings()).validate()
    test = _in_memory(dataset.test, "test", dataset)
    logits = dict(logits or {})
    unknown = sorted(set(logits) - {"val", "test"})
    if unknown:
        raise ValueError(f"logits keys {unknown} are not splits evaluate uses; pass 'val' and/or 'test'")

    def predict(images):
        return predict_logits(model, images, dataset.mean, dataset.std, device, settings.batch_size, amp,
                              channels_last)

    precision = f"{'fp32' if amp == 'off' else amp} {'channels_last' if channels_last else 'NCHW'}"

    # The caller's mistake is raised here, before the sections that would record it as a failed section.
    for name, given in logits.items():
        size = len(test) if name == "test" else len(dataset.val)
        if tuple(given.shape[:1]) != (size,):
            raise ValueError(f"logits[{name!r}] has {given.shape[0]} rows but the {name} split has "
                             f"{size} images: pass the logits of exactly this split, or leave them out")

    def split_logits(name: str, split: Split) -> torch.Tensor:
        if name not in logits:
            logits[name] = predict(split.images)
        return logits[name]

    sections: dict = {"calibration": None, "robustness": None}
    if settings.calibration:
        start = time.perf_counter()
        with _section_failure(sections, "calibration"):
            val_logits = val_labels = None
            if settings.temperature and len(dataset.val) > 0:
                val = _in_memory(dataset.val, "val", dataset)
                val_logits, val_labels = split_logits("val", val), val.labels
            sections["calibration"] = calibrate(split_logits("test", test), test.labels, val_logits, val_labels)
            if not settings.temperature:
                sections["calibration"]["temperature_note"] = "not fitted: evaluate.temperature=false"
            sections["calibration"].update(seconds=time.perf_counter() - start, precision=precision)
    if settings.corruption_names and not settings.corruptions_root:
        try:
            _load_library()  # an optional package: without it the run keeps everything else
        except ImportError as err:
            log.warning("robustness left out of the record: %s", err)
            sections["robustness"] = {"skipped": str(err)}
    if settings.corruption_names and sections["robustness"] is None:
        start = time.perf_counter()
        with _section_failure(sections, "robustness"):
            sections["robustness"] = robustness(
                predict, test.images, test.labels, settings.corruption_names, settings.severities,
                test_subset=settings.test_subset, seed=settings.seed, corruptions_root=settings.corruptions_root,
                cache_dir=settings.cache_dir, source=dataset.name, clean_logits=logits.get("test"))
            sections["robustness"].update(seconds=time.perf_counter() - start, precision=precision)
    return sections


@contextlib.contextmanager
def _section_failure(sections: dict, name: str):
    """An evaluation section that raises is recorded as skipped with its error; the run stays complete.

    Out-of-memory is an error like any other here; an interrupt (KeyboardInterrupt, SystemExit) is not."""
    try:
        yield
    except Exception as err:  # noqa: BLE001 - evaluation is optional after training; its reason is kept
        message = str(err).splitlines()[0] if str(err) else "no detail"
        log.warning("%s left out of the record: %s: %s", name, type(err).__name__, message)
        sections[name] = {"skipped": f"{name} failed: {type(err).__name__}: {message}",
                          "error": {"type": type(err).__name__, "message": str(err)[:2000]}}
