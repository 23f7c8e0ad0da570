"""Findings that never overclaim: confounds named, power stated, rank and tau intervals in words, and the
cross-study aggregate; constructed tables whose answers are known."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from archbench import results
from archbench.report import build_report
from archbench.report.findings import power_findings, rank_interval_findings, ranking_verdict
from helpers import fixture_record, write_record


def _runs(study="s", data="d", models=("a", "b", "c"), means=(90.0, 80.0, 70.0), seeds=3, **columns):
    rows = []
    for model, mean in zip(models, means):
        for seed in range(seeds):
            rows.append({"study": study, "data": data, "hardware": "h", "model": model, "variant": "v",
                         "variant_label": "", "seed": seed, "task": "train", "family": model,
                         "test_top1": mean + seed - 1.0, "test_size": 10_000, "num_classes": 10,
                         "path": f"{study}/{data}/{model}/{seed}", "variant_settings": json.dumps({"data.name": data}),
                         **{key: value[model] if isinstance(value, dict) else value for key, value in columns.items()}})
    return pd.DataFrame(rows)


def test_confounds_name_each_setting_with_what_each_model_got():
    runs = _runs(amp={"a": "bf16", "b": "bf16", "c": "off"}, channels_last=True,
                 stem={"a": "native", "b": "native", "c": "cifar16"},
                 final_feature_map={"a": "8x8", "b": "8x8", "c": "2x2"},
                 batch_size_halved=None)
    found = dict(results.confounds(runs))
    assert found == {"precision": {"bf16": ["a", "b"], "fp32": ["c"]}, "stem": {"cifar16": ["c"], "native": ["a", "b"]},
                     "final feature map": {"2x2": ["c"], "8x8": ["a", "b"]}}
    assert results.confounds_text(results.confounds(runs)).startswith("precision: bf16 (a, b), fp32 (c); stem:")
    same = _runs(amp="bf16", channels_last=True, stem="native", final_feature_map="8x8", batch_size_halved=None)
    assert results.confounds(same) == []


def test_models_trained_at_different_commits_name_the_code_version():
    """Code can change what the settings do not name (a shortcut's wiring), so a commit that differs between
    models is listed; one model whose seeds span two commits is shown under both."""
    commits = {"a": "3683be2e2cd3", "b": "cd66b00aaaaa", "c": "cd66b00aaaaa"}
    runs = _runs(amp="bf16", git_commit=commits)
    runs.loc[(runs.model == "a") & (runs.seed == 2), "git_commit"] = "cd66b00aaaaa"
    assert dict(results.confounds(runs)) == {"code version": {"commit 3683be2": ["a"],
                                                             "commit cd66b00": ["a", "b", "c"]}}
    assert results.confounds(_runs(amp="bf16", git_commit="cd66b00aaaaa")) == []


def test_a_setting_varied_within_every_model_is_no_confound_but_one_between_models_is():
    runs = _runs(amp="bf16")
    runs["variant_settings"] = [json.dumps({"data.order_seed": seed % 2, "recipe.optimizer.lr": lr})
                                for seed, lr in zip(runs.seed, runs.model.map({"a": 0.1, "b": 0.1, "c": 0.05}))]
    assert dict(results.confounds(runs)) == {"lr": {"0.05": ["c"], "0.1": ["a", "b"]}}
    assert results.confounds(runs, ignore=("recipe.optimizer.lr",)) == []


def test_power_sentence_and_seeds_needed_for_pairs_not_separated():
    import re

    pairs = results.compare(_runs(means=(90.0, 88.0, 70.0)))
    text = " ".join(power_findings(pairs))
    assert re.search(r"Power \(median over 3 pairs; \d+\.\d\d to \d+\.\d\d by pair\): with 3 seeds per model, a true gap of about \d+\.\d\d points is "
                     r"separated with 80% probability, two-sided at Holm's strictest threshold \(0\.05/3\); "
                     r"noncentral t", text)
    # Seeds for planning gaps chosen beforehand, never for the observed 2.00-point gap (the winner's curse).
    assert re.search(r"Seeds per model needed to separate a true gap of 1 point: no number of seeds; 2 points: about \d+; "
                     r"5 points: about \d+ \(80% power, median over pairs; planning gaps", text)
    assert "2.00 points" not in text
    # 1 point is under what the unpaired test-set floor (~0.8 points on 10,000 images) lets any seeds reach.
    assert text.count("per-image outcomes (saved by runs made now)") == 1
    assert "real" not in text


def test_rank_intervals_in_words():
    ranking = results.rank(_runs(means=(90.0, 89.9, 70.0)))
    (text,) = rank_interval_findings(ranking)
    # the fallback is a parametric bootstrap over seeds, and the text says so
    assert "parametric bootstrap over seeds (each mean drawn as mean + s/√n × Student t with n − 1 degrees" in text
    assert "test-set sampling not included" in text
    assert "c rank 3 (first in 0%)" in text and "a rank 1–2" in text


@pytest.mark.parametrize("low, high, word", [(0.7, 0.9, "The ranking holds"), (-0.2, 0.4, "The ranking changes"),
                                             (0.2, 0.9, "inconclusive")])
def test_ranking_verdict_follows_the_tau_interval(low, high, word):
    swap = {"ahead_after": "b", "ahead_before": "a", "gap_before": 1.0, "gap_after": 2.0, "separated": False}
    verdict = {0.7: "holds", -0.2: "changes", 0.2: "inconclusive"}[low]
    shift = {"models": 6, "tau": 0.87, "swapped": [swap], "tau_low": low, "tau_high": high, "verdict": verdict}
    text = ranking_verdict(shift, "clean", "corrupted")
    assert word in text and f"95% bootstrap interval {low:.2f} to {high:.2f}" in text
    assert "holds within noise" not in text


def test_across_studies_aggregates_only_models_in_every_comparison():
    runs = pd.concat([_runs("s1", "d1", ("a", "b", "c"), (90.0, 80.0, 60.0)),
                      _runs("s2", "d2", ("a", "b", "c", "x"), (70.0, 75.0, 40.0, 99.0))], ignore_index=True)
    aggregate, profile = results.across_studies(runs)
    assert list(aggregate.model) == ["a", "b", "c"] and set(profile.model) == {"a", "b", "c"}  # x ran once
    # a: best in s1 (1 at its mean), (70 - 10) / (75 - 10) in s2; b: 70/80 in s1, best in s2.
    a = aggregate.set_index("model").loc["a"]
    assert a.studies == 2 and a.runs == 6 and a.iqm_low <= a.iqm <= a.iqm_high
    assert a.iqm == pytest.approx(np.mean([79 / 80, 80 / 80, 61 / 65, 60 / 65]))  # the middle four of six
    assert profile.set_index(["model", "comparison"]).distance[("a", "s2 / d2")] == pytest.approx(5.0)
    assert results.across_studies(_runs())[0].empty  # one comparison: nothing to aggregate


def test_a_separable_gap_past_100_points_is_said_in_words_not_printed():
    """Two seeds with a wide spread imply a separable gap above 100 points, which no accuracy gap can be."""
    runs = _runs(means=(90.0, 60.0, 30.0))
    wide = runs.assign(test_top1=runs.test_top1 + runs.seed.map({0: -30.0, 1: 30.0, 2: 0.0}))
    pairs = results.compare(wide[wide.seed < 2])
    assert (pairs.detectable_gap > 100).all()
    (power, *_rest) = power_findings(pairs)
    assert "only a true gap over 100 points, more than any gap, would be separated" in power
    assert not re.search(r"\b[1-9]\d{2,}\.\d\d\b", power)  # no three-digit gap printed


def test_intervals_wider_than_the_accuracy_scale_are_said_in_words():
    from archbench.report.tables import significance_table

    runs = _runs(means=(90.0, 60.0, 30.0))
    wide = runs.assign(test_top1=runs.test_top1 + runs.seed.map({0: -30.0, 1: 30.0, 2: 0.0}))
    table = significance_table(results.compare(wide[wide.seed < 2]))
    assert set(table["95% interval of the gap (unadjusted)"]) == {"wider than ±100 points"}
    assert set(table["Separable gap at 80% power"]) == {"over 100"}
    narrow = significance_table(results.compare(runs))
    assert narrow["95% interval of the gap (unadjusted)"].str.contains(" to ").all()


def test_a_model_at_chance_is_named_in_the_glance_and_left_out_of_efficiency_claims(tmp_path):
    """A tiny study must not praise noise; a tau over two models is not shown."""
    scores = {"resnet20": (40.0, 42.0), "wrn_16_2": (35.0, 36.0), "shufflenet_v2_x2_0": (10.0, 10.2)}
    families = {"resnet20": "resnet_v1", "wrn_16_2": "wide_resnet", "shufflenet_v2_x2_0": "shufflenet_v2"}
    for model, tops in scores.items():
        for seed, top1 in enumerate(tops):
            record = fixture_record("tiny", model, families[model], seed, test_top1=top1)
            if model == "shufflenet_v2_x2_0":
                record["flags"] = ["near_chance"]
                record["complexity"]["macs"] = 1e6  # the cheapest by far: it would top accuracy per MAC
            write_record(tmp_path / "results", record, "quick-2ep-00000000")
    out = build_report(tmp_path / "results", tmp_path / "report", reference=None)
    text = (out / "README.md").read_text()
    assert "At chance by its own validation check (nothing measurable learned in those runs): " \
           "shufflenet_v2_x2_0 (2 of 2 runs)" in text
    efficiency = [line for line in text.splitlines() if "accuracy per MAC" in line or "Pareto-optimal" in line]
    assert efficiency and not any("shufflenet" in line for line in efficiency), efficiency
    shift = {"models": 2, "swapped": [], "tau": 1.0, "tau_low": -1.0, "tau_high": 1.0, "verdict": None}
    assert "too few to rank" in ranking_verdict(shift, "clean", "corrupted")
