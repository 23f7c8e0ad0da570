"""Tuning never reuses its selection run: a tuned run with a trial's fingerprint (candidate and seed) is left
out with its reason, and the final stage refuses a seed the trials ran on."""
import pytest

from archbench import results
from archbench.results.tuning import TuningError, select

from helpers import fixture_record, write_record

CANDIDATES = [{"lr": 0.01, "weight_decay": 1e-4}, {"lr": 0.1, "weight_decay": 1e-5}]


def _identity(candidate: dict, seed: int) -> dict:
    # What archbench.settings.run_identity hashes; a fake digest is enough for matching.
    return {"fingerprint": f"lr{candidate['lr']}-wd{candidate['weight_decay']}-seed{seed}",
            "variant": f"lr{candidate['lr']}", "settings": {"seed": seed}}


def _write(tmp_path, study, seed, candidate, tuning, test_top1, val_top1, variant="v"):
    record = fixture_record(study, "resnet20", "resnet_v1", seed, test_top1=test_top1, val_top1=val_top1)
    record["tuning"] = tuning
    record["identity"] = _identity(candidate, seed)
    write_record(tmp_path, record, variant)


def _studies(tmp_path):
    for trial, candidate in enumerate(CANDIDATES):
        _write(tmp_path, "tune", 0, candidate, {"study": "tune", "trial": trial, "trials": 2, "candidate": candidate},
               test_top1=80.0 + trial, val_top1=80.0 + trial, variant=f"trial{trial}")
    selection = {"tuned_from": "tune", "selected_trial": 1, "trials": 2, "candidate": CANDIDATES[1]}
    # Seed 0 repeats trial 1 exactly (its lucky test score 81 is why it was chosen); seeds 1-2 are fresh.
    for seed, top1 in ((0, 81.0), (1, 78.0), (2, 79.0)):
        _write(tmp_path, "tuned", seed, CANDIDATES[1], selection, test_top1=top1, val_top1=80.0)


def test_a_tuned_run_repeating_a_trial_is_excluded_with_its_reason(tmp_path):
    _studies(tmp_path)
    runs, excluded = results.load_with_exclusions(tmp_path)
    tuned = runs[runs.study == "tuned"]
    assert sorted(tuned.seed) == [1, 2]
    assert tuned.test_top1.mean() == pytest.approx(78.5)  # fresh seeds only
    (reason,) = excluded[excluded.study == "tuned"].reason
    assert reason.startswith("repeats trial 1 of tune (same candidate, same seed 0)")
    assert len(runs[runs.study == "tune"]) == 2  # the trials themselves stay


def test_the_final_stage_refuses_a_trial_seed(tmp_path):
    _studies(tmp_path)
    with pytest.raises(TuningError, match=r"tuned_from='tune': seed=0 is a seed the trials of resnet20 ran on \(seed 0\).*seed=1"):
        select(tmp_path, "tune", "cifar10", "resnet20", seed=0)
    candidate, section = select(tmp_path, "tune", "cifar10", "resnet20", seed=3)
    assert candidate == CANDIDATES[1] and section["selected_trial"] == 1
