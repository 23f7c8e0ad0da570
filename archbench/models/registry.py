"""Model registry: the declared families, every name the suite can build, and how to build it.

A family declares itself at the end of its own module (timm style)::

    FAMILY = declare_family(Family(
        name="resnet_v1", arxiv="1512.03385", module=__name__,
        models=(ModelSpec("resnet20", build_resnet20, cifar_native=True), ...),
        small_representative="resnet20",
    ))

``archbench.models`` imports every module of its package, so adding a family is its module,
its ``conf/model/<name>.yaml`` files and its rows in ``reference.csv``; ``FAMILIES``,
``SMALL_REPRESENTATIVES``, the small-input stem tables and docs/models.md's family sections are
read from the declarations.

Builders are called as ``builder(num_classes=..., in_chans=..., stem=..., **kwargs)``, where
``stem`` is already resolved to ``"cifar"``, ``"cifar16"`` or ``"imagenet"``. Networks designed
for 32x32 inputs (the CIFAR ResNets, WRNs, DenseNets) are declared with ``cifar_native=True``:
they have one fixed 3x3 stride-1 stem and never see the ``stem`` argument.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

# `timm/<name>` builds any timm model; the prefix keeps those names apart from ours, and
# "timm" is their family. It is not declared: it has no models of its own.
TIMM_PREFIX = "timm/"
TIMM_FAMILY = "timm"
SMALL_INPUT_STEMS = ("cifar", "cifar16")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    cifar_native: bool = False
    builder_lib: str = "archbench"  # "archbench" | "timm" | "torchvision": who writes the layers


@dataclass(frozen=True)
class Family:
    """One architecture family, as its module declares it.

    Attributes:
        name: the family name records and configs use (``model.family``).
        arxiv: the paper's arXiv id; ``FAMILIES`` lists the families in publication order.
        module: the declaring module's ``__name__``; its docstring is the family's section of
            docs/models.md.
        models: every model of the family.
        small_representative: the model for CPU-scale studies, costing 20-150 M MACs on a
            3x32x32 input (tests/test_models.py measures it).
        small_input_stems: the small-input stems the ImageNet-topology builders take, the first
            being what ``stem="auto"`` picks at 64 px or less. ``"cifar"`` brings an ImageNet
            topology (overall stride 32) to stride 8; ``"cifar16"`` un-strides the stem
            convolution only (stride 16), for families that pay too much for stride 8.
    """
    name: str
    arxiv: str
    module: str
    models: tuple[ModelSpec, ...]
    small_representative: str
    small_input_stems: tuple[str, ...] = ("cifar",)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    builder: Callable[..., nn.Module]
    cifar_native: bool
    builder_lib: str  # "archbench" | "timm" | "torchvision": who writes the layers


_FAMILIES: dict[str, Family] = {}
_REGISTRY: dict[str, ModelEntry] = {}


def declare_family(family: Family) -> Family:
    """Add ``family`` and its models to the registry; checks everything before adding anything."""
    where = f"family {family.name!r} (declared in {family.module})"
    if family.name in _FAMILIES or family.name == TIMM_FAMILY:
        other = _FAMILIES[family.name].module if family.name in _FAMILIES else "the registry, for timm/<name>"
        raise ValueError(f"The {where} is already declared by {other}; give the new family another name.")
    if not re.fullmatch(r"\d{4}\.\d{4,5}", family.arxiv):
        raise ValueError(f"The {where} has arxiv={family.arxiv!r}; give the paper's arXiv id, e.g. '1512.03385'.")
    names = [spec.name for spec in family.models]
    if not names:
        raise ValueError(f"The {where} declares no models; list at least one ModelSpec in models=.")
    for name in names:
        _check_new_name(name, where)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"The {where} lists {', '.join(repeated)} more than once; list each model once.")
    if family.small_representative not in names:
        raise ValueError(
            f"The {where} names small_representative={family.small_representative!r}, which is not one of "
            f"its models ({', '.join(names)}); name one of them.")
    stems = family.small_input_stems
    if not stems or set(stems) - set(SMALL_INPUT_STEMS) or len(set(stems)) != len(stems):
        raise ValueError(
            f"The {where} has small_input_stems={stems!r}; give one or more of {', '.join(SMALL_INPUT_STEMS)}, "
            "the first being what stem='auto' picks for small inputs.")
    _FAMILIES[family.name] = family
    for spec in family.models:
        _REGISTRY[spec.name] = ModelEntry(spec.name, family.name, spec.builder, spec.cifar_native, spec.builder_lib)
    return family


def declared_families() -> tuple[Family, ...]:
    """The declared families in publication order (by arXiv id)."""
    return tuple(sorted(_FAMILIES.values(), key=lambda family: (family.arxiv, family.name)))


def family_names() -> tuple[str, ...]:
    """The declared families in publication order, then "timm" for ``timm/<name>`` models."""
    return (*(family.name for family in declared_families()), TIMM_FAMILY)


def register(name: str, family: str, cifar_native: bool = False, builder_lib: str = "archbench"):
    """Decorator that adds one more builder to a declared family under ``name``."""
    if family not in _FAMILIES:
        raise ValueError(
            f"Unknown family {family!r} for model {name!r}; registered families are {', '.join(_FAMILIES)}. "
            "A new family declares itself with declare_family() at the end of its module."
        )

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _check_new_name(name, f"family {family!r}")
        _REGISTRY[name] = ModelEntry(name, family, builder, cifar_native, builder_lib)
        return builder

    return decorator


def _check_new_name(name: str, where: str) -> None:
    if name.startswith(TIMM_PREFIX):
        raise ValueError(f"Model name {name!r} may not start with {TIMM_PREFIX!r}: that prefix builds timm models.")
    if name in _REGISTRY:
        raise ValueError(
            f"Model {name!r} of {where} is already registered (family {_REGISTRY[name].family!r}); "
            "pick a different name or remove the duplicate registration."
        )


def unknown_model_error(name: str, candidates: list[str], what: str = "model") -> ValueError:
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f" Closest registered names: {', '.join(close)}." if close else ""
    return ValueError(f"Unknown {what} {name!r}.{hint} See archbench.models.list_models() for all names.")


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise unknown_model_error(name, sorted(_REGISTRY))
    return _REGISTRY[name]


def registered_names(family: str | None = None) -> list[str]:
    if family is not None and family not in family_names():
        raise ValueError(f"Unknown family {family!r}; choose one of {', '.join(family_names())}.")
    return sorted(n for n, e in _REGISTRY.items() if family is None or e.family == family)
