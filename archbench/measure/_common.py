"""Helpers shared by the complexity, latency and peak measurements."""
from __future__ import annotations

import contextlib
import platform
import socket
from typing import Iterator, Sequence

import torch
from torch import nn


def batch1_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """(C, H, W) or (1, C, H, W) -> (1, C, H, W): every count and latency is per image."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or shape[0] != 1 or min(shape) < 1:
        raise ValueError(
            f"input_shape={tuple(input_shape)} is not one image: pass (C, H, W) or (1, C, H, W), "
            "e.g. (3, 32, 32); batch sizes are separate arguments")
    return shape


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration, then each submodule's own flag back.

    Restoring per submodule (not `model.train(was_training)`) keeps deliberately frozen
    parts, such as a BatchNorm held in eval inside a training model, as they were.
    """
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def resolve_device(device: str | torch.device) -> torch.device:
    """A torch.device with an explicit index on CUDA, or a clear error if it is unusable."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r} is not a torch device; use 'cpu' or 'cuda[:N]'") from err
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available here; use device='cpu'")
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        resolved = torch.device("cuda", index)
    elif resolved.type != "cpu":
        raise ValueError(f"device={device!r} is not supported; use 'cpu' or 'cuda[:N]'")
    return resolved


def device_label(device: torch.device) -> str:
    return "cpu" if device.type == "cpu" else f"{device.type}:{device.index}"


def cpu_model_name() -> str:
    # platform.processor() is often empty or just "x86_64" on Linux; /proc/cpuinfo names the part.
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo ("flags" on x86, "Features" on ARM); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cuda_tf32_enabled(kind: str = "conv") -> bool:
    """Whether fp32 convolutions ("conv", cuDNN) or matmuls ("matmul", cuBLAS) may use TF32 now.

    Read through torch's newer fp32_precision flags where they exist: after a caller set those,
    reading the legacy allow_tf32 flags raises. "none" at one level defers to the level above;
    "none" all the way up means full fp32.
    """
    backends = torch.backends
    if kind not in ("conv", "matmul"):
        raise ValueError(f"kind={kind!r} must be 'conv' or 'matmul'")
    if hasattr(backends.cudnn, "conv") and hasattr(backends.cudnn.conv, "fp32_precision"):
        chain = ((backends.cudnn.conv, backends.cudnn, backends) if kind == "conv"
                 else (backends.cuda.matmul, backends))
        for level in chain:
            value = getattr(level, "fp32_precision", "none")
            if value != "none":
                return value == "tf32"
        return False
    return bool(backends.cudnn.allow_tf32 if kind == "conv" else backends.cuda.matmul.allow_tf32)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model_name()


def hostname() -> str:
    return socket.gethostname()
