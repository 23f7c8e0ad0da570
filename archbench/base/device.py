"""What this machine is and how to address its devices: one place for every module that times, records or
picks a device.

torch is imported inside the functions that need it: the record module, which the torch-free report
reads, asks this one for the CPU model.
"""
from __future__ import annotations

import os
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


# The instruction sets that change CPU speed or numerics (oneDNN picks its kernels by them), strongest last.
ISA_FLAGS = (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))
# (vendor, cpu family) -> [(first model, last model, name)]: enough to tell a Zen 2 VM from a Zen 4 one.
MICROARCHITECTURES = {
    ("AuthenticAMD", 23): [(0x00, 0x2F, "Zen/Zen+"), (0x30, 0xFF, "Zen 2")],
    ("AuthenticAMD", 25): [(0x00, 0x0F, "Zen 3"), (0x10, 0x1F, "Zen 4"), (0x20, 0x5F, "Zen 3"),
                           (0x60, 0xAF, "Zen 4")],
    ("AuthenticAMD", 26): [(0x00, 0xFF, "Zen 5")],
    ("GenuineIntel", 6): [(0x55, 0x55, "Skylake/Cascade Lake-SP"), (0x6A, 0x6C, "Ice Lake-SP"),
                          (0x8F, 0x8F, "Sapphire Rapids"), (0xCF, 0xCF, "Emerald Rapids"),
                          (0xAD, 0xAE, "Granite Rapids")],
}


def cpu_identity(cpuinfo: str | Path = "/proc/cpuinfo", meminfo: str | Path = "/proc/meminfo") -> dict:
    """What tells two CPUs apart for speed and numerics: vendor, family/model/stepping (and the
    microarchitecture they name), the speed-relevant instruction sets, cores and memory. The model name
    alone ('AMD EPYC') covers a Zen 2 without AVX-512 and a Zen 4 with AVX512-BF16 alike."""
    fields: dict[str, str] = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key and fields:
                    break  # the first processor's block is enough
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    flags = set(fields.get("flags", fields.get("Features", "")).split())

    def number(key):
        try:
            return int(fields[key], 0)
        except (KeyError, ValueError):
            return None

    vendor, family, model = fields.get("vendor_id"), number("cpu family"), number("model")
    arch = next((name for low, high, name in MICROARCHITECTURES.get((vendor, family), [])
                 if model is not None and low <= model <= high), None)
    memory = None
    try:
        with open(meminfo) as f:
            memory = next(round(int(line.split()[1]) / 2**20, 1) for line in f if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError, IndexError):
        pass
    return {"vendor": vendor, "model_name": fields.get("model name") or cpu_model(cpuinfo), "family": family,
            "model": model, "stepping": number("stepping"), "microarchitecture": arch,
            "isa": [label for flag, label in ISA_FLAGS if flag in flags],
            "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gib": memory}


def machine_identity(device: str = "cpu") -> dict:
    """The machine a record was made on: its CPU (cpu_identity) and, on CUDA, the GPU's name, memory and
    compute capability. Speed is grouped by it; accuracy is not (see archbench.settings.numerics_identity)."""
    machine = {"cpu": cpu_identity()}
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(torch.device(device))
            machine["gpu"] = {"name": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                              "capability": f"sm_{props.major}{props.minor}"}
    return machine


def cpu_label(machine: dict | None, model_name: str | None = None) -> str:
    """'AMD EPYC (Zen 5, AVX512-BF16)': the model name with what speed depends on; the bare name for a
    record made before machines were identified (less specific: it may cover several kinds)."""
    cpu = (machine or {}).get("cpu") or {}
    name = model_name or cpu.get("model_name") or "unknown CPU"
    if not cpu:
        return name
    arch = cpu.get("microarchitecture") or (f"family {cpu['family']} model {cpu['model']}"
                                            if cpu.get("family") is not None else None)
    isa = (cpu.get("isa") or ["no AVX2"])[-1]
    return f"{name} ({', '.join(x for x in (arch, isa) if x)})"


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
