"""ResNeXt (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017;
arXiv:1611.05431).

A ResNeXt block aggregates C parallel transformations of the same shape ("cardinality" C), each
a bottleneck of width d; the paper shows (its Fig. 3) that this equals one bottleneck whose 3x3
convolution is grouped into C groups of d channels, which is how it is built here:

    x + BN(conv1x1(ReLU(BN(gconv3x3_C(ReLU(BN(conv1x1(x)))))))), then ReLU

CIFAR networks (paper section 5.3, Table 7; the authors' code facebookresearch/ResNeXt): a 3x3
stem convolution with 64 filters, then three stages of three blocks (ResNeXt-29: 3 x 3 x 3 + 2
layers) on 32, 16 and 8 px maps. A stage of base width w (64, 128, 256) has C x d x w / 64
channels inside its blocks and 4w at its output (256, 512, 1024); "8x64d" is C = 8, d = 64.
The stride sits on the grouped 3x3 of a stage's first block, and a shortcut that changes width or
resolution is a 1x1 projection with BN (the authors' shortcut type B); global average pooling and
a linear classifier end the network.

The ImageNet ResNeXt-50/101 (32x4d, paper Table 1) are built by timm for profiling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family
from .resnet import init_weights
from .timm_adapter import timm_spec

STAGE_WIDTHS = (64, 128, 256)  # paper Table 7's base widths; each stage outputs 4x its width
EXPANSION = 4


class ResNeXtBlock(nn.Module):
    """Bottleneck with a grouped 3x3: C groups of ``group_width`` channels, ``out_chs`` at the output."""

    def __init__(self, in_chs: int, out_chs: int, cardinality: int, group_width: int, stride: int = 1):
        super().__init__()
        inner_chs = cardinality * group_width
        self.conv1 = nn.Conv2d(in_chs, inner_chs, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(inner_chs)
        # The authors' code strides the grouped 3x3, not the first 1x1.
        self.conv2 = nn.Conv2d(inner_chs, inner_chs, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(inner_chs)
        self.conv3 = nn.Conv2d(inner_chs, out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_chs)
        if in_chs != out_chs or stride != 1:
            self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_chs))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class CifarResNeXt(nn.Module):
    """ResNeXt-(9n+2) for 32 px inputs: stem, three stages of n blocks, pooling, classifier.

    Args:
        depth: 9n + 2 (29 in the paper: three blocks per stage).
        cardinality: C, the number of groups of the 3x3 convolutions.
        bottleneck_width: d, the width of one group in the first stage (it doubles with the stage width).
        width_divisor: divides every width (stem, stage widths, d) for a cheaper network of the same
            topology; 1 is the paper's network.
    """

    def __init__(self, depth: int, cardinality: int, bottleneck_width: int, num_classes: int = 10,
                 in_chans: int = 3, width_divisor: int = 1):
        super().__init__()
        if depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(f"CIFAR ResNeXt depth must be 9n+2 (11, 20, 29, ...), got {depth}.")
        if cardinality < 1 or bottleneck_width < 1 or width_divisor < 1:
            raise ValueError("ResNeXt cardinality, bottleneck_width and width_divisor must be positive integers, "
                             f"got {cardinality}, {bottleneck_width}, {width_divisor}.")
        if STAGE_WIDTHS[0] % width_divisor or bottleneck_width % width_divisor:
            raise ValueError(f"width_divisor={width_divisor} must divide the stem width {STAGE_WIDTHS[0]} and "
                             f"bottleneck_width={bottleneck_width}.")
        blocks_per_stage = (depth - 2) // 9
        stem_chs = STAGE_WIDTHS[0] // width_divisor
        self.conv1 = nn.Conv2d(in_chans, stem_chs, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_chs)
        stages = []
        in_chs = stem_chs
        for stage_idx, base in enumerate(STAGE_WIDTHS):
            # The authors' code: d scales with the stage (d x base / 64), C stays.
            group_width = bottleneck_width * base // STAGE_WIDTHS[0] // width_divisor
            out_chs = EXPANSION * base // width_divisor
            blocks = []
            for block_idx in range(blocks_per_stage):
                stride = 2 if stage_idx > 0 and block_idx == 0 else 1
                blocks.append(ResNeXtBlock(in_chs, out_chs, cardinality, group_width, stride))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chs, num_classes)
        self.num_features = in_chs
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(F.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.forward_features(x)).flatten(1))


def _cifar_resnext(name: str, cardinality: int, bottleneck_width: int, width_divisor: int = 1) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar") -> nn.Module:
        return CifarResNeXt(29, cardinality, bottleneck_width, num_classes=num_classes, in_chans=in_chans,
                            width_divisor=width_divisor)

    return ModelSpec(name, build, cifar_native=True)


FAMILY = declare_family(Family(
    name="resnext",
    arxiv="1611.05431",
    module=__name__,
    models=(_cifar_resnext("resnext29_8x64d", 8, 64),
            _cifar_resnext("resnext29_16x64d", 16, 64),
            # Not in the paper: ResNeXt-29 8x64d with every width divided by 8 (stem 8, stage outputs
            # 32/64/128, 8 groups of 8/16/32 channels), same depth and cardinality; about 85 M MACs at
            # 32x32, where the paper's networks need 5.4 and 10.7 G.
            _cifar_resnext("resnext29_8x64d_w8", 8, 64, width_divisor=8),
            *map(timm_spec, ("resnext50_32x4d", "resnext101_32x4d"))),
    small_representative="resnext29_8x64d_w8",
))
