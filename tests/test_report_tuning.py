"""The report's tuning, calibration and robustness sections, on records written here from one
hand-written fixture (tests/fixtures/records): numbers chosen so ranks, swaps and means are known."""
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from archbench import results
from archbench.report import build_report
from archbench.report.reference import REFERENCE_COLUMNS

from helpers import fixture_record, write_record

FAMILIES = {"resnet20": "resnet_v1", "resnet56": "resnet_v1", "densenet40": "densenet"}
# Shared recipe: resnet56 > densenet40 > resnet20. Tuned: densenet40 > resnet56 > resnet20, so
# exactly one pair (densenet40, resnet56) swaps. Test top-1 per seed.
SHARED = {"resnet56": [93.5, 94.0, 94.5], "densenet40": [91.5, 92.0, 92.5], "resnet20": [89.5, 90.0, 90.5]}
TUNED = {"densenet40": [94.8, 95.0, 95.2], "resnet56": [94.3, 94.5, 94.7], "resnet20": [90.8, 91.0, 91.2]}
# The same four candidates for every model; validation top-1 per model and trial.
CANDIDATES = [(0.01, 1e-4), (0.03, 3e-4), (0.1, 1e-5), (0.3, 5e-4)]
TRIAL_VAL = {"resnet56": [90.0, 93.0, 92.0, 91.0], "densenet40": [88.0, 90.0, 91.0, 94.0],
             "resnet20": [86.0, 89.0, 87.0, 88.0]}
# Calibration and corruption of the shared study: ECE per seed, mean corruption top-1 per seed.
# Under corruption densenet40 overtakes resnet56 (70 vs 60), while resnet20 stays last.
ECE = {"resnet56": [2.0, 3.0, 4.0], "densenet40": [1.0, 1.5, 2.0], "resnet20": [5.0, 5.0, 5.0]}
CORRUPTED = {"resnet56": [59.0, 60.0, 61.0], "densenet40": [69.0, 70.0, 71.0], "resnet20": [49.0, 50.0, 51.0]}
NO_REFERENCE = pd.DataFrame(columns=REFERENCE_COLUMNS)  # no published numbers to set beside
METHOD = ("generated with imagecorruptions-imaug 1.1.5: ImageNet-C parameters applied at 32x32; comparable "
          "between models here, NOT with published CIFAR-10-C results")


def _record(study, model, seed, *, test_top1, val_top1, lr=0.1, weight_decay=1e-4, tuning=None,
            ece=None, corrupted=None) -> dict:
    record = fixture_record(study, model, FAMILIES[model], seed, test_top1=test_top1, val_top1=val_top1)
    record["tuning"] = tuning
    record["config"]["train"]["optimizer"].update(lr=lr, weight_decay=weight_decay)
    record["train"]["amp"] = "bf16" if model == "resnet20" else "off"
    if ece is not None:
        bins = {"lower": [k / 15 for k in range(15)], "confidence": [None] * 15, "accuracy": [None] * 15,
                "count": [0] * 15}
        # Two occupied bins, so pooling over seeds has something to weigh.
        bins["confidence"][12], bins["accuracy"][12], bins["count"][12] = 83.0, 80.0 - seed, 100
        bins["confidence"][14], bins["accuracy"][14], bins["count"][14] = 97.0, 95.0, 300 + 100 * seed
        uncalibrated = {"top1": test_top1, "ece": ece, "nll": ece / 10, "brier": ece / 50, "reliability": bins}
        record["calibration"] = {"split": "test", "images": 10000, "n_bins": 15, "uncalibrated": uncalibrated,
                                 "temperature": 1.5,
                                 "temperature_scaled": {**copy.deepcopy(uncalibrated), "ece": ece / 2}}
    if corrupted is not None:
        record["robustness"] = {
            "source": "generated", "method": METHOD, "images": 1000, "corruptions": ["gaussian_noise", "contrast"],
            "severities": [1, 3], "clean_top1": test_top1,
            "top1": {"gaussian_noise": {"1": corrupted + 10, "3": corrupted - 10},
                     "contrast": {"1": corrupted + 5, "3": corrupted - 5}},
            "mean_corruption_top1": corrupted, "relative_drop": 100 * (test_top1 - corrupted) / test_top1}
    return record


def write_studies(results_dir: Path, *, shared=True, tune=True, tuned=True, evaluate=True) -> Path:
    for model in FAMILIES:
        for seed in range(3):
            if shared:
                write_record(results_dir, _record("shared", model, seed, test_top1=SHARED[model][seed], val_top1=90.0,
                                            ece=ECE[model][seed] if evaluate else None,
                                            corrupted=CORRUPTED[model][seed] if evaluate else None), "shared")
            if tuned:
                best = max(range(len(CANDIDATES)), key=lambda k: TRIAL_VAL[model][k])
                lr, decay = CANDIDATES[best]
                selection = {"tuned_from": "tune", "selected_trial": best, "trials": len(CANDIDATES),
                             "candidate": {"lr": lr, "weight_decay": decay}}
                write_record(results_dir, _record("tuned", model, seed, test_top1=TUNED[model][seed], val_top1=91.0,
                                            lr=lr, weight_decay=decay, tuning=selection), "tuned")
        for trial, (lr, decay) in enumerate(CANDIDATES if tune else []):
            section = {"study": "tune", "trial": trial, "trials": len(CANDIDATES),
                       "candidate": {"lr": lr, "weight_decay": decay}}
            # Test top-1 runs against validation on purpose: the selection must not read it.
            write_record(results_dir, _record("tune", model, 0, test_top1=100.0 - TRIAL_VAL[model][trial],
                                        val_top1=TRIAL_VAL[model][trial], lr=lr, weight_decay=decay,
                                        tuning=section), f"trial{trial}")
    return results_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return results.load(write_studies(tmp_path_factory.mktemp("records")))


@pytest.fixture(scope="module")
def readme(tmp_path_factory):
    results_dir = write_studies(tmp_path_factory.mktemp("records"))
    out = build_report(results_dir, tmp_path_factory.mktemp("built") / "report", reference=NO_REFERENCE)
    return out, (out / "README.md").read_text(encoding="utf-8")


def test_calibration_and_corruption_columns_are_read_back_and_summarised(runs):
    shared = results.with_evaluation(runs[runs.study == "shared"])
    summary = results.summarize(shared).set_index("model")
    assert summary.loc["resnet56", "ece_mean"] == pytest.approx(3.0)
    assert summary.loc["resnet56", "ece_std"] == pytest.approx(1.0)
    assert summary.loc["resnet56", "ece_calibrated_mean"] == pytest.approx(1.5)
    assert summary.loc["densenet40", "mean_corruption_top1_mean"] == pytest.approx(70.0)
    assert summary.loc["densenet40", "mean_corruption_top1_n"] == 3
    assert summary.loc["resnet20", "amp"] == "bf16" and summary.loc["resnet56", "amp"] == "off"
    # Runs without the sections (the tuned study) have NaN, not zeros.
    tuned = results.summarize(results.with_evaluation(runs[runs.study == "tuned"]))
    assert tuned.ece_mean.isna().all() and (tuned.ece_n == 0).all()


def test_evaluation_long_tables_hold_every_bin_and_cell(runs):
    table = results.evaluation(runs[(runs.study == "shared") & (runs.model == "resnet56")])
    assert len(table.corruptions) == 3 * 2 * 2  # seeds x corruptions x severities
    seed0 = table.corruptions[table.corruptions.seed == 0].set_index(["corruption", "severity"]).top1
    assert seed0["gaussian_noise", 3] == pytest.approx(49.0) and seed0["contrast", 1] == pytest.approx(64.0)
    curve = results.reliability_curve(table.reliability[table.reliability.scaling == "uncalibrated"])
    top = curve[np.isclose(curve.bin_lower, 14 / 15)].iloc[0]
    assert top["count"] == 300 + 400 + 500 and top.accuracy == pytest.approx(95.0)
    low = curve[np.isclose(curve.bin_lower, 12 / 15)].iloc[0]
    assert low.accuracy == pytest.approx((80 + 79 + 78) / 3)  # equal counts: the plain mean


def test_tuning_swaps_two_models_side_by_side(runs):
    assert results.shared_counterparts(runs)[["tuned_study", "shared_study"]].values.tolist() == [["tuned", "shared"]]
    gain = results.tuning_gain(runs[runs.study == "shared"], runs[runs.study == "tuned"]).set_index("model")
    assert gain.tuned_rank.to_dict() == {"densenet40": 1, "resnet56": 2, "resnet20": 3}
    assert gain.shared_rank.to_dict() == {"densenet40": 2, "resnet56": 1, "resnet20": 3}
    assert gain.loc["densenet40", "gain"] == pytest.approx(3.0)
    assert gain.loc["resnet56", "gain"] == pytest.approx(0.5)
    assert gain.loc["densenet40", "tuned_lr"] == pytest.approx(0.3)  # trial 3, best on validation
    shift = results.ranking_shift(gain.shared_mean, gain.tuned_mean)
    assert shift["tau"] == pytest.approx(1 / 3)
    assert [(s["ahead_before"], s["ahead_after"]) for s in shift["swapped"]] == [("resnet56", "densenet40")]
    assert shift["swapped"][0]["gap_after"] == pytest.approx(0.5)


def test_a_study_with_another_budget_is_not_a_counterpart(tmp_path):
    results_dir = write_studies(tmp_path, tune=False)
    for path in (results_dir / "runs/shared").glob("**/record.json"):
        record = json.loads(path.read_text())
        record["config"]["train"]["budget"] = {"epochs": 30}
        path.write_text(json.dumps(record))
    assert results.shared_counterparts(results.load(results_dir)).empty


ZEN5 = {"cpu": {"vendor": "AuthenticAMD", "model_name": "AMD EPYC", "family": 26, "model": 2,
                "microarchitecture": "Zen 5", "isa": ["AVX2", "AVX-512", "AVX512-BF16"], "cores": 2}}


def _retrain_tuned_on_another_machine(results_dir: Path, precision: str | None = None) -> None:
    """The tuned study's records as if trained on an identified Zen 5 (the shared study keeps its bare
    label); `precision` also changes resnet56's resolved precision there."""
    for path in (results_dir / "runs/tuned").glob("**/record.json"):
        record = json.loads(path.read_text())
        record["env"]["machine"] = ZEN5
        if precision and record["model"] == "resnet56":
            record["train"]["amp"] = precision
        path.write_text(json.dumps(record))


def test_a_shared_study_on_another_machine_at_the_same_precision_is_the_counterpart(tmp_path):
    results_dir = write_studies(tmp_path, tune=False)
    _retrain_tuned_on_another_machine(results_dir)
    runs = results.load(results_dir)
    counterparts = results.shared_counterparts(runs)
    assert counterparts[["tuned_study", "shared_study"]].values.tolist() == [["tuned", "shared"]]
    shared_machine, tuned_machine = counterparts.shared_hardware.iloc[0], counterparts.hardware.iloc[0]
    assert shared_machine != tuned_machine and "Zen 5" in tuned_machine
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert f"Against the shared recipe of shared (trained on {shared_machine})" in readme
    assert f"ran on different machines, {shared_machine} and {tuned_machine}" in readme


def test_a_shared_study_on_another_machine_at_another_precision_is_not_a_counterpart(tmp_path):
    results_dir = write_studies(tmp_path, tune=False)
    _retrain_tuned_on_another_machine(results_dir, precision="bf16")
    assert results.shared_counterparts(results.load(results_dir)).empty


def test_expected_best_curve_ends_at_the_best_trial(runs):
    curves = results.expected_best(runs[runs.study == "tune"]).set_index(["model", "trials"])
    assert curves.loc[("densenet40", 4), "expected_best"] == pytest.approx(94.0)
    assert curves.loc[("densenet40", 1), "expected_best"] == pytest.approx(sum(TRIAL_VAL["densenet40"]) / 4)
    # Best of 2 of [88, 90, 91, 94]: the 6 pairs' maxima are 90, 91, 94, 91, 94, 94.
    assert curves.loc[("densenet40", 2), "expected_best"] == pytest.approx(554 / 6)


@pytest.mark.slow  # about 10 s on 2 cores: three studies' figures
def test_report_has_tuning_calibration_and_robustness_sections(readme):
    out, text = readme
    tune = text.split("## Study: tune (tuning trials)")[1].split("## Study:")[0]
    assert "they are not a comparison of models" in tune
    assert "| 3 | 0.3 | 0.0005 | 94.00 * |" in tune  # trial 3, lr, weight decay, densenet40 selected
    assert not list((out / "tables").glob("tune--*--summary.*"))  # no ranking of candidates
    for kind in ("sensitivity", "expected-best"):
        assert list((out / "figures").glob(f"tune--*--{kind}.png")), kind
    tuned = text.split("## Study: tuned")[1].split("## Study:")[0]
    assert "apart from the tuned values" in tuned and "Warning" not in tuned
    glance = text.split("## At a glance")[1].split("## How to read")[0]
    assert "Identical except: each model's tuned values (by design)" in glance.split("**tuned,")[1].split("- **")[0]
    assert "Kendall tau between the shared-recipe and the tuned ranking of 3 models: 0.33" in tuned
    assert "densenet40 over resnet56 (was 2.00 points behind, now 0.50 ahead" in tuned
    assert "| densenet40 | 2 | 92.00 (3 seeds) | 1 | 95.00 (3 seeds) | +3.00 |" in tuned
    shared = text.split("## Study: shared")[1].split("## Study:")[0]
    assert METHOD in shared
    # clean and corrupted scored on the same images (the records carry the subset's clean top-1)
    assert "From clean top-1 on the same images to mean corruption top-1, the ranking changes: 1 of 3 pairs" in shared
    assert "densenet40 over resnet56 (was 2.00 points behind, now 10.00 ahead" in shared
    assert "| resnet56 | 3 | 3.00 ± 1.00 |" in shared  # ECE mean ± std over seeds
    for kind in ("reliability", "corruption-severity", "clean-vs-corrupted", "acc-vs-activations"):
        assert list((out / "figures").glob(f"shared--*--{kind}.png")), kind
    glance = text.split("## At a glance")[1].split("## How to read")[0]
    assert "Under corruption the ranking changes" in glance
    assert "Against the shared recipe of shared, whether the ranking holds is inconclusive" in glance


def test_report_without_tuning_or_evaluation_has_neither_section(tmp_path):
    results_dir = write_studies(tmp_path, tune=False, tuned=False, evaluate=False)
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "## Study: shared" in text
    for absent in ("Tuning", "Calibration and corruption", "Under corruption", "ECE (%)"):
        assert absent not in text, absent
    assert "Training precision" in text  # the amp column is shown whenever the records have it
    assert not list((out / "figures").glob("*reliability*"))


def _settings_that_differ(text: str, study: str) -> str:
    section = text[text.index(f"## Study: {study} "):]
    start = section.index("Settings that differ between models")
    return section[start:section.index("###", start)]


def test_a_tuning_study_names_each_model_once_not_each_candidate(readme):
    _, text = readme
    listed = _settings_that_differ(text, "tune")
    assert "- tuning candidates: 4 per model (lr, weight_decay from the search space" in listed
    # resnet20 resolved bf16 in every candidate: a real difference, still named, once
    assert "- precision: bf16 (resnet20), fp32 (densenet40, resnet56)." in listed
    assert "lr=" not in listed and "weight_decay=" not in listed


def test_a_candidate_that_differs_beyond_the_search_space_stays_named(tmp_path):
    results_dir = write_studies(tmp_path / "records", shared=False, tuned=False, evaluate=False)
    odd = results_dir / "runs" / "tune" / "cifar10" / "resnet20" / "trial3" / "seed0" / "record.json"
    record = json.loads(odd.read_text())
    record["config"]["train"]["batch_size"] = 64
    odd.write_text(json.dumps(record))
    out = build_report(results_dir, tmp_path / "report", reference=NO_REFERENCE)
    listed = _settings_that_differ((out / "README.md").read_text(encoding="utf-8"), "tune")
    assert "- tuning candidates: 4 per model" in listed
    # the batch size is no search-space value: which candidate ran with it is said, with its values
    assert "64 (resnet20 (batch_size=64, lr=0.3, weight_decay=0.0005))" in listed
    assert "- precision: bf16 (resnet20 (batch_size=128, lr=0.01" in listed


def test_a_diverged_trial_is_named_as_tried_and_lost_in_the_tuning_verdict():
    from archbench.report.findings import tuning_findings

    best = pd.DataFrame([{"model": "a", "val_top1": 71.0, "trial": 2}, {"model": "b", "val_top1": 70.0, "trial": 0}])
    curves = pd.DataFrame(
        [{"model": "a", "trials": n, "expected_best": 70.0 + n / 8, "finished": 8} for n in range(1, 9)]
        + [{"model": "b", "trials": n, "expected_best": 69.0 + n / 7, "finished": 7} for n in range(1, 8)])
    (effort, *_rest) = tuning_findings(best, curves, candidates=8)
    assert "each trained with the same 8 candidates" in effort
    assert effort.endswith("Trials that diverged were tried and lost, not rerun: b 1.")
    assert "diverged" not in tuning_findings(best, curves.assign(finished=8), candidates=8)[0]
    # the winning trial's validation score is a maximum over trials: labelled as the selection value
    assert "Best validation top-1: a, 71.00% (trial 2; the selection value, optimistic" in _rest[0]
