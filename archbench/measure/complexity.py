"""Model complexity: parameters, MACs and activations (fvcore), cross-checked with FlopCounterMode.

fvcore counts one fused multiply-add as one "flop"; this suite calls that number MACs
everywhere. `torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per multiply-add, but
only for convolutions and matrix multiplies, while fvcore also charges normalization and
pooling. So on a network of convolutions and linears alone `flops_forward == 2 * macs`
exactly; elsewhere the per-operator tables of both counters show where they part.

Attention: neither counter knows `scaled_dot_product_attention` out of the box (fvcore lists it
as unsupported; FlopCounterMode knows the CUDA kernels but not the CPU one), so both get a
formula here: q·kᵀ and attention·v, per head. The softmax and scaling are elementwise and,
like every other elementwise op, not charged. Any other unsupported operator that does
matmul- or convolution-like work leaves the MACs a lower bound, and the record says so.

Counts are per image (batch 1) on the eager model: fvcore traces with TorchScript, which
cannot see through `torch.compile`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

with warnings.catch_warnings():
    # fvcore's import touches torch.jit.script, which recent torch flags as deprecated.
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, parameter_count
    from fvcore.nn.jit_handles import get_shape

from ._common import batch1_shape, eval_mode

# fvcore operator names (after its own simplification) that FlopCounterMode counts as well;
# fvcore's other handles (batch_norm, group_norm, adaptive_avg_pool2d, upsample_*) have no
# FlopCounterMode counterpart.
MATMUL_LIKE_OPS = frozenset(
    {"conv", "linear", "matmul", "bmm", "einsum", "addmm", "mm", "baddbmm", "scaled_dot_product_attention"}
)
# Words in an operator's name that mark real arithmetic (a product of two operands summed over
# an axis): if fvcore skips such an op, the MACs it reports are only a lower bound. Matched
# against the words of the name ("aten::_native_multi_head_attention" -> native, multi, head,
# attention), so that e.g. "upsample_bilinear2d" or "movedim" do not match by accident.
_MATMUL_LIKE_WORDS = re.compile(
    r"mm|bmm|addmm|addbmm|baddbmm|matmul|mv|addmv|dot|vdot|inner|outer|ger|einsum|tensordot|linear|bilinear"
    r"|conv\w*|attention|lstm|gru|rnn\w*"
)
# fvcore reports these as unsupported, but they only move data (no MACs to count).
_DATA_MOVEMENT_OPS = ("aten::channel_shuffle", "aten::native_channel_shuffle", "aten::pixel_shuffle",
                      "aten::pixel_unshuffle")
# Layers whose 4-D output is always an (N, C, H, W) feature map (see final_feature_map).
_SPATIAL_LAYERS = (nn.Conv2d, nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.MaxPool2d, nn.AvgPool2d,
                   nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def profile_complexity(model: nn.Module, input_shape: Sequence[int]) -> dict[str, Any]:
    """Params, MACs, activations and FLOPs of `model` for one image of `input_shape`.

    `input_shape` is (C, H, W) or (1, C, H, W). The model is counted in eval mode and each
    submodule's mode is restored afterwards; parameters, gradients and BatchNorm running
    statistics are left untouched. Returned keys:

    - params, trainable_params: parameter counts (shared parameters once).
    - macs: fvcore total, multiply-adds per image. activations: fvcore output elements.
    - flops_forward: FlopCounterMode, forward pass per image.
    - flops_train: FlopCounterMode, forward plus backward to every trainable parameter,
      per image: the training cost of one image.
    - flop_gap: flops_forward / (2 * macs). flop_gap_matmul: the same against fvcore's
      convolution and matrix-multiply ops only; it is 1.0 unless one counter misses such an op.
    - unsupported_ops: {op: count} that fvcore skipped (counted as zero MACs).
    - macs_lower_bound: True when one of those does matmul- or convolution-like arithmetic, so
      `macs` misses real work; macs_uncounted_ops: {op: count} of exactly those.
    - final_feature_map: [H, W] of the last spatial feature map before global pooling (the
      network's overall stride is input size / H), or None if the model has no 4-D feature map.
    - by_module: [{module, macs, params}] for the top-level children, plus an "(other)" row
      for whatever the root itself computes or owns, so the rows sum to the totals.
    - macs_by_operator (fvcore), flops_forward_by_operator (FlopCounterMode).
    - input_shape: the traced shape, [1, C, H, W].
    """
    shape = batch1_shape(input_shape)
    image = _fixed_input(model, shape)
    with eval_mode(model):
        fvcore_macs = _fvcore_macs(model, image)
        activations = _fvcore_activations(model, image)
        flops_forward, flops_forward_by_operator = _count_forward_flops(model, image)
        flops_train = _count_train_flops(model, image)
        feature_map = final_feature_map(model, image)

    macs = fvcore_macs["total"]
    uncounted = {op: n for op, n in fvcore_macs["unsupported_ops"].items() if is_matmul_like(op)}
    macs_matmul = sum(v for op, v in fvcore_macs["by_operator"].items() if op in MATMUL_LIKE_OPS)
    params_by_prefix = parameter_count(model)
    return {
        "params": int(params_by_prefix[""]),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "macs": macs,
        "activations": activations,
        "flops_forward": flops_forward,
        "flops_train": flops_train,
        "flop_gap": _ratio(flops_forward, 2 * macs),
        "flop_gap_matmul": _ratio(flops_forward, 2 * macs_matmul),
        "input_shape": list(shape),
        "unsupported_ops": fvcore_macs["unsupported_ops"],
        "macs_lower_bound": bool(uncounted),
        "macs_uncounted_ops": uncounted,
        "final_feature_map": feature_map,
        "by_module": _top_level_breakdown(model, fvcore_macs["by_module"], params_by_prefix),
        "macs_by_operator": fvcore_macs["by_operator"],
        "flops_forward_by_operator": flops_forward_by_operator,
    }


def attention_macs(query_shape: Sequence[int], key_shape: Sequence[int], value_shape: Sequence[int]) -> int:
    """Multiply-adds of scaled dot-product attention: q·kᵀ plus attention·v, for every head.

    Shapes are (..., L, E), (..., S, E) and (..., S, Ev) with the same leading (batch, head)
    dimensions on the query: B*H*L*S*E + B*H*L*S*Ev. With grouped-query attention the key and
    value carry fewer heads, but every query head still multiplies against them, so the query's
    leading dimensions count.
    """
    *leading, length, embed = (int(d) for d in query_shape)
    source, value_embed = int(key_shape[-2]), int(value_shape[-1])
    if int(value_shape[-2]) != source or int(key_shape[-1]) != embed:
        raise ValueError(
            f"attention shapes do not fit: query {list(query_shape)}, key {list(key_shape)}, "
            f"value {list(value_shape)}; expected (..., L, E), (..., S, E), (..., S, Ev)")
    return math.prod(leading) * length * source * (embed + value_embed)


def is_matmul_like(op_name: str) -> bool:
    """Whether an operator name (``aten::baddbmm``, ``aten::_native_multi_head_attention``) does real arithmetic."""
    words = op_name.rpartition("::")[2].split("_")
    return any(_MATMUL_LIKE_WORDS.fullmatch(word) for word in words if word)


def final_feature_map(model: nn.Module, image: torch.Tensor) -> list[int] | None:
    """[H, W] of the last map a convolution, normalization or pooling layer outputs, global pooling excepted.

    Only those layer types, because their outputs are (N, C, H, W) by construction, where any
    other layer may output a 4-D tensor of another meaning (a ViT's (N, heads, tokens, dim)
    attention tensors); what runs inline between them (residual adds, functional activations)
    keeps the size. Global pooling is recognised by what it does, whatever its class: a parameter-free
    layer that reduces a larger map to 1x1; the 1x1 maps after it (a ResNetV2's convolutional
    classifier, a squeeze-excitation's 1x1 convolutions) are not feature maps. Networks that
    downsample with neither (token merging in a Swin) report the map of their last convolution.
    """
    seen: list[list[int]] = []
    pooled = False  # inside a head after global pooling, until a larger map shows up again

    def remember(module: nn.Module, inputs: tuple, output) -> None:
        nonlocal pooled
        if not (isinstance(output, torch.Tensor) and output.dim() == 4):
            return
        size = [int(output.shape[2]), int(output.shape[3])]
        first = inputs[0] if inputs else None
        if (size == [1, 1] and isinstance(first, torch.Tensor) and first.dim() == 4
                and first.shape[2] * first.shape[3] > 1 and next(module.parameters(), None) is None):
            pooled = True
        elif size != [1, 1] or not pooled:
            pooled = False
            seen.append(size)

    handles = [m.register_forward_hook(remember) for m in model.modules() if isinstance(m, _SPATIAL_LAYERS)]
    try:
        with torch.no_grad():
            model(image)
    finally:
        for handle in handles:
            handle.remove()
    return seen[-1] if seen else None


def _fixed_input(model: nn.Module, shape: tuple[int, ...]) -> torch.Tensor:
    # A private generator: drawing from the global RNG here would shift the caller's seeded
    # stream (data order, init) depending on whether profiling ran first.
    generator = torch.Generator().manual_seed(0)
    reference = next(model.parameters(), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    return torch.randn(shape, generator=generator).to(device=device, dtype=dtype)


@contextlib.contextmanager
def _quiet_fvcore() -> Iterator[None]:
    """Silence fvcore's per-op log lines and the TorchScript tracer's warnings."""
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _fvcore_macs(model: nn.Module, image: torch.Tensor) -> dict[str, Any]:
    with _quiet_fvcore(), torch.no_grad():
        analysis = FlopCountAnalysis(model, (image,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        analysis.set_op_handle("aten::scaled_dot_product_attention", _sdpa_macs_jit)
        analysis.set_op_handle(**{op: None for op in _DATA_MOVEMENT_OPS})
        try:
            total = analysis.total()
        except Exception as err:
            raise RuntimeError(
                f"fvcore could not trace {type(model).__name__} at input shape {list(image.shape)}: "
                f"{err}. Profile the eager model (before torch.compile) with a plain tensor input."
            ) from err
        return {
            "total": int(total),
            "by_operator": {op: int(v) for op, v in sorted(analysis.by_operator().items())},
            "by_module": dict(analysis.by_module()),
            "unsupported_ops": {op: int(n) for op, n in sorted(analysis.unsupported_ops().items())},
        }


def _sdpa_macs_jit(inputs: list, outputs: list) -> int:
    """fvcore handle for aten::scaled_dot_product_attention (inputs: query, key, value, ...)."""
    query, key, value = (get_shape(v) for v in inputs[:3])
    return attention_macs(query, key, value)


def _fvcore_activations(model: nn.Module, image: torch.Tensor) -> int:
    with _quiet_fvcore(), torch.no_grad():
        analysis = ActivationCountAnalysis(model, (image,))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
        return int(analysis.total())


def _conv_backward_flops(
    grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
    _output_padding, _groups, output_mask, out_shape=None, **_kwargs,
) -> int:
    """FLOPs of aten.convolution_backward: the forward convolution's count per gradient asked for.

    Each multiply-add x * w of the forward pass appears exactly once in the input gradient
    and once in the weight gradient, whatever the stride, padding or groups. torch's own
    formula (up to at least 2.14) ignores `groups` for the weight gradient and so charges a
    depthwise convolution `groups` times too much; this replaces it.
    """
    batch, spatial = x_shape[0], (x_shape if transposed else grad_out_shape)[2:]
    forward = 2 * batch * math.prod(spatial) * math.prod(w_shape)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _sdpa_cpu_flops(query_shape, key_shape, value_shape, *_args, out_shape=None, **_kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward_flops(grad_out_shape, query_shape, key_shape, value_shape, *_args, out_shape=None,
                             **_kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _flop_counter() -> FlopCounterMode:
    # torch registers formulas for the CUDA attention kernels only; the CPU flash kernel that
    # F.scaled_dot_product_attention dispatches to gets torch's own formulas here.
    return FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten.convolution_backward: _conv_backward_flops,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_cpu_flops,
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_cpu_backward_flops,
    })


def _count_forward_flops(model: nn.Module, image: torch.Tensor) -> tuple[int, dict[str, int]]:
    counter = _flop_counter()
    with counter, torch.no_grad():
        model(image)
    by_operator = counter.get_flop_counts().get("Global", {})
    return int(counter.get_total_flops()), {str(op): int(n) for op, n in sorted(by_operator.items(), key=str)}


def _count_train_flops(model: nn.Module, image: torch.Tensor) -> int:
    """Forward plus backward FLOPs, as one training step spends them on one image.

    autograd.grad (not .backward()) leaves every parameter's .grad as the caller had it. The
    input does not require grad, as in training, so the first layer computes no input gradient.
    """
    trainable = [p for p in model.parameters() if p.requires_grad]
    counter = _flop_counter()
    with counter:
        loss = _scalar_loss(model(image))
        if trainable and loss.requires_grad:
            torch.autograd.grad(loss, trainable, allow_unused=True)
    return int(counter.get_total_flops())


def _scalar_loss(output: Any) -> torch.Tensor:
    """Sum of every floating tensor in the output; the backward of a sum costs no FLOPs."""
    if isinstance(output, torch.Tensor):
        return output.float().sum() if output.is_floating_point() else torch.zeros(())
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        parts = [_scalar_loss(item) for item in output]
        return torch.stack([p.to(parts[0].device) for p in parts]).sum() if parts else torch.zeros(())
    return torch.zeros(())


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _top_level_breakdown(
    model: nn.Module, macs_by_module: dict[str, int], params_by_prefix: dict[str, int]
) -> list[dict[str, Any]]:
    rows = [
        {"module": name, "macs": int(macs_by_module.get(name, 0)), "params": int(params_by_prefix.get(name, 0))}
        for name, _ in model.named_children()
    ]
    other_macs = int(macs_by_module.get("", 0)) - sum(r["macs"] for r in rows)
    other_params = int(params_by_prefix.get("", 0)) - sum(r["params"] for r in rows)
    if other_macs or other_params:
        rows.append({"module": "(other)", "macs": other_macs, "params": other_params})
    return rows
