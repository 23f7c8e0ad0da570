"""train.compile as a mode (off | default | reduce-overhead | max-autotune), and a dry run that times the
precision, layout and compile mode the run will use."""
import pytest
import torch
import torch.nn as nn

import importlib

preflight_module = importlib.import_module("archbench.run.preflight")  # the function of that name shadows it
from archbench.base.numerics import compile_mode
from archbench.settings import Recipe, SettingsError
from archbench.train.budget import Budget
from test_faults import tiny_spec
from test_train import loaders, settings, toy_model

RECIPE = {"name": "tiny", "batch_size": 8, "budget": {"steps": 2},
          "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
          "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}


@pytest.mark.parametrize("given, mode", [(True, "default"), (False, "off"), ("off", "off"),
                                         ("reduce-overhead", "reduce-overhead"), ("max-autotune", "max-autotune")])
def test_compile_modes_and_their_boolean_aliases(given, mode):
    assert compile_mode(given) == mode
    assert Recipe.from_config({**RECIPE, "compile": given}).compile == mode


def test_an_unknown_compile_mode_names_the_modes():
    with pytest.raises(SettingsError, match="train.compile='fast'.*off, default, reduce-overhead, max-autotune"):
        Recipe.from_config({**RECIPE, "compile": "fast"})
    with pytest.raises(ValueError, match="train.compile"):
        settings(Budget("steps", 1), compile="fast")  # the loop's settings go through the same check


def test_the_boolean_aliases_keep_the_fingerprints_of_earlier_runs():
    identity = lambda value: Recipe.from_config({**RECIPE, "compile": value}).identity()["compile"]
    assert identity(False) is False and identity("off") is False
    assert identity(True) is True and identity("default") is True
    assert identity("reduce-overhead") == "reduce-overhead"


def _recording_compile(monkeypatch):
    modes = []

    def fake_compile(model, mode=None, **kwargs):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    return modes


@pytest.mark.parametrize("mode, passed", [("default", None), ("reduce-overhead", "reduce-overhead"), ("off", "X")])
def test_fit_compiles_with_the_chosen_mode(monkeypatch, mode, passed):
    from archbench.train.loop import fit

    modes = _recording_compile(monkeypatch)
    train, val, test = loaders()
    fit(toy_model(), train, val, test, settings(Budget("steps", 2), compile=mode))
    assert modes == ([] if mode == "off" else [passed])


class Probe(nn.Module):
    """A tiny conv net that notes, per forward, autocast and the input's memory layout."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen
        self.conv, self.head = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 10)

    def forward(self, x):
        self.seen.append((torch.is_autocast_enabled(x.device.type),
                          x.is_contiguous(memory_format=torch.channels_last)))
        return self.head(self.conv(x).mean((2, 3)))


@pytest.mark.parametrize("amp, channels_last, compile_as", [("bf16", True, "reduce-overhead"), ("off", False, "off")])
def test_the_dry_run_times_the_runs_precision_layout_and_compile_mode(tmp_path, monkeypatch, amp, channels_last,
                                                                      compile_as):
    seen = []
    modes = _recording_compile(monkeypatch)
    monkeypatch.setattr(preflight_module, "create_model", lambda spec, info: (Probe(seen), "probe", None))
    preflight_module._STEP_TIMES.clear()
    spec = tiny_spec(tmp_path, device="cpu")
    object.__setattr__(spec.recipe, "amp", amp)
    object.__setattr__(spec.recipe, "channels_last", channels_last)
    object.__setattr__(spec.recipe, "compile", compile_as)
    info = {"in_chans": 3, "image_size": 8, "num_classes": 10}
    step_s, batch, note, _ = preflight_module._time_steps(spec, info, timed_steps=1)
    assert step_s > 0 and note is None
    assert seen and set(seen) == {(amp != "off", channels_last)}
    assert modes == ([] if compile_as == "off" else [compile_as])


def test_auto_precision_is_planned_by_the_stated_rule():
    recipe = Recipe.from_config({**RECIPE, "amp": "auto", "channels_last": "auto"})
    assert preflight_module._planned_precision(recipe, "cpu") == ("off", False)  # no bf16 tensor cores on a CPU
    explicit = Recipe.from_config({**RECIPE, "amp": "bf16", "channels_last": True})
    assert preflight_module._planned_precision(explicit, "cpu") == ("bf16", True)


@pytest.mark.parametrize("channels_last, layout", [("auto", True), (False, False)])
def test_auto_precision_on_a_bf16_gpu_is_the_stated_rule_not_a_probe(monkeypatch, channels_last, layout):
    import archbench.train.precision as precision

    monkeypatch.setattr(precision, "resolve_device", lambda device: torch.device("cuda", 0))
    monkeypatch.setattr(precision, "native_low_precision", lambda device: ("bf16", "H200 supports bf16"))
    monkeypatch.setattr(precision, "measure_training_speed", lambda *a, **k: pytest.fail("probed"))
    choice = precision.choose_precision(lambda: nn.Linear(3, 10), (3, 8, 8), 8, 10, "cuda",
                                        channels_last=channels_last)
    assert (choice["amp"], choice["channels_last"]) == ("bf16", layout)
    assert choice["reason"].startswith("rule, not measured") and choice["probe"] == {}
