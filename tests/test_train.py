"""Training under a budget: step plans, schedules, divergence, determinism, checkpoint and exact resume."""
import functools
import math
import os
import signal

import pytest
import torch
import torch.nn as nn

from archbench.train.budget import Budget, parse_budget, total_steps
from archbench.train.loop import TrainingInterrupted, TrainSettings, fit, param_groups
from archbench.train.schedules import Cosine, MultiStep


class TensorLoader:
    """A minimal loader with the archbench contract: deterministic order per (seed, epoch), set_epoch, len."""

    def __init__(self, x, y, batch_size, seed=0, shuffle=True, on_batch=None):
        self.x, self.y, self.batch_size, self.seed, self.shuffle = x, y, batch_size, seed, shuffle
        self.epoch, self.on_batch = 0, on_batch

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return len(self.x) // self.batch_size if self.shuffle else math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed * 1000 + self.epoch))
        else:
            order = torch.arange(len(self.x))
        for i in range(len(self)):
            if self.on_batch:
                self.on_batch(self.epoch, i)
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


def toy_data(n=256, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, 8, generator=g) * 3
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + torch.randn(n, 8, generator=g)
    return x, y


def toy_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 4))


def settings(budget, lr=0.1, schedule=None, **kw):
    return TrainSettings(budget=budget, batch_size=32, make_optimizer=functools.partial(torch.optim.SGD, momentum=0.9),
                         lr=lr, weight_decay=5e-4, schedule=schedule or Cosine(0.1), **kw)


def loaders(on_batch=None):
    x, y = toy_data()
    xv, yv = toy_data(64, seed=1)
    return (TensorLoader(x, y, 32, on_batch=on_batch), TensorLoader(xv, yv, 64, shuffle=False),
            TensorLoader(xv, yv, 64, shuffle=False))


# ------------------------------------------------------------------------------------------------ budgets

def test_parse_budget_needs_exactly_one_kind():
    assert parse_budget(epochs=3) == Budget("epochs", 3)
    with pytest.raises(ValueError, match="exactly one.*epochs=3, steps=5"):
        parse_budget(epochs=3, steps=5)
    with pytest.raises(ValueError, match="found: none"):
        parse_budget()
    with pytest.raises(ValueError, match="epochs=-1"):
        parse_budget(epochs=-1)
    with pytest.raises(ValueError, match="whole number"):
        parse_budget(steps=2.5)


def test_total_steps_per_budget_kind():
    assert total_steps(Budget("epochs", 3), 10) == 30
    assert total_steps(Budget("steps", 7), 10) == 7
    assert total_steps(Budget("seconds", 5.0), 10) is None
    # Equal training MACs: a model half as expensive per step gets twice as many steps.
    cheap = total_steps(Budget("macs", 1e12), 10, train_macs_per_step=1e9)
    dear = total_steps(Budget("macs", 1e12), 10, train_macs_per_step=2e9)
    assert cheap == 1000 and dear == 500


# ---------------------------------------------------------------------------------------------- schedules

def test_cosine_warms_up_then_decays_to_zero():
    s = Cosine(warmup_fraction=0.1, warmup_start_factor=0.0)
    assert s(0.0) == 0.0 and s(0.05) == pytest.approx(0.5) and s(0.1) == pytest.approx(1.0)
    assert s(0.55) == pytest.approx(0.5) and s(1.0) == pytest.approx(0.0, abs=1e-12)


def test_multistep_divides_at_milestones():
    s = MultiStep(milestones=(0.3, 0.6, 0.8), gamma=0.2)
    assert [s(p) for p in (0.0, 0.3, 0.7, 0.9)] == pytest.approx([1.0, 0.2, 0.04, 0.008])
    with pytest.raises(ValueError, match="increasing"):
        MultiStep(milestones=(0.6, 0.3))


def test_no_weight_decay_on_norm_and_bias():
    groups = param_groups(toy_model(), 5e-4, decay_norm_and_bias=False)
    assert all(p.ndim > 1 for p in groups[0]["params"]) and groups[1]["weight_decay"] == 0.0
    assert all(p.ndim == 1 for p in groups[1]["params"]) and len(groups[1]["params"]) == 4


# ------------------------------------------------------------------------------------------------ fitting

def test_epoch_budget_runs_planned_steps_and_lr_ends_where_schedule_says():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 3)))
    assert result.status == "complete"
    assert result.train["steps"] == 3 * len(train) == 24
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    # The last step runs at progress 23/24 of the cosine schedule.
    assert result.history[-1]["lr"] == pytest.approx(0.1 * Cosine(0.1)(23 / 24))
    assert result.metrics["test_top1"] > 50  # separable clusters: training does something
    assert result.metrics["selection"] == "val" and 0 <= result.metrics["best_epoch"] <= 2


def test_step_budget_can_end_mid_epoch():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("steps", 10)))
    assert result.train["steps"] == 10 and len(result.history) == 2
    assert result.train["epochs_fractional"] == pytest.approx(10 / 8)


def test_seconds_budget_stops_on_time_with_lr_decayed(monkeypatch):
    # An injected clock (10 ms per reading) instead of the machine's: the same steps on any load.
    import archbench.train.loop as loop

    readings = iter(range(10**9))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(readings) * 0.01)
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("seconds", 0.5)))
    # Stops at the first step boundary past the budget: never early, and no whole extra epoch.
    assert result.train["wall_s"] >= 0.5 and result.train["budget_consumed"]["seconds"] >= 0.5
    assert result.history[-1]["lr"] < 0.1 * 0.05  # near the end of the cosine


def test_no_validation_split_selects_last_epoch():
    train, _, test = loaders()
    result = fit(toy_model(), train, None, test, settings(Budget("epochs", 2)))
    assert result.metrics["selection"] == "last" and result.metrics["best_epoch"] == 1
    assert result.metrics["test_top1"] == result.metrics["test_top1_last"]


def test_huge_learning_rate_diverges_with_history():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 3), lr=1e12, schedule=MultiStep((0.9,))))
    assert result.status == "diverged"
    assert result.history and result.history[-1]["train_loss"] is None
    assert result.metrics["test_top1"] is None


def test_same_seed_gives_identical_histories():
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        train, val, test = loaders()
        runs.append(fit(toy_model(), train, val, test, settings(Budget("epochs", 2))))
    strip = lambda h: [{k: v for k, v in e.items() if k not in ("epoch_s", "img_per_s", "elapsed_s")} for e in h]
    assert strip(runs[0].history) == strip(runs[1].history)


def sigterm_once_in_epoch_1():
    """A loader hook that sends this process SIGTERM once, at the fourth batch of epoch 1."""
    fired = []

    def hook(epoch, index):
        if epoch == 1 and index == 3 and not fired:
            fired.append(True)
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def test_interrupt_then_resume_matches_uninterrupted_run(tmp_path):
    def weights(model):
        return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])

    torch.manual_seed(7)
    train, val, test = loaders()
    reference = fit(toy_model(), train, val, test, settings(Budget("epochs", 3)))

    ckpt = tmp_path / "checkpoint.ckpt"
    torch.manual_seed(7)
    train, val, test = loaders(on_batch=sigterm_once_in_epoch_1())
    with pytest.raises(TrainingInterrupted):
        fit(toy_model(), train, val, test, settings(Budget("epochs", 3)), checkpoint_path=ckpt)
    assert ckpt.exists()
    train, val, test = loaders()
    resumed = fit(toy_model(seed=99), train, val, test, settings(Budget("epochs", 3)), checkpoint_path=ckpt)
    assert resumed.train["steps"] == reference.train["steps"]
    assert resumed.history[-1]["lr"] == reference.history[-1]["lr"]
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    assert resumed.history[1]["train_loss"] == pytest.approx(reference.history[1]["train_loss"], rel=1e-6)
    assert torch.allclose(weights(resumed.model), weights(reference.model), atol=1e-6)


def test_corrupt_checkpoint_is_moved_aside_and_run_starts_over(tmp_path, caplog):
    ckpt = tmp_path / "checkpoint.ckpt"
    ckpt.write_bytes(b"\x80\x02 truncated")
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 1)), checkpoint_path=ckpt)
    assert result.status == "complete" and result.train["steps"] == len(train)
    assert (tmp_path / "checkpoint.ckpt.corrupt-0").read_bytes() == b"\x80\x02 truncated"
    assert "unreadable" in caplog.text


def test_time_to_target_is_recorded():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 3), target_top1=1.0))
    ttt = result.train["time_to_target"]
    assert ttt["epoch"] == 0 and ttt["seconds"] > 0 and ttt["target_top1"] == 1.0


def test_ema_weights_are_evaluated():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 2), ema_decay=0.9))
    assert result.status == "complete" and result.metrics["val_top1"] is not None


def test_sigusr2_saves_a_checkpoint_then_hands_over_to_the_previous_handler(tmp_path):
    # submitit traps SIGUSR2 to requeue a SLURM job; archbench must save first, then let it requeue.
    import os
    import signal

    ckpt = tmp_path / "checkpoint.ckpt"
    seen = []

    def submitit_like(signum, frame):
        seen.append((signum, ckpt.exists()))

    previous = signal.signal(signal.SIGUSR2, submitit_like)
    try:
        def send_at_batch(epoch, index):
            if epoch == 0 and index == 3:
                os.kill(os.getpid(), signal.SIGUSR2)

        train, val, test = loaders(on_batch=send_at_batch)
        with pytest.raises(TrainingInterrupted):
            fit(toy_model(), train, val, test, settings(Budget("epochs", 3)), checkpoint_path=ckpt)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert seen == [(signal.SIGUSR2, True)]  # handed over once, after the checkpoint was on disk
    assert signal.getsignal(signal.SIGUSR2) is previous


def test_compile_and_warm_up_are_timed_apart_from_training_time():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("steps", 6)))
    assert result.train["warmup_s"] > 0
    # the first step's images are outside the rate: 5 timed steps of 32 images over wall_s
    assert result.train["img_per_s"] == pytest.approx(5 * 32 / result.train["wall_s"])


def test_a_run_resumed_on_another_machine_is_one_record_listing_both(tmp_path):
    """Interrupted on machine A, resumed on machine B with the same numerics: one result, each machine's steps."""
    from archbench.train.checkpoint import checkpoint_numerics

    ckpt = tmp_path / "checkpoint.ckpt"
    train, val, test = loaders(on_batch=sigterm_once_in_epoch_1())
    with pytest.raises(TrainingInterrupted):
        fit(toy_model(), train, val, test, settings(Budget("epochs", 3), machine="cpu: Machine A (Zen 4, AVX512-BF16)"),
            checkpoint_path=ckpt)
    assert checkpoint_numerics(ckpt, None) == {"amp": "off", "channels_last": False}
    train, val, test = loaders()
    resumed = fit(toy_model(), train, val, test, settings(Budget("epochs", 3), machine="cpu: Machine B (Sapphire Rapids)"),
                  checkpoint_path=ckpt)
    machines = resumed.train["machines"]
    assert [m["machine"] for m in machines] == ["cpu: Machine A (Zen 4, AVX512-BF16)", "cpu: Machine B (Sapphire Rapids)"]
    assert sum(m["steps"] for m in machines) == resumed.train["steps"] and all(m["steps"] > 0 for m in machines)
    # one machine throughout: one entry with every step
    train, val, test = loaders()
    alone = fit(toy_model(), train, val, test, settings(Budget("epochs", 1), machine="cpu: Machine A"))
    assert alone.train["machines"] == [{"machine": "cpu: Machine A", "steps": alone.train["steps"]}]


def test_a_resume_keeps_the_precision_auto_chose_when_it_started(tmp_path):
    from archbench.run import RunSpec
    from archbench.run.training import CHECKPOINT_FILE, _precision
    from archbench.train.checkpoint import save_checkpoint

    recipe = {"name": "tiny", "batch_size": 32, "budget": {"steps": 2}, "amp": "auto", "channels_last": "auto",
              "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
              "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
    spec = RunSpec.from_configs(model={"name": "resnet20"}, data={"name": "synthetic", "synthetic_size": 64,
                                "image_size": 16}, train=recipe, results_dir=str(tmp_path))
    spec.record_dir.mkdir(parents=True)
    save_checkpoint(spec.record_dir / CHECKPOINT_FILE, {"model": {}, "step": 5, "identity": spec.fingerprint,
                                                          "numerics": {"amp": "bf16", "channels_last": True}})
    assert _precision(spec, None, "cpu", {}) == ("bf16", True)  # no probe on this machine: the run's own choice


def test_auto_precision_is_decided_once_per_study_and_model_and_reused_on_any_machine(tmp_path, monkeypatch, caplog):
    import logging

    import json

    import archbench.run.training as training
    import archbench.train.precision as precision
    from archbench.run import RunSpec

    probes = []

    def probe(*args, **kwargs):
        probes.append(kwargs.get("model_name"))
        return {"amp": "bf16", "channels_last": True, "reason": "fastest here"}

    monkeypatch.setattr(precision, "choose_precision", probe)

    def spec(seed):
        recipe = {"name": "tiny", "batch_size": 32, "budget": {"steps": 2}, "amp": "auto", "channels_last": "auto",
                  "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
                  "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
        return RunSpec.from_configs(model={"name": "resnet20"}, data={"name": "synthetic", "synthetic_size": 64,
                                    "image_size": 16}, train=recipe, results_dir=str(tmp_path), seed=seed)

    class Built:  # what the probe would read; the decision path never touches it
        model, input_shape, data_info = None, (1, 3, 16, 16), {"num_classes": 10}

    assert training._precision(spec(0), Built, "cpu", {}) == ("bf16", True) and probes == ["resnet20"]
    decision = json.loads((spec(0).record_dir.parent / training.STUDY_DECISION_FILE).read_text())
    assert decision["amp"] == "bf16" and decision["decided_on"].startswith("cpu: ")
    record = {}
    with caplog.at_level(logging.INFO, logger="archbench"):
        assert training._precision(spec(1), Built, "cpu", record) == ("bf16", True)
    assert probes == ["resnet20"] and "the study's decision" in record["train_precision"]["reason"]
    # a machine without native bf16 cannot follow it: it probes its own and says its runs stand apart
    monkeypatch.setattr(precision, "native_low_precision", lambda device: (None, "no bf16 here"))
    monkeypatch.setattr(precision, "choose_precision", lambda *a, **k: probes.append("own") or
                        {"amp": "off", "channels_last": True, "reason": "fp32 here"})
    with caplog.at_level(logging.WARNING, logger="archbench"):
        assert training._precision(spec(2), Built, "cpu", {}) == ("off", True)
    assert probes == ["resnet20", "own"] and "cannot follow the study's precision decision" in caplog.text


def test_validation_inside_epochs_draws_a_curve_and_changes_nothing_learned():
    def weights(model):
        return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])

    runs = {}
    for per_epoch in (1, 4):
        torch.manual_seed(11)
        train, val, test = loaders()
        runs[per_epoch] = fit(toy_model(), train, val, test, settings(Budget("epochs", 2), val_per_epoch=per_epoch))
    curve = runs[4].train["val_curve"]
    assert runs[1].train["val_curve"] == [] and len(curve) == 2 * 3  # three inside each of two epochs
    assert [point["epoch"] for point in curve[:3]] == [0.25, 0.5, 0.75] and all(0 <= p["val_top1"] <= 100 for p in curve)
    assert [p["step"] for p in curve] == sorted(p["step"] for p in curve)
    assert torch.equal(weights(runs[1].model), weights(runs[4].model))  # evaluation touched no weight
    assert runs[1].metrics["test_top1"] == runs[4].metrics["test_top1"]


def test_val_per_epoch_is_checked_and_left_out_of_the_run_identity():
    from archbench.settings import Recipe, SettingsError

    base = {"name": "r", "batch_size": 32, "budget": {"steps": 2}, "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
            "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
    assert Recipe.from_config(base).identity() == Recipe.from_config({**base, "val_per_epoch": 4}).identity()
    with pytest.raises(SettingsError, match="val_per_epoch=0 must be a whole number"):
        Recipe.from_config({**base, "val_per_epoch": 0})
