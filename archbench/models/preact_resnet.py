"""ResNet v2, pre-activation (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016;
arXiv:1603.05027).

The residual unit moves batch normalization and ReLU in front of each convolution
("pre-activation"), so the shortcut path is a pure identity from unit to unit and nothing is
applied after the addition:

    basic:      x + conv3x3(ReLU(BN(conv3x3(ReLU(BN(x))))))
    bottleneck: x + conv1x1(ReLU(BN(conv3x3(ReLU(BN(conv1x1(ReLU(BN(x)))))))))

The bottleneck has a single 3x3 convolution between two 1x1 convolutions, with a quarter of
the output width inside. Batch normalization was already in ResNet v1; what v2 changes is the
order, so that the addition is the last operation of a unit and no ReLU follows it. Two details from the paper's appendix: the first unit takes the
activation right after the stem convolution, before the split into the two paths, and the
last unit is followed by an extra BN -> ReLU before pooling. A unit that changes width or
resolution needs a shortcut that does too. A 1x1 projection (bottleneck units) sees the
pre-activated input, shared with the residual branch (paper appendix); the parameter-free
option-A shortcut of basic units (subsample, zero-pad) sees the unit's raw input, except in the
network's first unit, whose shortcut also takes the activated stem output.

CIFAR networks (paper section 4, Table 3): 3 stages on 32, 16 and 8 px.
- basic units (ResNet-20/110): 16, 32, 64 filters, 6n+2 layers, option-A zero-padding
  shortcuts as in the original ResNet-110 the paper compares against;
- bottleneck units (ResNet-164/1001): 64, 128, 256 output filters (16, 32, 64 inside), 9n+2
  layers, 1x1 projection shortcuts where the shape changes. The stride sits on the first 1x1 conv,
  as in the authors' code (KaimingHe/resnet-1k-layers, resnet-pre-act.lua), not on the 3x3.

ImageNet networks (ResNetV2-18 ... 152) are built by timm (`resnetv2_*`), which follows the
same unit.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family
from .resnet import init_weights, shortcut_option_a
from .timm_adapter import timm_spec


class PreActBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, preact_shortcut: bool = False):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        self.shortcut = shortcut_option_a(in_chs, out_chs, stride)
        self.preact_shortcut = preact_shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_act = F.relu(self.bn1(x))
        shortcut = self.shortcut(x_act if self.preact_shortcut else x)
        out = self.conv1(x_act)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class PreActBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, preact_shortcut: bool = False):
        super().__init__()
        mid_chs = out_chs // self.expansion
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, mid_chs, 1, stride=stride, bias=False)  # the authors stride here
        self.bn2 = nn.BatchNorm2d(mid_chs)
        self.conv2 = nn.Conv2d(mid_chs, mid_chs, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(mid_chs)
        self.conv3 = nn.Conv2d(mid_chs, out_chs, 1, bias=False)
        needs_projection = in_chs != out_chs or stride != 1
        self.shortcut = nn.Conv2d(in_chs, out_chs, 1, stride=stride, bias=False) if needs_projection else nn.Identity()
        # A projection must see the activated input (paper appendix); an identity may not.
        self.preact_shortcut = preact_shortcut or needs_projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_act = F.relu(self.bn1(x))
        shortcut = self.shortcut(x_act if self.preact_shortcut else x)
        out = self.conv1(x_act)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + shortcut


class PreActNetwork(nn.Module):
    """The pre-activation trunk shared with Wide ResNets: conv1 -> stages -> BN-ReLU -> pool -> fc.

    Units end with an addition and no activation, so the network needs one BN-ReLU after the last unit.
    """

    def _finish(self, stages: list[nn.Module], num_features: int, num_classes: int) -> None:
        self.stages = nn.Sequential(*stages)
        self.final_bn = nn.BatchNorm2d(num_features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_features, num_classes)
        self.num_features = num_features
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.conv1(x))
        return F.relu(self.final_bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(x)


class PreActResNet(PreActNetwork):
    """CIFAR pre-activation ResNet: 6n+2 layers with basic units, 9n+2 with bottlenecks."""

    def __init__(self, depth: int, bottleneck: bool, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        block = PreActBottleneck if bottleneck else PreActBasicBlock
        layers_per_block = 9 if bottleneck else 6
        if depth < layers_per_block + 2 or (depth - 2) % layers_per_block != 0:
            kind = "bottleneck (9n+2: 164, 1001)" if bottleneck else "basic (6n+2: 20, 110)"
            raise ValueError(f"Pre-activation ResNet depth {depth} does not fit {kind} units.")
        blocks_per_stage = (depth - 2) // layers_per_block
        stem_chs = 16
        self.conv1 = nn.Conv2d(in_chans, stem_chs, 3, padding=1, bias=False)
        stages = []
        in_chs = stem_chs
        for stage_idx, base_chs in enumerate((16, 32, 64)):
            out_chs = base_chs * block.expansion
            blocks = []
            for block_idx in range(blocks_per_stage):
                stride = 2 if stage_idx > 0 and block_idx == 0 else 1
                is_first_unit = stage_idx == 0 and block_idx == 0
                blocks.append(block(in_chs, out_chs, stride, preact_shortcut=is_first_unit))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self._finish(stages, in_chs, num_classes)


def _cifar_preact(depth: int, bottleneck: bool) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar") -> nn.Module:
        return PreActResNet(depth, bottleneck, num_classes=num_classes, in_chans=in_chans)

    return ModelSpec(f"preact_resnet{depth}", build, cifar_native=True)


FAMILY = declare_family(Family(
    name="resnet_v2",
    arxiv="1603.05027",
    module=__name__,
    models=(*(_cifar_preact(depth, bottleneck)
              for depth, bottleneck in ((20, False), (110, False), (164, True), (1001, True))),
            *map(timm_spec, ("resnetv2_18", "resnetv2_34", "resnetv2_50", "resnetv2_101", "resnetv2_152"))),
    small_representative="preact_resnet20",
))
