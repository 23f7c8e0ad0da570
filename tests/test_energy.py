"""Energy per image from NVML (a fake NVML here), the reason when there is none, and the peak-memory note."""
import math
import sys
import types

import pytest

import archbench.measure.energy as energy
from archbench.measure.energy import EnergyMeter, measure_energy


class Clock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


@pytest.fixture
def fake_nvml(monkeypatch):
    """A pynvml whose energy counter rises 50 J per second of a fake clock; another process shares the GPU."""
    clock = Clock()
    nvml = types.ModuleType("pynvml")
    nvml.nvmlInit = lambda: None
    nvml.nvmlDeviceGetTotalEnergyConsumption = lambda handle: 50_000.0 * clock.now  # millijoules
    nvml.nvmlDeviceGetComputeRunningProcesses = lambda handle: [types.SimpleNamespace(pid=1)]
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setattr(energy, "_handle", lambda pynvml, device: "gpu0")
    monkeypatch.setattr(energy, "time", clock)
    return clock


def test_joules_per_training_and_inference_image(fake_nvml):
    meter = EnergyMeter("cuda:0")
    assert meter.skipped is None
    start = meter.read()
    fake_nvml.now += 10.0  # ten seconds of training: 500 J
    window = (start, meter.read())

    def inference():
        fake_nvml.now += 2.0  # two seconds of forward passes: 100 J
        return 4000

    section = measure_energy(meter, window, train_images=25_000, inference=inference)
    assert section["train_j_per_image"] == pytest.approx(500 / 25_000)
    assert section["inference_j_per_image"] == pytest.approx(100 / 4000)
    assert section["train_window_s"] == pytest.approx(10.0) and section["shared_device"] is True
    assert "NVML" in section["method"]


def test_a_window_shorter_than_the_counter_resolves_is_refused(fake_nvml):
    meter = EnergyMeter("cuda:0")
    start = meter.read()
    fake_nvml.now += 0.2
    section = measure_energy(meter, (start, meter.read()), train_images=100)
    assert "train_j_per_image" not in section and "shorter than" in section["train_skipped"]


def test_no_figure_off_nvidia_or_without_pynvml_and_the_reason_says_why(monkeypatch):
    assert "NVIDIA GPUs only" in measure_energy(EnergyMeter("cpu"), None, 10)["skipped"]
    monkeypatch.setitem(sys.modules, "pynvml", None)
    reason = measure_energy(EnergyMeter("cuda:0"), None, 10)["skipped"]
    assert "nvidia-ml-py is not installed" in reason and "pip install" in reason


def test_a_gpu_without_the_counter_is_a_reason_not_a_crash(fake_nvml):
    def unsupported(handle):
        raise RuntimeError("Not Supported")

    sys.modules["pynvml"].nvmlDeviceGetTotalEnergyConsumption = unsupported
    assert "cannot read this GPU's energy counter" in EnergyMeter("cuda:0").skipped


def test_a_cpu_run_records_why_there_is_no_energy_and_what_its_peak_memory_covers(tmp_path):
    import json

    from archbench.measure.peak import PEAK_INCLUDES_CPU
    from archbench.run import run
    from test_faults import tiny_spec

    spec = tiny_spec(tmp_path, measure={"warmup": 1, "min_reps": 2, "min_time_s": 0.01, "batch_size": 2}, device="cpu")
    assert run(spec)["status"] == "complete"
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert "NVIDIA GPUs only" in record["energy"]["skipped"]
    assert record["train"]["peak_mem_includes"] == PEAK_INCLUDES_CPU
    assert record["train"]["dataset_resident_bytes"] is None


def test_the_report_shows_energy_only_when_a_run_has_it():
    from archbench.record import record_columns

    columns = record_columns({"energy": {"train_j_per_image": 0.02, "inference_j_per_image": 0.005}}, "x")
    assert columns["train_j_per_image"] == 0.02 and columns["inference_j_per_image"] == 0.005
    assert math.isnan(record_columns({"energy": {"skipped": "cpu"}}, "x")["train_j_per_image"])
