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


# ----------------------------------------------------------------- paired comparisons over images

# Holm's first step tests the smallest p at alpha / m; the power statements use it, so a gap they
# call separable would survive the correction whichever pair it belongs to.
POWER = 0.8


def _correct_matrix(correct, name: str) -> np.ndarray:
    matrix = np.asarray(correct, dtype=float)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] < 1:
        raise ValueError(f"{name}: expected a (seeds, test images) array of 0/1 outcomes, got shape {matrix.shape}")
    return matrix


def two_level_means(correct_by_model, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    chunk: int = 250) -> np.ndarray:
    """Bootstrap accuracies (percent), shape (resamples, models): each resample draws the test images
    with replacement ONCE for all models (they are scored on the same images, so the draw pairs them)
    and each model's seeds with replacement, then averages that model's resampled seeds on those images.

    `correct_by_model`: one (seeds, images) 0/1 array per model, the same images in the same order.
    The spread of a difference of two columns holds both sources of noise, seeds and test-set sampling,
    with the images' pairing (a two-level bootstrap; Davison and Hinkley 1997, section 3.8).
    """
    matrices = [_correct_matrix(correct, f"model {index}") for index, correct in enumerate(correct_by_model)]
    images = {matrix.shape[1] for matrix in matrices}
    if len(images) != 1:
        raise ValueError(f"two_level_means: every model must be scored on the same test images, got "
                         f"{sorted(images)} images: pass the outcomes of one test set")
    count = images.pop()
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(matrices)))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        # How often each image is drawn in `count` draws with replacement (bincount: faster than multinomial).
        draws = rng.integers(0, count, size=(size, count))
        weights = np.stack([np.bincount(row, minlength=count) for row in draws]) / count
        for column, matrix in enumerate(matrices):
            per_seed = weights @ matrix.T  # (size, seeds): each seed's accuracy on the drawn images
            seeds = matrix.shape[0]
            picks = rng.integers(0, seeds, size=(size, seeds))
            centre = per_seed.mean(axis=1)
            drawn = np.take_along_axis(per_seed, picks, axis=1).mean(axis=1)
            # Resampling n seeds gives the plug-in variance (n-1)/n s^2 / n; sqrt(n / (n-1)) restores s^2 / n,
            # which matters with the three seeds a study usually has.
            inflate = math.sqrt(seeds / (seeds - 1)) if seeds > 1 else 1.0
            out[start:start + size, column] = 100.0 * (centre + (drawn - centre) * inflate)
    return out


def seed_means(values_by_model, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> np.ndarray:
    """Draws of each model's mean over seeds only, shape (resamples, models): the fallback where no
    per-image outcomes were saved, so test-set sampling is not in the spread. Parametric, mean +
    s / sqrt(n) x Student t(n - 1), the same reference as the Welch test: resampling three seeds would
    show only ten distinct means and understate the spread. One seed: its value, no spread."""
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, len(values_by_model)))
    for column, values in enumerate(values_by_model):
        values = finite(values)
        if len(values) == 0:
            raise ValueError(f"seed_means: model {column} has no finite value")
        spread = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else 0.0
        draws = rng.standard_t(len(values) - 1, resamples) if len(values) > 1 else np.zeros(resamples)
        out[:, column] = values.mean() + spread * draws
    return out


def gap_interval(samples_a, samples_b, gap: float, confidence: float = 0.95) -> dict:
    """`gap`'s percentile interval, bootstrap standard error and two-sided p-value (normal, from that
    standard error) from aligned bootstrap samples of the two means."""
    differences = np.asarray(samples_a, dtype=float) - np.asarray(samples_b, dtype=float)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    se = float(differences.std(ddof=1))
    if se == 0:
        p_value = 1.0 if gap == 0 else 0.0
    else:
        p_value = float(2 * stats.norm.sf(abs(gap) / se))
    return {"gap": float(gap), "low": float(low), "high": float(high), "se": se, "p_value": p_value}


def paired_gap_interval(correct_a, correct_b, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> dict:
    """The gap A - B in mean test top-1 (points) with its two-level paired bootstrap interval, standard
    error and p-value. `correct_a`, `correct_b`: (seeds, images) 0/1 outcomes on the same test images.

    With one seed each it reduces to the paired (McNemar-like) difference of two proportions, whose
    standard error is 100 sqrt((b + c - (b - c)^2 / n) / n^2), b and c the images only A or only B gets right.
    """
    a, b = _correct_matrix(correct_a, "correct_a"), _correct_matrix(correct_b, "correct_b")
    samples = two_level_means([a, b], resamples, seed)
    gap = 100.0 * (a.mean() - b.mean())
    return gap_interval(samples[:, 0], samples[:, 1], gap, confidence)


def welch_df_factor(var_a: float, var_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom per extra seed, for two models with equal seed counts n:
    df = factor x (n - 1), factor = (var_a + var_b)^2 / (var_a^2 + var_b^2), from 1 (one model's spread
    dominates) to 2 (equal spreads, the pooled t-test's 2 (n - 1))."""
    total, squares = var_a + var_b, var_a ** 2 + var_b ** 2
    return float(total ** 2 / squares) if squares > 0 and math.isfinite(squares) else 2.0


def _quantiles(seeds: int, tests: int, alpha: float, power: float, df_factor: float = 2.0) -> float:
    """t_{1 - alpha / tests / 2} + t_{power}, with the Welch degrees of freedom df_factor x (seeds - 1)."""
    df = df_factor * (seeds - 1)
    return float(stats.t.isf(alpha / max(tests, 1) / 2, df) + stats.t.ppf(power, df))


def detectable_gap(se_per_seed: float, seeds: int, tests: int = 1, fixed_se: float = 0.0,
                   alpha: float = 0.05, power: float = POWER, df_factor: float = 2.0) -> float:
    """Smallest gap (points) a two-sided test at `alpha / tests` (Holm's strictest step) separates with
    probability `power`, when the gap's standard error is sqrt(se_per_seed^2 / seeds + fixed_se^2):
    `se_per_seed` the part that averaging seeds shrinks (sqrt(var_a + var_b) of single runs), `fixed_se`
    the part it does not (test-set sampling, the same images for every seed). Student t quantiles with
    the Welch test's degrees of freedom, `df_factor` x (seeds - 1) (`welch_df_factor`; 2 when the two
    spreads are equal), so few seeds, and unequal spreads, pay for their few degrees of freedom.
    """
    if seeds < 2:
        return math.nan
    return float(_quantiles(seeds, tests, alpha, power, df_factor)
                 * math.sqrt(se_per_seed ** 2 / seeds + fixed_se ** 2))


def seedless_limit(fixed_se: float, tests: int = 1, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest gap that any number of seeds could separate: with unlimited seeds only the fixed
    (test-set) part of the standard error is left, and the quantiles become normal."""
    z = stats.norm.isf(alpha / max(tests, 1) / 2) + stats.norm.ppf(power)
    return float(z * fixed_se)


def seeds_needed(gap: float, se_per_seed: float, tests: int = 1, fixed_se: float = 0.0,
                 alpha: float = 0.05, power: float = POWER, df_factor: float = 2.0) -> float:
    """Seeds per model for `detectable_gap` to reach `gap`; inf when no number of seeds can (`gap` is not
    above `seedless_limit`, the test-set part alone), NaN when there is no seed spread to go on."""
    if not (np.isfinite(se_per_seed) and se_per_seed > 0):
        return math.nan
    if abs(gap) <= seedless_limit(fixed_se, tests, alpha, power):
        return math.inf
    for seeds in range(2, 10_001):
        if detectable_gap(se_per_seed, seeds, tests, fixed_se, alpha, power, df_factor) <= abs(gap):
            return float(seeds)
    return math.inf


# ------------------------------------------------------------------------------ rankings with intervals

def rank_distribution(samples, confidence: float = 0.95) -> dict:
    """From bootstrap means (resamples, models), higher is better: each model's `share_first` (share of
    resamples in which it is best, ties shared), and its rank interval `rank_low`..`rank_high` (percentile,
    1 = best), as arrays over models."""
    samples = np.asarray(samples, dtype=float)
    ranks = stats.rankdata(-samples, method="min", axis=1)
    best = samples == samples.max(axis=1, keepdims=True)
    share_first = (best / best.sum(axis=1, keepdims=True)).mean(axis=0)
    tail = (1 - confidence) / 2
    low = np.floor(np.quantile(ranks, tail, axis=0, method="lower"))
    high = np.ceil(np.quantile(ranks, 1 - tail, axis=0, method="higher"))
    return {"share_first": share_first, "rank_low": low.astype(int), "rank_high": high.astype(int)}


def outward(low: float, high: float, digits: int = 2) -> tuple[float, float]:
    """An interval rounded outward to `digits` decimals, so that the printed interval never claims more
    than the computed one (a lower bound of 0.597 shows as 0.59, not as 0.60, beside a 0.6 threshold)."""
    scale = 10 ** digits
    return (math.floor(round(low * scale, 9)) / scale if math.isfinite(low) else low,
            math.ceil(round(high * scale, 9)) / scale if math.isfinite(high) else high)


# A ranking "holds" when at most 20% of the pairs can swap order: Kendall tau = 1 - 2 x (share of
# discordant pairs) >= 0.6 over the whole interval; "changes" when the interval lies below that.
TAU_HOLDS = 0.6


def tau_interval(samples_before, samples_after, confidence: float = 0.95) -> dict:
    """Kendall tau-b between two rankings of the same models, per bootstrap resample (rows of the two
    (resamples, models) arrays, resampled independently), with its percentile interval and the verdict:
    `holds` (interval >= TAU_HOLDS), `changes` (interval < TAU_HOLDS) or `inconclusive`."""
    before, after = np.asarray(samples_before, dtype=float), np.asarray(samples_after, dtype=float)
    if before.shape != after.shape or before.ndim != 2 or before.shape[1] < 2:
        raise ValueError(f"tau_interval: two (resamples, models) arrays of the same shape with two or more "
                         f"models, got {before.shape} and {after.shape}")
    taus = np.array([stats.kendalltau(x, y).statistic for x, y in zip(before, after)])
    # Tau is a ratio of pair counts: rounding drops float noise, so exactly 0.6 (e.g. 3 of 15 pairs
    # discordant) is judged as 0.6, not as 0.5999999999999999.
    taus = np.round(taus[np.isfinite(taus)], 12)
    if len(taus) == 0:
        return {"low": math.nan, "high": math.nan, "verdict": "inconclusive"}
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(taus, [tail, 1 - tail]))
    verdict = "holds" if low >= TAU_HOLDS else "changes" if high < TAU_HOLDS else "inconclusive"
    return {"low": low, "high": high, "verdict": verdict}


# --------------------------------------------------------------------------------- across studies

def iqm(values) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy.stats.trim_mean at 25%), robust to a few
    outlying runs yet less noisy than the median (Agarwal et al. 2021, rliable)."""
    values = finite(values)
    return float(stats.trim_mean(values, 0.25)) if len(values) else math.nan


def stratified_iqm_interval(strata, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                            seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """`(IQM, low, high)` of the values pooled over `strata` (one array per study), with a stratified
    bootstrap interval: runs resampled within each study, so every study keeps its weight."""
    strata = [finite(values) for values in strata]
    strata = [values for values in strata if len(values)]
    if not strata:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    point = iqm(np.concatenate(strata))
    draws = np.concatenate([values[rng.integers(0, len(values), size=(resamples, len(values)))]
                            for values in strata], axis=1)
    boot = stats.trim_mean(draws, 0.25, axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return point, float(low), float(high)
