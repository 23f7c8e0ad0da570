"""Device peak FLOP/s, peak memory, and the training cost figures built on them.

The peak is what a dense square matmul achieves here, measured once per machine and precision
(fp32 with or without TF32, bf16, fp16) and cached:
it is the practical ceiling a convolution network's training can approach, so
MFU = achieved / peak says how much of it a model uses. Vendor datasheet peaks are not
used because they depend on clocks and tensor-core modes the suite cannot see.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import torch

from archbench.base.device import (cpu_flags, cpu_model, cuda_tf32_enabled, device_label, device_name, hostname,
                              resolve_device, synchronize)
from archbench.base.files import atomic_write_bytes
from archbench.measure.energy import gpu_neighbours
from archbench.quiet import QuietSettings, judge, load_1m
from archbench.base.numerics import NATIVE_CPU_FLAGS, precision_name, torch_dtype

# Large enough that the matmul is compute-bound (not memory- or launch-bound), small enough
# that a 2-core CPU measures it in a few seconds.
DEFAULT_MATRIX_SIZE = {"cpu": 2048, "cuda": 8192}


def device_peak_flops(
    device: str | torch.device = "cpu",
    precision: str | torch.dtype | None = "fp32",
    tf32: bool | None = None,
    cache_dir: str | Path | None = None,
    matrix_size: int | None = None,
    min_reps: int = 5,
    min_time_s: float = 1.0,
    refresh: bool = False,
) -> dict[str, Any]:
    """Dense matmul FLOP/s of `device` in `precision`, cached per machine identity and precision.

    `precision` is "fp32", "bf16" or "fp16" (also "off" for fp32, as in `train.amp`, or a torch
    dtype). `tf32` applies to fp32 on CUDA: True measures with TF32 tensor cores, False without,
    None follows what cuDNN convolutions use now (TF32 by default), since convolutions are most
    of a CNN's FLOPs. On CPU `tf32` must be None or False. A precision the device has no native
    arithmetic for (bf16 or fp16 on a CPU without avx512_bf16/amx or avx512_fp16, bf16 on a
    GPU before Ampere) is not measured: the entry has `supported` False, `flops_per_s` None
    and a `reason`.

    The cache lives in `cache_dir` (default ~/.cache/archbench/peak, or under $XDG_CACHE_HOME),
    one JSON file per (machine, precision with its TF32 setting, matrix size); `refresh`
    re-measures. The identity is hostname, CPU model, thread count and torch version on CPU,
    or the GPU name and torch/CUDA versions on CUDA (so identical GPU nodes share one
    measurement). Returns precision, tf32 (None on CPU), supported, flops_per_s (best
    repetition), median_flops_per_s, method, device, device_name, machine_id, identity, cached.
    """
    target = resolve_device(device)
    name = precision_name(precision)
    tf32 = _resolve_tf32(tf32, name, target)
    n = matrix_size or DEFAULT_MATRIX_SIZE[target.type]
    if n < 1:
        raise ValueError(f"matrix_size={matrix_size} must be a positive integer")
    identity = machine_identity(target)
    machine_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    entry = {"precision": name, "tf32": tf32, "device": device_label(target), "device_name": device_name(target),
             "machine_id": machine_id, "identity": identity}

    unsupported = _unsupported_reason(name, target)
    if unsupported:
        return {**entry, "supported": False, "reason": unsupported, "flops_per_s": None,
                "median_flops_per_s": None, "method": None, "cached": False}

    label = f"{name}-tf32" if tf32 else name
    cache_file = _cache_dir(cache_dir) / f"{target.type}-{label}-n{n}-{machine_id}.json"
    if not refresh and cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
            return {**cached, "device": device_label(target), "cached": True}
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache entry is measured again and overwritten

    neighbours = gpu_neighbours(target)
    others_before, load_before, tick = neighbours() if neighbours else None, load_1m(), time.perf_counter()
    with _matmul_tf32(target, tf32):
        best, median = _matmul_flops_per_s(target, torch_dtype(name), n, min_reps, min_time_s)
    # A peak measured on a busy machine is too low and is cached: judged by the quiet check's rule
    # (archbench.quiet), as of this measurement, and the judgement is cached with it.
    quiet, under = judge(QuietSettings(timeout_s=0), torch.get_num_threads() if target.type == "cpu" else 1,
                         load_before, None, load_1m(), time.perf_counter() - tick, 0.0,
                         {"before": others_before, "after": neighbours()} if neighbours else None)
    result = {**entry, "supported": True, "flops_per_s": best, "median_flops_per_s": median,
              "method": f"matmul n={n}", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "load_avg_1m": load_before, "quiet": quiet, **({"under_load": under} if under else {})}
    # Atomic: parallel sweep jobs racing on the same machine never read half a file.
    atomic_write_bytes(cache_file, json.dumps(result, indent=2).encode())
    return {**result, "cached": False}


def machine_identity(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
                "cuda": torch.version.cuda}
    return {"hostname": hostname(), "cpu": cpu_model(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _resolve_tf32(tf32: bool | None, precision: str, device: torch.device) -> bool | None:
    if device.type == "cpu":
        if tf32:
            raise ValueError(f"tf32={tf32!r} applies to CUDA only; on CPU pass tf32=None (or False)")
        return None
    if precision != "fp32":
        return None  # TF32 only changes fp32 arithmetic
    return cuda_tf32_enabled("conv") if tf32 is None else bool(tf32)


def _unsupported_reason(precision: str, device: torch.device) -> str | None:
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "bf16" and torch.cuda.get_device_capability(device) < (8, 0):
            return (f"{torch.cuda.get_device_name(device)} (compute capability "
                    f"{torch.cuda.get_device_capability(device)}) has no native bf16; use fp16 or fp32")
        return None
    if not torch.backends.mkldnn.is_available():
        return f"this torch build has no oneDNN (mkldnn), so {precision} matmuls on CPU are emulated"
    wanted = NATIVE_CPU_FLAGS[precision]
    if not wanted & cpu_flags():
        return (f"{cpu_model()} has no native {precision} arithmetic (none of the CPU flags "
                f"{', '.join(sorted(wanted))}); torch would emulate it, which is no ceiling to compare with")
    return None


@contextlib.contextmanager
def _matmul_tf32(device: torch.device, tf32: bool | None) -> Iterator[None]:
    """cuBLAS fp32 matmuls with TF32 on or off for the duration, then the caller's setting back.

    set_float32_matmul_precision is the one switch that works across torch versions without
    mixing torch's legacy and new TF32 flags (reading one after setting the other raises).
    """
    if device.type != "cuda" or tf32 is None:
        yield
        return
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


def _cache_dir(cache_dir: str | Path | None) -> Path:
    """cache_dir, else $ARCHBENCH_CACHE_DIR/peak (as the data and precision caches), else the XDG cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("ARCHBENCH_CACHE_DIR"):
        return Path(os.environ["ARCHBENCH_CACHE_DIR"]) / "peak"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "archbench" / "peak"


def _matmul_flops_per_s(device: torch.device, dtype: torch.dtype, n: int,
                        min_reps: int, min_time_s: float) -> tuple[float, float]:
    """(best, median) FLOP/s of an n x n @ n x n matmul, 2 n^3 FLOPs each."""
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG stream alone
    a = torch.randn((n, n), generator=generator).to(device=device, dtype=dtype)
    b = torch.randn((n, n), generator=generator).to(device=device, dtype=dtype)
    out = torch.empty((n, n), device=device, dtype=dtype)
    for _ in range(2):  # thread pool start-up, cuBLAS handle and heuristics
        torch.matmul(a, b, out=out)
    synchronize(device)
    times: list[float] = []
    while len(times) < min_reps or sum(times) < min_time_s:
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        synchronize(device)
        times.append(time.perf_counter() - start)
    flops = 2 * n**3
    times.sort()
    return flops / times[0], flops / times[len(times) // 2]


def peak_memory_bytes(device: str | torch.device) -> int:
    """Peak memory so far: CUDA max_memory_allocated, or the process's peak resident set on CPU.

    The CPU figure covers the whole process lifetime (the kernel cannot reset it), so it
    includes the dataset and the Python runtime, not only the model's tensors.
    """
    target = resolve_device(device)
    if target.type == "cuda":
        return int(torch.cuda.max_memory_allocated(target))
    import resource  # POSIX only; imported here so the module still loads elsewhere

    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(max_rss if sys.platform == "darwin" else max_rss * 1024)


def allocated_bytes(device: str | torch.device) -> int | None:
    """CUDA memory allocated now (e.g. a resident dataset, to leave out of a peak); None on CPU."""
    target = resolve_device(device)
    return int(torch.cuda.memory_allocated(target)) if target.type == "cuda" else None


PEAK_INCLUDES_CUDA = ("CUDA tensors at their peak during training steps after the first (weights, optimizer "
                      "state, gradients, activations, and the epoch's augmented copy of the training images "
                      "that the GPU input path prepares) and the validation and test passes; excludes the "
                      "resident uint8 dataset (dataset_resident_bytes) and the first step's compilation and "
                      "cuDNN autotuning workspace")
PEAK_INCLUDES_CPU = "the process's peak resident set over its whole life (not resettable): dataset and runtime included"


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new CUDA peak (e.g. before training); a no-op on CPU, whose peak cannot be reset."""
    target = resolve_device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)


def training_cost(flops_train_per_image: float, img_per_s: float,
                  peak_flops_per_s: float | None) -> dict[str, float | None]:
    """Achieved FLOP/s (training FLOPs per image x images per second) and MFU = achieved / peak.

    Pass the peak of the precision the run trained in (`device_peak_flops(device, precision)`).
    A None peak (that precision has no native arithmetic here) gives `mfu` None: there is no
    ceiling to compare with, and the fp32 one would flatter the run.
    """
    if flops_train_per_image < 0 or img_per_s < 0:
        raise ValueError(f"flops_train_per_image={flops_train_per_image} and img_per_s={img_per_s} "
                         "must be >= 0")
    if peak_flops_per_s is not None and not peak_flops_per_s > 0:
        raise ValueError(f"peak_flops_per_s={peak_flops_per_s} must be > 0 (or None when the precision is "
                         "unsupported); measure it with device_peak_flops(device, precision)")
    achieved = float(flops_train_per_image) * float(img_per_s)
    return {"achieved_flops_per_s": achieved,
            "mfu": achieved / float(peak_flops_per_s) if peak_flops_per_s is not None else None}
