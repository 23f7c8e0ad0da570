"""EfficientNetV2 (Tan & Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021;
arXiv:2104.00298), built by timm from the ports of the official TensorFlow models
(`tf_efficientnetv2_*`).

Early stages use Fused-MBConv (a single 3x3 convolution expanding the width, then a 1x1
projection; no depthwise convolution, no squeeze-excitation), later stages MBConv (1x1
expansion -> depthwise 3x3 -> squeeze-and-excitation -> 1x1 projection), with SiLU
activations and an identity shortcut where shapes match. S is the searched network of the
paper's Table 4, M and L scale it up; B0-B3 are the official repository's smaller models,
scaled like EfficientNet-B0..B3.

Padding: timm builds the `tf_` ports with TensorFlow's dynamic "same" padding, which pads
asymmetrically at run time and costs latency in PyTorch. Here they are built with symmetric
padding (``pad_type=""``), so latency comparisons against the other families are fair; the
layer shapes, parameter counts and MACs are unchanged. TF's BatchNorm epsilon (1e-3) is kept.

CIFAR stem: the stride-2 stem convolution becomes stride 1.
"""
from __future__ import annotations

from torch import nn

from .registry import register
from .timm_adapter import create_timm_model

SYMMETRIC_PADDING = ""


def _register_efficientnetv2(variant: str) -> None:
    timm_name = f"tf_efficientnetv2_{variant}"

    @register(f"efficientnetv2_{variant}", "efficientnet_v2", builder_lib="timm")
    def build(num_classes: int, in_chans: int = 3, stem: str = "imagenet", **kwargs) -> nn.Module:
        kwargs.setdefault("pad_type", SYMMETRIC_PADDING)
        return create_timm_model(timm_name, num_classes, in_chans, stem, **kwargs)


for _variant in ("s", "m", "l", "b0", "b1", "b2", "b3"):
    _register_efficientnetv2(_variant)
