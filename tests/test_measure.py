"""archbench.measure: hand-counted MACs, FLOP cross-checks, latency statistics, OOM halving, peak cache."""
from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from archbench.measure import (
    device_peak_flops,
    measure_latency,
    measure_latency_isolated,
    peak_memory_bytes,
    profile_complexity,
    summarize_times,
    training_cost,
)
from archbench.measure.latency import is_out_of_memory

REPO = Path(__file__).resolve().parents[1]


def conv_macs(c_in, c_out, kernel, out_hw, groups=1):
    """Multiply-adds of a convolution: each output element sums (c_in / groups) * k * k products."""
    return out_hw * out_hw * c_out * (c_in // groups) * kernel * kernel


# --- complexity -----------------------------------------------------------------------------

# A 3x16x16 input through standard, grouped+strided, depthwise and pointwise convs, then a linear.
LAYER_CASES = {
    "standard": (nn.Conv2d(3, 8, 3, padding=1, bias=False), (3, 16, 16), conv_macs(3, 8, 3, 16)),
    "grouped_strided": (nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False), (8, 16, 16),
                        conv_macs(8, 16, 3, 8, groups=4)),
    "depthwise": (nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), (16, 8, 8),
                  conv_macs(16, 16, 3, 8, groups=16)),
    "pointwise_with_bias": (nn.Conv2d(16, 32, 1), (16, 8, 8), conv_macs(16, 32, 1, 8)),
}


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_conv_macs_match_hand_count_and_flop_counter(name):
    layer, shape, expected_macs = LAYER_CASES[name]
    result = profile_complexity(layer, shape)
    assert result["macs"] == expected_macs
    assert result["flops_forward"] == 2 * expected_macs
    assert result["flop_gap"] == 1.0
    assert result["params"] == sum(p.numel() for p in layer.parameters())


def test_linear_macs_match_hand_count():
    # nn.Linear takes any leading shape; fed a (1, 4, 6, 6) image it sees rows of 6 features.
    model = nn.Sequential(nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    result = profile_complexity(model, (4, 6, 6))
    assert result["macs"] == 144 * 10
    assert result["flops_forward"] == 2 * 144 * 10
    assert result["params"] == 144 * 10 + 10


def small_conv_net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),                         # 8x16x16
        nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4, bias=False),    # 16x8x8
        nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False),            # depthwise
        nn.Conv2d(16, 32, 1, bias=False),
        nn.Flatten(),
        nn.Linear(32 * 8 * 8, 10),
    )


SMALL_NET_LAYER_MACS = [conv_macs(3, 8, 3, 16), conv_macs(8, 16, 3, 8, groups=4),
                        conv_macs(16, 16, 3, 8, groups=16), conv_macs(16, 32, 1, 8), 2048 * 10]


def test_conv_linear_network_forward_and_train_flops():
    result = profile_complexity(small_conv_net(), (3, 16, 16))
    macs = sum(SMALL_NET_LAYER_MACS)
    assert result["macs"] == macs
    assert result["flops_forward"] == 2 * macs
    assert result["flop_gap"] == result["flop_gap_matmul"] == 1.0
    # Backward costs one forward for the weight gradients and one for the input gradients,
    # except the first layer, whose input (the image) needs no gradient. This fails if the
    # depthwise/grouped weight gradient is over-counted (torch's own formula ignores groups).
    assert result["flops_train"] == 3 * 2 * macs - 2 * SMALL_NET_LAYER_MACS[0]


def test_frozen_layers_cost_no_weight_gradient():
    model = small_conv_net()
    for p in model[-1].parameters():  # freeze the classifier: no weight gradient there
        p.requires_grad_(False)
    result = profile_complexity(model, (3, 16, 16))
    assert result["trainable_params"] == result["params"] - (2048 * 10 + 10)
    macs = sum(SMALL_NET_LAYER_MACS)
    assert result["flops_train"] == 3 * 2 * macs - 2 * SMALL_NET_LAYER_MACS[0] - 2 * 2048 * 10


def test_unsupported_ops_are_listed_with_counts():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.SiLU(), nn.Conv2d(4, 4, 1), nn.SiLU(), nn.Sigmoid())
    result = profile_complexity(model, (3, 8, 8))
    unsupported = result["unsupported_ops"]
    assert unsupported.get("aten::silu") == 2, unsupported
    assert unsupported.get("aten::sigmoid") == 1, unsupported
    assert result["macs"] == conv_macs(3, 4, 1, 8) + conv_macs(4, 4, 1, 8)  # SiLU/sigmoid add nothing


def test_fvcore_only_ops_open_the_gap_and_are_listed():
    # BatchNorm: fvcore charges it, FlopCounterMode does not; the per-operator tables show why.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
    result = profile_complexity(model, (3, 8, 8))
    conv = conv_macs(3, 8, 3, 8)
    assert result["macs_by_operator"]["conv"] == conv
    assert result["macs_by_operator"]["batch_norm"] > 0
    assert result["flop_gap"] < 1.0
    assert result["flop_gap_matmul"] == 1.0
    assert set(result["flops_forward_by_operator"]) == {"aten.convolution"}


def test_by_module_rows_sum_to_totals_and_name_top_level_children():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
            self.head = nn.Linear(8, 10)
            self.scale = nn.Parameter(torch.ones(1))  # owned by the root: lands in "(other)"

        def forward(self, x):
            return self.head(self.stem(x).mean((2, 3))) * self.scale

    result = profile_complexity(Net(), (3, 8, 8))
    rows = {row["module"]: row for row in result["by_module"]}
    assert list(rows)[:2] == ["stem", "head"]
    assert rows["stem"]["macs"] == conv_macs(3, 8, 3, 8) and rows["stem"]["params"] == 8 * 27
    assert rows["head"]["params"] == 90 and rows["(other)"]["params"] == 1
    assert sum(r["macs"] for r in result["by_module"]) == result["macs"]
    assert sum(r["params"] for r in result["by_module"]) == result["params"]


def test_profiling_leaves_model_modes_params_grads_and_rng_untouched():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.BatchNorm2d(8),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 4))
    model.train()
    model[3].eval()  # a deliberately frozen BN inside a training model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()

    profile_complexity(model, (3, 8, 8))

    assert [m.training for m in model.modules()] == modes
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "parameters or BN running stats changed"
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_input_shape_forms_and_errors():
    model = nn.Conv2d(3, 4, 1)
    assert profile_complexity(model, (3, 8, 8))["input_shape"] == [1, 3, 8, 8]
    assert profile_complexity(model, (1, 3, 8, 8))["macs"] == profile_complexity(model, (3, 8, 8))["macs"]
    with pytest.raises(ValueError, match=r"input_shape=\(2, 3, 8, 8\)"):
        profile_complexity(model, (2, 3, 8, 8))


def test_complexity_record_fields_and_types():
    result = profile_complexity(small_conv_net(), (3, 16, 16))
    for key in ("params", "trainable_params", "macs", "flops_forward", "flops_train", "activations"):
        assert type(result[key]) is int and result[key] > 0, key
    assert isinstance(result["flop_gap"], float)
    assert isinstance(result["unsupported_ops"], dict) and isinstance(result["by_module"], list)
    assert not any("flops" in k.lower() and "fvcore" in k.lower() for k in result)  # fvcore's count is "macs"
    json.dumps(result)  # the record is JSON


# --- latency --------------------------------------------------------------------------------


def test_summarize_times_statistics_in_milliseconds():
    stats = summarize_times([i / 1000 for i in range(1, 11)])  # 1 ms .. 10 ms
    assert stats["count"] == 10
    assert stats["median_ms"] == pytest.approx(5.5)
    assert stats["mean_ms"] == pytest.approx(5.5)
    assert stats["p10_ms"] == pytest.approx(1.9)   # linear interpolation at rank 0.9
    assert stats["p90_ms"] == pytest.approx(9.1)
    assert stats["iqr_ms"] == pytest.approx(7.75 - 3.25)
    assert stats["min_ms"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        summarize_times([])


class Sleeper(nn.Module):
    """Takes a known time per call: `base_s` plus `per_image_s` for each image in the batch."""

    def __init__(self, base_s=0.010, per_image_s=0.0):
        super().__init__()
        self.base_s, self.per_image_s = base_s, per_image_s
        self.batches_seen: list[int] = []

    def forward(self, x):
        self.batches_seen.append(x.shape[0])
        time.sleep(self.base_s + self.per_image_s * x.shape[0])
        return x


def test_latency_of_a_sleeping_module_is_within_tolerance_and_ordered():
    sleeper = Sleeper(base_s=0.010, per_image_s=0.002)
    result = measure_latency(sleeper, (3, 4, 4), batch_size=4, warmup=1, min_reps=5, min_time_s=0.1)
    batch_1, throughput = result["batch_1"], result["throughput"]
    assert batch_1["median_ms"] >= 12.0  # sleep never returns early; a loaded machine only adds time
    assert throughput["median_ms"] >= 18.0 and throughput["median_ms"] > batch_1["median_ms"]
    for stats in (batch_1, throughput):
        assert stats["p10_ms"] <= stats["median_ms"] <= stats["p90_ms"]
        assert 5 <= stats["count"] <= 10  # >= min_reps, and 0.1 s of >= 12 ms calls needs at most 9
    assert throughput["img_per_s"] == pytest.approx(4 / (throughput["median_ms"] / 1e3))
    assert sleeper.batches_seen.count(1) == 1 + batch_1["count"]  # warm-up then timed


def test_latency_record_fields_and_settings():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    result = measure_latency(model, (3, 8, 8), warmup=1, min_reps=3, min_time_s=0.0, amp=False)
    assert result["device"] == "cpu" and result["device_name"]
    assert result["threads"] == torch.get_num_threads()
    assert result["load_avg_1m"] is None or result["load_avg_1m"] >= 0
    assert result["image_shape"] == [3, 8, 8]
    assert result["amp"] == "off" and result["channels_last"] is False
    assert result["compile"] is False and result["compile_s"] is None
    assert (result["warmup"], result["min_reps"], result["min_time_s"]) == (1, 3, 0.0)
    assert result["throughput"]["batch_size"] == result["throughput"]["batch_size_requested"] == 8
    for stats in (result["batch_1"], result["throughput"]):
        assert stats["count"] == 3
        assert all(stats[k] > 0 for k in ("median_ms", "p10_ms", "p90_ms", "mean_ms"))
    json.dumps(result)


def test_latency_rejects_bad_settings_with_the_value():
    model = nn.Identity()
    with pytest.raises(ValueError, match="amp='fp8'"):
        measure_latency(model, (3, 8, 8), amp="fp8")
    with pytest.raises(ValueError, match="batch_size=0"):
        measure_latency(model, (3, 8, 8), batch_size=0)
    with pytest.raises(ValueError, match="min_reps=0"):
        measure_latency(model, (3, 8, 8), min_reps=0)
    with pytest.raises(ValueError, match="device='tpu'"):
        measure_latency(model, (3, 8, 8), device="tpu")


def test_latency_leaves_callers_model_as_it_was():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    result = measure_latency(model, (3, 8, 8), batch_size=2, warmup=1, min_reps=2, min_time_s=0.0,
                             channels_last=True, amp="bf16")
    assert result["channels_last"] is True and result["amp"] == "bf16"
    assert model.training and model[1].training
    assert model[0].weight.is_contiguous()  # the channels_last conversion happened on a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


class LayoutProbe(nn.Module):
    """A convolution that notes the memory layout of every input it sees."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.layouts: list[str] = []

    def forward(self, x):
        self.layouts.append("NHWC" if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
                            else "NCHW" if x.is_contiguous() else "other")
        return self.conv(x)


FAST_LATENCY = {"batch_size": 2, "warmup": 1, "min_reps": 2, "min_time_s": 0.0}


def test_channels_last_model_is_measured_in_nhwc_and_recorded_so():
    model = LayoutProbe().to(memory_format=torch.channels_last)
    result = measure_latency(model, (3, 8, 8), channels_last=True, **FAST_LATENCY)
    assert result["memory_format"] == "NHWC" and result["channels_last"] is True
    assert set(model.layouts) == {"NHWC"}  # already NHWC on the device: measured in place, with NHWC input

    # None follows the model's own layout.
    model.layouts.clear()
    assert measure_latency(model, (3, 8, 8), channels_last=None, **FAST_LATENCY)["memory_format"] == "NHWC"
    assert set(model.layouts) == {"NHWC"}


def test_channels_last_model_measured_as_nchw_is_converted_on_a_copy():
    model = LayoutProbe().to(memory_format=torch.channels_last)
    result = measure_latency(model, (3, 8, 8), channels_last=False, **FAST_LATENCY)
    assert result["memory_format"] == "NCHW" and result["channels_last"] is False
    assert model.layouts == []  # a converted copy ran, not the caller's model
    assert model.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.conv.weight.is_contiguous()
    assert measure_latency(LayoutProbe(), (3, 8, 8), channels_last=None, **FAST_LATENCY)["memory_format"] == "NCHW"


def test_latency_records_precision_and_cudnn_benchmark_on_cpu():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    fp32 = measure_latency(model, (3, 8, 8), **FAST_LATENCY)
    assert (fp32["amp"], fp32["precision"], fp32["tf32"]) == ("off", "fp32", None)
    assert fp32["cudnn_benchmark"] is None  # cuDNN plays no part on CPU
    assert measure_latency(model, (3, 8, 8), amp="fp32", **FAST_LATENCY)["precision"] == "fp32"
    bf16 = measure_latency(model, (3, 8, 8), amp="bf16", **FAST_LATENCY)
    assert (bf16["amp"], bf16["precision"]) == ("bf16", "bf16")


def test_compiled_latency_compiles_static_shapes_afresh_per_batch_size(monkeypatch):
    calls = []

    def fake_compile(module, **kwargs):
        calls.append(("compile", kwargs))
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "reset", lambda: calls.append(("reset", None)))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    result = measure_latency(model, (3, 8, 8), compile=True, **FAST_LATENCY)
    # One reset and one static-shape compile before batch 1, the same again before the throughput batch.
    assert calls == [("reset", None), ("compile", {"dynamic": False})] * 2
    assert result["compile_dynamic"] is False
    assert result["batch_1"]["compile_s"] > 0 and result["throughput"]["compile_s"] > 0
    assert result["compile_s"] == pytest.approx(result["batch_1"]["compile_s"] + result["throughput"]["compile_s"])


class RaisesAboveBatch(nn.Module):
    """Fake allocator: raises `error` for any batch larger than `fits`."""

    def __init__(self, fits, error):
        super().__init__()
        self.fits, self.error = fits, error
        self.attempts: list[int] = []

    def forward(self, x):
        self.attempts.append(x.shape[0])
        if x.shape[0] > self.fits:
            raise self.error
        return x


OOM_ERRORS = {
    "cuda": torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "cpu": RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
}


@pytest.mark.parametrize("kind", sorted(OOM_ERRORS))
def test_throughput_batch_is_halved_on_out_of_memory(kind):
    model = RaisesAboveBatch(fits=3, error=OOM_ERRORS[kind])
    result = measure_latency(model, (3, 4, 4), batch_size=16, warmup=0, min_reps=2, min_time_s=0.0)
    assert result["throughput"]["batch_size"] == 2
    assert result["throughput"]["batch_size_requested"] == 16
    assert [b for b in model.attempts if b > 1][:4] == [16, 8, 4, 2]


def test_out_of_memory_at_batch_one_and_other_errors_propagate():
    always = RaisesAboveBatch(fits=1, error=OOM_ERRORS["cuda"])
    # Only batch 1 fits: the throughput batch goes 4 -> 2 -> 1 and is measured at 1.
    assert measure_latency(always, (3, 4, 4), batch_size=4, warmup=0, min_reps=1,
                           min_time_s=0.0)["throughput"]["batch_size"] == 1
    with pytest.raises(torch.cuda.OutOfMemoryError):
        measure_latency(RaisesAboveBatch(fits=0, error=OOM_ERRORS["cuda"]), (3, 4, 4),
                        warmup=0, min_reps=1, min_time_s=0.0)
    bug = RaisesAboveBatch(fits=1, error=RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    with pytest.raises(RuntimeError, match="shapes"):
        measure_latency(bug, (3, 4, 4), batch_size=8, warmup=0, min_reps=1, min_time_s=0.0)
    assert bug.attempts[-1] == 8  # not retried at a smaller batch
    assert not is_out_of_memory(ValueError("out of memory"))


def test_isolated_measurement_runs_in_a_child_process():
    result = measure_latency_isolated("resnet18", {"num_classes": 10}, (3, 32, 32),
                                      builder="torchvision.models:get_model",
                                      batch_size=2, warmup=1, min_reps=3, min_time_s=0.0)
    assert result["isolated"] is True
    assert result["threads"] == torch.get_num_threads()
    assert result["throughput"]["batch_size"] == 2 and result["batch_1"]["count"] == 3


def test_isolated_measurement_failure_names_the_model_and_the_cause():
    with pytest.raises(RuntimeError, match=r"(?s)'no_such_net'.*exit 1"):
        measure_latency_isolated("no_such_net", {}, (3, 32, 32), builder="torchvision.models:get_model",
                                 warmup=0, min_reps=1, min_time_s=0.0)
    with pytest.raises(ValueError, match="JSON-serializable"):
        measure_latency_isolated("resnet18", {"norm": nn.BatchNorm2d}, (3, 32, 32))


@pytest.mark.slow
def test_isolated_measurement_with_the_default_builder():
    pytest.importorskip("archbench.models")
    result = measure_latency_isolated("resnet20", {"num_classes": 10}, (3, 32, 32),
                                      warmup=1, min_reps=3, min_time_s=0.0)
    assert result["isolated"] is True and result["batch_1"]["median_ms"] > 0


@pytest.mark.slow
def test_compile_time_is_recorded_and_kept_out_of_latency():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    result = measure_latency(model, (3, 16, 16), batch_size=2, warmup=1, min_reps=3, min_time_s=0.0, compile=True)
    assert result["compile"] is True
    # Compiling takes seconds; a compiled call of this model takes well under a millisecond or so.
    assert result["compile_s"] > 10 * result["batch_1"]["median_ms"] / 1e3


def test_conf_measure_default_matches_measure_latency_arguments():
    conf = yaml.safe_load((REPO / "conf/measure/default.yaml").read_text())
    assert conf["amp"] == "off", "amp must be the string 'off' (bare YAML off is a boolean)"
    assert conf["isolate"] is False and conf["batch_size"] is None
    latency_args = set(inspect.signature(measure_latency).parameters) - {"model", "input_shape", "device"}
    # isolate and quiet say how and when to measure (archbench.run, archbench.quiet), not what
    assert set(conf) - {"isolate", "quiet"} == latency_args
    assert set(conf["quiet"]) == {"max_load_per_thread", "timeout_s", "poll_s"}
    result = measure_latency(nn.Identity(), (3, 4, 4), **{**{k: v for k, v in conf.items() if k not in ("isolate", "quiet")},
                                                          "min_time_s": 0.0})
    assert result["throughput"]["batch_size"] == 8 and result["batch_1"]["count"] == conf["min_reps"]


# --- device peak, memory, training cost ------------------------------------------------------


def test_device_peak_is_measured_once_then_cached(tmp_path):
    first = device_peak_flops("cpu", cache_dir=tmp_path, matrix_size=128, min_reps=3, min_time_s=0.0)
    assert first["cached"] is False and first["flops_per_s"] > 0
    assert first["flops_per_s"] >= first["median_flops_per_s"]
    assert first["precision"] == "fp32" and first["tf32"] is None and first["supported"] is True
    assert first["method"] == "matmul n=128"
    assert first["device"] == "cpu" and first["device_name"]
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and first["machine_id"] in files[0].name
    assert json.loads(files[0].read_text())["flops_per_s"] == first["flops_per_s"]

    second = device_peak_flops("cpu", cache_dir=tmp_path, matrix_size=128, min_reps=3, min_time_s=0.0)
    assert second["cached"] is True
    assert (second["flops_per_s"], second["machine_id"]) == (first["flops_per_s"], first["machine_id"])

    files[0].write_text("{truncated")
    again = device_peak_flops("cpu", cache_dir=tmp_path, matrix_size=128, min_reps=3, min_time_s=0.0)
    assert again["cached"] is False and json.loads(files[0].read_text())["machine_id"] == first["machine_id"]
    assert not list(tmp_path.glob("*.tmp"))


PEAK_FAST = {"matrix_size": 64, "min_reps": 1, "min_time_s": 0.0}


def with_cpu_flags(monkeypatch, *flags):
    """Pretend the CPU has exactly these feature flags, so native-precision checks run anywhere."""
    monkeypatch.setattr("archbench.measure.peak.cpu_flags", lambda: frozenset(flags))


def test_device_peak_caches_each_precision_apart_and_says_which(tmp_path, monkeypatch):
    with_cpu_flags(monkeypatch, "avx512f", "avx512_bf16")
    fp32 = device_peak_flops("cpu", "fp32", cache_dir=tmp_path, **PEAK_FAST)
    bf16 = device_peak_flops("cpu", "bf16", cache_dir=tmp_path, **PEAK_FAST)
    assert (fp32["precision"], bf16["precision"]) == ("fp32", "bf16")
    assert fp32["supported"] and bf16["supported"]
    files = sorted(p.name for p in tmp_path.glob("*.json"))
    assert len(files) == 2 and files[0].startswith("cpu-bf16-") and files[1].startswith("cpu-fp32-")
    assert json.loads((tmp_path / files[0]).read_text())["precision"] == "bf16"
    # Each precision is read back from its own entry, under every spelling of it.
    assert device_peak_flops("cpu", torch.bfloat16, cache_dir=tmp_path, **PEAK_FAST)["flops_per_s"] == bf16["flops_per_s"]
    for spelling in ("off", None, torch.float32, "float32"):
        again = device_peak_flops("cpu", spelling, cache_dir=tmp_path, **PEAK_FAST)
        assert again["cached"] and again["precision"] == "fp32" and again["flops_per_s"] == fp32["flops_per_s"]


def test_device_peak_of_a_precision_without_native_arithmetic_is_an_unsupported_entry(tmp_path, monkeypatch):
    with_cpu_flags(monkeypatch, "avx512f", "avx2")  # no bf16 or fp16 hardware
    for precision in ("bf16", "fp16"):
        entry = device_peak_flops("cpu", precision, cache_dir=tmp_path, **PEAK_FAST)
        assert entry["precision"] == precision and entry["supported"] is False
        assert entry["flops_per_s"] is None and precision in entry["reason"]
        assert training_cost(1e6, 10, entry["flops_per_s"]) == {"achieved_flops_per_s": 1e7, "mfu": None}
    assert not list(tmp_path.iterdir())  # nothing measured, nothing cached
    assert device_peak_flops("cpu", "fp32", cache_dir=tmp_path, **PEAK_FAST)["supported"] is True


def test_device_peak_bad_precision_and_tf32_on_cpu_name_the_value():
    with pytest.raises(ValueError, match="precision='int8'"):
        device_peak_flops("cpu", "int8")
    with pytest.raises(ValueError, match="tf32=True applies to CUDA only"):
        device_peak_flops("cpu", "fp32", tf32=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        device_peak_flops("cuda")


def test_peak_memory_is_in_bytes():
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched by the fill
    assert peak_memory_bytes("cpu") >= block.numel() * 4
    del block


def test_training_cost_is_flops_times_rate_over_peak():
    cost = training_cost(flops_train_per_image=3e9, img_per_s=50, peak_flops_per_s=1e12)
    assert cost["achieved_flops_per_s"] == pytest.approx(1.5e11)
    assert cost["mfu"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="peak_flops_per_s=0"):
        training_cost(3e9, 50, 0)
    with pytest.raises(ValueError, match="img_per_s=-1"):
        training_cost(3e9, -1, 1e12)


def test_a_new_peak_carries_its_quiet_judgement_and_lives_under_archbench_cache_dir(tmp_path, monkeypatch):
    """The MFU note of a record made now must not say its peak predates quiet checks (issue 43, item 8)."""
    from archbench.measure.peak import device_peak_flops
    from archbench.quiet import legacy_under_load

    monkeypatch.setenv("ARCHBENCH_CACHE_DIR", str(tmp_path))
    busy = device_peak_flops("cpu", "fp32", matrix_size=64, refresh=True)
    assert busy["quiet"]["checked"] and list((tmp_path / "peak").glob("cpu-fp32-n64-*.json"))
    cached = device_peak_flops("cpu", "fp32", matrix_size=64)
    assert cached["cached"] and cached["quiet"] == busy["quiet"]
    note = legacy_under_load(cached, 1)
    assert note is None or "before quiet checks existed" not in note["reason"]
