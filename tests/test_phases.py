"""What a run does next is announced phase by phase (a profile run promises no training), and evaluation after
training is priced in the run's ETA and the dry run's estimate."""
import logging
import re
from types import SimpleNamespace

import pytest

from archbench.run import phases, preflight
from archbench.run.preflight import format_plan
from archbench.train.budget import Budget
from archbench.train.loop import _log_eta, fit

from helpers import FAST, spec_for
from test_train import loaders, settings, toy_model

QUICK = [a for a in FAST if not a.startswith("evaluate.")]  # the shipped evaluation: 5 corruptions x 3 severities


def test_the_phases_after_training_follow_the_evaluate_settings(tmp_path):
    spec = spec_for(QUICK, tmp_path)
    after = phases.after_training(spec, val_size=5000, test_size=10_000, image_size=32)
    assert [p.name for p in after] == ["test set", "latency and throughput", "calibration",
                                       "5 corruptions x 3 severities on 1,000 images"]
    assert after[0].images == 20_000 and after[2].images == 15_000  # best and last; test and val (temperature)
    assert after[3].images == 1000 * 16 and after[3].fixed_s == pytest.approx(15 * 1000 * 1e-3)  # 32x32: 1 ms each
    quick = phases.after_training(spec_for([*QUICK, "evaluate.after_train=false"], tmp_path), 5000, 10_000, 32)
    assert [p.name for p in quick] == ["test set", "latency and throughput"]
    seconds, words = phases.describe(after, forward=1e-3)
    assert seconds == pytest.approx(20 + 2 * 0.05 + 15 + 16 + 15)  # FAST times latency for 0.05 s a pass
    assert words.endswith("(evaluate.after_train=false skips calibration and corruptions)")
    assert "skips" not in phases.describe(quick, forward=1e-3)[1]  # nothing left to skip: no advice


def test_the_training_eta_includes_evaluation_and_ends_when_the_run_does(caplog, monkeypatch):
    import time

    monkeypatch.setattr("time.time", lambda: 0.0)  # the epoch, so the end time is known in any time zone
    end = time.strftime("%H:%M", time.localtime(30 + 3600))  # training left plus evaluation
    state = SimpleNamespace(train_s=11.0, step=11, epoch=0)
    calls = []

    def after(step_s, val_passes):
        calls.append((step_s, val_passes))
        return 3600.0, "about 1 h: validation, test set"

    run = SimpleNamespace(budget=Budget("steps", 41), after_training=after)
    with caplog.at_level(logging.INFO, logger="archbench"):
        _log_eta(state, run, planned_steps=41, start=(1, 1.0), steps_per_epoch=20)  # 1 s a step, 30 left
    assert calls == [(1.0, 3)]  # epochs 0, 1 and 2 still validate
    assert "estimated training time left: 30 s (1000 ms per step); then evaluation, about 1 h: validation, " \
           f"test set; ending about {end}" in caplog.text


def test_the_end_of_training_says_what_follows_and_the_test_set_is_announced(caplog):
    train, val, test = loaders()
    told = []
    run = settings(Budget("steps", 5),
                   after_training=lambda step_s, passes: told.append(passes) or (42.0, "about 42 s: test set, x"))
    with caplog.at_level(logging.INFO, logger="archbench"):
        fit(toy_model(), train, val, test, run)
    assert told == [0]  # after the last step, no validation is left
    lines = [r.getMessage() for r in caplog.records]
    done = next(i for i, line in enumerate(lines) if line.startswith("training done: 5 steps in "))
    assert lines[done].endswith("evaluation next, about 42 s: test set, x")
    assert lines[done + 1].startswith("evaluating the test set"), lines


def test_a_profile_run_does_not_promise_latency_after_training(tmp_path, caplog):
    from archbench.run import run  # here: the other tests name their own settings `run`

    spec = spec_for(["task=profile", "model=resnet20", "data=synthetic", "data.image_size=16", "measure.warmup=1",
                     "measure.min_reps=1", "measure.min_time_s=0.01", "measure.batch_size=2", "device=cpu"], tmp_path)
    with caplog.at_level(logging.INFO, logger="archbench"):
        run(spec)
    assert "building resnet20 on synthetic: model and complexity count, then latency" in caplog.text
    assert "after training" not in caplog.text


def test_the_dry_run_estimate_includes_evaluation_and_says_how_to_skip_it(tmp_path):
    full = preflight(spec_for(QUICK, tmp_path / "a"), timed_steps=1)
    quick = preflight(spec_for([*QUICK, "evaluate.after_train=false"], tmp_path / "b"), timed_steps=1)
    assert full["problem"] is None and quick["problem"] is None
    assert full["est_s"] > full["eval_s"] > quick["eval_s"] > 0
    # generating 15 corrupted sets of the 60-image synthetic test split alone is priced at 15 x 60 x 0.25 ms
    assert full["eval_s"] - quick["eval_s"] > 15 * 60 * 1e-3 / 4
    plan = format_plan([full])
    assert re.search(r"estimated time on this device: .* of it evaluation \(validation, the test set, latency, "
                     r"calibration and corruptions; evaluate.after_train=false skips calibration and corruptions "
                     r"for a quick check\)", plan), plan
    assert "skips" not in format_plan([quick])


def test_the_dry_run_prices_the_learning_curves_validation_passes(tmp_path):
    once = preflight(spec_for([*QUICK, "evaluate.after_train=false"], tmp_path / "a"), timed_steps=1)
    quarterly = preflight(spec_for([*QUICK, "evaluate.after_train=false", "train.val_per_epoch=4"], tmp_path / "b"),
                          timed_steps=1)
    assert quarterly["eval_s"] > once["eval_s"]  # four validation passes per epoch, not one
