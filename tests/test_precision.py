"""The precision/layout probe: picks the fastest, respects forced values, caches, skips non-native bf16.

Timing is mocked (measure_training_speed is replaced by a table of speeds), so the tests check the
decision logic, not this machine; one test runs the real measurement for two steps on a tiny model.
"""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from archbench.train import precision
from archbench.train.precision import candidate_label, choose_precision, cpu_supports_bf16


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 3))


@pytest.fixture
def speeds(monkeypatch):
    """Mocked timing: img/s per candidate from a table the test sets; records which candidates ran."""
    table = {"fp32_nchw": 100.0, "fp32_channels_last": 120.0, "bf16_nchw": 180.0, "bf16_channels_last": 150.0}
    calls = []

    def fake(model, amp, channels_last, *args, **kwargs):
        assert isinstance(model, nn.Module)
        label = candidate_label(amp, channels_last)
        calls.append(label)
        return table[label]

    monkeypatch.setattr(precision, "measure_training_speed", fake)
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: True)
    return table, calls


def probe(**kwargs):
    args = dict(input_shape=(3, 8, 8), batch_size=4, num_classes=3, device="cpu")
    return choose_precision(kwargs.pop("model", tiny_model), **{**args, **kwargs})


def test_picks_the_fastest_candidate(speeds):
    table, calls = speeds
    choice = probe()
    assert (choice["amp"], choice["channels_last"]) == ("bf16", False)
    assert choice["probe"] == table and sorted(calls) == sorted(table)
    assert "bf16_nchw" in choice["reason"] and choice["cached"] is False
    table.update(fp32_channels_last=500.0)
    choice = probe()
    assert (choice["amp"], choice["channels_last"]) == ("off", True)


def test_a_near_tie_keeps_fp32(speeds):
    """Low precision must beat the fastest fp32 layout by the margin, else the exact reference stays."""
    table, _ = speeds
    table.update(fp32_channels_last=197.0, bf16_nchw=150.0, bf16_channels_last=197.0 * 1.04)
    choice = probe()
    assert (choice["amp"], choice["channels_last"]) == ("off", True)
    assert "within 5%" in choice["reason"]
    table.update(bf16_channels_last=197.0 * 1.06)
    choice = probe()
    assert (choice["amp"], choice["channels_last"]) == ("bf16", True)


def test_forced_values_are_respected(speeds):
    table, calls = speeds
    choice = probe(amp="off")
    assert (choice["amp"], choice["channels_last"]) == ("off", True)  # fastest fp32 layout
    assert sorted(calls) == ["fp32_channels_last", "fp32_nchw"], "a forced amp must not be probed"
    calls.clear()
    choice = probe(channels_last=True)
    assert (choice["amp"], choice["channels_last"]) == ("bf16", True)
    assert sorted(calls) == ["bf16_channels_last", "fp32_channels_last"]
    calls.clear()
    choice = probe(amp="off", channels_last=False)
    assert (choice["amp"], choice["channels_last"], choice["probe"]) == ("off", False, {})
    assert not calls and "forced" in choice["reason"]


def test_cache_hit_skips_the_probe(speeds, tmp_path):
    _, calls = speeds
    first = probe(cache_dir=tmp_path)
    assert len(calls) == 4 and len(list(tmp_path.glob("*.json"))) == 1
    calls.clear()
    again = probe(cache_dir=tmp_path)
    assert not calls, "a cached model must not be measured again"
    assert again["cached"] is True and again["probe"] == first["probe"]
    assert (again["amp"], again["channels_last"]) == (first["amp"], first["channels_last"])
    # Another batch size is another entry.
    probe(cache_dir=tmp_path, batch_size=8)
    assert len(calls) == 4 and len(list(tmp_path.glob("*.json"))) == 2


def test_cache_key_names_machine_and_model(speeds, tmp_path):
    probe(cache_dir=tmp_path, model_name="tiny")
    (entry,) = [json.loads(p.read_text()) for p in tmp_path.glob("tiny-*.json")]
    key = entry["key"]
    assert key["torch"] == torch.__version__ and key["device_name"] and key["threads"] == torch.get_num_threads()
    assert (key["model"], key["input_shape"], key["batch_size"]) == ("tiny", [3, 8, 8], 4)


def test_damaged_cache_is_measured_again(speeds, tmp_path):
    _, calls = speeds
    probe(cache_dir=tmp_path)
    for path in tmp_path.glob("*.json"):
        path.write_text("{not json")
    calls.clear()
    assert probe(cache_dir=tmp_path)["cached"] is False and len(calls) == 4


def test_bf16_left_out_without_native_support(speeds, monkeypatch):
    _, calls = speeds
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: False)
    choice = probe()
    assert choice["amp"] == "off" and choice["low_precision"] is None
    assert sorted(calls) == ["fp32_channels_last", "fp32_nchw"]
    assert "no native bf16" in choice["reason"]


def test_candidate_with_non_finite_loss_is_not_chosen(speeds):
    table, _ = speeds
    table["bf16_nchw"] = None
    choice = probe()
    assert (choice["amp"], choice["channels_last"]) == ("bf16", True)
    assert "bf16_nchw" in choice["reason"] and choice["probe"]["bf16_nchw"] is None


def test_model_instance_is_copied_not_trained(speeds):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe(model=model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kwargs, match", [
    ({"amp": "fp8"}, "amp='fp8'"), ({"channels_last": "yes"}, "channels_last='yes'"),
    ({"channels_last": 1}, "channels_last=1"), ({"batch_size": 0}, "batch_size"),
    ({"input_shape": (8, 8)}, "input_shape"), ({"model": 3}, "nn.Module"),
])
def test_bad_arguments_are_named(speeds, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        probe(**kwargs)


def test_cpu_bf16_flags(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512bw avx512_bf16\n")
    emulated = tmp_path / "emulated"
    emulated.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512bw\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n")
    assert cpu_supports_bf16(x86) and cpu_supports_bf16(arm)
    assert not cpu_supports_bf16(emulated) and not cpu_supports_bf16(tmp_path / "missing")


def test_real_measurement_runs_a_few_steps():
    model = tiny_model()
    speed = precision.measure_training_speed(model, "off", True, (3, 8, 8), 4, 3, "cpu", warmup_steps=1, steps=2)
    assert speed is not None and speed > 0
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last)
