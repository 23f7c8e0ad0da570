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


def test_welch_p_value_is_scipys():
    a, b = [93.5, 94.0, 94.5], [91.0, 91.5, 92.5]
    assert stats.welch_p_value(a, b) == pytest.approx(
        scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert math.isnan(stats.welch_p_value([1.0], [1.0, 2.0]))
