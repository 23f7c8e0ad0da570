"""Per-image test outcomes: captured from the final test evaluation, written beside the record, reloaded."""
import json

import numpy as np
import pandas as pd
import pytest

from archbench import results
from archbench.outcomes import OUTCOMES_FILENAME, read_outcomes, write_outcomes
from archbench.train.budget import Budget
from archbench.train.loop import fit

from test_train import loaders, settings, toy_model


def test_fit_returns_the_selected_weights_outcomes_matching_test_top1():
    train, val, test = loaders()
    result = fit(toy_model(), train, val, test, settings(Budget("epochs", 3)))
    predicted, labels = result.test_outcomes
    assert predicted.shape == labels.shape == (len(test.y),)
    assert np.array_equal(labels, test.y.numpy())  # in the loader's order: image k is test image k
    assert 100.0 * (predicted == labels).mean() == pytest.approx(result.metrics["test_top1"])


def _record(tmp_path, predicted, labels, top1=None):
    section = write_outcomes(tmp_path / OUTCOMES_FILENAME, predicted, labels)
    record = {"test_outcomes": section, "metrics": {"test_top1": section["top1"] if top1 is None else top1}}
    (tmp_path / "record.json").write_text(json.dumps(record))
    return record


def test_outcomes_round_trip_compactly_and_refuse_another_runs_file(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 10_000)
    predicted = np.where(rng.random(10_000) < 0.9, labels, rng.integers(0, 10, 10_000))
    record = _record(tmp_path, predicted, labels)
    assert record["test_outcomes"]["images"] == 10_000
    assert (tmp_path / OUTCOMES_FILENAME).stat().st_size < 40_000  # tens of kB, not megabytes
    back = read_outcomes(tmp_path / "record.json", record)
    assert np.array_equal(back["predicted"], predicted) and np.array_equal(back["labels"], labels)
    assert back["correct"].mean() == pytest.approx((predicted == labels).mean())
    # Reloadable from the results layer, keyed by record path; a record without outcomes is absent.
    runs = pd.DataFrame({"path": [str(tmp_path / "record.json")]})
    assert np.array_equal(results.test_outcomes(runs)[str(tmp_path / "record.json")]["correct"], predicted == labels)
    assert read_outcomes(tmp_path / "record.json", {"metrics": {}}) is None
    with pytest.raises(ValueError, match="do not match the record"):
        read_outcomes(tmp_path / "record.json", {**record, "metrics": {"test_top1": 12.0}})


def test_a_thousand_classes_fit_in_uint16(tmp_path):
    labels = np.arange(1000)
    record = _record(tmp_path, labels, labels)
    with np.load(tmp_path / OUTCOMES_FILENAME) as data:
        assert data["predicted"].dtype == np.uint16
    assert read_outcomes(tmp_path / "record.json", record)["correct"].all()


def test_tied_logits_count_the_same_class_in_top1_and_in_the_outcomes():
    # bf16 logits tie often; topk and argmax may break a tie differently, and the saved outcomes then
    # disagreed with the record's top-1 (12 of 10,000 images in a bf16 Fashion-MNIST run).
    import torch

    from archbench.train.loop import evaluate

    class Tied(torch.nn.Module):
        def forward(self, x):
            logits = torch.zeros(x.shape[0], 10)
            logits[:, 3] = logits[:, 7] = 1.0  # classes 3 and 7 tie for first on every image
            return logits

    labels = torch.tensor([3, 7] * 8)
    loader = [(torch.zeros(16, 1), labels)]
    outcomes = []
    result = evaluate(Tied(), loader, torch.device("cpu"), outcomes=outcomes)
    predicted = torch.cat([p for p, _ in outcomes])
    assert result["top1"] == 100.0 * (predicted == labels).float().mean().item()
