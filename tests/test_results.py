"""archbench.results on hand-written fixture records (tests/fixtures/records, see its README)."""
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from archbench import results

FIXTURES = Path(__file__).parent / "fixtures" / "records"
CPU = "cpu: Fixture CPU (not a real machine), 2 threads"
GPU = "cuda: Fixture GPU (not a real machine)"


@pytest.fixture(scope="module")
def loaded():
    return results.load_with_exclusions(FIXTURES)


@pytest.fixture(scope="module")
def summary(loaded):
    runs, _excluded = loaded
    return results.summarize(runs)


def summary_row(summary, model, hardware=CPU, study="golden"):
    rows = summary[(summary.study == study) & (summary.model == model)
                   & (summary.hardware == hardware)]
    assert len(rows) == 1, f"expected one summary row for {study}/{model} on {hardware}"
    return rows.iloc[0]


def test_load_gives_one_flat_row_per_usable_run(loaded):
    runs, _excluded = loaded
    # 9 golden CPU runs + 1 golden GPU run + 2 profile runs.
    assert len(runs) == 12
    for column in ["study", "data", "model", "family", "seed", "hardware", "params", "macs",
                   "flops_forward", "latency_b1_ms", "throughput_img_s", "train_img_s",
                   "wall_s", "mfu", "val_top1", "test_top1", "test_top5", "ttt_s", "path"]:
        assert column in runs.columns, column
    assert not runs.map(lambda value: isinstance(value, (dict, list))).any().any()
    resnet20_seed1 = runs[(runs.model == "resnet20") & (runs.seed == 1)].iloc[0]
    assert resnet20_seed1.test_top1 == 91.5
    assert resnet20_seed1.flops_forward == 2 * resnet20_seed1.macs
    assert resnet20_seed1.recipe == "he2015"


def test_profile_records_are_usable_without_accuracy(loaded):
    runs, excluded = loaded
    profile = runs[runs.task == "profile"]
    assert sorted(profile.model) == ["efficientnet_v2_s", "resnet50"]
    assert profile.test_top1.isna().all() and profile.latency_b1_ms.notna().all()
    assert not excluded.model.isin(["resnet50", "efficientnet_v2_s"]).any()


def test_every_unusable_record_is_listed_with_its_reason(loaded):
    _runs, excluded = loaded
    reasons = {(row.model, row.seed): row.reason for row in excluded.itertuples()}
    assert reasons[("resnet110", 0)].startswith("unreadable: corrupt JSON")
    assert reasons[("resnet32", 0)] == ("schema 0 is older than the schemas this archbench reads (1, 2): "
                                        "rerun or migrate")
    assert reasons[("resnet44", 0)].startswith("failed: RuntimeError")
    assert reasons[("resnet44", 1)].startswith("diverged")
    assert "test_top1" in reasons[("wrn16_4", 0)]
    assert "synthetic" in reasons[("resnet20", 0)]
    assert len(excluded) == 6
    assert all(Path(path).name == "record.json" for path in excluded.path)


def test_synthetic_records_are_included_only_on_request():
    runs = results.load(FIXTURES, include_synthetic=True)
    assert (runs.data == "synthetic").sum() == 1


def test_summary_mean_std_ci95_and_seed_count(summary):
    resnet20 = summary_row(summary, "resnet20")
    assert resnet20.test_top1_mean == pytest.approx(91.5)
    assert resnet20.test_top1_std == pytest.approx(0.5)
    assert resnet20.test_top1_ci95 == pytest.approx(stats.t.ppf(0.975, 2) * 0.5 / math.sqrt(3))
    assert resnet20.test_top1_n == 3 and resnet20.seeds == 3
    assert resnet20.test_top5_mean == pytest.approx(99.2)
    assert resnet20.val_top1_mean == pytest.approx(91.8)
    assert resnet20.macs == 41e6 and resnet20.family == "resnet_v1"
    densenet = summary_row(summary, "densenet40")
    assert densenet.test_top1_mean == pytest.approx(92.5)
    assert densenet.test_top1_std == pytest.approx(math.sqrt(0.5))


def test_one_seed_has_unknown_spread_not_zero(summary):
    shufflenet = summary_row(summary, "shufflenet_v2_x0_5")
    assert shufflenet.test_top1_mean == 90.0
    assert math.isnan(shufflenet.test_top1_std) and math.isnan(shufflenet.test_top1_ci95)


def test_runs_on_different_hardware_are_never_averaged(summary):
    assert summary_row(summary, "resnet20", CPU).test_top1_mean == pytest.approx(91.5)
    assert summary_row(summary, "resnet20", GPU).test_top1_mean == 95.0
    assert summary_row(summary, "resnet20", GPU).latency_b1_ms == 0.5


def test_time_to_target_averages_only_runs_that_reached_it(summary):
    resnet56 = summary_row(summary, "resnet56")
    assert resnet56.ttt_reached == 2
    assert resnet56.ttt_s == pytest.approx(405.0)


def test_pareto_front_marks_non_dominated_models(summary):
    golden_cpu = summary[(summary.study == "golden") & (summary.hardware == CPU)]
    front = results.pareto_front(golden_cpu)
    on_front = set(golden_cpu.model[front])
    assert on_front == {"shufflenet_v2_x0_5", "resnet20", "resnet56"}


def test_pareto_front_is_computed_per_hardware_and_skips_missing_values(summary):
    front = results.pareto_front(summary)
    # The GPU resnet20 is alone in its group, so nothing dominates it.
    assert front[(summary.hardware == GPU)].all()
    # Profile rows have no accuracy: never on an accuracy front.
    assert not front[summary.study == "latency"].any()


def test_pareto_front_names_a_missing_column(summary):
    with pytest.raises(ValueError, match="latency_ms"):
        results.pareto_front(summary, x="latency_ms")


def test_compare_gives_raw_and_holm_p_and_ties_use_the_adjusted_value(loaded):
    runs, _excluded = loaded
    pairs = results.compare(runs)
    cpu = pairs[pairs.hardware == CPU]
    pair = cpu[(cpu.model_a == "resnet56") & (cpu.model_b == "resnet20")].iloc[0]
    expected = stats.ttest_ind([93.5, 94.0, 94.5], [91.0, 91.5, 92.0], equal_var=False).pvalue
    assert pair.p_value == pytest.approx(expected)
    assert pair.mean_diff == pytest.approx(2.5) and not pair.tie
    # Three pairs have two seeds on each side; Holm adjusts over those three only.
    tested = cpu[cpu.p_value.notna()]
    assert len(tested) == 3
    assert list(tested.p_holm) == pytest.approx(list(multipletests(tested.p_value,
                                                                   method="holm")[1]))
    assert (tested.tie == (tested.p_holm >= results.SIGNIFICANCE_LEVEL)).all()
    single_seed = cpu[cpu.model_b == "shufflenet_v2_x0_5"]
    assert single_seed.p_value.isna().all() and single_seed.p_holm.isna().all()
    assert single_seed.tie.all() and single_seed.p_a_beats_b.isna().all()
    # The GPU run is compared with nothing: it is alone on its machine.
    assert not (pairs.hardware == GPU).any()


def test_a_pair_significant_before_correction_can_be_a_tie_after():
    # Two raw p-values under 0.05 among four pairs; Holm multiplies the smallest by 4 (or
    # 6 with four models), so a verdict on the raw value would overstate.
    runs = _runs({"a": [80.0, 80.4, 80.8], "b": [79.0, 79.5, 79.9], "c": [78.5, 79.2, 79.0],
                  "d": [70.0, 74.0, 78.0]})
    pairs = results.compare(runs)
    raw_only = pairs[(pairs.p_value < 0.05) & (pairs.p_holm >= 0.05)]
    assert len(raw_only) >= 1 and raw_only.tie.all()


def _runs(samples: dict, test_size=10_000) -> pd.DataFrame:
    """A runs table of one comparison: every identity key but the model held constant."""
    rows = []
    for model, values in samples.items():
        for seed, value in enumerate(values):
            row = {key: "fixture" for key in results.MODEL_KEYS}
            row.update(model=model, seed=seed, test_top1=value, test_size=test_size,
                       family="fixture", task="train")
            rows.append(row)
    return pd.DataFrame(rows)


def test_rank_follows_the_mean_even_when_a_high_variance_model_trails():
    # "wild" is last by far, but its seeds vary so much that no test separates it from the
    # best: it must still rank last, and only the separate column may say "with the best".
    runs = _runs({"steady": [80.0, 81.0, 82.0], "close": [79.0, 79.8, 80.6],
                  "wild": [40.0, 85.0, 60.0]})
    ranking = results.rank(runs).set_index("model")
    assert ranking["rank"].to_dict() == {"steady": 1, "close": 2, "wild": 3}
    means = ranking["mean"]
    for better, worse in [("steady", "close"), ("close", "wild")]:
        assert means[better] > means[worse]
        assert ranking.loc[better, "rank"] < ranking.loc[worse, "rank"]
    assert ranking.loc["wild", "with_best"]
    assert ranking.loc["wild", "p_holm_vs_best"] >= results.SIGNIFICANCE_LEVEL
    assert math.isnan(ranking.loc["steady", "p_holm_vs_best"])


def test_rank_on_fixtures_separates_only_what_survives_holm(loaded):
    runs, _excluded = loaded
    ranking = results.rank(runs)
    ranking = ranking[ranking.hardware == CPU].set_index("model")
    assert list(ranking.index) == ["resnet56", "densenet40", "resnet20", "shufflenet_v2_x0_5"]
    assert list(ranking["rank"]) == [1, 2, 3, 4]
    assert ranking.loc["densenet40", "with_best"]  # Holm p 0.29 against resnet56
    assert not ranking.loc["resnet20", "with_best"]  # Holm p 0.011
    assert ranking.loc["shufflenet_v2_x0_5", "with_best"]  # one seed: cannot be separated


def test_probability_of_outperforming_and_noise_floor_per_pair():
    runs = _runs({"a": [3.0, 4.0, 5.0], "b": [1.0, 4.0, 2.0]}, test_size=100)
    pair = results.compare(runs).iloc[0]
    assert pair.p_a_beats_b == pytest.approx(7.5 / 9)
    assert pair.p_a_beats_b_low <= pair.p_a_beats_b <= pair.p_a_beats_b_high
    # 4% vs 2.33% on 100 images: SEs 1.96 and 1.51 points, floor 1.96 x 2.47 = 4.85 points.
    se_a = math.sqrt(0.04 * 0.96 / 100) * 100
    se_b = math.sqrt((7 / 300) * (1 - 7 / 300) / 100) * 100
    assert pair.noise_floor == pytest.approx(stats.norm.ppf(0.975) * math.hypot(se_a, se_b))
    assert pair.below_noise_floor  # a 1.67-point gap on 100 images is noise


def test_gap_above_the_noise_floor_is_not_called_noise():
    runs = _runs({"a": [90.0, 90.5, 91.0], "b": [85.0, 85.5, 86.0]}, test_size=10_000)
    pair = results.compare(runs).iloc[0]
    assert pair.noise_floor < 1.5 and not pair.below_noise_floor


def test_summary_carries_label_and_test_set_standard_error(summary):
    resnet20 = summary_row(summary, "resnet20")
    assert resnet20.label == "resnet20"
    # 91.5% on 10,000 test images.
    assert resnet20.test_top1_se_test == pytest.approx(math.sqrt(0.915 * 0.085 / 10_000) * 100)


def test_model_label_shows_a_variant_only_when_it_has_one():
    assert results.model_label("resnet20", "lr=0.05") == "resnet20 (lr=0.05)"
    assert results.model_label("resnet20", "") == "resnet20"
    assert results.model_label("resnet20", None) == "resnet20"
    assert results.model_label("resnet20", math.nan) == "resnet20"


@pytest.mark.skipif("variant" not in results.MODEL_KEYS,
                    reason="runs carry no variant key yet (run-identity work)")
def test_variants_of_one_model_are_separate_rows_never_pooled():
    runs = _runs({"resnet20": [80.0, 81.0]})
    other = runs.assign(variant="lr=0.05", variant_label="lr=0.05", test_top1=[60.0, 61.0])
    runs = pd.concat([runs.assign(variant="lr=0.1", variant_label="lr=0.1"), other])
    summary = results.summarize(runs)
    assert sorted(summary.label) == ["resnet20 (lr=0.05)", "resnet20 (lr=0.1)"]
    assert sorted(summary.test_top1_mean) == [60.5, 80.5]
    pair = results.compare(runs).iloc[0]
    assert (pair.label_a, pair.label_b) == ("resnet20 (lr=0.1)", "resnet20 (lr=0.05)")


def test_exact_repeats_are_not_ties_when_means_differ():
    assert results.welch_p_value([90.0, 90.0], [91.0, 91.0]) == 0.0
    assert results.welch_p_value([90.0, 90.0], [90.0, 90.0]) == 1.0
    assert math.isnan(results.welch_p_value([90.0], [91.0, 92.0]))


def test_duplicate_seed_is_excluded_not_double_counted(tmp_path):
    shutil.copytree(FIXTURES / "runs", tmp_path / "runs")
    source = FIXTURES / "runs/golden/cifar10/resnet20/seed0/record.json"
    copy = tmp_path / "reference/golden/cifar10/resnet20/seed0/record.json"
    copy.parent.mkdir(parents=True)
    shutil.copy(source, copy)
    runs, excluded = results.load_with_exclusions(tmp_path)
    assert ((runs.model == "resnet20") & (runs.hardware == CPU)).sum() == 3
    assert excluded.reason.str.startswith("duplicate of").sum() == 1


def test_missing_fields_become_nan(tmp_path):
    record = json.loads((FIXTURES / "runs/golden/cifar10/resnet20/seed0/record.json").read_text())
    del record["latency"], record["env"]["cpu_model"]
    record["complexity"]["macs"] = None
    path = tmp_path / "runs/golden/cifar10/resnet20/seed0/record.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    runs = results.load(tmp_path)
    assert len(runs) == 1
    assert np.isnan(runs.macs[0]) and np.isnan(runs.latency_b1_ms[0])
    assert runs.test_top1[0] == 91.0


def test_fraction_accuracy_is_rejected_with_the_fix(tmp_path):
    record = json.loads((FIXTURES / "runs/golden/cifar10/resnet20/seed0/record.json").read_text())
    record["metrics"]["val_top1"] = 912.0
    path = tmp_path / "runs/golden/cifar10/resnet20/seed0/record.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    runs, excluded = results.load_with_exclusions(tmp_path)
    assert runs.empty
    assert "val_top1=912.0 is outside [0, 100]" in excluded.reason[0]


def test_missing_results_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results_dir="):
        results.load(tmp_path / "nowhere")


def test_empty_results_dir_gives_empty_frames(tmp_path):
    runs, excluded = results.load_with_exclusions(tmp_path)
    assert runs.empty and excluded.empty
    assert results.summarize(runs).empty and results.compare(runs).empty


def test_history_is_long_format_per_epoch(loaded):
    runs, _excluded = loaded
    curves = results.history(runs)
    resnet20 = curves[(curves.model == "resnet20") & (curves.hardware == CPU)]
    assert sorted(resnet20.seed.unique()) == [0, 1, 2]
    assert sorted(resnet20.epoch.unique()) == [0, 1, 2]
    assert {"val_top1", "elapsed_s"} <= set(curves.columns)
    assert "resnet50" not in set(curves.model)  # profile runs have no history


def test_results_module_does_not_import_torch():
    code = "import sys, archbench.results; assert 'torch' not in sys.modules; " \
           "assert 'hydra' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
