"""Temperature scaling that reaches an end of its search range is no calibration: T = 1 is kept, the fit is
flagged, and it stays out of the 'after T' means; on constructed logits and on the committed record that
showed it (shufflenet_v2_x2_0, cifar_cpu seed 2: T = 19.99998, test ECE 1.29 -> 11.37% after scaling)."""
import json
import math
import shutil
from pathlib import Path

import pytest

from archbench import results

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
SHUFFLENET = Path("runs/cifar_cpu/cifar10_jpg/shufflenet_v2_x2_0/quick-176st-8603a470")


def test_a_fit_at_the_bound_keeps_t_1_and_says_why():
    torch = pytest.importorskip("torch")
    from archbench.evaluate.calibration import TEMPERATURE_BOUNDS, calibrate, fit_temperature

    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (500,), generator=generator)
    logits = torch.randn(500, 10, generator=generator)
    # A few images with wrong-class margins in the thousands, as in an unstable run: NLL keeps falling with T.
    wrong = (labels[:10] + 1) % 10
    logits[torch.arange(10), wrong] = 2000.0
    assert fit_temperature(logits, labels) == pytest.approx(TEMPERATURE_BOUNDS[1], rel=1e-4)
    section = calibrate(logits, labels, logits, labels)
    assert section["temperature"] == 1.0 and section["temperature_scaled"] is None
    assert section["temperature_fit"]["at_bound"] is True
    assert "rejected: the fit reached its bound" in section["temperature_note"]
    # A fit well inside the range is kept as before.
    sane = torch.randn(500, 10, generator=generator) + 3 * torch.nn.functional.one_hot(labels, 10)
    kept = calibrate(sane, labels, sane, labels)
    assert kept["temperature_fit"]["at_bound"] is False and kept["temperature_scaled"] is not None


def test_the_reader_and_the_fit_agree_on_the_bounds():
    pytest.importorskip("torch")
    from archbench.evaluate import calibration

    assert results.loading.LEGACY_TEMPERATURE_BOUNDS == calibration.TEMPERATURE_BOUNDS
    assert results.loading.BOUND_FACTOR == calibration.BOUND_FACTOR


def test_the_committed_shufflenet_seed_2_fit_is_flagged_and_left_out_of_the_means(tmp_path):
    shutil.copytree(REFERENCE / SHUFFLENET, tmp_path / SHUFFLENET,
                    ignore=shutil.ignore_patterns("run.log", "*.npz"))
    records = {seed: json.loads((tmp_path / SHUFFLENET / f"seed{seed}" / "record.json").read_text())
               for seed in range(3)}
    assert records[2]["calibration"]["temperature"] == pytest.approx(19.99998, abs=1e-4)
    assert [results.temperature_rejected(records[seed]) for seed in range(3)] == [False, False, True]

    runs = results.load(tmp_path)
    table = results.evaluation(runs)
    by_seed = table.runs.set_index("seed")
    assert bool(by_seed.loc[2, "temperature_rejected"]) and math.isnan(by_seed.loc[2, "ece_calibrated"])
    assert math.isnan(by_seed.loc[2, "nll_calibrated"])
    assert set(table.reliability[table.reliability.seed == 2].scaling) == {"uncalibrated"}

    (row,) = results.summarize(results.with_evaluation(runs, table)).itertuples()
    kept = [records[seed]["calibration"]["temperature_scaled"]["ece"] for seed in (0, 1)]
    assert row.ece_calibrated_n == 2 and row.ece_calibrated_mean == pytest.approx(sum(kept) / 2)
    assert row.temperature_rejected_runs == 1
    # Uncalibrated figures keep every run.
    assert row.ece_n == 3

    from archbench.report.tables import evaluation_table
    shown = evaluation_table(results.summarize(results.with_evaluation(runs, table)))
    assert shown["T fits at their bound (left out of 'after T')"].tolist() == ["1 of 3 runs"]
