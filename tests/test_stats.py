"""archbench.stats: golden values checked by hand and against statsmodels / scipy."""
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from archbench import stats


def test_holm_matches_hand_computed_values_and_statsmodels():
    p_values = [0.01, 0.04, 0.03, 0.005]
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; the step-down
    # keeps them non-decreasing, so 0.04 becomes 0.06.
    expected = [0.03, 0.06, 0.06, 0.02]
    assert stats.holm(p_values) == pytest.approx(expected)
    assert stats.holm(p_values) == pytest.approx(multipletests(p_values, method="holm")[1])


def test_holm_caps_at_one_and_leaves_untested_pairs_out_of_the_family():
    adjusted = stats.holm([0.6, math.nan, 0.02])
    # A family of two, not three: the NaN (one seed) is not a test.
    assert adjusted[2] == pytest.approx(0.04) and adjusted[0] == pytest.approx(0.6)
    assert math.isnan(adjusted[1])
    assert list(stats.holm([0.9, 0.8])) == [1.0, 1.0]  # 0.8 x 2 = 1.6, capped
    assert np.isnan(stats.holm([math.nan])).all()


def test_prob_outperform_counts_seed_pairs_with_ties_as_half():
    # Pairs won by A: 3 beats 1 and 2; 4 beats 1 and 2 and ties 4; 5 beats all three.
    assert stats.prob_outperform([3, 4, 5], [1, 4, 2]) == pytest.approx(7.5 / 9)
    assert stats.prob_outperform([1, 4, 2], [3, 4, 5]) == pytest.approx(1.5 / 9)
    assert stats.prob_outperform([1.0, 2.0], [1.0, 2.0]) == pytest.approx(0.5)
    assert math.isnan(stats.prob_outperform([90.0], [80.0, 81.0]))


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    a, b = [50.1, 48.0, 52.4], [48.5, 47.9, 48.6]
    low, high = stats.prob_outperform_interval(a, b)
    assert 0.0 <= low <= stats.prob_outperform(a, b) <= high <= 1.0
    assert low < high
    assert stats.prob_outperform_interval(a, b) == (low, high)
    # Seeds that never overlap: every resample agrees, the interval is a point.
    assert stats.prob_outperform_interval([3.0, 4.0], [1.0, 2.0]) == (1.0, 1.0)
    assert all(math.isnan(value) for value in stats.prob_outperform_interval([1.0], [2.0, 3.0]))


def test_binomial_standard_error_and_noise_floor():
    # sqrt(0.9 * 0.1 / 10000) = 0.003, i.e. 0.3 points.
    assert stats.binomial_se(90.0, 10_000) == pytest.approx(0.3)
    assert stats.binomial_se(50.0, 100) == pytest.approx(5.0)
    assert math.isnan(stats.binomial_se(90.0, None))
    assert math.isnan(stats.binomial_se(90.0, 0))
    floor = stats.noise_floor(90.0, 90.0, 10_000)
    assert floor == pytest.approx(scipy_stats.norm.ppf(0.975) * math.sqrt(2) * 0.3)


def test_welch_interval_is_scipys_where_both_sides_have_a_spread():
    a, b = [91.2, 90.4, 92.0], [89.0, 90.1, 88.7, 89.5]
    welch, scipy_test = stats.welch_interval(a, b), scipy_stats.ttest_ind(a, b, equal_var=False)
    interval = scipy_test.confidence_interval(0.95)
    assert (welch.low, welch.high, welch.df, welch.p_value) == pytest.approx(
        (interval.low, interval.high, scipy_test.df, scipy_test.pvalue))
    assert welch.gap == pytest.approx(np.mean(a) - np.mean(b)) and welch.half == pytest.approx(welch.high - welch.gap)


def test_a_one_seed_side_borrows_the_other_sides_spread_only_when_asked():
    # Spread 2 from the three seeds, their 2 degrees of freedom, and both sides' counts in the standard error.
    borrowed = stats.welch_interval([55.0], [60.0, 62.0, 64.0], borrow_spread=True)
    assert borrowed.gap == pytest.approx(-7.0) and borrowed.df == 2
    assert borrowed.half == pytest.approx(4.302652729911275 * 2.0 * math.sqrt(1 / 3 + 1))
    assert math.isnan(stats.welch_interval([55.0], [60.0, 62.0, 64.0]).half)
    assert math.isnan(stats.welch_interval([55.0], [60.0], borrow_spread=True).half)  # nothing to borrow
    assert math.isnan(stats.welch_interval([], [60.0, 62.0]).gap)


def test_seeds_that_reproduce_exactly_make_any_gap_systematic():
    same = stats.welch_interval([90.0, 90.0], [90.0, 90.0])
    assert (same.low, same.high, same.se, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    apart = stats.welch_interval([91.0, 91.0], [90.0], borrow_spread=True)
    assert (apart.low, apart.high, apart.p_value) == (1.0, 1.0, 0.0)


def test_welch_p_value_is_scipys():
    a, b = [93.5, 94.0, 94.5], [91.0, 91.5, 92.5]
    assert stats.welch_p_value(a, b) == pytest.approx(
        scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(stats.welch_p_value([1.0], [1.0, 2.0]))


def test_expected_max_matches_hand_computed_values():
    values = [3.0, 1.0, 4.0, 2.0]
    # Best of 2 of {1, 2, 3, 4} over its 6 pairs: 2, 3, 4, 3, 4, 4 -> 20 / 6. Dodge et al.'s
    # with-replacement estimate would be 50 / 16 = 3.125: the unbiased one must not be that.
    assert stats.expected_max(values, 2) == pytest.approx(20 / 6)
    assert stats.expected_max(values, 1) == pytest.approx(2.5)  # one trial: the mean
    assert stats.expected_max(values, 4) == pytest.approx(4.0)  # every trial: the best
    assert stats.expected_max([5.0, 5.0, 1.0], 2) == pytest.approx(5.0)  # ties: every pair holds a 5
    trials, mean, spread = stats.expected_max_curve(values)
    assert list(trials) == [1, 2, 3, 4] and mean[1] == pytest.approx(20 / 6)
    # Maxima 2, 3, 4, 3, 4, 4: mean of squares 70 / 6, minus (20 / 6)^2.
    assert spread[1] == pytest.approx(math.sqrt(70 / 6 - (20 / 6) ** 2))
    assert spread[-1] == pytest.approx(0.0) and mean[2] == pytest.approx((3 + 4 + 4 + 4) / 4)


def test_expected_max_is_the_mean_over_every_subset():
    import itertools

    values = np.random.default_rng(0).normal(90, 2, size=7)
    for trials in range(1, 8):
        maxima = [max(subset) for subset in itertools.combinations(values, trials)]
        assert stats.expected_max(values, trials) == pytest.approx(np.mean(maxima))


def test_expected_max_refuses_more_trials_than_were_run():
    with pytest.raises(ValueError, match=r"trials=5 must be an integer in \[1, 4\]"):
        stats.expected_max([1.0, 2.0, 3.0, 4.0], 5)
    with pytest.raises(ValueError, match="no finite values"):
        stats.expected_max_curve([math.nan])


def test_rank_agreement_names_the_swapped_pairs():
    tau, p_value, swapped = stats.rank_agreement([3.0, 2.0, 1.0], [2.0, 3.0, 1.0])
    # Pairs (0,1) discordant, (0,2) and (1,2) concordant: tau = (2 - 1) / 3.
    assert tau == pytest.approx(1 / 3) and swapped == [(0, 1)]
    assert p_value == pytest.approx(scipy_stats.kendalltau([3, 2, 1], [2, 3, 1]).pvalue)
    assert stats.rank_agreement([1.0, 2.0], [1.0, 1.0])[2] == []  # a tie after is no swap
    assert math.isnan(stats.rank_agreement([1.0], [2.0])[0])


# Two 3 x 3 designs (rows: seed 0-2, columns: order seed 0-2), built as grand mean 93 + seed
# effect + order effect + a residual whose rows and columns sum to zero, so every sum of squares
# is a whole number. With N = 9 runs and 3 levels a factor, E[MS_f] = var_resid + 3 var_f.
#
# CROSSED: seed effects (-2, -1, +3), order effects (-2, 0, +2), residual [[2,-2,0],[-1,1,0],[-1,1,0]].
#   SS_seed  = 3 (4 + 1 + 9)  = 42, df 2, MS 21
#   SS_order = 3 (4 + 0 + 4)  = 24, df 2, MS 12
#   SS_resid = 4+4+1+1+1+1    = 12, df 4, MS 3      (SS_total = 78)
#   var_seed = (21 - 3) / 3 = 6, var_order = (12 - 3) / 3 = 3, var_resid = 3; total 12
#   shares 50% / 25% / 25%; F_seed = 7 and F_order = 4 on (2, 4) degrees of freedom.
CROSSED = [[91, 89, 93],
           [89, 93, 94],
           [93, 97, 98]]
# CLIPPED: the same seed effects and residual, no order effect at all.
#   MS_seed 21, MS_order 0, MS_resid 3: var_order = (0 - 3) / 3 = -1, clipped to 0;
#   var_seed 6, var_resid 3, total 9 (std 3): shares 2/3, 0, 1/3.
CLIPPED = [[93, 89, 91],
           [91, 93, 92],
           [95, 97, 96]]


def _design(grid):
    import pandas as pd

    return pd.DataFrame([{"seed": seed, "order_seed": order, "top1": float(grid[seed][order])}
                         for seed in range(3) for order in range(3)])


def test_variance_components_of_a_crossed_3x3_design_match_the_hand_computed_values():
    parts = stats.variance_components(_design(CROSSED), "top1", ["seed", "order_seed"])
    assert parts["n"] == 9 and parts["mean"] == pytest.approx(93.0)
    assert parts["levels"] == {"seed": 3, "order_seed": 3}
    assert parts["mean_squares"] == pytest.approx({"seed": 21.0, "order_seed": 12.0, "residual": 3.0})
    assert parts["df"] == pytest.approx({"seed": 2, "order_seed": 2, "residual": 4})
    assert parts["components"] == pytest.approx({"seed": 6.0, "order_seed": 3.0, "residual": 3.0})
    assert parts["total"] == pytest.approx(12.0)
    assert parts["shares"] == pytest.approx({"seed": 0.5, "order_seed": 0.25, "residual": 0.25})
    assert parts["p_values"]["seed"] == pytest.approx(scipy_stats.f.sf(7.0, 2, 4))
    assert parts["p_values"]["order_seed"] == pytest.approx(scipy_stats.f.sf(4.0, 2, 4))
    # Rows in any order, factors of any type: the same answer.
    shuffled = _design(CROSSED).sample(frac=1.0, random_state=1).astype({"order_seed": str})
    assert stats.variance_components(shuffled, "top1", ["seed", "order_seed"])["components"] == \
        pytest.approx(parts["components"])


def test_a_negative_variance_estimate_is_clipped_at_zero_and_kept_raw():
    parts = stats.variance_components(_design(CLIPPED), "top1", ["seed", "order_seed"])
    assert parts["raw"]["order_seed"] == pytest.approx(-1.0)
    assert parts["components"] == pytest.approx({"seed": 6.0, "order_seed": 0.0, "residual": 3.0})
    assert parts["total"] == pytest.approx(9.0)
    assert parts["shares"] == pytest.approx({"seed": 2 / 3, "order_seed": 0.0, "residual": 1 / 3})


def test_variance_components_refuse_an_incomplete_or_replicated_design():
    design = _design(CROSSED)
    with pytest.raises(ValueError, match=r"each combination of seed, order_seed exactly once \(9 runs\), "
                                         r"got 8 runs"):
        stats.variance_components(design.iloc[1:], "top1", ["seed", "order_seed"])
    replicated = design.assign(order_seed=[0, 0, 1, 0, 0, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="exactly once"):
        stats.variance_components(replicated, "top1", ["seed", "order_seed"])
    with pytest.raises(ValueError, match="two or more distinct columns"):
        stats.variance_components(design, "top1", ["seed"])
    with pytest.raises(ValueError, match="missing or non-finite"):
        stats.variance_components(design.assign(top1=[math.nan] + [90.0] * 8), "top1", ["seed", "order_seed"])
