"""Pick the fastest precision and memory format for training one model on one machine, by measuring.

No single setting is fastest for every family: on a bf16-capable CPU, bf16 doubles a ResNet's
training speed but slows depthwise convolutions (ShuffleNetV2, EfficientNetV2), and
channels_last helps some models and not others. So the choice is measured: a few training
steps (SGD, cross entropy, synthetic data, the run's batch size and input shape) of each
candidate, the fastest wins, except that low precision must beat the fastest fp32 layout by
LOW_PRECISION_MARGIN: a short probe cannot separate a near tie, and fp32 is the exact reference,
so a tie goes to fp32 (EfficientNetV2-B0 on a bf16 CPU measured 197.0 vs 196.9 img/s).

    choice = choose_precision(lambda: create_model("resnet20", 10), (3, 32, 32), 128, 10, "cpu",
                              cache_dir="results/.cache/precision")
    choice["amp"], choice["channels_last"]   # e.g. "bf16", True

Candidates: fp32 (amp "off") and, where the device runs it natively, one low precision: bf16
(a CPU with AVX512-BF16 or AMX, a GPU that supports bf16), else fp16 on CUDA; each in NCHW and
channels_last. An emulated bf16 (plain AVX-512) only converts, so it is never a candidate.
An explicit `amp` or `channels_last` forces that dimension (it is not probed); with both forced
nothing runs. On a CUDA GPU with native bf16 (Ampere and later), `auto` is a stated rule, not a
probe: bf16, and channels_last unless forced (CUDA_BF16_RULE). A candidate whose loss is not finite after the probe is not eligible.

Results are cached as JSON, one file per machine (CPU model or GPU name, torch version, threads),
model (name, parameter count, stem and builder arguments), input shape, batch size and classes,
so a sweep pays for the probe once per model; a later call measures only the candidates the
cache lacks.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from archbench.base.device import cpu_flags, device_name, resolve_device, synchronize
from archbench.base.numerics import (AMP_CHOICES, AMP_OFF, AMPS, CHANNELS_LAST_CHOICES, NATIVE_CPU_FLAGS,
                                     PRECISION_NAMES, autocast_dtype, precision_name, torch_dtype)
from archbench.base.files import atomic_write_bytes

# The names (precisions, train.amp's spellings, native CPU flags, layouts) live in the base layer; here
# only the torch dtypes they stand for.
PRECISIONS = {name: torch_dtype(name) for name in PRECISION_NAMES}
# The dtype autocast runs in for each train.amp; None: fp32, no autocast.
AMP_DTYPES = {amp: None if amp == AMP_OFF else PRECISIONS[amp] for amp in AMPS}
# Cache files from an older probe (other candidates, other timing) must not be read as current.
CACHE_VERSION = 1
# Low precision is picked only when at least this much faster than fp32: within 5% the probe's
# few steps cannot tell, and a wrong low-precision pick costs numerics as well as speed.
LOW_PRECISION_MARGIN = 1.05
CUDA_BF16_RULE = ("rule, not measured: on a CUDA GPU with native bf16 tensor cores, auto means bf16 (and "
                  "channels_last, which tensor-core convolutions want); a probe of a few steps of a small model "
                  "would time kernel launches, not arithmetic")


def choose_precision(
    model_factory_or_model: Callable[[], nn.Module] | nn.Module,
    input_shape: Sequence[int],
    batch_size: int,
    num_classes: int,
    device: str | torch.device = "cpu",
    amp: str = "auto",
    channels_last: str | bool = "auto",
    cache_dir: str | Path | None = None,
    *,
    model_name: str | None = None,
    warmup_steps: int = 2,
    steps: int = 4,
) -> dict[str, Any]:
    """The fastest of fp32/bf16 (fp16 on CUDA without bf16) x NCHW/channels_last for training.

    Args:
        model_factory_or_model: a callable returning a freshly built model, or a model (each
            candidate then trains a deep copy, so the model passed in is left untouched).
        input_shape: one image, (C, H, W). batch_size, num_classes: as the run will train.
        device: "cpu", "cuda" or "cuda:N".
        amp: "auto" (probe), or "off" | "bf16" | "fp16" to force it.
        channels_last: "auto" (probe), or True | False to force it.
        cache_dir: folder for the per-machine JSON cache; None measures every time.
        model_name: names the model in the cache key; default ``model.archbench_info["name"]``
            or the class name.
        warmup_steps, steps: untimed then timed training steps per candidate; the speed is
            batch_size / the median timed step.

    Returns: {"amp": "off"|"bf16"|"fp16", "channels_last": bool, "probe": {candidate: img/s or
    None where the loss was not finite}, "reason": str, "cached": bool (the figures came from
    the cache), "low_precision": "bf16"|"fp16"|None (what this device offers natively)}.
    Candidates are named "fp32_nchw", "fp32_channels_last", "bf16_nchw", ...
    """
    input_shape = _check_arguments(input_shape, batch_size, num_classes, amp, channels_last, warmup_steps, steps)
    device = resolve_device(device)
    low_precision, low_precision_why = native_low_precision(device)
    amps = ["off"] + ([low_precision] if low_precision else []) if amp == "auto" else [amp]
    layouts = [False, True] if channels_last == "auto" else [channels_last]
    candidates = [(a, cl) for a in amps for cl in layouts]
    result = {"low_precision": low_precision, "cached": False}
    forced = _forced_note(amp, channels_last)

    rule = cuda_auto_rule(device, amp, channels_last)
    if rule is not None:
        return {"amp": rule[0], "channels_last": rule[1], "probe": {}, **result,
                "reason": "; ".join(filter(None, [f"{CUDA_BF16_RULE} ({low_precision_why})", forced]))}
    if len(candidates) == 1:
        (amp_choice, layout), = candidates
        return {"amp": amp_choice, "channels_last": layout, "probe": {}, **result,
                "reason": f"{forced}; nothing to measure"}

    probe, hit = _probe_candidates(model_factory_or_model, candidates, input_shape, batch_size, num_classes,
                                   device, cache_dir, model_name, warmup_steps, steps)
    (amp_choice, layout), notes = _fastest(candidates, probe, baseline=(amps[0], layouts[0]),
                                           probe_steps=warmup_steps + steps)
    notes += [n for n in (forced, None if low_precision else low_precision_why) if n]
    failed = [label for label, value in probe.items() if value is None]
    if failed:
        notes.append(f"not finite, left out: {', '.join(failed)}")
    return {"amp": amp_choice, "channels_last": layout, "probe": probe, **result, "cached": hit,
            "reason": "; ".join(notes)}


def _probe_candidates(model_factory_or_model, candidates, input_shape, batch_size, num_classes, device,
                      cache_dir, model_name, warmup_steps, steps) -> tuple[dict, bool]:
    """({candidate label: img/s or None}, whether every figure came from the per-machine cache); measures
    the candidates the cache lacks, each on a fresh model, and writes them back."""
    first = _fresh_model(model_factory_or_model)
    key = _cache_key(first, model_name, input_shape, batch_size, num_classes, device)
    cache_file = _cache_file(cache_dir, key) if cache_dir is not None else None
    measured = _read_cache(cache_file, key)
    hit = all(candidate_label(*c) in measured for c in candidates)
    for index, (amp_choice, layout) in enumerate(c for c in candidates if candidate_label(*c) not in measured):
        model = first if index == 0 else _fresh_model(model_factory_or_model)
        measured[candidate_label(amp_choice, layout)] = measure_training_speed(
            model, amp_choice, layout, input_shape, batch_size, num_classes, device, warmup_steps, steps)
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if cache_file is not None and not hit:
        _write_cache(cache_file, key, measured)
    return {candidate_label(*c): measured[candidate_label(*c)] for c in candidates}, hit


def _fastest(candidates, probe: dict, baseline: tuple, probe_steps: int) -> tuple[tuple, list[str]]:
    """The fastest finite candidate, kept at fp32 unless low precision beats it by LOW_PRECISION_MARGIN,
    and the sentences saying why."""
    eligible = {c: probe[candidate_label(*c)] for c in candidates if probe[candidate_label(*c)] is not None}
    if not eligible:
        raise RuntimeError(
            f"every precision candidate diverged in the probe ({', '.join(probe)}): the loss was not finite after "
            f"{probe_steps} steps at lr 0.01; check the model, or force train.amp and train.channels_last.")
    (amp_choice, layout), speed = max(eligible.items(), key=lambda item: item[1])
    notes = [f"fastest of {len(candidates)} measured: {candidate_label(amp_choice, layout)} {speed:.0f} img/s"]
    fp32 = {c: v for c, v in eligible.items() if c[0] == "off"}
    if amp_choice != "off" and fp32:
        (fp32_choice, fp32_speed) = max(fp32.items(), key=lambda item: item[1])
        if speed < LOW_PRECISION_MARGIN * fp32_speed:
            notes = [f"{candidate_label(amp_choice, layout)} {speed:.0f} img/s is within "
                     f"{LOW_PRECISION_MARGIN - 1:.0%} of {candidate_label(*fp32_choice)} {fp32_speed:.0f} img/s, "
                     f"so fp32 (the exact reference) is kept"]
            (amp_choice, layout), speed = fp32_choice, fp32_speed
    base_speed = probe.get(candidate_label(*baseline))
    if base_speed and (amp_choice, layout) != baseline:
        notes.append(f"{speed / base_speed:.2f}x {candidate_label(*baseline)}")
    return (amp_choice, layout), notes


def candidate_label(amp: str, channels_last: bool) -> str:
    """"fp32_nchw", "bf16_channels_last", ...: how the probe and the record name a candidate."""
    return f"{'fp32' if amp == 'off' else amp}_{'channels_last' if channels_last else 'nchw'}"


def cuda_auto_rule(device: str | torch.device, amp, channels_last) -> tuple[str, bool] | None:
    """(amp, channels_last) that `amp=auto` means on a CUDA GPU with native bf16 (CUDA_BF16_RULE), a forced
    layout kept; None where the rule does not apply (amp forced, or not such a GPU): then it is measured."""
    device = torch.device(device)
    if amp != "auto" or device.type != "cuda" or native_low_precision(device)[0] != "bf16":
        return None
    return "bf16", True if channels_last == "auto" else bool(channels_last)


def native_low_precision(device: torch.device) -> tuple[str | None, str]:
    """("bf16" | "fp16" | None, why): the low precision `device` computes natively, if any."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return "bf16", f"{torch.cuda.get_device_name(device)} supports bf16"
        return "fp16", f"{torch.cuda.get_device_name(device)} lacks bf16; fp16 with loss scaling instead"
    if cpu_supports_bf16():
        return "bf16", "the CPU has native bf16 (avx512_bf16 / amx_bf16)"
    return None, "bf16 left out: this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag in /proc/cpuinfo)"


def cpu_supports_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether the CPU multiplies bf16 natively; False where /proc/cpuinfo cannot be read."""
    return bool(cpu_flags(cpuinfo) & NATIVE_CPU_FLAGS["bf16"])


def measure_training_speed(
    model: nn.Module,
    amp: str,
    channels_last: bool,
    input_shape: Sequence[int],
    batch_size: int,
    num_classes: int,
    device: str | torch.device = "cpu",
    warmup_steps: int = 2,
    steps: int = 4,
) -> float | None:
    """Training images per second of `model` (trained in place) under one candidate.

    Each step is what the training loop does: zero the gradients, forward and cross entropy
    under autocast, backward (through a GradScaler for fp16), an SGD step with momentum. The
    speed is batch_size / the median timed step, robust to one step the OS interrupts. None if
    the loss is not finite at the end.
    """
    device = torch.device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format).train()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch_size, *input_shape), generator=generator).to(device).contiguous(memory_format=memory_format)
    y = torch.randint(0, num_classes, (batch_size,), generator=generator).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    criterion = nn.CrossEntropyLoss()
    dtype = AMP_DTYPES[amp]
    times = []
    for step in range(warmup_steps + steps):
        synchronize(device)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        synchronize(device)
        if step >= warmup_steps:
            times.append(time.perf_counter() - start)
    if not torch.isfinite(loss).item():
        return None
    return batch_size / statistics.median(times)


def _check_arguments(input_shape, batch_size, num_classes, amp, channels_last, warmup_steps, steps) -> tuple:
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r} is not one of {', '.join(AMP_CHOICES)}.")
    # `is` checks: 1 == True, and a "true" string from a config must not pass for a bool.
    if not any(channels_last is c or (isinstance(c, str) and channels_last == c) for c in CHANNELS_LAST_CHOICES):
        raise ValueError(f"channels_last={channels_last!r} is not one of 'auto', True, False.")
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ValueError(f"input_shape={tuple(input_shape)!r} is not one image (C, H, W) of positive ints, "
                         "e.g. (3, 32, 32); the batch size is a separate argument.")
    for what, value, least in (("batch_size", batch_size, 1), ("num_classes", num_classes, 2),
                               ("warmup_steps", warmup_steps, 0), ("steps", steps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{what} must be an integer >= {least}, got {value!r}.")
    return shape


def _forced_note(amp: str, channels_last) -> str | None:
    forced = []
    if amp != "auto":
        forced.append(f"amp={amp!r}")
    if channels_last != "auto":
        forced.append(f"channels_last={channels_last!r}")
    return f"forced by the caller: {', '.join(forced)}" if forced else None


def _fresh_model(model_factory_or_model) -> nn.Module:
    if isinstance(model_factory_or_model, nn.Module):
        return copy.deepcopy(model_factory_or_model)
    if callable(model_factory_or_model):
        model = model_factory_or_model()
        if isinstance(model, nn.Module):
            return model
        raise TypeError(f"the model factory returned {type(model).__name__}, not an nn.Module.")
    raise TypeError(f"expected an nn.Module or a callable that builds one, got {type(model_factory_or_model).__name__}.")


def _cache_key(model: nn.Module, model_name, input_shape, batch_size, num_classes, device) -> dict:
    info = getattr(model, "archbench_info", {})
    return {
        "version": CACHE_VERSION,
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__,
        # On a CPU the threads decide the speed, and ratios between candidates with them.
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "model": model_name or info.get("name") or type(model).__name__,
        "stem": info.get("stem"),
        "builder_kwargs": {k: repr(v) for k, v in sorted(info.get("timm_kwargs", {}).items())},
        # Two builds under one name (another width, dropout) differ in parameters, so they get their own entry.
        "params": sum(p.numel() for p in model.parameters()),
        "input_shape": list(input_shape),
        "batch_size": batch_size,
        "num_classes": num_classes,
    }


def _cache_file(cache_dir, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", key["model"])[:60]
    return Path(cache_dir) / f"{slug}-{digest}.json"


def _read_cache(path: Path | None, key: dict) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged cache costs one probe, never a run
    return dict(stored.get("probe", {})) if stored.get("key") == key else {}


def _write_cache(path: Path, key: dict, probe: dict) -> None:
    # Atomic: two runs of a parallel sweep may probe the same model.
    atomic_write_bytes(path, json.dumps({"key": key, "probe": probe}, indent=1, sort_keys=True).encode())
