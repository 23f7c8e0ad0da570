"""Paired comparisons over test images, power, rank intervals, tau intervals and the cross-study IQM:
constructed cases whose answers are known, and closed forms."""
import math

import numpy as np
import pytest

from archbench.stats import (TAU_HOLDS, detectable_gap, iqm, noise_floor, paired_gap_interval, rank_distribution,
                             seeds_needed, stratified_iqm_interval, tau_interval, two_level_means)

IMAGES = 10_000


def handful_case(handful=30):
    """Two models that share every outcome except `handful` images, which A gets right and B wrong in
    every seed; each seed also misses a different 15-25 random images (seed noise)."""
    rng = np.random.default_rng(1)
    base = rng.random(IMAGES) < 0.9
    wrong = np.flatnonzero(~base)[:handful]

    def seeds(extra_wrong, gets_handful):
        rows = []
        for extra in extra_wrong:
            row = base.copy()
            row[rng.choice(np.flatnonzero(base), extra, replace=False)] = False
            if gets_handful:
                row[wrong] = True
            rows.append(row)
        return np.array(rows)

    return seeds((15, 20, 25), True), seeds((15, 20, 25), False)


def test_paired_bootstrap_separates_a_handful_of_images_the_unpaired_floor_cannot():
    a, b = handful_case()
    result = paired_gap_interval(a, b)
    assert result["gap"] == pytest.approx(0.30, abs=0.02)
    floor = noise_floor(100 * a.mean(), 100 * b.mean(), IMAGES)
    assert result["gap"] < floor  # the independent floor (~0.8 points) calls it noise
    assert result["low"] > 0 and result["p_value"] < 0.05  # the pairing shows it is not
    # The same models with the handful removed: no gap, and the paired interval says so.
    a0, b0 = handful_case(handful=0)
    null = paired_gap_interval(a0, b0)
    assert null["low"] < 0 < null["high"] or null["gap"] == 0


def test_one_seed_each_matches_the_closed_form_paired_standard_error():
    rng = np.random.default_rng(2)
    a = rng.random(IMAGES) < 0.8
    b = np.where(rng.random(IMAGES) < 0.9, a, rng.random(IMAGES) < 0.75)  # correlated, as on one test set
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    gap = 100 * (only_a - only_b) / IMAGES
    se = 100 * math.sqrt(only_a + only_b - (only_a - only_b) ** 2 / IMAGES) / IMAGES
    result = paired_gap_interval(a, b, resamples=4000)
    assert result["gap"] == pytest.approx(gap)
    assert result["se"] == pytest.approx(se, rel=0.05)
    assert result["low"] == pytest.approx(gap - 1.96 * se, abs=0.15 * se)
    assert result["high"] == pytest.approx(gap + 1.96 * se, abs=0.15 * se)
    # Far narrower than the unpaired floor, which treats the two models' errors as independent.
    assert 1.96 * se < 0.7 * noise_floor(100 * a.mean(), 100 * b.mean(), IMAGES)


def test_two_level_means_draw_the_seed_part_from_student_t():
    # Every image the same within a seed: only the seeds vary, so each resampled mean is
    # 75 + s / sqrt(4) x t(3), s the seeds' spread: heavy tails, as the Welch test's reference has.
    from scipy import stats

    a = np.repeat(np.array([[1.0], [0.0], [1.0], [1.0]]), 50, axis=1)  # seed accuracies 100, 0, 100, 100
    samples = two_level_means([a], resamples=8000)[:, 0]
    assert np.median(samples) == pytest.approx(75.0, abs=1.5)
    half = np.std([100, 0, 100, 100], ddof=1) / 2 * stats.t.isf(0.025, 3)
    assert np.quantile(samples, 0.975) - 75.0 == pytest.approx(half, rel=0.06)
    assert half > 1.5 * np.std([100, 0, 100, 100], ddof=1) / 2 * 1.96  # far wider than a normal interval
    with pytest.raises(ValueError, match="same test images"):
        two_level_means([np.ones((2, 10)), np.ones((2, 11))])


def test_detectable_gap_is_the_noncentral_t_gap_at_80_percent_power():
    from scipy import stats
    from statsmodels.stats.power import TTestIndPower

    from archbench.stats import t_test_power

    # Equal spreads, 4 seeds each: the pooled t-test's power (statsmodels, noncentral t) at effect size
    # gap / sigma, sigma^2 = 0.5 per model when se_per_seed = sqrt(var_a + var_b) = 1.
    gap = detectable_gap(1.0, 4)
    assert TTestIndPower().power(gap / math.sqrt(0.5), nobs1=4, alpha=0.05) == pytest.approx(0.8, abs=1e-6)
    assert t_test_power(gap, 0.5, 6) == pytest.approx(0.8, abs=1e-9)
    # The old normal-approximation formula (t quantiles added) understates the gap with few seeds.
    assert gap > (stats.t.isf(0.025, 6) + stats.t.ppf(0.8, 6)) * 0.5
    # Many seeds: the normal quantiles of the textbook formula.
    assert detectable_gap(1.0, 10_000) == pytest.approx((1.959964 + 0.841621) / 100, rel=1e-3)
    # Holm over 15 pairs: the strictest threshold is 0.05 / 15.
    assert detectable_gap(1.0, 3, tests=15) > detectable_gap(1.0, 3)
    gap = detectable_gap(2.0, 5, tests=15, fixed_se=0.1)
    assert seeds_needed(gap, 2.0, tests=15, fixed_se=0.1) == 5
    assert seeds_needed(gap * 0.999, 2.0, tests=15, fixed_se=0.1) == 6
    # The test-set part does not shrink with seeds: a gap below it needs more than any number of seeds.
    assert seeds_needed(0.1, 2.0, fixed_se=0.1) == math.inf


def test_power_uses_welch_degrees_of_freedom_so_unequal_spreads_get_no_free_power():
    """Three seeds each: the pooled 2 (n - 1) = 4 degrees of freedom only when the spreads are equal; one
    spread dominating leaves Welch about n - 1 = 2, and the separable gap grows to match the test."""
    from scipy import stats

    from archbench.stats import seedless_limit, welch_df_factor

    assert welch_df_factor(1.0, 1.0) == 2.0 and welch_df_factor(1.0, 0.0) == 1.0
    assert 1.0 < welch_df_factor(4.0, 1.0) < 2.0
    equal = detectable_gap(1.0, 3, df_factor=welch_df_factor(0.5, 0.5))
    assert equal == pytest.approx(detectable_gap(1.0, 3))  # the pooled value
    lopsided = detectable_gap(1.0, 3, df_factor=welch_df_factor(0.99, 0.01))
    df = 2 * welch_df_factor(0.99, 0.01)
    shift = lopsided * math.sqrt(3)  # the noncentrality at that gap
    critical = stats.t.isf(0.025, df)
    assert stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift) == pytest.approx(0.8)
    assert lopsided > 1.4 * equal
    assert seeds_needed(lopsided, 1.0, df_factor=welch_df_factor(0.99, 0.01)) == 3
    assert seeds_needed(equal, 1.0, df_factor=welch_df_factor(0.99, 0.01)) > 3
    # The smallest gap any number of seeds separates: the test-set part alone, at normal quantiles.
    limit = seedless_limit(0.5, tests=15)
    assert limit == pytest.approx((stats.norm.isf(0.05 / 30) + stats.norm.ppf(0.8)) * 0.5)
    assert seeds_needed(limit * 0.999, 1.0, tests=15, fixed_se=0.5) == math.inf
    assert seeds_needed(limit * 1.5, 1.0, tests=15, fixed_se=0.5) < math.inf


def test_runs_over_several_data_orders_count_once_per_seed_in_a_comparison():
    """3 seeds x 3 order seeds: the runs of one seed share its initialisation, so the test has 3 samples
    per model (per-seed means), not 9 independent ones."""
    import pandas as pd
    from scipy import stats

    from archbench.results import compare

    rows = []
    for model, base in (("a", 60.0), ("b", 58.0)):
        for seed, shift in enumerate((-2.0, 0.0, 2.5)):
            for order_seed, wobble in enumerate((-0.1, 0.0, 0.1)):
                rows.append({"study": "v", "data": "d", "hardware": "h", "model": model, "variant": "x",
                             "variant_label": "", "seed": seed, "order_seed": order_seed,
                             "pooled_order_seeds": True, "test_top1": base + shift + wobble, "test_size": 10_000})
    runs = pd.DataFrame(rows)
    pair = compare(runs).iloc[0]
    assert (pair.n_a, pair.n_b) == (3, 3)
    per_seed = runs.groupby(["model", "seed"]).test_top1.mean()
    expected = stats.ttest_ind(per_seed["a"], per_seed["b"], equal_var=False).pvalue
    assert pair.p_value == pytest.approx(expected)
    # Counted as 9 independent runs the same data looks far more certain: the overstatement avoided.
    unpooled = compare(runs.assign(pooled_order_seeds=False)).iloc[0]
    assert unpooled.n_a == 9 and unpooled.p_value < 0.05 < pair.p_value


def test_rank_distribution_gives_share_first_and_rank_intervals():
    rng = np.random.default_rng(0)
    samples = np.column_stack([10 + rng.normal(0, 0.1, 2000), 5 + rng.normal(0, 1, 2000),
                               5 + rng.normal(0, 1, 2000)])
    ranks = rank_distribution(samples)
    assert ranks["share_first"][0] == pytest.approx(1.0)
    assert list(ranks["rank_low"]) == [1, 2, 2] and list(ranks["rank_high"]) == [1, 3, 3]


def test_tau_interval_says_holds_changes_or_inconclusive():
    rng = np.random.default_rng(0)
    means = np.arange(6.0)
    tight = means + rng.normal(0, 0.01, (500, 6))
    assert tau_interval(tight, means + rng.normal(0, 0.01, (500, 6)))["verdict"] == "holds"
    assert tau_interval(tight, -means + rng.normal(0, 0.01, (500, 6)))["verdict"] == "changes"
    noisy = tau_interval(tight, means + rng.normal(0, 3, (500, 6)))
    assert noisy["verdict"] == "inconclusive" and noisy["low"] < TAU_HOLDS <= noisy["high"]


def test_iqm_and_its_stratified_interval():
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # the mean of 3, 4, 5, 6
    point, low, high = stratified_iqm_interval([np.full(3, 0.5), np.full(3, 0.5)])
    assert point == low == high == 0.5
    point, low, high = stratified_iqm_interval([np.array([0.0, 0.1, 0.2]), np.array([0.8, 0.9, 1.0])])
    assert low <= point <= high and 0 < low and high < 1


def _write_handful_study(tmp_path, with_outcomes: bool):
    import json

    from archbench import results  # noqa: F401 (the layer under test reads these files)
    from archbench.outcomes import OUTCOMES_FILENAME, write_outcomes
    from helpers import fixture_record

    a, b = handful_case()
    labels = np.zeros(IMAGES, dtype=int)
    for model, rows in (("resnet56", a), ("resnet20", b)):
        for seed, correct in enumerate(rows):
            record = fixture_record("handful", model, "resnet_v1", seed, test_top1=100 * correct.mean())
            record["dataset"] = {**record.get("dataset", {}), "test_size": IMAGES}
            folder = tmp_path / "runs" / "handful" / "cifar10" / model / "v" / f"seed{seed}"
            folder.mkdir(parents=True)
            if with_outcomes:  # predicted = label where correct, another class where not
                record["test_outcomes"] = write_outcomes(folder / OUTCOMES_FILENAME, np.where(correct, 0, 1), labels)
            (folder / "record.json").write_text(json.dumps(record))


@pytest.mark.parametrize("with_outcomes", [True, False])
def test_compare_pairs_over_images_where_outcomes_exist_and_says_when_it_cannot(tmp_path, with_outcomes):
    from archbench import results

    _write_handful_study(tmp_path, with_outcomes)
    (pair,) = results.compare(results.load(tmp_path)).itertuples()
    assert pair.label_a == "resnet56" and pair.mean_diff == pytest.approx(0.30, abs=0.02)
    if with_outcomes:
        assert pair.test == results.PAIRED_TEST and not pair.tie and pair.gap_low > 0
    else:  # the labelled fallback: Welch over seeds and the independent floor, which swallows the gap
        assert pair.test == results.UNPAIRED_TEST and pair.below_noise_floor
        assert pair.seeds_needed == math.inf  # no number of seeds gets under that floor


def test_a_tau_interval_is_printed_rounded_outward_and_an_exact_threshold_holds():
    from archbench.stats import outward
    assert outward(0.5966666, 0.9966) == (0.59, 1.0)  # never shown as [0.60, ...] beside a 0.6 threshold
    assert outward(0.6, 0.8) == (0.6, 0.8) and outward(-0.2, 1.0) == (-0.2, 1.0)
    # 3 of 15 pairs discordant is tau 0.6 exactly: on the threshold, which holds
    before = np.tile(np.arange(6.0), (2000, 1))
    after = np.tile(np.array([1.0, 0.0, 3.0, 2.0, 5.0, 4.0]), (2000, 1))
    interval = tau_interval(before, after)
    assert interval["low"] == 0.6 and interval["verdict"] == "holds"


@pytest.mark.parametrize("bad, match", [
    (np.array([[0.0, 2.0]]), "0/1"),
    (np.array([[0.0, np.nan]]), "NaN"),
    (np.zeros((2, 2, 2)), "shape"),
])
def test_paired_gap_interval_rejects_what_is_not_outcomes(bad, match):
    with pytest.raises(ValueError, match=match):
        paired_gap_interval(bad, np.zeros((1, 2)))


def test_paired_t_test_has_the_seeds_degrees_of_freedom_when_they_dominate():
    from archbench.stats import paired_t_test

    # Each seed gets a leading block of images right: the two models differ only in how many, seed by seed,
    # so the gap's noise is the seeds' and the test has Welch's degrees of freedom over seed accuracies.
    a = np.array([np.where(np.arange(1000) < k, 1.0, 0.0) for k in (600, 640, 620)])
    b = np.array([np.where(np.arange(1000) < k, 1.0, 0.0) for k in (590, 610, 650)])
    result = paired_t_test(a, b)
    welch = stats_welch(a.mean(axis=1), b.mean(axis=1))
    assert result["df"] == pytest.approx(welch.df, rel=0.05)
    assert result["p_value"] == pytest.approx(welch.pvalue, rel=0.05)


def stats_welch(a, b):
    from scipy import stats

    test = stats.ttest_ind(a, b, equal_var=False)
    return type("Welch", (), {"df": test.df, "pvalue": test.pvalue})
