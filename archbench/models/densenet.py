"""DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017; arXiv:1608.06993).

Inside a dense block every layer receives the concatenation of all earlier feature maps
of the block and adds k (the growth rate) new ones. Between blocks a transition layer
(BN -> ReLU -> conv1x1 -> 2x2 average pool) halves the resolution.

- DenseNet (L, k): layers are BN -> ReLU -> conv3x3(k); the stem has 16 filters and
  transitions keep the width. Three blocks of (L - 4) / 3 layers.
- DenseNet-BC (L, k): layers are bottlenecks, BN -> ReLU -> conv1x1(4k) -> BN -> ReLU ->
  conv3x3(k) ("B"), and transitions compress the width by theta = 0.5 ("C"); the stem has
  2k filters. Three blocks of (L - 4) / 6 layers.

Both CIFAR variants end with BN -> ReLU, global average pooling and a linear layer, and
apply dropout after each convolution only when asked (the paper uses 0.2 without data
augmentation and none with it). The ImageNet DenseNet-BC-121/169/201 (4 blocks, k = 32,
7x7 stem and max-pool) are built by timm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family
from .resnet import init_weights
from .timm_adapter import timm_spec


class DenseLayer(nn.Module):
    def __init__(self, in_chs: int, growth_rate: int, bottleneck: bool, dropout: float = 0.0):
        super().__init__()
        if bottleneck:
            inner_chs = 4 * growth_rate
            self.bottleneck = nn.Sequential(
                nn.BatchNorm2d(in_chs),
                nn.ReLU(inplace=True),
                nn.Conv2d(in_chs, inner_chs, 1, bias=False),
                _dropout(dropout),
            )
        else:
            inner_chs = in_chs
            self.bottleneck = nn.Identity()
        self.conv = nn.Sequential(
            nn.BatchNorm2d(inner_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner_chs, growth_rate, 3, padding=1, bias=False),
            _dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv(self.bottleneck(x))], dim=1)


class Transition(nn.Sequential):
    def __init__(self, in_chs: int, out_chs: int, dropout: float = 0.0):
        super().__init__(
            nn.BatchNorm2d(in_chs),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_chs, out_chs, 1, bias=False),
            _dropout(dropout),
            nn.AvgPool2d(2),
        )


class CifarDenseNet(nn.Module):
    def __init__(
        self,
        depth: int,
        growth_rate: int,
        bottleneck: bool,
        compression: float,
        num_classes: int = 10,
        in_chans: int = 3,
        dropout: float = 0.0,
    ):
        super().__init__()
        layers_per_unit = 2 if bottleneck else 1
        if (depth - 4) % (3 * layers_per_unit) != 0 or depth <= 4:
            rule = "6n+4 for DenseNet-BC" if bottleneck else "3n+4 for DenseNet"
            raise ValueError(f"DenseNet depth {depth} does not fit {rule}.")
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"DenseNet compression must be in (0, 1], got {compression}.")
        layers_per_block = (depth - 4) // (3 * layers_per_unit)
        chs = 2 * growth_rate if bottleneck else 16
        self.conv1 = nn.Conv2d(in_chans, chs, 3, padding=1, bias=False)
        blocks = []
        for block_idx in range(3):
            for _ in range(layers_per_block):
                blocks.append(DenseLayer(chs, growth_rate, bottleneck, dropout))
                chs += growth_rate
            if block_idx < 2:
                out_chs = int(chs * compression)
                blocks.append(Transition(chs, out_chs, dropout))
                chs = out_chs
        self.blocks = nn.Sequential(*blocks)
        self.final_bn = nn.BatchNorm2d(chs)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(chs, num_classes)
        self.num_features = chs
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.conv1(x))
        return F.relu(self.final_bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(x)


def _dropout(p: float) -> nn.Module:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"DenseNet dropout must be in [0, 1), got {p}.")
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _cifar_densenet(name: str, depth: int, growth_rate: int, bc: bool) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar", dropout: float = 0.0) -> nn.Module:
        return CifarDenseNet(
            depth,
            growth_rate,
            bottleneck=bc,
            compression=0.5 if bc else 1.0,
            num_classes=num_classes,
            in_chans=in_chans,
            dropout=dropout,
        )

    return ModelSpec(name, build, cifar_native=True)


FAMILY = declare_family(Family(
    name="densenet",
    arxiv="1608.06993",
    module=__name__,
    models=(_cifar_densenet("densenet_40_12", 40, 12, bc=False),
            _cifar_densenet("densenet_bc_40_12", 40, 12, bc=True),
            _cifar_densenet("densenet_bc_100_12", 100, 12, bc=True),
            _cifar_densenet("densenet_bc_190_40", 190, 40, bc=True),
            *map(timm_spec, ("densenet121", "densenet169", "densenet201"))),
    # Not in the paper's tables: the family's CPU-scale representative (about 74 M MACs at 32x32;
    # DenseNet-BC-100-12 already needs about 300 M). Same depth as DenseNet-40, 6 bottleneck layers per block.
    # It stands for DenseNet-BC in the ranking claim (archbench.claims); plain DenseNet, which the claim
    # ranks apart, is represented there by densenet_40_12 (the paper's smallest, about 270 M MACs).
    small_representative="densenet_bc_40_12",
))
