"""Scientific claims about family rankings, declared as data so the report can test them.

A claim is an order of families, best first, with the model that stands for each family at each
scale (``"small"``: the CPU-scale representatives, ``"paper"``: the papers' own CIFAR networks).
A study tests a claim at a scale when it has runs of every model of that scale; other models in
the study (e.g. ShuffleNetV2 in ``cifar_cpu_ladder``) are not part of the claim's order.

Base layer: no torch, no models import; the model names are checked against the registry by
tests/test_claims.py, so a renamed model cannot leave a claim pointing at nothing.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClaimedFamily:
    label: str     # how the claim names it, e.g. "DenseNet-BC"
    family: str    # the registry's family (DenseNet and DenseNet-BC are both "densenet")
    models: dict   # scale -> the model that stands for it at that scale


@dataclass(frozen=True)
class Claim:
    name: str
    statement: str
    source: str
    order: tuple[ClaimedFamily, ...]  # best first

    def __post_init__(self):
        labels = [entry.label for entry in self.order]
        if len(self.order) < 2 or len(set(labels)) != len(labels):
            raise ValueError(f"Claim {self.name!r} needs two or more distinct families in its order, got {labels}.")
        scales = {frozenset(entry.models) for entry in self.order}
        if len(scales) != 1:
            raise ValueError(f"Claim {self.name!r}: every family needs a model at the same scales, got "
                             f"{[sorted(entry.models) for entry in self.order]}.")
        for scale in self.scales:
            models = self.models(scale)
            if len(set(models)) != len(models):
                raise ValueError(f"Claim {self.name!r}: at scale {scale!r} one model stands for two families "
                                 f"({models}).")

    @property
    def scales(self) -> tuple[str, ...]:
        return tuple(self.order[0].models)

    def models(self, scale: str) -> list[str]:
        """The claimed order at ``scale`` as model names, best first."""
        return [entry.models[scale] for entry in self.order]

    def label_of(self, scale: str) -> dict[str, str]:
        """Model name -> the family label the claim gives it, at ``scale``."""
        return {entry.models[scale]: entry.label for entry in self.order}

    def scale_in(self, models) -> str | None:
        """The first scale whose every model is among ``models`` (a study's models), or None."""
        present = set(models)
        return next((scale for scale in self.scales if set(self.models(scale)) <= present), None)


def _family(label: str, family: str, small: str, paper: str) -> ClaimedFamily:
    return ClaimedFamily(label, family, {"small": small, "paper": paper})


# The ranking of CIFAR/SVHN architectures in the document archbench was built from (issue 41).
# "paper": each family's best-reported CIFAR-10 network that archbench builds; "small": the
# CPU-scale representatives (the families' small_representative, and densenet_40_12 for DenseNet
# without bottleneck and compression, since densenet_bc_40_12 stands for DenseNet-BC).
CIFAR_RANKING = Claim(
    name="cifar_ranking",
    statement="DenseNet-BC > ResNeXt > DenseNet > WRN > FractalNet > ResNetV2 > ResNet",
    source=("the ranking of CIFAR/SVHN architectures in the document this suite was built from "
            "(archbench issue 41)"),
    order=(
        _family("DenseNet-BC", "densenet", "densenet_bc_40_12", "densenet_bc_190_40"),
        _family("ResNeXt", "resnext", "resnext29_8x64d_w8", "resnext29_16x64d"),
        _family("DenseNet", "densenet", "densenet_40_12", "densenet_40_12"),
        _family("WRN", "wide_resnet", "wrn_16_2", "wrn_28_10"),
        _family("FractalNet", "fractalnet", "fractalnet_20_w4", "fractalnet_20"),
        _family("ResNetV2", "resnet_v2", "preact_resnet20", "preact_resnet1001"),
        _family("ResNet", "resnet_v1", "resnet20", "resnet110"),
    ),
)

CLAIMS = (CIFAR_RANKING,)
