"""Device peak FLOP/s, peak memory, and the training cost figures built on them.

The peak is what a dense square matmul achieves here, measured once per machine and cached:
it is the practical ceiling a convolution network's training can approach, so
MFU = achieved / peak says how much of it a model uses. Vendor datasheet peaks are not
used because they depend on clocks and tensor-core modes the suite cannot see.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from ._common import cpu_model_name, device_label, device_name, hostname, resolve_device

DTYPES = {
    "fp32": torch.float32, "float32": torch.float32,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16,
}
# Large enough that the matmul is compute-bound (not memory- or launch-bound), small enough
# that a 2-core CPU measures it in a few seconds.
DEFAULT_MATRIX_SIZE = {"cpu": 2048, "cuda": 8192}


def device_peak_flops(
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    cache_dir: str | Path | None = None,
    matrix_size: int | None = None,
    min_reps: int = 5,
    min_time_s: float = 1.0,
    refresh: bool = False,
) -> dict[str, Any]:
    """Dense matmul FLOP/s of `device` in `dtype` (default fp32), cached per machine identity.

    The cache lives in `cache_dir` (default ~/.cache/archbench/peak, or under
    $XDG_CACHE_HOME), one JSON file per (machine, dtype, matrix size); `refresh` re-measures.
    The identity is hostname, CPU model, thread count and torch version on CPU, or the GPU
    name and torch/CUDA versions on CUDA (so identical GPU nodes share one measurement).
    Returns flops_per_s (best repetition), median_flops_per_s, dtype, method, device,
    device_name, machine_id, identity and cached.
    """
    target = resolve_device(device)
    dtype_name = _dtype_name(dtype)
    n = matrix_size or DEFAULT_MATRIX_SIZE[target.type]
    if n < 1:
        raise ValueError(f"matrix_size={matrix_size} must be a positive integer")
    identity = machine_identity(target)
    machine_id = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    cache_file = _cache_dir(cache_dir) / f"{target.type}-{dtype_name}-n{n}-{machine_id}.json"

    if not refresh and cache_file.exists():
        try:
            cached = json.loads(cache_file.read_text())
            return {**cached, "device": device_label(target), "cached": True}
        except (OSError, json.JSONDecodeError):
            pass  # a damaged cache entry is measured again and overwritten

    best, median = _matmul_flops_per_s(target, DTYPES[dtype_name], n, min_reps, min_time_s)
    result = {
        "flops_per_s": best,
        "median_flops_per_s": median,
        "dtype": dtype_name,
        "method": f"matmul n={n}",
        "device": device_label(target),
        "device_name": device_name(target),
        "machine_id": machine_id,
        "identity": identity,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    _write_json_atomic(cache_file, result)
    return {**result, "cached": False}


def machine_identity(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__,
                "cuda": torch.version.cuda,
                # TF32 changes fp32 matmul speed several-fold, so it is part of what was measured.
                "tf32": bool(torch.backends.cuda.matmul.allow_tf32)}
    return {"hostname": hostname(), "cpu": cpu_model_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def _dtype_name(dtype: str | torch.dtype | None) -> str:
    if dtype is None:
        return "fp32"
    for name, value in DTYPES.items():
        if dtype == name or dtype == value:
            return {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}.get(name, name)
    raise ValueError(f"dtype={dtype!r} is not supported; use 'fp32', 'bf16' or 'fp16' (or None for fp32)")


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
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
    _synchronize(device)
    times: list[float] = []
    while len(times) < min_reps or sum(times) < min_time_s:
        start = time.perf_counter()
        torch.matmul(a, b, out=out)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    flops = 2 * n**3
    times.sort()
    return flops / times[0], flops / times[len(times) // 2]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    # Write-then-rename: parallel sweep jobs racing on the same machine never read half a file.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new CUDA peak (e.g. before training); a no-op on CPU, whose peak cannot be reset."""
    target = resolve_device(device)
    if target.type == "cuda":
        torch.cuda.reset_peak_memory_stats(target)


def training_cost(flops_train_per_image: float, img_per_s: float, peak_flops_per_s: float) -> dict[str, float]:
    """Achieved FLOP/s (training FLOPs per image x images per second) and MFU = achieved / peak."""
    if flops_train_per_image < 0 or img_per_s < 0:
        raise ValueError(f"flops_train_per_image={flops_train_per_image} and img_per_s={img_per_s} "
                         "must be >= 0")
    if not peak_flops_per_s > 0:
        raise ValueError(f"peak_flops_per_s={peak_flops_per_s} must be > 0; measure it with device_peak_flops()")
    achieved = float(flops_train_per_image) * float(img_per_s)
    return {"achieved_flops_per_s": achieved, "mfu": achieved / float(peak_flops_per_s)}
