"""Inference latency (batch 1) and throughput (a larger batch) on synthetic input.

Eval mode, `torch.inference_mode`, a fixed random input of the run's shape on the run's
device. Each measurement warms up, then repeats until both `min_reps` repetitions and
`min_time_s` seconds of timed work are reached, so fast models get many samples and slow
ones still finish. On CUDA each repetition is timed with CUDA events.

`python -m archbench.measure.latency` is the child side of `measure_latency_isolated`:
it reads a JSON request on stdin, builds the model by name, measures, and writes JSON.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from archbench.base.device import cuda_tf32_enabled, device_label, device_name, resolve_device, synchronize
from archbench.base.files import atomic_write_bytes
from archbench.base.numerics import AMP_OFF, AMPS, autocast_dtype, precision_name

from ._common import batch1_shape, eval_mode

DEFAULT_THROUGHPUT_BATCH = {"cpu": 8, "cuda": 256}
DEFAULT_BUILDER = "archbench.models:create_model"


def summarize_times(seconds: Sequence[float]) -> dict[str, Any]:
    """Median, p10, p90, interquartile range, mean and min in milliseconds, plus the count."""
    if len(seconds) == 0:
        raise ValueError("summarize_times needs at least one timing, got an empty list")
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    p10, p25, median, p75, p90 = np.percentile(ms, [10, 25, 50, 75, 90])
    return {
        "median_ms": float(median),
        "p10_ms": float(p10),
        "p90_ms": float(p90),
        "iqr_ms": float(p75 - p25),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "count": int(ms.size),
    }


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    warmup: int = 3,
    min_reps: int = 5,
    min_time_s: float = 1.0,
    channels_last: bool | None = False,
    amp: str | bool | None = "off",
    compile: bool = False,
) -> dict[str, Any]:
    """Batch-1 latency and throughput of `model` for images of `input_shape` ((C, H, W)).

    `batch_size` is the throughput batch (None: 8 on CPU, 256 on CUDA); on out-of-memory it is
    halved and retried, and the batch actually used is recorded. `amp` is the precision:
    "off" (or "fp32"), "bf16" or "fp16" (autocast). `channels_last` True measures the model and
    its input in NHWC, False in NCHW, None in whatever layout the model's weights are in now;
    `memory_format` in the result is the layout actually measured. With `compile`, each batch
    size gets its own static-shape graph (`dynamic=False`, compiler caches reset first), and
    its first call (compilation) is timed into `compile_s`, out of the statistics.

    On CUDA, cudnn.benchmark is on while measuring (and restored after), whoever calls: shapes
    are fixed, so autotuning during warm-up picks the fastest kernels, as in training. The
    result records it (None on CPU), and the TF32 setting fp32 convolutions ran with.

    The caller's model is measured in place when it already lives on `device` in the layout
    asked for (eval mode meanwhile, each submodule's mode restored after); otherwise a copy
    is converted, so the caller's model is left as it was.
    """
    image_shape = batch1_shape(input_shape)[1:]
    target = resolve_device(device)
    amp_name = _amp_name(amp)
    batch_size = _throughput_batch(batch_size, target)
    _check_repetitions(warmup, min_reps, min_time_s)
    if channels_last is None:
        channels_last = _weights_format(model) == "NHWC"

    # Other processes on the same cores skew CPU figures badly; record how busy the machine was.
    load_avg_1m = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    measured = _model_on(model, target, channels_last)
    # CUDA events and autocast follow the current device, which need not be `target`.
    on_target = torch.cuda.device(target) if target.type == "cuda" else contextlib.nullcontext()
    with on_target, _cudnn_benchmark(target) as cudnn_benchmark, eval_mode(measured):
        compile_seconds: dict[int, float] = {}

        def measure(batch: int) -> list[float]:
            runner: Callable[[torch.Tensor], Any] = measured
            if compile:
                # Static shapes for exactly this batch size, compiled from scratch: no graph generalised
                # over the shapes seen before, and no recompile limit reached by earlier models.
                torch.compiler.reset()
                runner = torch.compile(measured, dynamic=False)
            return _time_batch(runner, image_shape, batch, target, channels_last, amp_name,
                               warmup, min_reps, min_time_s, compile_seconds if compile else None)

        batch_1 = summarize_times(measure(1))
        used, times = _with_oom_halving(measure, batch_size, target)
        throughput = summarize_times(times)
        throughput.update(batch_size=used, batch_size_requested=batch_size,
                          img_per_s=used / (throughput["median_ms"] / 1e3))
        tf32 = cuda_tf32_enabled("conv") if target.type == "cuda" and amp_name == "off" else None

    if compile:
        batch_1["compile_s"], throughput["compile_s"] = compile_seconds[1], compile_seconds[used]
    return {
        "device": device_label(target),
        "device_name": device_name(target),
        "threads": torch.get_num_threads(),
        "load_avg_1m": load_avg_1m,
        "image_shape": list(image_shape),
        "batch_1": batch_1,
        "throughput": throughput,
        "compile": bool(compile),
        "compile_dynamic": False if compile else None,
        "compile_s": batch_1["compile_s"] + throughput["compile_s"] if compile else None,
        "channels_last": bool(channels_last),
        "memory_format": _measured_format(measured, channels_last),
        "amp": amp_name,
        "precision": precision_name(amp_name),
        "tf32": tf32,
        "cudnn_benchmark": cudnn_benchmark,
        "warmup": warmup,
        "min_reps": min_reps,
        "min_time_s": min_time_s,
        "isolated": False,
        "torch_version": torch.__version__,
    }


def _amp_name(amp: str | bool | None) -> str:
    # YAML reads a bare `off` as False; accept it rather than make every config quote it.
    if amp is None or amp is False or amp == "fp32":
        return AMP_OFF
    if amp not in AMPS:
        raise ValueError(f"amp={amp!r} is not one of {sorted(AMPS)}; use 'off' (fp32), 'bf16' or 'fp16'")
    return amp


def _throughput_batch(batch_size: int | None, device: torch.device) -> int:
    if batch_size is None:
        return DEFAULT_THROUGHPUT_BATCH[device.type]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer, or None for the device default")
    return batch_size


def _check_repetitions(warmup: int, min_reps: int, min_time_s: float) -> None:
    if warmup < 0:
        raise ValueError(f"warmup={warmup} must be >= 0")
    if min_reps < 1:
        raise ValueError(f"min_reps={min_reps} must be >= 1 so there is something to summarize")
    if min_time_s < 0:
        raise ValueError(f"min_time_s={min_time_s} must be >= 0")


@contextlib.contextmanager
def _cudnn_benchmark(device: torch.device) -> Iterator[bool | None]:
    """cudnn.benchmark on for the duration on CUDA (yields True), untouched on CPU (yields None)."""
    if device.type != "cuda":
        yield None
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield True
    finally:
        torch.backends.cudnn.benchmark = before


def _tensor_format(tensor: torch.Tensor) -> str:
    nhwc, nchw = tensor.is_contiguous(memory_format=torch.channels_last), tensor.is_contiguous()
    # A tensor with size-1 channel or spatial dimensions is both at once and says nothing.
    return "either" if nhwc and nchw else "NHWC" if nhwc else "NCHW" if nchw else "strided"


def _weights_format(model: nn.Module) -> str | None:
    """"NHWC" or "NCHW" when every 4-D weight agrees, "mixed" when not, None without 4-D weights."""
    formats = {_tensor_format(t) for t in (*model.parameters(), *model.buffers()) if t.dim() == 4} - {"either"}
    if not formats:
        return None
    return formats.pop() if len(formats) == 1 else "mixed"


def _measured_format(model: nn.Module, channels_last: bool) -> str:
    # The input is always made in the asked layout; the weights must agree for the figure to be that layout's.
    wanted = "NHWC" if channels_last else "NCHW"
    return wanted if _weights_format(model) in (None, wanted) else "mixed"


def _model_on(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    tensors = [*model.parameters(), *model.buffers()]
    wanted = "NHWC" if channels_last else "NCHW"
    if all(t.device == device for t in tensors) and _weights_format(model) in (None, wanted):
        return model
    # nn.Module.to converts in place; a copy keeps the caller's model where and as it was.
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return copy.deepcopy(model).to(device).to(memory_format=layout)


def _time_batch(
    runner: Callable[[torch.Tensor], Any],
    image_shape: tuple[int, ...],
    batch: int,
    device: torch.device,
    channels_last: bool,
    amp: str,
    warmup: int,
    min_reps: int,
    min_time_s: float,
    compile_seconds: dict[int, float] | None,
) -> list[float]:
    """Seconds per repetition at one batch size, after warm-up."""
    generator = torch.Generator().manual_seed(0)  # leaves the global RNG stream alone
    x = torch.randn((batch, *image_shape), generator=generator).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = (torch.autocast(device.type, dtype=autocast_dtype(amp)) if amp != AMP_OFF
                else contextlib.nullcontext())

    def run_once() -> None:
        with torch.inference_mode(), autocast:
            runner(x)

    timer = _cuda_event_timer if device.type == "cuda" else _wall_timer
    if compile_seconds is not None:
        compile_seconds[batch] = _wall_timer(run_once, device)
    for _ in range(warmup):
        run_once()
    times: list[float] = []
    while len(times) < min_reps or sum(times) < min_time_s:
        times.append(timer(run_once, device))
    return times


def _wall_timer(run_once: Callable[[], None], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    run_once()
    synchronize(device)
    return time.perf_counter() - start


def _cuda_event_timer(run_once: Callable[[], None], device: torch.device) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    run_once()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def is_out_of_memory(err: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure (a plain RuntimeError)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    message = str(err)
    return isinstance(err, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def _with_oom_halving(measure: Callable[[int], list[float]], batch_size: int,
                      device: torch.device) -> tuple[int, list[float]]:
    """(batch used, timings): halve the batch on out-of-memory until it fits or batch 1 fails."""
    batch = batch_size
    while True:
        try:
            return batch, measure(batch)
        except Exception as err:
            if not is_out_of_memory(err) or batch == 1:
                raise
        # Outside the except block, so the traceback (and the tensors its frames hold) is freed.
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        batch //= 2


# ---------------------------------------------------------------------------------------------
# Isolation: one fresh process per measurement, so a long sweep's allocator state and caches
# from earlier models do not leak into later figures.


def measure_latency_isolated(
    model_name: str,
    create_kwargs: dict[str, Any],
    input_shape: Sequence[int],
    builder: str = DEFAULT_BUILDER,
    timeout_s: float | None = None,
    **latency_kwargs: Any,
) -> dict[str, Any]:
    """`measure_latency` in a fresh `python -m archbench.measure.latency` process.

    The child builds the model as `builder(model_name, **create_kwargs)`, where `builder` is a
    "module:function" path (default archbench.models:create_model), and uses this process's
    torch thread count. `latency_kwargs` are `measure_latency`'s keyword arguments and must
    be JSON-serializable.
    """
    request = {
        "model_name": model_name,
        "create_kwargs": create_kwargs,
        "input_shape": list(input_shape),
        "builder": builder,
        "threads": torch.get_num_threads(),
        "latency_kwargs": latency_kwargs,
    }
    try:
        request_text = json.dumps(request)
    except TypeError as err:
        raise ValueError(f"measure_latency_isolated arguments must be JSON-serializable: {err}") from err

    with tempfile.TemporaryDirectory(prefix="archbench-latency-") as tmp:
        output = Path(tmp) / "latency.json"
        completed = subprocess.run(
            [sys.executable, "-m", "archbench.measure.latency", "--output", str(output)],
            input=request_text, capture_output=True, text=True, timeout=timeout_s, env=_child_env(),
        )
        if completed.returncode != 0 or not output.exists():
            stderr_tail = "\n".join(completed.stderr.strip().splitlines()[-20:])
            raise RuntimeError(
                f"isolated latency measurement of {model_name!r} failed (exit {completed.returncode}):\n"
                f"{stderr_tail}")
        return json.loads(output.read_text())


def _child_env() -> dict[str, str]:
    # The child must import this same archbench even when it is not installed (a source tree).
    source_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    return env


def _resolve_builder(path: str) -> Callable[..., nn.Module]:
    module_name, _, function_name = path.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"builder={path!r} must look like 'package.module:function'")
    return getattr(importlib.import_module(module_name), function_name)


def _child_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Measure one model's latency (JSON request on stdin).")
    parser.add_argument("--output", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    request = json.loads(sys.stdin.read())
    torch.set_num_threads(int(request["threads"]))
    model = _resolve_builder(request["builder"])(request["model_name"], **request["create_kwargs"])
    result = measure_latency(model, request["input_shape"], **request["latency_kwargs"])
    result["isolated"] = True
    atomic_write_bytes(args.output, json.dumps(result).encode())


if __name__ == "__main__":
    _child_main()
