"""Model registry: every name the suite can build, its family, and how to build it.

Builders are registered with ``@register(name, family)`` and are called as
``builder(num_classes=..., in_chans=..., stem=..., **kwargs)``, where ``stem`` is already
resolved to ``"cifar"`` or ``"imagenet"``. Networks designed for 32x32 inputs (the CIFAR
ResNets, WRNs, DenseNets) are registered with ``cifar_native=True``: they have one fixed
3x3 stride-1 stem and never see the ``stem`` argument.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

FAMILIES = (
    "resnet_v1",
    "resnet_v2",
    "wide_resnet",
    "densenet",
    "shufflenet_v2",
    "efficientnet_v2",
    "timm",
)
# `timm/<name>` builds any timm model; the prefix keeps those names apart from ours.
TIMM_PREFIX = "timm/"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    cifar_native: bool
    builder_lib: str  # "archbench" | "timm" | "torchvision": who writes the layers


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, family: str, cifar_native: bool = False, builder_lib: str = "archbench"):
    """Decorator that adds a builder to the registry under ``name``."""
    if family not in FAMILIES or family == "timm":
        raise ValueError(
            f"Unknown family {family!r} for model {name!r}; registered families are "
            f"{', '.join(f for f in FAMILIES if f != 'timm')}."
        )
    if name.startswith(TIMM_PREFIX):
        raise ValueError(f"Model name {name!r} may not start with {TIMM_PREFIX!r}: that prefix builds timm models.")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(
                f"Model {name!r} is already registered (family {_REGISTRY[name].family!r}); "
                "pick a different name or remove the duplicate registration."
            )
        _REGISTRY[name] = ModelEntry(name, family, builder, cifar_native, builder_lib)
        return builder

    return decorator


def unknown_model_error(name: str, candidates: list[str], what: str = "model") -> ValueError:
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Closest registered names: {', '.join(close)}." if close else ""
    return ValueError(f"Unknown {what} {name!r}.{hint} See archbench.models.list_models() for all names.")


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise unknown_model_error(name, sorted(_REGISTRY))
    return _REGISTRY[name]


def registered_names(family: str | None = None) -> list[str]:
    if family is not None and family not in FAMILIES:
        raise ValueError(f"Unknown family {family!r}; choose one of {', '.join(FAMILIES)}.")
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)
