"""What this machine is and how to address its devices: one place for every module that times, records or
picks a device.

torch is imported inside the functions that need it: the record module, which the torch-free report
reads, asks this one for the CPU model.
"""
from __future__ import annotations

import platform
import socket
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:<index>"


class DeviceError(ValueError):
    """A device this machine cannot run on; the message names the fix."""


def resolve_device(device: "str | torch.device" = "auto") -> "torch.device":
    """auto, cpu, cuda or cuda:N (a string or a torch.device) as a torch.device this machine has.

    auto is a GPU when there is one. A CUDA device keeps the index it was given (none means the current
    device), so `str()` of the result is what the caller wrote; `device_label` names the index either way.
    """
    import torch

    spelled = str(device)
    if spelled == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(spelled)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device={device!r} is not one of: {DEVICE_CHOICES}") from err
    if resolved.type == "cpu" and resolved.index is None:
        return resolved
    if resolved.type != "cuda":
        raise DeviceError(f"device={device!r} is not one of: {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise DeviceError(f"device={device!r} but this machine has no CUDA device (torch {torch.__version__}: "
                          "CUDA is not available): use device=cpu or device=auto")
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise DeviceError(f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s): use device=cuda:0 ... cuda:{torch.cuda.device_count() - 1}")
    return resolved


def synchronize(device: "str | torch.device") -> None:
    """Wait for the device's queued work, so a clock read after it times the work (a no-op on a CPU)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_label(device: "torch.device") -> str:
    """"cpu" or "cuda:N", the index named even when the device was given without one."""
    if device.type == "cpu":
        return "cpu"
    if device.index is None and device.type == "cuda":
        import torch

        return f"cuda:{torch.cuda.current_device()}"
    return f"{device.type}:{device.index}"


def device_name(device: "torch.device") -> str:
    """The GPU's name, or the CPU model."""
    if device.type == "cuda":
        import torch

        return torch.cuda.get_device_name(device)
    return cpu_model()


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    # platform.processor() is often empty or just "x86_64" on Linux; /proc/cpuinfo names the part.
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags ("flags" on x86, "Features" on Arm); empty where /proc/cpuinfo cannot be read."""
    try:
        with open(cpuinfo) as f:
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
    import torch

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


def hostname() -> str:
    return socket.gethostname()
