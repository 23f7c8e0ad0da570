"""Model complexity: parameters, MACs and activations (fvcore), cross-checked with FlopCounterMode.

fvcore counts one fused multiply-add as one "flop"; this suite calls that number MACs
everywhere. `torch.utils.flop_counter.FlopCounterMode` counts 2 FLOPs per multiply-add, but
only for convolutions and matrix multiplies, while fvcore also charges normalization and
pooling. So on a network of convolutions and linears alone `flops_forward == 2 * macs`
exactly; elsewhere the per-operator tables of both counters show where they part.

Counts are per image (batch 1) on the eager model: fvcore traces with TorchScript, which
cannot see through `torch.compile`.
"""
from __future__ import annotations

import contextlib
import logging
import math
import warnings
from typing import Any, Iterator, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

with warnings.catch_warnings():
    # fvcore's import touches torch.jit.script, which recent torch flags as deprecated.
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis, parameter_count

from ._common import batch1_shape, eval_mode

# fvcore operator names (after its own simplification) that FlopCounterMode counts as well;
# fvcore's other handles (batch_norm, group_norm, adaptive_avg_pool2d, upsample_*) have no
# FlopCounterMode counterpart.
MATMUL_LIKE_OPS = frozenset({"conv", "linear", "matmul", "bmm", "einsum", "addmm", "mm", "baddbmm"})


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

    macs = fvcore_macs["total"]
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
        "by_module": _top_level_breakdown(model, fvcore_macs["by_module"], params_by_prefix),
        "macs_by_operator": fvcore_macs["by_operator"],
        "flops_forward_by_operator": flops_forward_by_operator,
    }


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


def _flop_counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops})


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
