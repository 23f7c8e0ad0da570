"""Energy per image from NVML's total-energy counter, on NVIDIA GPUs; elsewhere a reason, never a guess.

    meter = EnergyMeter("cuda:0")        # meter.skipped: None, or why there is no figure
    start = meter.read()                  # millijoules since the driver loaded
    ...train...
    section = meter.per_image(start, meter.read(), images, seconds)

NVML updates the counter every few tens of milliseconds, so a window shorter than MIN_WINDOW_S is
refused rather than divided. The counter is the whole device's: when other processes run on the GPU
during the window (several jobs sharing one GPU), `shared_device` says so and the figure is the device's
energy per image of this run, an upper bound on this run's share.
"""
from __future__ import annotations

import time
from typing import Callable

from archbench.base.device import synchronize
from archbench.base.numerics import autocast_dtype

PACKAGE = "nvidia-ml-py"
# The counter's update interval is tens of ms; a window of a second or more keeps that error under a few %.
MIN_WINDOW_S = 1.0
METHOD = "NVML nvmlDeviceGetTotalEnergyConsumption (whole device, millijoules) read before and after the window"


class EnergyMeter:
    """Reads one CUDA device's NVML energy counter; `skipped` holds why it cannot (then read() is None)."""

    def __init__(self, device):
        self.skipped: str | None = None
        self._nvml = self._handle = None
        device = str(device)
        if not device.startswith("cuda"):
            self.skipped = f"energy is measured on NVIDIA GPUs only (NVML); this run's device is {device}"
            return
        try:
            import pynvml
        except ImportError as err:
            self.skipped = (f"package {PACKAGE} is not installed ({err}): pip install {PACKAGE} "
                            "(it provides the pynvml module)")
            return
        try:
            pynvml.nvmlInit()
            self._handle = _handle(pynvml, device)
            pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as err:  # NVMLError_NotSupported on GPUs before Volta, a driver without NVML, ...
            self.skipped = f"NVML cannot read this GPU's energy counter ({type(err).__name__}: {err})"
            return
        self._nvml = pynvml

    def read(self) -> tuple[float, float] | None:
        """(counter in millijoules, time.perf_counter()) now, or None when skipped."""
        if self.skipped:
            return None
        return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)), time.perf_counter()

    def other_processes(self) -> bool:
        """True when another process has compute work on this GPU (its energy is in the counter too)."""
        import os

        try:
            running = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:  # noqa: BLE001 - not knowing is reported as not shared, the method says so
            return False
        return any(getattr(p, "pid", None) != os.getpid() for p in running)

    def per_image(self, start, end, images: int, prefix: str) -> dict:
        """{prefix_j_per_image, prefix_joules, prefix_window_s, prefix_images} or {prefix_skipped: why}."""
        if self.skipped or start is None or end is None:
            return {f"{prefix}_skipped": self.skipped or "no reading"}
        seconds = end[1] - start[1]
        if seconds < MIN_WINDOW_S:
            return {f"{prefix}_skipped": f"window {seconds:.2f} s is shorter than the {MIN_WINDOW_S:g} s the "
                                         "counter needs to resolve it"}
        if images <= 0:
            return {f"{prefix}_skipped": "no images in the window"}
        joules = (end[0] - start[0]) / 1000.0
        return {f"{prefix}_j_per_image": joules / images, f"{prefix}_joules": joules,
                f"{prefix}_window_s": seconds, f"{prefix}_images": int(images)}


def gpu_neighbours(device) -> Callable[[], list[int] | None] | None:
    """For a CUDA device, a callable listing the other processes with compute work on it (None when NVML
    cannot say); None for any other device. The quiet check waits on it before timing a GPU."""
    if not str(device).startswith("cuda"):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = _handle(pynvml, str(device))
    except Exception:  # noqa: BLE001 - no NVML: the check says it could not look, and does not wait
        return lambda: None

    def others() -> list[int] | None:
        import os

        try:
            running = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        except Exception:  # noqa: BLE001
            return None
        return sorted({p.pid for p in running if getattr(p, "pid", None) not in (None, os.getpid())})

    return others


def _handle(pynvml, device: str):
    """The NVML handle of this CUDA device: by UUID, since CUDA and NVML may number devices differently."""
    import torch

    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        except Exception:  # noqa: BLE001 - fall back to the index (right when CUDA_VISIBLE_DEVICES is unset)
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def inference_window(model, input_shape, device: str, batch_size: int, amp: str = "off",
                     channels_last: bool = False, min_s: float = 2 * MIN_WINDOW_S) -> Callable[[], int]:
    """A callable that runs forward passes at `batch_size` for at least `min_s` and returns the image count."""
    import contextlib

    import torch

    def run() -> int:
        x = torch.randn(batch_size, *input_shape[1:], device=device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = autocast_dtype(amp)
        autocast = torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()
        was_training = model.training
        model.eval()
        images, tick = 0, time.perf_counter()
        try:
            with torch.inference_mode(), autocast:
                while time.perf_counter() - tick < min_s:
                    model(x)
                    images += batch_size
                    synchronize(device)
        finally:
            model.train(was_training)
        return images

    return run


def measure_energy(meter: EnergyMeter, train_window: tuple | None, train_images: int, inference=None) -> dict:
    """The record's energy section: per training image (from the window around training) and per
    inference image (from a window of forward passes run here), or why not."""
    if meter.skipped:
        return {"skipped": meter.skipped}
    section = {"method": METHOD, "device_energy": True,
               "train_includes": "the training steps plus each epoch's validation pass and the final test pass "
                                 "(all inside the window), divided by the training images"}
    section.update(meter.per_image(train_window[0] if train_window else None,
                                   train_window[1] if train_window else None, train_images, "train"))
    if inference is not None:
        start = meter.read()
        images = inference()
        section.update(meter.per_image(start, meter.read(), images, "inference"))
    section["shared_device"] = meter.other_processes()  # as seen at the end of the windows
    return section
