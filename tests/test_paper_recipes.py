"""The paper_recipes study trained for real: every pairing's model and its own paper's recipe, end to end."""
import pytest

from archbench.__main__ import CONF_DIR

from helpers import archbench, load, record_path


@pytest.mark.slow
def test_paper_recipes_study_trains_every_pairing_end_to_end(tmp_path):
    # The real study: every pairing's model and recipe, on tiny synthetic data, two steps each.
    out = archbench(["-m", "experiment=paper_recipes", "data=synthetic", "data.synthetic_size=160", "seed=0",
                     "train.batch_size=8", "train.eval_batch_size=64", "train.budget.steps=2", "measure.warmup=0",
                     "train.amp=off", "train.channels_last=false", "evaluate.after_train=false",
                     "measure.min_reps=1", "measure.min_time_s=0.01", "measure.batch_size=2"], tmp_path, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    pairings = sorted(p.stem for p in (CONF_DIR / "paper").glob("*.yaml"))
    for model in pairings:
        record = load(record_path(tmp_path, model, study="paper_recipes"))
        assert record["status"] == "complete", (model, record.get("error"))
        assert record["recipe"]["name"] != "standard" and record["recipe"]["budget"] == {"steps": 2}
        assert record["dataset"]["val_size"] == 0  # the pairing sets the papers' full training set itself
