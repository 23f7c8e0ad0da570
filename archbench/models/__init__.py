"""The model zoo: eight CNN families, paper-faithful, plus any timm model under the same protocol.

    model = create_model("resnet56", num_classes=10)
    model = create_model("efficientnetv2_s", num_classes=100, input_size=32)  # CIFAR stem
    model = create_model("timm/resnext50_32x4d", num_classes=10, input_size=224)

Every model carries ``model.archbench_info``: name, family, the stem it was built with
("cifar", "cifar16", "imagenet", or "native" for networks designed for 32 px inputs) and which library
wrote its layers ("archbench", "timm" or "torchvision"); timm builds also record the timm
name, the timm arguments and what the CIFAR stem changed.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from importlib import resources
from typing import TYPE_CHECKING

from torch import nn

if TYPE_CHECKING:
    import pandas as pd

from .registry import TIMM_PREFIX, declared_families, family_names, get_entry, register, registered_names
from .timm_adapter import create_timm_model


def import_package_modules(package_name: str, package_path) -> None:
    """Import every public module of a package, so each family module declares itself.

    A new family is then its module alone: nothing here lists the family modules.
    """
    for module in pkgutil.iter_modules(package_path):
        if not module.name.startswith("_"):
            importlib.import_module(f"{package_name}.{module.name}")


import_package_modules(__name__, __path__)

__all__ = [
    "AUTO_SMALL_INPUT_STEM",
    "FAMILIES",
    "SMALL_REPRESENTATIVES",
    "STEMS",
    "STRIDE16_FAMILIES",
    "create_model",
    "declared_families",
    "list_models",
    "load_reference",
    "model_family",
    "register",
    "resolve_stem",
]

# Read from the family declarations (registry.Family), in publication order; "timm" last.
FAMILIES = family_names()
# Small-input stems: "cifar" brings an ImageNet topology (overall stride 32) to overall stride 8,
# so a 32 px input ends on a 4x4 map; "cifar16" un-strides the stem convolution only (stride 16,
# 2x2), offered by the families that declare it (STRIDE16_FAMILIES).
STEMS = ("auto", "imagenet", "cifar", "cifar16")
STRIDE16_FAMILIES = tuple(f.name for f in declared_families() if "cifar16" in f.small_input_stems)
# `auto` switches to a small-input stem at or below this input size (px).
CIFAR_STEM_MAX_SIZE = 64
# Which small-input stem `auto` picks per family ("cifar" where not listed): the first the family declares.
AUTO_SMALL_INPUT_STEM = {f.name: f.small_input_stems[0] for f in declared_families()
                         if f.small_input_stems[0] != "cifar"}

# One model per family for CPU-scale studies: each costs 20-150 M MACs on a 3x32x32 input
# (tests/test_models.py measures it). See docs/models.md for the numbers.
SMALL_REPRESENTATIVES = {f.name: f.small_representative for f in declared_families()}


def create_model(
    name: str,
    num_classes: int,
    in_chans: int = 3,
    input_size: int = 32,
    stem: str = "auto",
    **kwargs,
) -> nn.Module:
    """Build a freshly initialised model (never pretrained).

    Args:
        name: a registered name (see ``list_models()``) or ``"timm/<timm model name>"``.
        num_classes: size of the classifier output.
        in_chans: input channels (1 for grayscale).
        input_size: input height/width in pixels; decides the stem when ``stem="auto"``.
        stem: "auto" (for inputs of 64 px or less the family's small-input stem,
            ``AUTO_SMALL_INPUT_STEM``, else "imagenet"), "imagenet", "cifar" (overall stride 8)
            or "cifar16" (overall stride 16; ShuffleNetV2 and EfficientNetV2 only).
        **kwargs: builder arguments, e.g. ``dropout`` for WRN and DenseNet, ``dropout``,
            ``local_drop_prob`` and ``global_drop_fraction`` for FractalNet; for timm builds
            any ``timm.create_model`` argument (``drop_rate``, ``drop_path_rate``, ...).
    """
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("in_chans", in_chans)
    _check_positive_int("input_size", input_size)
    family = model_family(name)
    resolved_stem = resolve_stem(stem, input_size, family)
    if resolved_stem == "cifar16" and family not in STRIDE16_FAMILIES:
        raise ValueError(
            f"stem='cifar16' is offered for the {' and '.join(STRIDE16_FAMILIES)} families only, not for "
            f"{name!r} ({family}); use stem='cifar' (overall stride 8) or 'auto'.")

    if name.startswith(TIMM_PREFIX):
        timm_name = name[len(TIMM_PREFIX):]
        model = create_timm_model(timm_name, num_classes, in_chans, resolved_stem, **kwargs)
        return _attach_info(model, name, "timm", resolved_stem, "timm")

    entry = get_entry(name)
    _check_builder_kwargs(name, entry.builder, kwargs)
    if entry.cifar_native:
        if stem == "imagenet":
            raise ValueError(
                f"{name!r} is a CIFAR network with a fixed 3x3 stride-1 stem; stem={stem!r} does not "
                "apply to it. Use stem='auto' (or 'cifar'), or an ImageNet-topology model."
            )
        model = entry.builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
        return _attach_info(model, name, entry.family, "native", entry.builder_lib)
    model = entry.builder(num_classes=num_classes, in_chans=in_chans, stem=resolved_stem, **kwargs)
    return _attach_info(model, name, entry.family, resolved_stem, entry.builder_lib)


def list_models(family: str | None = None) -> list[str]:
    """Every registered name, sorted; ``family`` restricts to one family."""
    return registered_names(family)


def model_family(name: str) -> str:
    if name.startswith(TIMM_PREFIX):
        return "timm"
    return get_entry(name).family


def resolve_stem(stem: str, input_size: int, family: str | None = None) -> str:
    """``"cifar"``, ``"cifar16"`` or ``"imagenet"``: the stem that ``stem`` asks for at ``input_size`` px.

    ``family`` decides which small-input stem ``auto`` picks (``AUTO_SMALL_INPUT_STEM``).
    """
    if stem not in STEMS:
        raise ValueError(f"Unknown stem {stem!r}; choose one of {', '.join(STEMS)}.")
    if stem == "auto":
        return AUTO_SMALL_INPUT_STEM.get(family, "cifar") if input_size <= CIFAR_STEM_MAX_SIZE else "imagenet"
    return stem


def load_reference() -> pd.DataFrame:
    """Published parameter counts, MACs and errors with their sources (archbench/models/reference.csv)."""
    import pandas as pd  # for the report and the docs: a run, which builds models, never reads the table

    with resources.files(__package__).joinpath("reference.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f)


def _attach_info(model: nn.Module, name: str, family: str, stem: str, builder_lib: str) -> nn.Module:
    extra = getattr(model, "archbench_info", {})
    model.archbench_info = {"name": name, "family": family, "stem": stem, "builder": builder_lib, **extra}
    return model


def _check_builder_kwargs(name: str, builder, kwargs: dict) -> None:
    params = inspect.signature(builder).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p not in ("num_classes", "in_chans", "stem")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no extra arguments"
        raise ValueError(f"Model {name!r} does not take {', '.join(unknown)}; it takes {takes}.")


def _check_positive_int(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
