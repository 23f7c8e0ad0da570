"""Build timm models without pretrained weights and swap their stems for small inputs.

ImageNet networks shrink the input 4x in the stem (stride-2 convolution, then a stride-2
max-pool) and 32x overall, which leaves a 1x1 map for a 32x32 image. The CIFAR stem keeps the
full resolution through the stem: a large-kernel or patchifying first convolution becomes a
3x3 stride-1 convolution, a stride-2 3x3 first convolution becomes stride 1, and the stem
max-pool is removed.
"""
from __future__ import annotations

import difflib

from torch import nn

from .registry import ModelSpec

# Where timm keeps the stem max-pool, by architecture (ResNet/WRN, ResNetV2, DenseNet).
STEM_POOL_NAMES = ("maxpool", "stem.pool", "features.pool0")


def create_timm_model(
    timm_name: str,
    num_classes: int,
    in_chans: int,
    stem: str,
    **kwargs,
) -> nn.Module:
    """A freshly initialised timm model, with the CIFAR stem when ``stem == "cifar"``."""
    import timm  # seconds to import (with torchvision): only a run that builds a timm model pays for it

    known = timm.list_models()
    if timm_name not in known:
        close = difflib.get_close_matches(timm_name, known, n=5, cutoff=0.6)
        hint = f" Closest timm names: {', '.join(close)}." if close else ""
        raise ValueError(f"timm has no model named {timm_name!r}.{hint} See timm.list_models().")
    model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    stem_changes = apply_cifar_stem(model, timm_name) if stem == "cifar" else []
    # create_model() merges this into the final archbench_info, so the record names the timm build.
    model.archbench_info = {"timm_name": timm_name, "timm_kwargs": dict(kwargs), "stem_changes": stem_changes}
    return model


def timm_spec(name: str) -> ModelSpec:
    """The registry entry of a family member that timm builds under the same name.

    One builder for every family that wraps timm models: a family lists ``*map(timm_spec, names)``.
    """
    def build(num_classes: int, in_chans: int = 3, stem: str = "imagenet", **kwargs) -> nn.Module:
        return create_timm_model(name, num_classes, in_chans, stem, **kwargs)

    return ModelSpec(name, build, builder_lib="timm")


def apply_cifar_stem(model: nn.Module, model_name: str) -> list[str]:
    """Swap the stem of ``model`` in place for 32-64 px inputs; returns what was changed."""
    if hasattr(model, "patch_embed"):
        raise ValueError(
            f"{model_name!r} embeds patches; its stem cannot be swapped for small inputs. "
            "Use stem='imagenet' and pass the image size to the builder (e.g. img_size=32)."
        )
    first_conv_name = _first_conv_name(model)
    if first_conv_name is None:
        raise ValueError(
            f"Cannot find the first convolution of {model_name!r} to build a CIFAR stem; use stem='imagenet'."
        )
    conv = model.get_submodule(first_conv_name)
    changes = []
    patchify = conv.kernel_size == conv.stride and conv.stride[0] > 1
    if conv.kernel_size[0] > 3 or patchify:
        replace_submodule(model, first_conv_name, _cifar_conv_like(conv))
        changes.append(f"{first_conv_name}: {describe_conv(conv)} -> 3x3/1")
    elif conv.stride != (1, 1):
        changes.append(f"{first_conv_name}: {describe_conv(conv)} -> {conv.kernel_size[0]}x{conv.kernel_size[1]}/1")
        conv.stride = (1, 1)
    for pool_name in STEM_POOL_NAMES:
        pool = _find_submodule(model, pool_name)
        if isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d)):
            replace_submodule(model, pool_name, nn.Identity())
            changes.append(f"{pool_name}: removed")
    if not changes:
        raise ValueError(f"{model_name!r} has no strided stem to swap; use stem='imagenet'.")
    return changes


def replace_submodule(model: nn.Module, dotted_name: str, new: nn.Module) -> None:
    parent_name, _, child_name = dotted_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, new)


def _first_conv_name(model: nn.Module) -> str | None:
    cfg_name = getattr(model, "pretrained_cfg", {}).get("first_conv")
    if isinstance(cfg_name, (list, tuple)):
        cfg_name = cfg_name[0] if cfg_name else None
    if cfg_name and isinstance(_find_submodule(model, cfg_name), nn.Conv2d):
        return cfg_name
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    return None


def _find_submodule(model: nn.Module, dotted_name: str) -> nn.Module | None:
    try:
        return model.get_submodule(dotted_name)
    except AttributeError:
        return None


def _cifar_conv_like(conv: nn.Conv2d) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=conv.bias is not None)
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    if new.bias is not None:
        nn.init.zeros_(new.bias)
    return new


def describe_conv(conv: nn.Conv2d) -> str:
    return f"{conv.kernel_size[0]}x{conv.kernel_size[1]}/{conv.stride[0]}"
