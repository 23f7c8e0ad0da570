"""Run identity: different settings never share, reuse or resume a record; status says what happened."""
import json
import signal
import time

import pytest
import torch

from archbench.record import near_chance
from archbench.results import load
from archbench.settings import DataSettings, ModelSettings, Recipe, fingerprint, run_identity
from archbench.train.checkpoint import CheckpointRefused, load_checkpoint, save_checkpoint
from archbench.train.loop import divergence

from helpers import FAST, archbench, spec_for

RECIPE = {"name": "r", "budget": {"steps": 2}, "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
          "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}


def identity(**recipe_changes):
    from archbench.settings import MeasureSettings
    recipe = Recipe.from_config({**RECIPE, **recipe_changes})
    return run_identity("train", 0, ModelSettings.from_config({"name": "resnet20"}),
                        DataSettings.from_config({"name": "synthetic"}), recipe, MeasureSettings.from_config({}))


def test_what_changes_a_result_changes_the_fingerprint_and_what_does_not_keeps_it():
    base = fingerprint(identity())
    assert fingerprint(identity(optimizer={**RECIPE["optimizer"], "lr": 0.05})) != base
    assert fingerprint(identity(budget={"steps": 3})) != base
    assert fingerprint(identity(eval_batch_size=64)) == base  # evaluation batch changes no result
    assert fingerprint(identity(target_top1=50.0)) == base


def test_a_different_command_never_reuses_another_record_and_an_lr_sweep_writes_one_per_value(tmp_path):
    out = archbench(["-m", *FAST, "train.optimizer.lr=0.05,0.1"], tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    records = sorted(tmp_path.glob("runs/default/synthetic/resnet20/*/seed0/record.json"))
    assert len(records) == 2
    lrs = sorted(json.loads(p.read_text())["recipe"]["lr"] for p in records)
    assert lrs == [0.05, 0.1]
    # The same command again skips both; a changed one says how it differs from what is there.
    again = archbench(["-m", *FAST, "train.optimizer.lr=0.05,0.1"], tmp_path)
    assert again.stdout.count("record is complete") == 2, again.stdout[-2000:]
    third = archbench([*FAST, "train.optimizer.lr=0.2"], tmp_path)
    assert third.returncode == 0 and "recipe.optimizer.lr: 0.05 -> 0.2" in third.stdout + third.stderr
    runs = load(tmp_path, include_synthetic=True)
    assert len(runs) == 3 and sorted(runs["variant_label"]) == ["lr=0.05", "lr=0.1", "lr=0.2"]


def test_a_checkpoint_of_another_identity_is_moved_aside_not_resumed(tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    save_checkpoint(path, {"model": {}, "step": 203, "identity": "standard-run"})
    assert load_checkpoint(path, identity="quick-run") is None
    assert not path.exists() and (tmp_path / "checkpoint.ckpt.corrupt-0").exists()
    save_checkpoint(path, {"model": {}, "step": 5, "identity": "quick-run"})
    assert load_checkpoint(path, identity="quick-run")["step"] == 5


class NotPlainData:
    pass


def test_a_checkpoint_that_needs_code_to_load_is_refused(tmp_path):
    path = tmp_path / "checkpoint.ckpt"
    torch.save({"model": {}, "step": 1, "payload": NotPlainData()}, path)
    with pytest.raises(CheckpointRefused, match="never unpickles code"):
        load_checkpoint(path)
    assert path.exists()  # refused, not deleted


def test_divergence_rule_non_finite_or_ten_times_chance_loss():
    assert divergence(float("nan"), 10) == "non-finite training loss"
    assert divergence(1e20, 10).startswith("training loss 1e+20 above 10 x chance")
    assert divergence(10 * 2.303 - 0.1, 10) is None  # just under 10 x ln(10)
    assert divergence(2.0, None) is None


def test_huge_learning_rate_ends_diverged(tmp_path):
    out = archbench([*FAST, "train.optimizer.lr=1e6", "train.budget.steps=20"], tmp_path)
    record = json.loads(next(tmp_path.glob("runs/**/record.json")).read_text())
    assert record["status"] == "diverged", out.stdout[-2000:]
    assert record["train"]["diverged_reason"]


def test_near_chance_flag_uses_the_binomial_noise_of_the_evaluation_set():
    assert near_chance(10.5, 10, 1000)       # chance 10%, 2 SE = 1.9 points
    assert not near_chance(13.0, 10, 1000)
    assert not near_chance(10.5, 10, None)


def test_dry_run_plans_without_writing_and_fails_on_a_missing_dataset(tmp_path):
    out = archbench([*FAST, "dry_run=true"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| run |" in out.stdout and "estimated time on this device" in out.stdout
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    missing = archbench(["data=cifar10", "data.root=" + str(tmp_path / "none"), "dry_run=true"], tmp_path)
    assert missing.returncode == 1 and "data:" in missing.stdout
