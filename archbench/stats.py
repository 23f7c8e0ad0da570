"""Statistics over seeds that never overstate what a few seeds and a finite test set can say.

Plain numpy arrays in, floats out (a pandas frame in for the variance components); no torch or
Hydra, so `archbench.results` and the report can use them on any machine. Each function names the
library that does the work: multiple-comparison correction and the analysis of variance are
statsmodels', tests and the bootstrap are scipy's.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

# Resamples of the bootstrap interval of P(A > B); a fixed seed makes the report reproducible.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def welch_p_value(a, b) -> float:
    """Two-sided Welch t-test p-value; NaN when either side has fewer than two seeds."""
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        # Seeds that reproduce exactly: any difference in means is systematic, none is a tie.
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels), for one family of comparisons.

    NaN entries (a side with one seed) take no part in the family and stay NaN: they are
    not tests, so they must not make the correction milder or harsher.
    """
    p_values = np.asarray(p_values, dtype=float)
    adjusted = np.full(p_values.shape, math.nan)
    tested = np.isfinite(p_values)
    if tested.any():
        adjusted[tested] = multipletests(p_values[tested], method="holm")[1]
    return adjusted


def prob_outperform(a, b) -> float:
    """P(A > B) over pairs of seeds (Bouthillier et al. 2021): the share of (seed of A,
    seed of B) pairs in which A scores higher, a tie counting one half.

    This is the Mann-Whitney U of A divided by the number of pairs. NaN when either side has
    fewer than two seeds: one run cannot say how often a model wins.
    """
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    return float(stats.mannwhitneyu(a, b).statistic / (len(a) * len(b)))


def _prob_outperform_vectorized(a, b, axis=-1):
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    wins = a[..., :, None] > b[..., None, :]
    ties = a[..., :, None] == b[..., None, :]
    return (wins + 0.5 * ties).mean(axis=(-2, -1))


def prob_outperform_interval(a, b, confidence: float = 0.95,
                             resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of `prob_outperform(a, b)`, seeds resampled within each
    model (scipy.stats.bootstrap). (NaN, NaN) when either side has fewer than two seeds.

    Percentile rather than BCa: with three seeds most resamples repeat values, and BCa's
    acceleration estimate is then undefined.
    """
    a, b = finite(a), finite(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan
    result = stats.bootstrap((a, b), _prob_outperform_vectorized, paired=False,
                             vectorized=True, confidence_level=confidence,
                             n_resamples=resamples, method="percentile",
                             rng=np.random.default_rng(seed))
    interval = result.confidence_interval
    return float(interval.low), float(interval.high)


def binomial_se(accuracy_percent, test_images) -> float:
    """Standard error, in percentage points, of an accuracy measured on `test_images` images.

    Averaging seeds does not shrink it: every seed is scored on the same test images.
    """
    if not _positive(test_images) or not np.isfinite(accuracy_percent):
        return math.nan
    n = int(test_images)
    share = min(max(float(accuracy_percent) / 100.0, 0.0), 1.0)
    return float(stats.binom.std(n, share) / n * 100.0)


def noise_floor(accuracy_a, accuracy_b, test_images, confidence: float = 0.95) -> float:
    """Smallest gap, in points, that a test set of `test_images` images can resolve between
    two accuracies: the two-sided normal quantile times the standard error of the difference.

    The two errors are added as if independent; on a shared test set they are positively
    correlated, so this floor is if anything too high, and a gap called noise is never
    one that the test set could in fact resolve.
    """
    spread = math.hypot(binomial_se(accuracy_a, test_images), binomial_se(accuracy_b, test_images))
    return float(stats.norm.ppf(0.5 + confidence / 2) * spread)


def _positive(value) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def expected_max(values, trials: int) -> float:
    """Expected best of `trials` trials drawn from the observed `values` without replacement.

    The expected validation performance of Dodge et al. 2019 ("Show Your Work"), with the unbiased
    estimator of Tang et al. 2020 ("Showing Your Work Doesn't Always Work"): Dodge's empirical-CDF
    version samples with replacement and underestimates the expected maximum. With the N values
    sorted ascending, the largest of a random `trials`-subset is the i-th value with probability
    C(i-1, trials-1) / C(N, trials), so the estimate is the mean of the maxima of all subsets.
    """
    return float(_expected_max_moments(values, trials)[0])


def expected_max_curve(values) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(trials, expected best, std of the best)` for 1..N trials of the N observed `values`.

    The std is the spread of the best over random subsets of that size: what one repetition of a
    study with that many trials would see around the expected value.
    """
    count = len(finite(values))
    if count == 0:
        raise ValueError("expected_max_curve: no finite values; pass the validation accuracies of "
                         "the finished trials")
    moments = [_expected_max_moments(values, trials) for trials in range(1, count + 1)]
    mean = np.array([first for first, _second in moments])
    spread = np.sqrt(np.maximum([second - first ** 2 for first, second in moments], 0.0))
    return np.arange(1, count + 1), mean, spread


def _expected_max_moments(values, trials: int) -> tuple[float, float]:
    """First and second moment of the largest of `trials` values drawn without replacement."""
    ordered = np.sort(finite(values))
    count = len(ordered)
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or not 1 <= trials <= count:
        raise ValueError(f"trials={trials!r} must be an integer in [1, {count}]: an unbiased estimate "
                         f"cannot look beyond the {count} finished trials")
    # Python integers keep the binomial coefficients exact; one division per weight rounds once.
    total = math.comb(count, trials)
    weights = np.array([math.comb(i - 1, trials - 1) / total for i in range(1, count + 1)])
    return float(weights @ ordered), float(weights @ ordered ** 2)


def rank_agreement(before, after) -> tuple[float, float, list[tuple[int, int]]]:
    """`(Kendall tau-b, its p-value, swapped pairs)` between two scorings of the same items.

    `before` and `after` are aligned arrays of scores (higher is better). A swapped pair `(i, j)`
    has i strictly ahead before and j strictly ahead after; a pair tied on either side is no swap.
    Tau and p are scipy's (NaN for fewer than two items or a constant scoring).
    """
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if before.shape != after.shape or before.ndim != 1:
        raise ValueError(f"rank_agreement: before and after must be aligned 1-D arrays, got shapes "
                         f"{before.shape} and {after.shape}")
    if not (np.isfinite(before).all() and np.isfinite(after).all()):
        raise ValueError("rank_agreement: scores must be finite; drop the items missing either score first")
    swapped = [(i, j) if before[i] > before[j] else (j, i)
               for i in range(len(before)) for j in range(i + 1, len(before))
               if (before[i] - before[j]) * (after[i] - after[j]) < 0]
    if len(before) < 2 or np.ptp(before) == 0 or np.ptp(after) == 0:
        return math.nan, math.nan, swapped
    result = stats.kendalltau(before, after)
    return float(result.statistic), float(result.pvalue), swapped


def variance_components(frame, value: str, factors) -> dict:
    """Random-effects variance components of `value` over crossed `factors` (e.g. seed and order
    seed), from a balanced crossed design without replication: every combination of the factors'
    levels exactly once.

    The sums of squares come from statsmodels (`ols` with one categorical term per factor, no
    interaction, then `anova_lm(typ=2)`); the components from the standard ANOVA expected mean
    squares. With N runs and n_f levels of factor f, E[MS_f] = var_resid + (N / n_f) var_f, so

        var_f = (MS_f - MS_resid) / (N / n_f), clipped at 0;  var_resid = MS_resid,

    where the residual holds the interaction and the noise (one run per cell cannot tell them
    apart). For two factors N / n_seed = n_order: var_seed = (MS_seed - MS_resid) / n_order.

    `frame` is a pandas DataFrame with the `value` column and one column per factor. Returns a
    dict: `n` (runs), `mean`, `levels`, `df`, `mean_squares`, `p_values` (the F test of each
    factor against the residual, statsmodels'), `raw` (components before clipping), `components`
    (clipped, plus `residual`), `total` (their sum: the variance of one run with every factor
    drawn anew) and `shares` (each component over `total`, NaN when it is 0).
    Raises ValueError unless the design is complete, crossed and unreplicated.
    """
    import pandas as pd
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm

    factors = list(factors)
    if len(factors) < 2 or len(set(factors)) != len(factors):
        raise ValueError(f"variance_components: factors={factors!r} must name two or more distinct "
                         "columns (a one-factor design has no residual to compare with)")
    missing = [column for column in [value, *factors] if column not in frame]
    if missing:
        raise ValueError(f"variance_components: columns {missing} not in the frame; it has "
                         f"{sorted(map(str, frame.columns))}")
    data = pd.DataFrame({"y": pd.to_numeric(frame[value], errors="coerce")})
    for index, factor in enumerate(factors):
        data[f"f{index}"] = frame[factor].astype(str).to_numpy()
    if not np.isfinite(data["y"]).all():
        raise ValueError(f"variance_components: {value} has missing or non-finite values; drop "
                         "the runs that lack it and pass a complete design")
    names = [f"f{index}" for index in range(len(factors))]
    levels = {factor: int(data[name].nunique()) for factor, name in zip(factors, names)}
    if min(levels.values()) < 2:
        raise ValueError(f"variance_components: every factor needs two or more levels, got {levels}")
    cells = data.groupby(names).size()
    expected = math.prod(levels.values())
    if (cells > 1).any() or len(cells) != expected:
        raise ValueError(f"variance_components: the design must hold each combination of "
                         f"{', '.join(factors)} exactly once ({expected} runs), got {len(data)} runs "
                         f"in {len(cells)} combinations")
    table = anova_lm(ols("y ~ " + " + ".join(f"C({name})" for name in names), data=data).fit(), typ=2)
    n = len(data)
    df_resid = float(table.loc["Residual", "df"])
    ms_resid = float(table.loc["Residual", "sum_sq"]) / df_resid
    result = {"n": n, "mean": float(data["y"].mean()), "levels": levels,
              "df": {"residual": df_resid}, "mean_squares": {"residual": ms_resid},
              "p_values": {}, "raw": {}, "components": {}}
    for factor, name in zip(factors, names):
        row = table.loc[f"C({name})"]
        mean_square = float(row["sum_sq"]) / float(row["df"])
        raw = (mean_square - ms_resid) / (n / levels[factor])
        p_value = float(row["PR(>F)"])
        result["df"][factor] = float(row["df"])
        result["mean_squares"][factor] = mean_square
        result["p_values"][factor] = p_value if math.isfinite(p_value) else math.nan
        result["raw"][factor] = raw
        result["components"][factor] = max(raw, 0.0)
    result["components"]["residual"] = ms_resid
    total = float(sum(result["components"].values()))
    result["total"] = total
    result["shares"] = {key: (component / total if total > 0 else math.nan)
                        for key, component in result["components"].items()}
    return result
