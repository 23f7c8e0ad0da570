"""ResNet v1 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016; arXiv:1512.03385).

CIFAR networks (paper section 4.2): a 3x3 convolution with 16 filters, then three stages of
n basic blocks on 32x32, 16x16 and 8x8 maps with 16, 32 and 64 filters, global average
pooling and a fully connected layer: 6n + 2 weighted layers. Where a stage halves the map and
doubles the width, the shortcut is option A: subsample by 2 and pad the new channels with
zeros, so every shortcut is parameter-free. Post-activation: conv -> BN -> ReLU, and the
block's final ReLU comes after the addition.

ImageNet networks (ResNet-18 ... 152, paper Table 1) are built by timm. timm puts the
bottleneck's stride on the 3x3 convolution (as fb.resnet.torch and torchvision do), where
the original Caffe models stride the first 1x1: same parameters, about 4.1 instead of 3.8
GMACs for ResNet-50.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Family, ModelSpec, declare_family
from .timm_adapter import timm_spec


class ZeroPadShortcut(nn.Module):
    """Option-A shortcut: stride-2 subsampling, then zero channels appended to reach ``out_chs``."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(f"ZeroPadShortcut cannot shrink channels ({in_chs} -> {out_chs}).")
        self.extra_chs = out_chs - in_chs
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_chs))


def shortcut_option_a(in_chs: int, out_chs: int, stride: int) -> nn.Module:
    if in_chs == out_chs and stride == 1:
        return nn.Identity()
    return ZeroPadShortcut(in_chs, out_chs, stride)


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, add the shortcut, then ReLU."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_chs)
        self.conv2 = nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.shortcut = shortcut_option_a(in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """The 6n+2-layer CIFAR ResNet of He et al. 2015, section 4.2."""

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {depth}.")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        stages = []
        in_chs = widths[0]
        for stage_idx, out_chs in enumerate(widths):
            blocks = []
            for block_idx in range(blocks_per_stage):
                stride = 2 if stage_idx > 0 and block_idx == 0 else 1
                blocks.append(BasicBlock(in_chs, out_chs, stride))
                in_chs = out_chs
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_chs, num_classes)
        self.num_features = in_chs
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return self.stages(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.forward_features(x)).flatten(1)
        return self.fc(x)


def init_weights(model: nn.Module) -> None:
    """He-normal convolutions (He et al. 2015, the papers' choice), unit BN, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _cifar_resnet(depth: int) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "cifar") -> nn.Module:
        return CifarResNet(depth, num_classes=num_classes, in_chans=in_chans)

    return ModelSpec(f"resnet{depth}", build, cifar_native=True)


FAMILY = declare_family(Family(
    name="resnet_v1",
    arxiv="1512.03385",
    module=__name__,
    models=(*map(_cifar_resnet, (20, 32, 44, 56, 110)),
            *map(timm_spec, ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"))),
    small_representative="resnet20",
))
