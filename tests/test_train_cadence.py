"""Checkpoints on a time cadence (at epoch ends and within epochs, at the end, on a signal); DDP stop decisions every N steps."""
import os
import signal

import pytest
import torch

import archbench.train.loop as loop
from archbench.settings import Recipe, SettingsError
from archbench.train.budget import Budget
from archbench.train.checkpoint import load_checkpoint
from archbench.train.loop import DDP_DECISION_EVERY, TrainingInterrupted, fit
from test_train import loaders, settings, toy_model


@pytest.fixture
def writes(monkeypatch):
    """The steps at which a checkpoint was written (the real write still happens)."""
    seen = []
    real = loop.save_checkpoint

    def counting(path, payload):
        seen.append(payload["step"])
        real(path, payload)

    monkeypatch.setattr(loop, "save_checkpoint", counting)
    return seen


def test_every_epoch_end_writes_when_the_cadence_is_zero(tmp_path, writes):
    train, val, test = loaders()
    fit(toy_model(), train, val, test, settings(Budget("epochs", 3), checkpoint_every_s=0),
        checkpoint_path=tmp_path / "c.ckpt")
    assert writes == [len(train), 2 * len(train), 3 * len(train)]


def test_a_long_cadence_writes_only_at_the_end(tmp_path, writes):
    train, val, test = loaders()
    fit(toy_model(), train, val, test, settings(Budget("epochs", 3), checkpoint_every_s=1e9),
        checkpoint_path=tmp_path / "c.ckpt")
    assert writes == [3 * len(train)]


def test_a_signal_writes_whatever_the_cadence(tmp_path, writes):
    def sigterm(epoch, index):
        if epoch == 1 and index == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    train, val, test = loaders(on_batch=sigterm)
    with pytest.raises(TrainingInterrupted):
        fit(toy_model(), train, val, test, settings(Budget("epochs", 3), checkpoint_every_s=1e9),
            checkpoint_path=tmp_path / "c.ckpt")
    assert writes == [len(train) + 3]  # epoch 0's end was not due; the signal's mid-epoch one was written


def test_the_cadence_also_writes_within_an_epoch(tmp_path, writes):
    train, val, test = loaders()
    fit(toy_model(), train, val, test, settings(Budget("epochs", 2), checkpoint_every_s=1e-9),
        checkpoint_path=tmp_path / "c.ckpt")
    assert writes == list(range(1, 2 * len(train) + 1))  # every step is past a cadence of a nanosecond


def test_a_hard_kill_resumes_from_the_last_mid_epoch_write_as_if_uninterrupted(tmp_path, writes):
    """No signal, no handler: the process dies mid-epoch; the same command resumes from the timed write."""
    def weights(model):
        return torch.cat([p.detach().flatten() for p in model.state_dict().values() if p.is_floating_point()])

    class Killed(Exception):
        pass

    def kill(epoch, index):
        if epoch == 1 and index == 3:
            raise Killed

    torch.manual_seed(7)
    train, val, test = loaders()
    reference = fit(toy_model(), train, val, test, settings(Budget("epochs", 3)))
    ckpt = tmp_path / "c.ckpt"
    torch.manual_seed(7)
    train, val, test = loaders(on_batch=kill)
    with pytest.raises(Killed):
        fit(toy_model(), train, val, test, settings(Budget("epochs", 3), checkpoint_every_s=1e-9),
            checkpoint_path=ckpt)
    assert load_checkpoint(ckpt, None)["step"] == len(train) + 3  # the write after the last finished step
    train, val, test = loaders()
    resumed = fit(toy_model(seed=99), train, val, test, settings(Budget("epochs", 3)), checkpoint_path=ckpt)
    assert resumed.train["steps"] == reference.train["steps"]
    assert resumed.history[1]["train_loss"] == pytest.approx(reference.history[1]["train_loss"], rel=1e-6)
    assert torch.allclose(weights(resumed.model), weights(reference.model), atol=1e-6)


def test_a_bad_cadence_is_refused_naming_the_key():
    # checked once, where the recipe is read (Recipe.validate), before the loop's settings are built from it
    recipe = {"name": "tiny", "batch_size": 32, "budget": {"epochs": 1},
              "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
              "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
    for bad in (-1, True, "soon"):
        with pytest.raises(SettingsError, match="train.checkpoint_every_s"):
            Recipe.from_config({**recipe, "checkpoint_every_s": bad})
    assert Recipe.from_config({**recipe, "checkpoint_every_s": 0}).train_settings(
        amp="off", channels_last=False).checkpoint_every_s == 0


@pytest.fixture
def fake_world(monkeypatch):
    """Rank 0 of a two-rank world whose collectives are those of one rank; counts the all-reduces."""
    calls = []
    monkeypatch.setattr(loop, "_world", lambda: (0, 2))
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda model: model)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor, op=None: calls.append(tensor.numel()))
    return calls


def test_ddp_agrees_on_stopping_every_n_steps_not_every_step(fake_world):
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 3)))
    steps = result.train["steps"]
    assert steps == 3 * len(train) and steps > DDP_DECISION_EVERY
    decisions = [n for n in fake_world if n == 3]  # [signal, rank 0's clock, non-finite]
    assert len(decisions) == steps // DDP_DECISION_EVERY
    assert len(fake_world) == len(decisions) + 3  # plus each epoch's one sum of its totals


def test_ddp_stops_on_a_signal_at_the_next_agreement_step(tmp_path, fake_world):
    def sigterm(epoch, index):
        if epoch == 0 and index == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    train, val, test = loaders(on_batch=sigterm)
    ckpt = tmp_path / "c.ckpt"
    with pytest.raises(TrainingInterrupted):
        fit(toy_model(), train, val, test, settings(Budget("epochs", 3)), checkpoint_path=ckpt)
    # signalled during step 3; every rank stops together at the first agreement step after it
    assert load_checkpoint(ckpt, None)["step"] == DDP_DECISION_EVERY


def test_ddp_seconds_budget_schedule_moves_only_at_agreements(fake_world):
    seen = []

    def schedule(progress):
        seen.append(progress)
        return 1.0

    train, val, test = loaders()
    fit(toy_model(), train, val, test, settings(Budget("seconds", 0.3), schedule=schedule))
    # within one agreement interval every rank computes the same progress (its clock is the agreed one)
    assert len(seen) > 3 * len(fake_world)  # many steps per agreement...
    assert len(set(seen)) <= len(fake_world) + 1  # ...but the progress moved only at agreements and epoch ends
