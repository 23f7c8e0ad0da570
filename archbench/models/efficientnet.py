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

Small inputs: the network downsamples 32x overall (a stride-2 stem convolution, then four
stride-2 stages), which leaves a 1x1 map for a 32 px image. Two small-input stems:
- ``stem="cifar16"`` (what ``stem=auto`` picks at 64 px or less): the stem convolution
  becomes stride 1, overall stride 16; a 32 px input ends at 2x2 (60 M MACs for B0), and 8 of
  B0's 21 blocks run at 2x2.
- ``stem="cifar"``: the first strided stage (a Fused-MBConv) becomes stride 1 as well, overall
  stride 8 as the other families' CIFAR stems; a 32 px input ends at 4x4.
Why ``auto`` keeps stride 16: see "Small inputs: overall stride" in docs/models.md.
"""
from __future__ import annotations

from torch import nn

from .registry import Family, ModelSpec, declare_family
from .timm_adapter import create_timm_model, describe_conv

SYMMETRIC_PADDING = ""


def _efficientnetv2(variant: str) -> ModelSpec:
    timm_name = f"tf_efficientnetv2_{variant}"

    def build(num_classes: int, in_chans: int = 3, stem: str = "imagenet", **kwargs) -> nn.Module:
        kwargs.setdefault("pad_type", SYMMETRIC_PADDING)
        model = create_timm_model(timm_name, num_classes, in_chans, "imagenet" if stem == "imagenet" else "cifar",
                                  **kwargs)
        if stem == "cifar":
            model.archbench_info["stem_changes"].append(_unstride_first_stage(model))
        return model

    return ModelSpec(f"efficientnetv2_{variant}", build, builder_lib="timm")


def _unstride_first_stage(model: nn.Module) -> str:
    """Set the first strided convolution of the blocks to stride 1; returns what changed.

    Only the stride changes: with symmetric padding a 3x3 convolution pads 1 at stride 1 and 2
    alike, and timm's "same" padding is computed from the stride at run time. The block has no
    shortcut to adjust, since timm gives a block a shortcut only where stride is 1 and the width
    stays, and this block widens.
    """
    for name, module in model.blocks.named_modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            before = describe_conv(module)
            module.stride = (1, 1)
            return f"blocks.{name}: {before} -> {module.kernel_size[0]}x{module.kernel_size[1]}/1"
    raise ValueError("EfficientNetV2 has no strided block to un-stride for stem='cifar'; use stem='cifar16'.")


FAMILY = declare_family(Family(
    name="efficientnet_v2",
    arxiv="2104.00298",
    module=__name__,
    models=tuple(map(_efficientnetv2, ("s", "m", "l", "b0", "b1", "b2", "b3"))),
    small_representative="efficientnetv2_b0",
    # Stride 16 for small inputs, as for ShuffleNetV2: at stride 8 B0 leaves the 150 M MAC band of
    # the small representatives and trains at about half the speed; docs/models.md gives the measurement.
    small_input_stems=("cifar16", "cifar"),
))
