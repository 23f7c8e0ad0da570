"""Attention counted in MACs and FLOPs, the lower-bound flag, and the final feature-map size.

Hand counts: a linear layer costs tokens * in * out multiply-adds; attention costs, per head,
L * S * E for q·kᵀ and L * S * Ev for attention·v.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archbench.measure.complexity import (
    _flop_counter,
    attention_macs,
    final_feature_map,
    is_matmul_like,
    profile_complexity,
)
from archbench.models import create_model


class AttentionBlock(nn.Module):
    """Multi-head self-attention as timm's ViT block computes it, on (N, 1, tokens, dim): profiling takes 4-D input."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.squeeze(1)
        batch, tokens, dim = x.shape
        q, k, v = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class BaddbmmNet(nn.Module):
    """A matrix product through an op fvcore has no handle for."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, 8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1).unsqueeze(1)[:, :, :8]
        return torch.baddbmm(torch.zeros(x.shape[0], 1, 4), flat, self.weight.expand(x.shape[0], -1, -1)).flatten(1)


def test_attention_macs_formula():
    assert attention_macs((2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 6)) == 2 * 3 * 5 * 7 * (4 + 6)
    # Grouped-query attention: 4 query heads share 2 key/value heads; each query head still multiplies.
    assert attention_macs((1, 4, 5, 8), (1, 2, 9, 8), (1, 2, 9, 8)) == 4 * 5 * 9 * 16
    with pytest.raises(ValueError, match="attention shapes do not fit"):
        attention_macs((1, 2, 5, 8), (1, 2, 9, 4), (1, 2, 9, 8))


def test_attention_block_matches_the_hand_count():
    tokens, dim, heads = 10, 16, 2
    block = AttentionBlock(dim, heads)
    stats = profile_complexity(block, (1, tokens, dim))
    attention = heads * tokens * tokens * (dim // heads) * 2
    linears = tokens * dim * 3 * dim + tokens * dim * dim
    assert stats["macs_by_operator"]["scaled_dot_product_attention"] == attention
    assert stats["macs"] == linears + attention
    assert stats["unsupported_ops"] == {}
    assert stats["macs_lower_bound"] is False
    # Only linears and attention: FlopCounterMode must agree exactly (2 FLOPs per MAC).
    assert stats["flops_forward"] == 2 * stats["macs"]
    assert stats["flop_gap_matmul"] == 1.0


def test_flop_counter_counts_cpu_attention_forward_and_backward():
    shape = (1, 2, 32, 64)  # head dim 64: CPU's flash kernel, not the math path of bmm ops
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    forward = 2 * attention_macs(shape, shape, shape)
    with _flop_counter() as counter, torch.no_grad():
        F.scaled_dot_product_attention(q, k, v)
    assert counter.get_total_flops() == forward
    with _flop_counter() as counter:
        F.scaled_dot_product_attention(q, k, v).sum().backward()
    # The backward computes gradients for q, k and v: at least twice the forward again.
    assert counter.get_total_flops() >= 3 * forward


def test_small_vit_counts_attention():
    # ViT-Ti's blocks at 64 px (16 patches + the class token), two of them to keep the test fast.
    model = create_model("timm/vit_tiny_patch16_224", num_classes=10, input_size=64, stem="imagenet", img_size=64,
                         depth=2)
    stats = profile_complexity(model, (3, 64, 64))
    tokens, dim, depth, heads = 17, 192, 2, 3
    assert stats["macs_by_operator"]["scaled_dot_product_attention"] == depth * heads * tokens * tokens * 2 * (dim // heads)
    assert stats["macs_lower_bound"] is False
    assert stats["final_feature_map"] == [4, 4]  # the patch grid, not the (N, heads, tokens, dim) attention tensors


@pytest.mark.slow
def test_vit_tiny_at_224_within_2_percent_of_the_hand_count():
    model = create_model("timm/vit_tiny_patch16_224", num_classes=1000, input_size=224)
    stats = profile_complexity(model, (3, 224, 224))
    tokens, dim, depth, heads, mlp, classes = 197, 192, 12, 3, 768, 1000
    patches = 196 * 3 * 16 * 16 * dim
    per_block = (tokens * dim * 3 * dim + tokens * dim * dim          # qkv, projection
                 + 2 * tokens * dim * mlp                              # MLP
                 + heads * tokens * tokens * 2 * (dim // heads))       # attention
    hand = patches + depth * per_block + dim * classes
    assert abs(stats["macs"] - hand) <= 0.02 * hand, f"{stats['macs'] / 1e9:.3f} GMACs, hand count {hand / 1e9:.3f}"
    assert stats["flop_gap_matmul"] == pytest.approx(1.0)


@pytest.mark.parametrize("op, heavy", [
    ("aten::baddbmm", True), ("aten::_native_multi_head_attention", True), ("aten::conv_transpose2d", True),
    ("aten::linalg_multi_dot", True), ("aten::mkldnn_rnn_layer", True),
    ("aten::add", False), ("aten::upsample_bilinear2d", False), ("aten::movedim", False),
    ("aten::max_pool2d", False), ("aten::mean", False), ("aten::gelu", False), ("aten::channel_shuffle", False),
])
def test_matmul_like_ops_are_told_from_elementwise(op, heavy):
    assert is_matmul_like(op) is heavy


def test_uncounted_matmul_marks_macs_a_lower_bound():
    stats = profile_complexity(BaddbmmNet(), (1, 4, 4))
    assert stats["macs_lower_bound"] is True
    assert stats["macs_uncounted_ops"] == {"aten::baddbmm": 1}
    elementwise_only = profile_complexity(create_model("resnet20", num_classes=10), (3, 32, 32))
    assert elementwise_only["unsupported_ops"], "resnet20's residual adds are unsupported by fvcore"
    assert elementwise_only["macs_lower_bound"] is False and elementwise_only["macs_uncounted_ops"] == {}


def test_final_feature_map_skips_global_pooling_of_any_kind():
    fixed_pool = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.AvgPool2d(16), nn.Flatten())
    assert final_feature_map(fixed_pool, torch.zeros(1, 3, 32, 32)) == [16, 16]
    # A convolutional classifier after the pooling (timm's ResNetV2) outputs 1x1: not a feature map.
    conv_head = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 10, 1))
    assert final_feature_map(conv_head, torch.zeros(1, 3, 32, 32)) == [16, 16]
    # A map that is already 1x1 stays 1x1: the pooling layer after it does not hide it.
    tiny = nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1))
    assert final_feature_map(tiny.eval(), torch.zeros(1, 3, 4, 4)) == [1, 1]
    assert final_feature_map(nn.Linear(4, 2), torch.zeros(1, 4)) is None


def test_profile_records_the_final_feature_map():
    model = create_model("shufflenet_v2_x0_5", num_classes=10, input_size=32, stem="cifar16")
    assert profile_complexity(model, (3, 32, 32))["final_feature_map"] == [2, 2]
