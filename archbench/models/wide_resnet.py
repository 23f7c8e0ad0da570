"""Wide Residual Networks (Zagoruyko & Komodakis, BMVC 2016; arXiv:1605.07146).

WRN-d-k is the pre-activation ResNet with basic units made k times wider: a 3x3 stem with
16 filters, then three stages of n = (d - 4) / 6 units with 16k, 32k and 64k filters on
32, 16 and 8 px maps, a final BN -> ReLU, global average pooling and a linear layer. Each
unit is BN -> ReLU -> conv3x3 -> BN -> ReLU -> dropout -> conv3x3 added to the shortcut;
the paper puts dropout (p = 0.3 on CIFAR) between the two convolutions. Where the width or
resolution changes the shortcut is a 1x1 convolution of the pre-activated input, as in the
authors' code.

The ImageNet "wide" networks (wide_resnet50_2, wide_resnet101_2: ResNet-50/101 bottlenecks
with a twice-wider 3x3 inside, the paper's WRN-50-2-bottleneck) are built by timm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family
from .preact_resnet import PreActNetwork
from .timm_adapter import timm_spec

PAPER_DROPOUT = 0.3


class WideBasicBlock(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dropout: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        needs_projection = in_chs != out_chs or stride != 1
        self.shortcut = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_act = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(x_act)
        out = self.conv1(x_act)
        out = self.conv2(self.dropout(F.relu(self.bn2(out))))
        return out + shortcut


class WideResNet(PreActNetwork):
    def __init__(
        self,
        depth: int,
        widen_factor: int,
        num_classes: int = 10,
        in_chans: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 (10, 16, 22, 28, 40, ...), got {depth}.")
        if widen_factor < 1:
            raise ValueError(f"WRN widen_factor must be >= 1, got {widen_factor}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"WRN dropout must be in [0, 1), got {dropout}.")
        blocks_per_stage = (depth - 4) // 6
        self.conv1 = nn.Conv2d(in_chans, 16, 3, padding=1, bias=False)
        stages = []
        in_chs = 16
        for stage_idx, base_chs in enumerate((16, 32, 64)):
            out_chs = base_chs * widen_factor
            blocks = []
            for block_idx in range(blocks_per_stage):
                stride = 2 if stage_idx > 0 and block_idx == 0 else 1
                blocks.append(WideBasicBlock(in_chs, out_chs, stride, dropout))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self._finish(stages, in_chs, num_classes)


def _wrn(depth: int, widen_factor: int) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar", dropout: float = PAPER_DROPOUT) -> nn.Module:
        return WideResNet(depth, widen_factor, num_classes=num_classes, in_chans=in_chans, dropout=dropout)

    return ModelSpec(f"wrn_{depth}_{widen_factor}", build, cifar_native=True)


FAMILY = declare_family(Family(
    name="wide_resnet",
    arxiv="1605.07146",
    module=__name__,
    models=(*(_wrn(depth, k) for depth, k in ((16, 2), (16, 4), (16, 8), (28, 10), (40, 4))),
            *map(timm_spec, ("wide_resnet50_2", "wide_resnet101_2"))),
    # wrn_16_2 is not one of the paper's CIFAR table entries; it is the family's CPU-scale
    # representative (about 100 M MACs at 32x32; WRN-16-4 already needs about 400 M).
    small_representative="wrn_16_2",
))
