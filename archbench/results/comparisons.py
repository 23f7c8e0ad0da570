"""Models compared within one comparison (study, data, hardware): pairwise tests, ranks with their
intervals, bootstrap means, and how a ranking shifts between two scorings."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from archbench.stats import (BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, TAU_RESAMPLES, detectable_gap, holm, noise_floor,
                             paired_t_test, prob_outperform, prob_outperform_interval, rank_agreement,
                             rank_distribution, seed_means, seeds_needed, seedless_limit, tau_interval,
                             two_level_means, welch_df_factor, welch_interval)

from .frames import (ENTRY_KEYS, GROUP_KEYS, MODEL_KEYS, _first_of, _first_present, _is_missing, _require_columns,
                     _rows_with, _values, model_label)
from .loading import test_outcomes

SIGNIFICANCE_LEVEL = 0.05


def _entries(group: pd.DataFrame, metric: str) -> list[dict]:
    """The rows of one comparison with their independent units' values of `metric`, best mean first.

    A unit is a seed: where data-order seeds were pooled with the seeds (`pool_order_seeds`), the runs
    of one seed share its initialisation, so they are averaged into one value rather than counted as
    independent samples (which would overstate every test). `paths` lists each unit's records.
    """
    entries = []
    for keys, entry_runs in group.groupby(ENTRY_KEYS, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        values = _values(entry_runs, metric)
        if len(values):
            units = _seed_units(entry_runs.loc[values.index])
            paths = entry_runs.loc[values.index, "path"].astype(str) if "path" in entry_runs else None
            entries.append({
                "keys": dict(zip(ENTRY_KEYS, keys)),
                "label": model_label(keys[0], _first_present(entry_runs.get("variant_label"))),
                "values": np.array([values[unit].mean() for unit in units]),
                "paths": [list(paths[unit]) for unit in units] if paths is not None else [],
                "test_size": _first_present(entry_runs.get("test_size")),
            })
    return sorted(entries, key=lambda entry: (-entry["values"].mean(), entry["label"]))


def _seed_units(runs: pd.DataFrame) -> list[list]:
    """Row labels of `runs` grouped into independent units: per seed where order seeds were pooled, else
    one run each."""
    pooled = "pooled_order_seeds" in runs and runs["pooled_order_seeds"].fillna(False).astype(bool).any()
    if not pooled or "seed" not in runs:
        return [[index] for index in runs.index]
    return [list(index) for _seed, index in runs.groupby("seed", sort=True).groups.items()]


COMPARE_COLUMNS = (GROUP_KEYS + [f"{key}_a" for key in ENTRY_KEYS]
                   + [f"{key}_b" for key in ENTRY_KEYS]
                   + ["label_a", "label_b", "mean_a", "mean_b", "mean_diff", "n_a", "n_b",
                      "p_value", "p_holm", "tie", "p_a_beats_b", "p_a_beats_b_low",
                      "p_a_beats_b_high", "noise_floor", "below_noise_floor", "test", "gap_low", "gap_high",
                      "gap_se", "gap_df", "se_per_seed", "fixed_se", "fixed_df", "df_factor", "detectable_gap",
                      "planning_gap", "seeds_needed", "seedless_limit"])

# How a pair was tested: paired over test images where every run saved its outcomes, else the fallback.
PAIRED_TEST = "paired t over seeds and test images"
# The true gap, in points, that `seeds_needed` plans for unless the caller names another: a planning gap is
# the smallest gap worth finding, chosen before looking, never the observed gap (the winner's curse).
PLANNING_GAP = 1.0
UNPAIRED_TEST = "Welch over seeds, independent test-set floor (no per-image outcomes)"


def compare(runs: pd.DataFrame, metric: str = "test_top1", outcomes: dict | None = None,
            planning_gap: float = PLANNING_GAP) -> pd.DataFrame:
    """Every pair of models within each study, data and hardware, `model_a` the higher mean.

    For test top-1, where every run of both models saved its per-image outcomes (`outcomes`, as from
    `test_outcomes(runs)`, read here when None), the gap is tested over seeds and test images at once,
    paired over the images (`archbench.stats.paired_t_test`: Student t with Welch-Satterthwaite degrees
    of freedom `gap_df`): `gap_low`/`gap_high` its 95% interval, `gap_se` its standard error, `p_value`
    its two-sided p; test-set sampling is then inside the interval, so there is no separate floor.
    Otherwise (`test` says which) `p_value` is the two-sided Welch t-test over seeds,
    `gap_low`/`gap_high` Welch's interval, and `noise_floor` is the smallest gap a test set of
    `test_size` images can resolve with the two models' errors taken as independent;
    `below_noise_floor` marks a smaller gap, whatever the seeds say.
    `p_holm` is Holm-adjusted over all pairs of the same comparison, and `tie` (not separated) uses
    it: `p_holm >= 0.05`, or fewer than two seeds on either side. `p_a_beats_b` is P(A > B) over
    pairs of seeds with its 95% bootstrap interval. `detectable_gap` is the true gap this pair's seeds
    would separate with 80% power at Holm's strictest threshold (noncentral t, `archbench.stats.t_test_power`),
    from `se_per_seed` (sqrt(var_a + var_b) of single runs) and `fixed_se` (the part more seeds do not
    shrink, with `fixed_df` degrees of freedom, None where the test is Welch's over seeds alone);
    `seeds_needed` how many seeds per model would separate a true gap of `planning_gap` points (inf: no
    number of seeds can, it is not above `seedless_limit`, the smallest gap the test-set part allows). `archbench.stats.seeds_needed` with those columns gives
    it for any other planning gap.
    """
    if runs.empty:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    _require_columns(runs, MODEL_KEYS + [metric], "compare")
    if outcomes is None and metric == "test_top1":
        outcomes = test_outcomes(runs[runs["outcomes_file"].notna()]) if "outcomes_file" in runs else {}
    frames = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        entries = _entries(group, metric)
        matrices = _paired_matrices(entries, outcomes if metric == "test_top1" else None)
        tests = len(entries) * (len(entries) - 1) // 2
        rows = [_pair_row(dict(zip(GROUP_KEYS, keys)), entries[i], entries[j],
                          None if matrices is None else (matrices[i], matrices[j]), tests, planning_gap)
                for i, j in itertools.combinations(range(len(entries)), 2)]
        if rows:
            frame = pd.DataFrame(rows)
            # One family of tests per comparison: the pairs a reader scans together.
            frame["p_holm"] = holm(frame["p_value"])
            frame["tie"] = ~(frame["p_holm"] < SIGNIFICANCE_LEVEL)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[COMPARE_COLUMNS]


def _outcome_matrix(entry: dict, outcomes: dict | None):
    """(seeds, images) 0/1 outcomes of one entry, or None unless every one of its runs saved them."""
    paths = [path for unit in entry["paths"] for path in unit]
    if not outcomes or not paths or any(path not in outcomes for path in paths):
        return None
    if len({len(outcomes[path]["correct"]) for path in paths}) != 1:
        return None
    # One row per unit: a seed's runs over several data orders count as one seed, image by image.
    return np.array([np.mean([outcomes[path]["correct"] for path in unit], axis=0) for unit in entry["paths"]],
                    dtype=float)


def _paired_matrices(entries: list[dict], outcomes: dict | None):
    """Each entry's (seeds, images) outcomes when every entry has them on one test set, else None."""
    matrices = [_outcome_matrix(entry, outcomes) for entry in entries]
    if len(entries) < 2 or any(matrix is None for matrix in matrices) or \
            len({matrix.shape[1] for matrix in matrices}) != 1:
        return None
    # Paired only when every run saw the same labels in the same order: the same test images.
    labels = [outcomes[path]["labels"] for entry in entries for unit in entry["paths"] for path in unit]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        return None
    return matrices


def _paired_samples(entries: list[dict], outcomes: dict | None, seed: int | None = None):
    """Two-level bootstrap means (resamples, entries) when every entry has outcomes on one test set."""
    matrices = _paired_matrices(entries, outcomes)
    if matrices is None:
        return None
    return two_level_means(matrices) if seed is None else two_level_means(matrices, seed=seed)


def _pair_row(group_keys: dict, better: dict, worse: dict, matrices, tests: int, planning_gap: float) -> dict:
    a, b = better["values"], worse["values"]
    low, high = prob_outperform_interval(a, b)
    gap = float(a.mean() - b.mean())
    seed_spread = math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)) if min(len(a), len(b)) >= 2 else math.nan
    seeds = min(len(a), len(b))
    row = {
        **group_keys,
        **{f"{key}_a": value for key, value in better["keys"].items()},
        **{f"{key}_b": value for key, value in worse["keys"].items()},
        "label_a": better["label"], "label_b": worse["label"],
        "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": gap,
        "n_a": len(a), "n_b": len(b),
        "p_holm": math.nan, "tie": True,
        "p_a_beats_b": prob_outperform(a, b), "p_a_beats_b_low": low, "p_a_beats_b_high": high,
    }
    if matrices is not None:
        test = paired_t_test(*matrices)
        # The part of the variance more seeds would not shrink: test-set sampling, paired over the images.
        fixed, fixed_df = test["image_se"], matrices[0].shape[1] - 1
        row.update(test=PAIRED_TEST, noise_floor=math.nan, below_noise_floor=False,
                   p_value=test["p_value"] if seeds >= 2 else math.nan,
                   gap_low=test["low"], gap_high=test["high"], gap_se=test["se"], gap_df=test["df"])
    else:
        floor = noise_floor(a.mean(), b.mean(), _first_of(better["test_size"], worse["test_size"]))
        welch = welch_interval(a, b)
        # The Welch test's degrees of freedom are the seeds' alone (gap_df with fixed_df None).
        fixed, fixed_df = (floor / 1.959964 if np.isfinite(floor) else 0.0), None
        row.update(test=UNPAIRED_TEST, noise_floor=floor, below_noise_floor=bool(gap < floor),
                   p_value=welch.p_value, gap_low=welch.low, gap_high=welch.high, gap_se=welch.se,
                   gap_df=welch.df)
    # Welch's degrees of freedom: unequal seed spreads leave fewer than the pooled 2 (n - 1).
    df_factor = welch_df_factor(np.var(a, ddof=1), np.var(b, ddof=1)) if seeds >= 2 else 2.0
    plan = dict(tests=tests, fixed_se=fixed, df_factor=df_factor, fixed_df=fixed_df)
    row.update(se_per_seed=seed_spread, fixed_se=fixed, fixed_df=fixed_df, df_factor=df_factor,
               planning_gap=planning_gap,
               detectable_gap=detectable_gap(seed_spread, seeds, **plan) if np.isfinite(seed_spread) else math.nan,
               seeds_needed=seeds_needed(planning_gap, seed_spread, **plan) if np.isfinite(seed_spread) else math.nan,
               seedless_limit=seedless_limit(fixed, tests))
    return row


RANK_COLUMNS = MODEL_KEYS + ["label", "mean", "n", "rank", "with_best", "p_holm_vs_best", "share_first", "rank_low",
                             "rank_high", "rank_basis"]


def rank(runs: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """Rank models within each study, data and hardware by mean `metric`, best first.

    `rank` is 1 + the number of models with a strictly higher mean, so a worse mean never gets
    a better rank. `with_best` is True for the best model and for every model the seeds cannot
    separate from it (Holm-adjusted p >= 0.05 against the best, or fewer than two seeds);
    `p_holm_vs_best` is that adjusted p-value. `share_first` is the share of bootstrap resamples in
    which the model has the best mean, `rank_low`..`rank_high` its 95% rank interval, and
    `rank_basis` what was resampled (`bootstrap_means`).
    """
    if runs.empty:
        return pd.DataFrame(columns=RANK_COLUMNS)
    outcomes = _outcomes_if_any(runs, metric)
    pairs = compare(runs, metric, outcomes)
    rows = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        group_keys = dict(zip(GROUP_KEYS, keys))
        entries = _entries(group, metric)
        group_pairs = _rows_with(pairs, group_keys)
        means = [entry["values"].mean() for entry in entries]
        if not entries:
            continue
        samples, basis = _samples(entries, outcomes)
        spread = rank_distribution(samples)
        for position, entry in enumerate(entries):
            versus_best = _pair_with(group_pairs, entries[0]["keys"], entry["keys"])
            p_holm = math.nan if versus_best is None else float(versus_best["p_holm"])
            rows.append({
                **group_keys, **entry["keys"], "label": entry["label"],
                "mean": float(means[position]), "n": len(entry["values"]),
                "rank": 1 + sum(mean > means[position] for mean in means),
                "with_best": position == 0 or bool(versus_best["tie"]),
                "p_holm_vs_best": p_holm,
                "share_first": float(spread["share_first"][position]),
                "rank_low": int(spread["rank_low"][position]), "rank_high": int(spread["rank_high"][position]),
                "rank_basis": basis,
            })
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


RESAMPLED_SEEDS = "seeds"
RESAMPLED_SEEDS_AND_IMAGES = "seeds and test images"


def _outcomes_if_any(runs: pd.DataFrame, metric: str) -> dict:
    if metric != "test_top1" or "outcomes_file" not in runs:
        return {}
    return test_outcomes(runs[runs["outcomes_file"].notna()])


def _samples(entries: list[dict], outcomes: dict | None, resamples: int = BOOTSTRAP_RESAMPLES,
             seed: int = BOOTSTRAP_SEED, seeds_only: bool = False):
    """(bootstrap means (resamples, entries), what was resampled): seeds and test images where every
    entry saved per-image outcomes of one test set (unless `seeds_only`), else seeds only."""
    matrices = None if seeds_only else _paired_matrices(entries, outcomes)
    if matrices is not None:
        return two_level_means(matrices, resamples, seed), RESAMPLED_SEEDS_AND_IMAGES
    return seed_means([entry["values"] for entry in entries], resamples, seed), RESAMPLED_SEEDS


def bootstrap_means(runs: pd.DataFrame, metric: str = "test_top1", resamples: int = TAU_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED, seeds_only: bool = False) -> tuple[pd.DataFrame, str]:
    """Bootstrap means of `metric` per model of ONE comparison: a (resamples, labels) frame, and what
    was resampled ('seeds and test images' where every run saved per-image outcomes and not `seeds_only`,
    else 'seeds'). The default resamples are the tau verdict's (`archbench.stats.TAU_RESAMPLES`)."""
    entries = _entries(runs, metric)
    if not entries:
        return pd.DataFrame(), RESAMPLED_SEEDS
    samples, basis = _samples(entries, _outcomes_if_any(runs, metric), resamples, seed, seeds_only)
    return pd.DataFrame(samples, columns=[entry["label"] for entry in entries]), basis


def alike_bootstrap_means(scorings, resamples: int = TAU_RESAMPLES,
                          seed: int = BOOTSTRAP_SEED) -> tuple[list[pd.DataFrame], str]:
    """Bootstrap means of several scorings ((runs, metric) pairs) of the same models, all drawn by ONE
    method, so that a tau between two of them compares like with like: seeds and test images only where
    every scoring has per-image outcomes, else seeds for all. Returns the frames and what was resampled."""
    inputs = [(_entries(runs, metric), _outcomes_if_any(runs, metric)) for runs, metric in scorings]
    paired = bool(inputs) and all(entries and _paired_matrices(entries, outcomes) is not None
                                  for entries, outcomes in inputs)
    frames = []
    for entries, outcomes in inputs:
        if not entries:
            frames.append(pd.DataFrame())
            continue
        samples, _basis = _samples(entries, outcomes, resamples, seed, seeds_only=not paired)
        frames.append(pd.DataFrame(samples, columns=[entry["label"] for entry in entries]))
    return frames, RESAMPLED_SEEDS_AND_IMAGES if paired else RESAMPLED_SEEDS


def _pair_with(pairs: pd.DataFrame, keys_a: dict, keys_b: dict):
    if keys_a == keys_b:
        return None
    matched = _rows_with(pairs, {**{f"{key}_a": value for key, value in keys_a.items()},
                                 **{f"{key}_b": value for key, value in keys_b.items()}})
    return matched.iloc[0] if len(matched) else None


def ranking_shift(before: pd.Series, after: pd.Series, after_pairs: pd.DataFrame | None = None,
                  before_samples: pd.DataFrame | None = None, after_samples: pd.DataFrame | None = None) -> dict:
    """How a ranking changes between two scorings of the same models (label -> mean score).

    Returns `models`, Kendall `tau` and its `p_value` (scipy), and `swapped`: one dict per pair
    whose order flips (`ahead_before`, `ahead_after`, `gap_before`, `gap_after` in points, and
    `separated`: whether the seeds separate the new order, from `after_pairs` (a `compare()` of
    the after scores; None when not given or the pair is not in it)). Models missing either score
    are left out. With bootstrap means of both scorings (`bootstrap_means`, columns = labels), also
    `tau_low`/`tau_high`, the 95% interval of tau over resamples, and `verdict`: 'holds', 'changes' or
    'inconclusive' (archbench.stats.tau_interval, with its `share_below`, `on_edge`, `resamples` and
    `attainable`); None without them. Draw both with one method (`alike_bootstrap_means`).
    """
    both = pd.concat({"before": before, "after": after}, axis=1).dropna().sort_index()
    tau, p_value, swaps = rank_agreement(both["before"].to_numpy(), both["after"].to_numpy())
    labels = list(both.index)
    swapped = []
    for ahead, behind in swaps:
        a, b = labels[ahead], labels[behind]
        swapped.append({"ahead_before": a, "ahead_after": b,
                        "gap_before": float(both.before[a] - both.before[b]),
                        "gap_after": float(both.after[b] - both.after[a]),
                        "separated": _separated(after_pairs, b, a)})
    swapped.sort(key=lambda swap: -swap["gap_after"])
    interval = {"low": math.nan, "high": math.nan, "verdict": None, "share_below": math.nan, "on_edge": False,
                "resamples": 0, "attainable": []}
    if before_samples is not None and after_samples is not None and len(labels) >= 2 and \
            all(label in before_samples and label in after_samples for label in labels):
        interval = tau_interval(before_samples[labels].to_numpy(), after_samples[labels].to_numpy())
    return {"models": len(both), "tau": tau, "p_value": p_value, "swapped": swapped,
            "tau_low": interval["low"], "tau_high": interval["high"], "verdict": interval["verdict"],
            "share_below": interval["share_below"], "on_edge": interval["on_edge"],
            "resamples": interval["resamples"], "attainable": interval["attainable"]}


def _separated(pairs, label_a, label_b):
    if pairs is None or pairs.empty:
        return None
    match = pairs[(pairs.label_a == label_a) & (pairs.label_b == label_b)]
    if match.empty or _is_missing(match.iloc[0]["p_holm"]):
        return None
    return not bool(match.iloc[0]["tie"]) and not bool(match.iloc[0]["below_noise_floor"])
