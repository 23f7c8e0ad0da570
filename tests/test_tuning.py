"""Equal-effort tuning: identical candidates for every model, selection on validation only, a final stage
that refuses an incomplete tuning study."""
import json
import math

import pandas as pd
import pytest

from archbench.results.tuning import TuningError, TuningSpace, apply_candidate, best_trials, select, trial_settings

from helpers import FAST, archbench, load

SPACE = {"trials": 8, "seed": 0, "space": {"lr": {"low": 0.01, "high": 1.0, "log": True},
                                           "weight_decay": {"low": 1e-5, "high": 1e-3, "log": True}}}


def test_candidates_are_fixed_in_range_and_spread():
    first, again = TuningSpace.from_config(SPACE).candidates(), TuningSpace.from_config(SPACE).candidates()
    assert first == again and len(first) == 8  # the same list for every model and every process
    assert all(0.01 <= c["lr"] <= 1.0 and 1e-5 <= c["weight_decay"] <= 1e-3 for c in first)
    # Sobol points cover the log range: each decade of lr holds candidates
    decades = {math.floor(math.log10(c["lr"])) for c in first}
    assert decades == {-2, -1}
    other_seed = TuningSpace.from_config({**SPACE, "seed": 1}).candidates()
    assert other_seed != first


def test_every_model_gets_identical_candidates_through_the_config():
    train = {"optimizer": {"lr": 0.1, "weight_decay": 5e-4}, "label_smoothing": 0.0}
    per_model = {m: [apply_candidate(train, trial_settings(SPACE, k, "s")[0]) for k in range(8)]
                 for m in ("resnet20", "efficientnetv2_b0")}
    assert per_model["resnet20"] == per_model["efficientnetv2_b0"]
    assert per_model["resnet20"][3]["optimizer"]["lr"] == TuningSpace.from_config(SPACE).candidates()[3]["lr"]
    with pytest.raises(TuningError, match=r"trial=8 must be an integer in \[0, 7\]"):
        trial_settings(SPACE, 8, "s")
    with pytest.raises(TuningError, match="tuning.space.momentum is not tunable"):
        TuningSpace.from_config({**SPACE, "space": {"momentum": {"low": 0.5, "high": 0.99}}})


def test_selection_reads_validation_not_test():
    runs = pd.DataFrame({
        "tuning_study": "t", "data": "d", "hardware": "h", "model": "m", "trial": [0.0, 1.0, 2.0],
        "val_top1": [80.0, 85.0, 85.0], "val_loss": [0.5, 0.40, 0.45],
        "test_top1": [99.0, 70.0, 71.0],  # trial 0 is best on test: it must not be chosen
    })
    best = best_trials(runs)
    assert len(best) == 1 and best.iloc[0]["trial"] == 1.0  # ties on val_top1 broken by lower val_loss


@pytest.mark.slow
def test_tuning_then_final_stage_end_to_end(tmp_path):
    tuning = ["tuning={trials:2,seed:0,space:{lr:{low:0.01,high:0.5,log:true}}}"]
    early = archbench([*FAST, "study=final", "tuned_from=tune", "seed=1"], tmp_path)
    assert early.returncode == 2 and "no complete trials of resnet20" in early.stderr, early.stderr[-2000:]
    out = archbench(["-m", *FAST, "study=tune", "trial=0", *tuning], tmp_path)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    missing = archbench([*FAST, "study=final", "tuned_from=tune", "seed=1"], tmp_path)
    assert missing.returncode == 2 and "trial 1" in missing.stderr, missing.stderr[-2000:]
    archbench(["-m", *FAST, "study=tune", "trial=1", *tuning], tmp_path)
    # Seed 0 is the trials' seed: a final run on it would repeat the selection run.
    reused = archbench([*FAST, "study=final", "tuned_from=tune"], tmp_path)
    assert reused.returncode == 2 and "seeds the trials never used" in reused.stderr, reused.stderr[-2000:]
    final = archbench([*FAST, "study=final", "tuned_from=tune", "seed=1"], tmp_path)
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    record = json.loads(next(tmp_path.glob("runs/final/**/record.json")).read_text())
    assert record["seed"] == 1
    trials = [json.loads(p.read_text()) for p in tmp_path.glob("runs/tune/**/record.json")]
    chosen = max(trials, key=lambda r: r["metrics"]["val_top1"])
    assert record["tuning"]["tuned_from"] == "tune" and record["tuning"]["trials"] == 2
    assert record["recipe"]["lr"] == pytest.approx(record["tuning"]["candidate"]["lr"])
    assert {t["tuning"]["trial"] for t in trials} == {0, 1}
    assert record["tuning"]["selected_val_top1"] == chosen["metrics"]["val_top1"]
    # A diverged trial is finished (its candidate lost): selection counts it and never picks it.
    paths = {json.loads(p.read_text())["tuning"]["trial"]: p for p in tmp_path.glob("runs/tune/**/record.json")}
    diverged = json.loads(paths[chosen["tuning"]["trial"]].read_text())
    diverged.update(status="diverged", error={"type": "Diverged", "message": "loss 1e20 above 10 x ln(10)"})
    paths[chosen["tuning"]["trial"]].write_text(json.dumps(diverged))
    candidate, section = select(tmp_path, "tune", "synthetic", "resnet20")
    assert section["selected_trial"] == 1 - chosen["tuning"]["trial"] and section["trials"] == 2
