"""ShuffleNet V2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018; arXiv:1807.11164).

Written here rather than taken from torchvision so that ``in_chans`` and the small-input stem
are constructor arguments; the layer shapes equal torchvision's ``shufflenet_v2_x*``
(tests/test_models.py checks every parameter shape against it).

Basic unit (stride 1): split the channels in two halves; one half passes unchanged, the other
goes through conv1x1 -> BN -> ReLU -> depthwise conv3x3 -> BN -> conv1x1 -> BN -> ReLU; the
halves are concatenated and the channels shuffled (2 groups) so information crosses halves.
Downsampling unit (stride 2): no split; both branches see the whole input, the left one is
depthwise conv3x3/2 -> BN -> conv1x1 -> BN -> ReLU, the right one as above with a stride-2
depthwise conv, so the width doubles. Network (paper Table 5): conv3x3/2 (24) -> max-pool/2
-> stages of 4, 8 and 4 units -> conv1x1 (1024, 2048 for 2.0x) -> global pool -> linear.

Small inputs: the ImageNet network downsamples 32x overall, which leaves a 1x1 map for a
32 px image. Two small-input stems:
- ``stem="cifar16"`` (what ``stem=auto`` picks at 64 px or less): the stem convolution
  becomes stride 1 and the max-pool stays, overall stride 16; a 32 px input ends at 2x2
  (48 M MACs for the 2.0x width).
- ``stem="cifar"``: the max-pool goes too, overall stride 8 as the other families' CIFAR
  stems; a 32 px input ends at 4x4, for about 4x the MACs (190 M for 2.0x).
Why ``auto`` keeps stride 16: see "Small inputs: overall stride" in docs/models.md.

The channel shuffle is ``torch.nn.functional.channel_shuffle``: the same permutation as the
paper's reshape-transpose-reshape, but it keeps a channels_last input channels_last, where the
reshape returned NCHW at every unit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family

STAGE_UNITS = (4, 8, 4)
# Output channels of conv1, stage2, stage3, stage4 and conv5 per width multiplier (Table 5).
STAGE_WIDTHS = {
    "0.5": (24, 48, 96, 192, 1024),
    "1.0": (24, 116, 232, 464, 1024),
    "1.5": (24, 176, 352, 704, 1024),
    "2.0": (24, 244, 488, 976, 2048),
}


def conv_bn(in_chs: int, out_chs: int, kernel: int, stride: int = 1, depthwise: bool = False, relu: bool = True):
    layers = [
        nn.Conv2d(in_chs, out_chs, kernel, stride, kernel // 2, groups=in_chs if depthwise else 1, bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ShuffleUnit(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ShuffleNetV2 unit stride must be 1 or 2, got {stride}.")
        if stride == 1 and in_chs != out_chs:
            raise ValueError(f"A stride-1 ShuffleNetV2 unit keeps its width ({in_chs} != {out_chs}).")
        self.stride = stride
        branch_chs = out_chs // 2
        if stride == 2:
            self.branch1 = nn.Sequential(
                conv_bn(in_chs, in_chs, 3, stride, depthwise=True, relu=False),
                conv_bn(in_chs, branch_chs, 1),
            )
            branch2_in = in_chs
        else:
            self.branch1 = nn.Identity()
            branch2_in = branch_chs
        self.branch2 = nn.Sequential(
            conv_bn(branch2_in, branch_chs, 1),
            conv_bn(branch_chs, branch_chs, 3, stride, depthwise=True, relu=False),
            conv_bn(branch_chs, branch_chs, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, processed = x.chunk(2, dim=1)
            out = torch.cat([kept, self.branch2(processed)], dim=1)
        else:
            out = torch.cat([self.branch1(x), self.branch2(x)], dim=1)
        return F.channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, width: str, num_classes: int = 1000, in_chans: int = 3, stem_stride: int = 2,
                 stem_pool: bool = True):
        super().__init__()
        if width not in STAGE_WIDTHS:
            raise ValueError(f"ShuffleNetV2 width {width!r} unknown; choose one of {', '.join(STAGE_WIDTHS)}.")
        stem_chs, *stage_chs, head_chs = STAGE_WIDTHS[width]
        self.conv1 = conv_bn(in_chans, stem_chs, 3, stem_stride)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if stem_pool else nn.Identity()
        stages = []
        in_chs = stem_chs
        for num_units, out_chs in zip(STAGE_UNITS, stage_chs):
            units = [ShuffleUnit(in_chs, out_chs, 2)]
            units += [ShuffleUnit(out_chs, out_chs, 1) for _ in range(num_units - 1)]
            stages.append(nn.Sequential(*units))
            in_chs = out_chs
        self.stages = nn.Sequential(*stages)
        self.conv5 = conv_bn(in_chs, head_chs, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(head_chs, num_classes)
        self.num_features = head_chs
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.stages(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(x)


def _shufflenet(width: str) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "imagenet") -> nn.Module:
        return ShuffleNetV2(width, num_classes=num_classes, in_chans=in_chans,
                            stem_stride=2 if stem == "imagenet" else 1, stem_pool=stem != "cifar")

    return ModelSpec(f"shufflenet_v2_x{width.replace('.', '_')}", build)


FAMILY = declare_family(Family(
    name="shufflenet_v2",
    arxiv="1807.11164",
    module=__name__,
    models=tuple(map(_shufflenet, STAGE_WIDTHS)),
    small_representative="shufflenet_v2_x2_0",
    # Stride 16 for small inputs: at stride 8 the network costs 3-4x the MACs (above the 150 M
    # band of the small representatives) and, measured, 3x the training time without gaining
    # accuracy at CPU-scale budgets; docs/models.md gives the measurement.
    small_input_stems=("cifar16", "cifar"),
))
