"""Statistics over seeds that never overstate what a few seeds and a finite test set can say.

Plain numpy arrays in, floats out (a pandas frame in for the variance components); no torch or
Hydra, so `archbench.results` and the report can use them on any machine. Each function names the
library that does the work: multiple-comparison correction and the analysis of variance are
statsmodels', tests and the bootstrap are scipy's.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.multitest import multipletests

# Resamples of the bootstrap interval of P(A > B); a fixed seed makes the report reproducible.
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0


def finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


class WelchInterval(NamedTuple):
    """Welch's test of mean(a) - mean(b): the `gap`, its interval `low`..`high`, standard error `se`,
    Welch-Satterthwaite degrees of freedom `df` and two-sided `p_value`."""
    gap: float
    low: float
    high: float
    se: float
    df: float
    p_value: float

    @property
    def half(self) -> float:
        """The interval's half-width."""
        return (self.high - self.low) / 2


def welch_interval(a, b, confidence: float = 0.95, borrow_spread: bool = False) -> WelchInterval:
    """Welch's unequal-variance t test of mean(a) - mean(b) with its interval (scipy's, where both sides have
    two or more values).

    A side with one value has no spread of its own, so the interval is unknown (NaN), unless
    `borrow_spread`: the one-value side then borrows the other side's spread, with that side's n - 1
    degrees of freedom, which suits a one-seed reproduction against a three-seed reference (the same kind
    of spread). Without any spread (seeds that reproduce exactly) any gap is systematic: the interval is
    the gap itself and p is 1 for no gap, else 0. An empty side leaves everything NaN.
    """
    a, b = finite(a), finite(b)
    if len(a) == 0 or len(b) == 0:
        return WelchInterval(*[math.nan] * 6)
    gap = float(a.mean() - b.mean())
    if len(a) >= 2 and len(b) >= 2:
        se = math.sqrt(sum([a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)]))
        if se == 0:
            return _no_spread(gap)
        test = stats.ttest_ind(a, b, equal_var=False)
        interval = test.confidence_interval(confidence)
        return WelchInterval(gap, float(interval.low), float(interval.high), se, float(test.df), float(test.pvalue))
    if not borrow_spread or max(len(a), len(b)) < 2:
        return WelchInterval(gap, *[math.nan] * 5)
    measured = a if len(a) >= 2 else b
    se = math.sqrt(measured.var(ddof=1) * (1 / len(a) + 1 / len(b)))
    if se == 0:
        return _no_spread(gap)
    df = len(measured) - 1
    half = float(stats.t.isf((1 - confidence) / 2, df)) * se
    return WelchInterval(gap, gap - half, gap + half, se, float(df), float(2 * stats.t.sf(abs(gap) / se, df)))


def _no_spread(gap: float) -> WelchInterval:
    return WelchInterval(gap, gap, gap, 0.0, math.nan, 1.0 if gap == 0 else 0.0)


def welch_p_value(a, b) -> float:
    """Two-sided Welch t-test p-value (`welch_interval`); NaN when either side has fewer than two seeds."""
    return welch_interval(a, b).p_value


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
    # Fractions are allowed: a seed's runs over several data orders are averaged image by image.
    if not np.isfinite(matrix).all() or matrix.min() < 0 or matrix.max() > 1:
        odd = "" if np.isfinite(matrix).all() else " and NaN or inf"
        raise ValueError(f"{name}: outcomes must be 0/1 (or their means over runs, in [0, 1]), got values from "
                         f"{np.nanmin(matrix)} to {np.nanmax(matrix)}{odd}")
    return matrix


def two_level_means(correct_by_model, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                    chunk: int = 250) -> np.ndarray:
    """Bootstrap accuracies (percent), shape (resamples, models), for ranks and rank intervals: each
    resample draws the test images with replacement ONCE for all models (they are scored on the same
    images, so the draw pairs them), and on those images draws each model's mean over seeds as
    mean + s / sqrt(n) x Student t(n - 1), s the spread of its seeds' accuracies there.

    `correct_by_model`: one (seeds, images) 0/1 array per model, the same images in the same order.
    The seed part is parametric, as in `seed_means` and the Welch test: resampling two or three seeds
    shows only three or ten distinct means, which made these intervals far too narrow with the seed
    counts studies have. Both levels carry the seed-by-image interaction, so the spread is, if anything,
    slightly too wide: by that interaction's variance / (seeds x images), small beside the seed part
    (`paired_t_test` counts it once).
    """
    matrices = [_correct_matrix(correct, f"model {index}") for index, correct in enumerate(correct_by_model)]
    count = _one_test_set(matrices, "two_level_means")
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
            centre = per_seed.mean(axis=1)
            if seeds > 1:
                spread = per_seed.std(axis=1, ddof=1) / math.sqrt(seeds)
                centre = centre + spread * rng.standard_t(seeds - 1, size)
            out[start:start + size, column] = 100.0 * centre
    return out


def _one_test_set(matrices: list[np.ndarray], caller: str) -> int:
    images = {matrix.shape[1] for matrix in matrices}
    if len(images) != 1:
        raise ValueError(f"{caller}: every model must be scored on the same test images, got "
                         f"{sorted(images)} images: pass the outcomes of one test set")
    return images.pop()


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


def satterthwaite_df(variances, dfs) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance estimates, each with its
    own degrees of freedom: (sum v)^2 / sum(v^2 / df). Components with no variance take no part; inf
    when every remaining component has infinite degrees of freedom; NaN when there is no variance."""
    variances, dfs = np.asarray(variances, dtype=float), np.asarray(dfs, dtype=float)
    if variances.shape != dfs.shape or (variances < 0).any() or (dfs <= 0).any():
        raise ValueError(f"satterthwaite_df: one non-negative variance per positive degrees of freedom, got "
                         f"{variances.tolist()} and {dfs.tolist()}")
    total = float(variances.sum())
    if total == 0:
        return math.nan
    uncertain = float(np.sum(variances ** 2 / dfs))  # an infinite df adds nothing here
    return float(total ** 2 / uncertain) if uncertain > 0 else math.inf


def _interaction_mean_square(matrix: np.ndarray) -> float:
    """Residual mean square of a (seeds, images) table without replication: how much a seed's outcome on
    one image departs from that seed's and that image's averages (the seed-by-image interaction)."""
    seeds, images = matrix.shape
    if seeds < 2 or images < 2:
        return 0.0
    residual = matrix - matrix.mean(axis=1, keepdims=True) - matrix.mean(axis=0, keepdims=True) + matrix.mean()
    return float((residual ** 2).sum() / ((seeds - 1) * (images - 1)))


def paired_t_test(correct_a, correct_b, confidence: float = 0.95) -> dict:
    """The gap A - B in mean test top-1 (points) tested over seeds and test images at once, with a Student
    t reference whose degrees of freedom match what the seeds can say.

    `correct_a`, `correct_b`: (seeds, images) 0/1 outcomes on the same test images. The gap's variance, for
    new seeds and new images from the same source, is the sum of three independent estimates:
    - each model's seed part, var(its seeds' accuracies) / seeds, with seeds - 1 degrees of freedom;
    - the paired image part, var over images of the per-image difference (A's mean over seeds minus B's) /
      images, less the seed-by-image interaction it also holds (counted once already, in the seed part),
      with images - 1 degrees of freedom.
    The reference is Student t with the Welch-Satterthwaite degrees of freedom of that sum (`satterthwaite_df`),
    so with two or three seeds, where the seed part dominates, the test has the one to four degrees of
    freedom of a Welch test, not the normal's infinity. With one seed each it is the paired (McNemar-like)
    test of two proportions. Returns `gap`, `low`, `high` (the t interval), `se`, `df`, `p_value` and the
    parts `seed_se` and `image_se`.
    """
    a, b = _correct_matrix(correct_a, "correct_a"), _correct_matrix(correct_b, "correct_b")
    images = _one_test_set([a, b], "paired_t_test")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_t_test: confidence must lie in (0, 1), got {confidence}")
    gap = 100.0 * (a.mean() - b.mean())
    variances, dfs = [], []
    for matrix in (a, b):
        if matrix.shape[0] > 1:
            variances.append(matrix.mean(axis=1).var(ddof=1) / matrix.shape[0])
            dfs.append(matrix.shape[0] - 1)
    seed_variance = float(sum(variances))
    difference = a.mean(axis=0) - b.mean(axis=0)
    overlap = _interaction_mean_square(a) / a.shape[0] + _interaction_mean_square(b) / b.shape[0]
    image_variance = max(float(difference.var(ddof=1)) - overlap, 0.0) / images if images > 1 else 0.0
    variances.append(image_variance)
    dfs.append(max(images - 1, 1))
    se = 100.0 * math.sqrt(seed_variance + image_variance)
    result = {"gap": float(gap), "se": se, "seed_se": 100.0 * math.sqrt(seed_variance),
              "image_se": 100.0 * math.sqrt(image_variance)}
    if se == 0:
        # Every seed and image agrees: the gap, if any, is systematic; there is no spread to test it against.
        return {**result, "low": float(gap), "high": float(gap), "df": math.nan,
                "p_value": 1.0 if gap == 0 else 0.0}
    df = satterthwaite_df(variances, dfs)
    half = float(stats.t.isf((1 - confidence) / 2, df)) * se
    return {**result, "low": float(gap - half), "high": float(gap + half), "df": df,
            "p_value": float(2 * stats.t.sf(abs(gap) / se, df))}


def paired_gap_interval(correct_a, correct_b, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> dict:
    """The gap A - B in mean test top-1 (points), paired over test images, with its interval, standard
    error and p-value: `paired_t_test`. `correct_a`, `correct_b`: (seeds, images) 0/1 outcomes on the
    same test images.

    `resamples` and `seed` are accepted for earlier callers and no longer used: the test was a two-level
    bootstrap whose normal p-value rejected 11% of null studies at p < 0.05 with two seeds per model,
    and the t reference needs no resampling.
    """
    del resamples, seed
    return paired_t_test(correct_a, correct_b, confidence)


def welch_df_factor(var_a: float, var_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom per extra seed, for two models with equal seed counts n:
    df = factor x (n - 1), factor = (var_a + var_b)^2 / (var_a^2 + var_b^2), from 1 (one model's spread
    dominates) to 2 (equal spreads, the pooled t-test's 2 (n - 1))."""
    total, squares = var_a + var_b, var_a ** 2 + var_b ** 2
    return float(total ** 2 / squares) if squares > 0 and math.isfinite(squares) else 2.0


def t_test_power(gap: float, se: float, df: float, tests: int = 1, alpha: float = 0.05) -> float:
    """Probability that a two-sided t test at `alpha / tests` separates a true gap `gap` whose estimate
    has standard error `se` and `df` degrees of freedom: both tails of the noncentral t (scipy.stats.nct),
    noncentrality gap / se. Infinite `df`: the normal."""
    if not (se > 0 and df > 0):
        return math.nan
    shift = abs(gap) / se
    if math.isinf(df):
        critical = stats.norm.isf(alpha / max(tests, 1) / 2)
        return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))
    critical = stats.t.isf(alpha / max(tests, 1) / 2, df)
    upper, lower = float(stats.nct.sf(critical, df, shift)), float(stats.nct.cdf(-critical, df, shift))
    # scipy's nct can return NaN deep in the far tail (wrong side, large noncentrality), where the
    # probability is below the normal's and negligible.
    return upper + (lower if math.isfinite(lower) else 0.0)


def _gap_at_power(se: float, df: float, tests: int, alpha: float, target: float) -> float:
    """The gap at which `t_test_power` reaches `target`: power rises with the gap, so a bracketed root."""
    def short(gap):
        return t_test_power(gap, se, df, tests, alpha) - target

    high = se
    while short(high) < 0:
        high *= 2
    return float(brentq(short, 0.0, high, xtol=1e-7 * se))


def gap_df(se_per_seed: float, seeds: int, fixed_se: float = 0.0, df_factor: float = 2.0,
           fixed_df: float | None = math.inf) -> float:
    """Degrees of freedom of the test of a gap whose standard error is sqrt(se_per_seed^2 / seeds +
    fixed_se^2): the seed part with Welch's df_factor x (seeds - 1), the fixed (test-set) part with
    `fixed_df` (images - 1 for the paired test), joined by Welch-Satterthwaite (`satterthwaite_df`).
    `fixed_df` None: the test is Welch's over seeds alone (the unpaired fallback, whose test-set floor is
    a separate rule), so its degrees of freedom are the seeds' alone."""
    if fixed_df is None:
        return df_factor * (seeds - 1)
    return satterthwaite_df([se_per_seed ** 2 / seeds, fixed_se ** 2], [df_factor * (seeds - 1), fixed_df])


def detectable_gap(se_per_seed: float, seeds: int, tests: int = 1, fixed_se: float = 0.0,
                   alpha: float = 0.05, power: float = POWER, df_factor: float = 2.0,
                   fixed_df: float | None = None) -> float:
    """Smallest gap (points) a two-sided t test at `alpha / tests` (Holm's strictest step) separates with
    probability `power` (the noncentral t, `t_test_power`), when the gap's standard error is
    sqrt(se_per_seed^2 / seeds + fixed_se^2): `se_per_seed` the part that averaging seeds shrinks
    (sqrt(var_a + var_b) of single runs), `fixed_se` the part it does not (test-set sampling, the same
    images for every seed). Degrees of freedom from `gap_df`: Welch's df_factor x (seeds - 1) for the seed
    part (`welch_df_factor`; 2 when the two spreads are equal), so few seeds, and unequal spreads, pay
    for their few degrees of freedom.
    """
    if seeds < 2:
        return math.nan
    se = math.sqrt(se_per_seed ** 2 / seeds + fixed_se ** 2)
    if not se > 0:
        return math.nan
    return _gap_at_power(se, gap_df(se_per_seed, seeds, fixed_se, df_factor, fixed_df), tests, alpha, power)


def seedless_limit(fixed_se: float, tests: int = 1, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest gap that any number of seeds could separate: with unlimited seeds only the fixed
    (test-set) part of the standard error is left, and the quantiles become normal."""
    z = stats.norm.isf(alpha / max(tests, 1) / 2) + stats.norm.ppf(power)
    return float(z * fixed_se)


def seeds_needed(gap: float, se_per_seed: float, tests: int = 1, fixed_se: float = 0.0,
                 alpha: float = 0.05, power: float = POWER, df_factor: float = 2.0,
                 fixed_df: float | None = None) -> float:
    """Seeds per model for `detectable_gap` to reach `gap`, a planning gap (the smallest gap worth
    finding), never an observed one: an observed gap that was not separated is, on average, larger than
    the true one (the winner's curse), so planning on it asks for too few seeds. inf when no number of
    seeds can (`gap` is not above `seedless_limit`, the test-set part alone), NaN when there is no seed
    spread to go on."""
    if not (np.isfinite(se_per_seed) and se_per_seed > 0):
        return math.nan
    if abs(gap) <= seedless_limit(fixed_se, tests, alpha, power):
        return math.inf
    # detectable_gap falls as seeds grow: bisect on the seed count instead of stepping through 10,000.
    def reaches(seeds):  # the power at `gap` itself: one noncentral t per seed count, no root to find
        se = math.sqrt(se_per_seed ** 2 / seeds + fixed_se ** 2)
        return t_test_power(gap, se, gap_df(se_per_seed, seeds, fixed_se, df_factor, fixed_df), tests, alpha) >= power

    low, high = 2, 2
    while not reaches(high):
        if high >= 100_000:
            return math.inf
        low, high = high, high * 2
    if reaches(low):
        return float(low)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle, high)
    return float(high)


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
# Resamples behind a tau verdict: enough that the share of resamples beyond the threshold is known to about
# +-0.15 percentage points, so only a share within a few of those of the 2.5% tail reads "inconclusive".
TAU_RESAMPLES = 10_000
# How many Monte Carlo standard errors of that share keep a verdict away from the tail's edge.
TAU_MARGIN = 3.0


def kendall_tau_rows(before, after) -> np.ndarray:
    """Kendall tau-b between the rows of two (resamples, models) arrays, row by row (the statistic of
    scipy.stats.kendalltau, vectorised over rows); NaN for a row in which one side is all ties."""
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    upper = np.triu_indices(before.shape[1], k=1)
    sign_before = np.sign(before[:, :, None] - before[:, None, :])[:, upper[0], upper[1]]
    sign_after = np.sign(after[:, :, None] - after[:, None, :])[:, upper[0], upper[1]]
    untied = np.count_nonzero(sign_before, axis=1) * np.count_nonzero(sign_after, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(untied > 0, (sign_before * sign_after).sum(axis=1) / np.sqrt(untied), np.nan)


def attainable_taus(models: int, near: float = TAU_HOLDS, each_side: int = 2) -> list[float]:
    """The values Kendall tau can take between two untied rankings of `models` models (1 - 4k / (m (m - 1))
    for k discordant pairs), the `each_side` nearest below and at-or-above `near`: a percentile of tau
    jumps between these, so an interval's end is one of them."""
    pairs = models * (models - 1) // 2
    values = sorted({round(1 - 2 * k / pairs, 12) for k in range(pairs + 1)})
    below = [value for value in values if value < near][-each_side:]
    above = [value for value in values if value >= near][:each_side]
    return below + above


def tau_interval(samples_before, samples_after, confidence: float = 0.95) -> dict:
    """Kendall tau-b between two rankings of the same models, per bootstrap resample (rows of the two
    (resamples, models) arrays, drawn by one method for both sides), with its percentile interval and the
    verdict: `holds` (interval >= TAU_HOLDS), `changes` (interval < TAU_HOLDS) or `inconclusive`.

    Tau takes few values (16 with 6 models), so the interval's end sits on a jump between two of them and
    can move a whole step with the generator's seed. The verdict is therefore read from the share of
    resamples below the threshold, `share_below`, and is given only when that share is on one side of the
    tail by more than TAU_MARGIN Monte Carlo standard errors; a share that close to the tail reads
    "inconclusive" (`on_edge` True), whatever this draw's percentile says. `attainable` lists the values
    tau can take near the threshold.
    """
    before, after = np.asarray(samples_before, dtype=float), np.asarray(samples_after, dtype=float)
    if before.shape != after.shape or before.ndim != 2 or before.shape[1] < 2:
        raise ValueError(f"tau_interval: two (resamples, models) arrays of the same shape with two or more "
                         f"models, got {before.shape} and {after.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"tau_interval: confidence must lie in (0, 1), got {confidence}")
    # Tau is a ratio of pair counts: rounding drops float noise, so exactly 0.6 (e.g. 3 of 15 pairs
    # discordant) is judged as 0.6, not as 0.5999999999999999.
    taus = np.round(kendall_tau_rows(before, after), 12)
    taus = taus[np.isfinite(taus)]
    attainable = attainable_taus(before.shape[1])
    if len(taus) == 0:
        return {"low": math.nan, "high": math.nan, "verdict": "inconclusive", "share_below": math.nan,
                "on_edge": False, "resamples": 0, "attainable": attainable}
    tail = (1 - confidence) / 2
    low, high = (float(v) for v in np.quantile(taus, [tail, 1 - tail]))
    share_below = float(np.mean(taus < TAU_HOLDS))
    margin = TAU_MARGIN * math.sqrt(tail * (1 - tail) / len(taus))
    if share_below <= tail - margin:
        verdict = "holds"
    elif 1 - share_below <= tail - margin:
        verdict = "changes"
    else:
        verdict = "inconclusive"
    on_edge = abs(share_below - tail) < margin or abs((1 - share_below) - tail) < margin
    return {"low": low, "high": high, "verdict": verdict, "share_below": share_below, "on_edge": on_edge,
            "resamples": int(len(taus)), "attainable": attainable}


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
