"""Short findings written from the numbers of one comparison (study, data, hardware), and the
plain-words verdict per study that opens the report.

Each sentence states what the data support and no more: verdicts use Holm-adjusted p-values; a
gap is "separated" or "not separated by these seeds", never "real" (an unseparated gap is not shown
absent, and the power sentence says how large a gap these seeds could separate); where no per-image
outcomes were saved, a gap smaller than the test set can resolve is called noise whatever the seeds
say; a model with one seed is said to have an unknown spread.
"""
from __future__ import annotations

import pandas as pd

from archbench.record import decode_json_column
from archbench.results import PAIRED_TEST, RESAMPLED_SEEDS_AND_IMAGES, SIGNIFICANCE_LEVEL
from archbench.results.frames import machines_of
from archbench.stats import TAU_HOLDS, outward, seeds_needed

from .labels import count_text, word_list
from .tables import gap_interval_text, gap_points, is_missing, probability_text


def train_findings(group: pd.DataFrame, pairs: pd.DataFrame, ranking: pd.DataFrame,
                   on_front: pd.Series, hardware: str) -> list[str]:
    trained = group.dropna(subset=["test_top1_mean"])
    if trained.empty:
        return ["No model has a test accuracy in this comparison."]
    ordered = trained.sort_values(["test_top1_mean", "label"], ascending=[False, True])
    best = ordered.iloc[0]
    # Order seeds pooled with the seeds (archbench.results.pool_order_seeds): runs, not seeds.
    unit = "run" if best.get("pooled_order_seeds") in (True,) else "seed"
    findings = [
        f"Highest mean test top-1: {best.label} ({best.family}), "
        f"{_accuracy(best)} over {count_text(best.test_top1_n, unit)} (whether the seeds separate it from the "
        "next ones: below)."
    ]
    if len(ordered) > 1:
        findings.append(_top_two_gap(ordered.iloc[0], ordered.iloc[1], pairs))
        findings += _with_best(ranking)
        findings += rank_interval_findings(ranking)
        findings += _noise(pairs)
        findings += power_findings(pairs)
    findings += variant_notes(trained)
    findings += _efficiency(trained, on_front)
    findings += _speed(group, hardware)
    if "near_chance_runs" in trained:
        chance = trained[trained.near_chance_runs > 0]
        if len(chance):
            listed = ", ".join(f"{row.label} ({row.near_chance_runs} of {count_text(row.seeds, 'run')})"
                               for row in chance.itertuples(index=False))
            findings.append(f"Flagged near chance by the run's own check, on its validation images (not a "
                            f"test-set verdict; the test top-1 of such a run can still be above chance): {listed}.")
    findings += pooled_code_findings(trained)
    single = sorted(trained.label[trained.test_top1_n < 2])
    if single:
        findings.append(f"One seed only, so spread unknown and never significantly different "
                        f"from anything: {', '.join(single)}.")
    return findings


def _accuracy(row) -> str:
    if is_missing(row.test_top1_std):
        return f"{row.test_top1_mean:.2f}%"
    return f"{row.test_top1_mean:.2f} ± {row.test_top1_std:.2f}%"


def _pair(pairs: pd.DataFrame, label_a: str, label_b: str):
    pair = pairs[(pairs.label_a == label_a) & (pairs.label_b == label_b)]
    return None if pair.empty else pair.iloc[0]


def gap_sentence(pair) -> str:
    """What the seeds and the test set say about one gap, in words; `pair` is a compare() row."""
    paired = getattr(pair, "test", None) == PAIRED_TEST
    if pair.below_noise_floor:
        return (f"within the test-set noise floor of {pair.noise_floor:.2f} points (the two models' "
                "errors taken as independent: no per-image outcomes were saved), so not separated "
                "whatever the seeds say")
    if is_missing(pair.p_value):
        return "fewer than two seeds on one side, so these seeds cannot separate it"
    odds = f"{pair.label_a} beats {pair.label_b} in {probability_text(pair)} of seeds"
    interval = ""
    if not is_missing(getattr(pair, "gap_low", None)):
        interval = (f"unadjusted 95% interval of the gap {gap_interval_text(pair.gap_low, pair.gap_high, ' points')}, "
                    + ("paired over test images and seeds; " if paired else "Welch over seeds; "))
    test = "paired t" if paired else "Welch"
    if pair.tie:
        return (f"not separated by these seeds ({interval}Holm p = {pair.p_holm:.2g} ≥ {SIGNIFICANCE_LEVEL}; "
                f"raw {test} p = {pair.p_value:.2g}); {odds}")
    return f"separated ({interval}Holm p = {pair.p_holm:.2g} < {SIGNIFICANCE_LEVEL}); {odds}"


def _top_two_gap(first, second, pairs: pd.DataFrame) -> str:
    gap = first.test_top1_mean - second.test_top1_mean
    # "Leads" would claim an order the test may not support: the gap is stated in means, then judged.
    lead = f"Top-2 gap: {first.label}'s mean is {gap:.2f} points above {second.label}'s"
    pair = _pair(pairs, first.label, second.label)
    if pair is None:
        return f"{lead}; these seeds cannot separate it."
    return f"{lead}: {gap_sentence(pair)}."


def _with_best(ranking: pd.DataFrame) -> list[str]:
    if ranking.empty:
        return []
    others = ranking.iloc[1:]
    together = list(others.label[others.with_best])
    apart = list(others.label[~others.with_best])
    findings = []
    if together:
        findings.append(f"The seeds cannot separate these from the best, {ranking.iloc[0].label} "
                        f"(Holm-adjusted): {', '.join(together)}.")
    if apart:
        findings.append(f"Separated from the best, below it (Holm p < {SIGNIFICANCE_LEVEL}): "
                        f"{', '.join(apart)}.")
    return findings


def rank_interval_findings(ranking: pd.DataFrame) -> list[str]:
    """Each model's rank with its bootstrap interval and how often it comes first."""
    if ranking.empty or "rank_low" not in ranking or ranking.rank_low.isna().all():
        return []
    basis = ranking.rank_basis.iloc[0]
    parts = [f"{row.label} {_rank_range(row)} (first in {row.share_first:.0%})"
             for row in ranking.itertuples(index=False)]
    if basis == RESAMPLED_SEEDS_AND_IMAGES:
        method = ("95% bootstrap interval (test images drawn once for all models, each mean's seed part drawn "
                  "from Student t with n − 1 degrees of freedom)")
    else:  # archbench.stats.seed_means: parametric, since resampling 2-3 seeds shows only a few distinct means
        seeds = int(ranking["n"].min()) if "n" in ranking and ranking["n"].notna().any() else None
        method = ("95% interval from a parametric bootstrap over seeds (each mean drawn as mean + s/√n × Student "
                  "t with n − 1 degrees of freedom, as in the Welch test; test-set sampling not included"
                  + ("; with 2 seeds that t has very heavy tails, so ranks and shares are coarse" if seeds == 2
                     else "") + ")")
    return [f"Rank with its {method}, and the share of resamples in which each model is first: "
            + "; ".join(parts) + "."]


def _rank_range(row) -> str:
    low, high = int(row.rank_low), int(row.rank_high)
    return f"rank {low}" if low == high else f"rank {low}–{high}"


def power_findings(pairs: pd.DataFrame) -> list[str]:
    """The true gap these seeds separate with 80% probability (noncentral t, median over pairs), and the
    seeds per model that would separate a few planning gaps, chosen before looking, never the observed gap
    (an unseparated observed gap is on average larger than the true one: planning on it asks too little)."""
    if pairs.empty or "detectable_gap" not in pairs:
        return []
    tested = pairs[pairs.detectable_gap.notna()]
    if tested.empty:
        return []
    seeds = int(min(tested.n_a.min(), tested.n_b.min()))
    paired = (tested.test == PAIRED_TEST).all()
    gaps = tested.detectable_gap
    over = f"median over {len(tested)} pairs" if len(tested) > 1 else "one pair"
    low, high = gap_points(gaps.min()), gap_points(gaps.max())
    spread = "" if low == high else f"; {low} to {high} by pair"
    size = (f"a true gap of about {gaps.median():.2f} points is" if gaps.median() <= 100 else
            "only a true gap over 100 points, more than any gap, would be")
    findings = [f"Power ({over}{spread}): with {count_text(seeds, 'seed')} per model, {size} "
                f"separated with 80% probability, two-sided at Holm's strictest threshold "
                f"({SIGNIFICANCE_LEVEL}/{len(pairs)}); noncentral t from the observed seed variances"
                + ("; test-set sampling included (paired over images)." if paired else
                   "; with no per-image outcomes, the independent test-set floor applies on top.")]
    if {"se_per_seed", "fixed_se", "fixed_df", "df_factor"} <= set(tested.columns):
        findings.append(planning_sentence(tested, len(pairs), paired))
    return findings


# True gaps, in points, the seeds-needed sentence plans for: the reader picks the one that matters to them.
PLANNING_GAPS = (1.0, 2.0, 5.0)


def planning_sentence(tested: pd.DataFrame, tests: int, paired: bool) -> str:
    """Seeds per model that separate each planning gap with 80% probability, median over pairs."""
    parts = []
    for gap in PLANNING_GAPS:
        needed = [seeds_needed(gap, row.se_per_seed, tests, row.fixed_se, df_factor=row.df_factor,
                               fixed_df=None if is_missing(row.fixed_df) else row.fixed_df)
                  for row in tested.itertuples(index=False)]
        needed = pd.Series(needed, dtype=float).dropna()
        if needed.empty:
            continue
        median = needed.median()
        parts.append(f"{gap:g} point{'s' if gap != 1 else ''}: "
                     + ("no number of seeds" if median == float("inf") else f"about {int(median)}"))
    if not parts:
        return ""
    unreachable = any("no number" in part for part in parts)
    limit = "" if paired or not unreachable else (
        " 'No number of seeds': the test set, counted as unpaired, cannot resolve it; per-image outcomes (saved "
        "by runs made now) would pair it.")
    return ("Seeds per model needed to separate a true gap of " + "; ".join(parts)
            + " (80% power, median over pairs; planning gaps to choose from, not the observed gaps; "
            "archbench.stats.seeds_needed gives any other)." + limit)


def pooled_code_findings(summary: pd.DataFrame) -> list[str]:
    """Models whose seeds come from more than one commit, with the same settings: pooled as seeds, and said."""
    if "commit_count" not in summary:
        return []
    pooled = summary[summary.commit_count.fillna(0) > 1].sort_values("label")
    if pooled.empty:
        return []
    listed = "; ".join(f"{row.label} ({row.commits})" for row in pooled.itertuples(index=False))
    return [f"Seeds pooled across code versions (same settings, different commits; code the settings do not "
            f"name may differ between them): {listed}."]


def _noise(pairs: pd.DataFrame) -> list[str]:
    """Gaps the test set cannot resolve, with the floor they fall under."""
    small = pairs[pairs.below_noise_floor.astype(bool)]
    if small.empty:
        return []
    listed = "; ".join(f"{row.label_a} vs {row.label_b} ({row.mean_diff:.2f} < "
                       f"{row.noise_floor:.2f})" for row in small.itertuples(index=False))
    return [f"Within the test-set noise floor (points; the two models' errors taken as independent, as no "
            f"per-image outcomes were saved to pair them), so not separated by this test set: {listed}."]


def variant_notes(summary: pd.DataFrame) -> list[str]:
    """A model trained with several settings is several rows, never one average: say so."""
    notes = []
    for model, rows in summary.groupby("model", sort=True):
        if len(rows) > 1:
            notes.append(f"{model} was run with {len(rows)} different settings "
                         f"({', '.join(sorted(rows.label))}): each is its own row; they are "
                         "not averaged together as if they were seeds.")
    return notes


def _efficiency(trained: pd.DataFrame, on_front: pd.Series) -> list[str]:
    # A model at chance learned nothing measurable: few MACs for nothing is no efficiency.
    at_chance = trained.near_chance_runs > 0 if "near_chance_runs" in trained else pd.Series(False, trained.index)
    on_front = on_front.reindex(trained.index, fill_value=False) & ~at_chance
    trained = trained[~at_chance]
    with_macs = trained[trained.macs > 0]
    if with_macs.empty:
        return []
    per_gmac = with_macs.test_top1_mean / (with_macs.macs / 1e9)
    best = with_macs.loc[per_gmac.idxmax()]
    front = trained[on_front.reindex(trained.index, fill_value=False)].sort_values("macs")
    findings = [f"Best accuracy per MAC: {best.label} ({best.family}), "
                f"{per_gmac.max():,.1f} accuracy points per GMAC."]
    if not front.empty:
        findings.append("Pareto-optimal in accuracy vs MACs (no model is both cheaper and more "
                        f"accurate): {', '.join(front.label)}.")
    return findings


def _speed(group: pd.DataFrame, hardware: str) -> list[str]:
    # A figure taken under load (archbench.quiet) says nothing about the architecture: no conclusion then.
    loaded = group[group["latency_under_load"].notna()] if "latency_under_load" in group else group.iloc[:0]
    if len(loaded) and group.latency_b1_ms.notna().any():
        return [f"No speed conclusion: {len(loaded)} of {len(group)} models' latency and throughput were "
                f"measured under load (e.g. {loaded.iloc[0].label}: {loaded.iloc[0].latency_under_load}); "
                "`task=measure` on a quiet machine measures them again."]
    # task=measure may have timed a study's models again on another machine: its figures are that machine's,
    # and models timed on different machines are not compared.
    machines = sorted(machines_of(group.get("latency_hardware")))
    if len(machines) > 1 and group.latency_b1_ms.notna().any():
        return [f"No speed conclusion: the models' latency and throughput were measured on different machines "
                f"({'; '.join(machines)})."]
    measured_on = machines[0] if machines else hardware
    if measured_on != hardware:
        measured_on = f"{measured_on}, re-measured with task=measure; the runs were made on {hardware}"
    findings = []
    timed = group.dropna(subset=["latency_b1_ms"])
    if not timed.empty:
        fastest = timed.loc[timed.latency_b1_ms.idxmin()]
        finding = (f"Fastest at batch 1: {fastest.label} ({fastest.family}), "
                   f"{fastest.latency_b1_ms:.2f} ms median (on {measured_on})")
        # A median inside the fastest model's own timing spread is not shown to be slower.
        spread = fastest.get("latency_b1_p90_ms")
        close = timed[(timed.index != fastest.name) & (timed.latency_b1_ms <= spread)] \
            if pd.notna(spread) else timed.iloc[:0]
        if len(close):
            finding += (f"; within its timing spread (p90 {spread:.2f} ms), so not shown slower: "
                        + ", ".join(f"{row.label} {row.latency_b1_ms:.2f} ms"
                                    for row in close.sort_values("latency_b1_ms").itertuples()))
        findings.append(finding + ".")
    throughput = group.dropna(subset=["throughput_img_s"])
    if not throughput.empty:
        top = throughput.loc[throughput.throughput_img_s.idxmax()]
        findings.append(f"Highest inference throughput: {top.label} ({top.family}), "
                        f"{top.throughput_img_s:,.0f} img/s (on {measured_on}).")
    return findings


def profile_findings(group: pd.DataFrame, hardware: str) -> list[str]:
    findings = []
    for column, what in (("macs", "Fewest MACs"), ("params", "Fewest parameters")):
        present = group.dropna(subset=[column])
        if not present.empty:
            smallest = present.loc[present[column].idxmin()]
            findings.append(f"{what}: {smallest.label} ({smallest.family}), "
                            f"{smallest[column] / 1e6:,.2f} M.")
    return findings + _speed(group, hardware)


def budget_text(budget_json) -> str:
    """'3 epochs', '250 steps', '600 seconds' from a record's budget; '' when not recorded."""
    try:
        budget = decode_json_column(budget_json)
    except ValueError:  # not JSON: no budget to name
        return ""
    if not isinstance(budget, dict):
        return ""
    return ", ".join(f"{value:g} {key}" for key, value in budget.items()
                     if isinstance(value, (int, float)) and not isinstance(value, bool))


def glance_verdict(study: str, dataset: str, hardware: str, group: pd.DataFrame,
                   pairs: pd.DataFrame, ranking: pd.DataFrame) -> tuple[str, list[str]]:
    """`(title, sentences)`: what one trained comparison can say in plain words, and what it
    cannot."""
    title = f"{study}, {dataset} on {hardware}"
    trained = group.dropna(subset=["test_top1_mean"])
    if trained.empty:
        return title, ["no test accuracy to compare."]
    setting = []
    if not is_missing(trained.train_size.max()):
        setting.append(f"{trained.train_size.max():,.0f} training images")
    budgets = sorted({budget_text(budget) for budget in trained.budget} - {""})
    if budgets:
        setting.append(" / ".join(budgets))
    seeds = sorted({int(n) for n in trained.test_top1_n})
    seed_range = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    if "pooled_order_seeds" in trained and trained.pooled_order_seeds.fillna(False).astype(bool).any():
        setting.append(f"{seed_range} runs per model, seeds crossed with data-order seeds")
    else:
        setting.append(f"{seed_range} {'seed' if seeds == [1] else 'seeds'} per model")
    best = ranking.iloc[0]
    parts = [f"{count_text(len(trained), 'model')} ({', '.join(setting)}); "
             f"{best.label} has the highest mean test top-1 ({best['mean']:.1f}%)."]
    if "near_chance_runs" in trained and (trained.near_chance_runs > 0).any():
        chance = trained[trained.near_chance_runs > 0]
        parts.append("At chance by its own validation check (nothing measurable learned in those runs): "
                     + ", ".join(f"{row.label} ({row.near_chance_runs} of {count_text(row.seeds, 'run')})"
                                 for row in chance.itertuples(index=False)) + ".")
    if len(trained) == 1:
        return title, parts[:1]
    together = list(ranking.iloc[1:].label[ranking.iloc[1:].with_best])
    if seeds[-1] < 2:
        parts.append("With one seed per model these seeds cannot separate any gap.")
    else:
        tested = pairs[pairs.p_holm.notna()]
        separated = tested[~tested.tie & ~tested.below_noise_floor.astype(bool)]
        untested = len(pairs) - len(tested)
        paired = "test" in tested and len(tested) and (tested.test == PAIRED_TEST).all()
        method = ("Holm-adjusted paired t over seeds and test images" if paired else
                  "Holm-adjusted Welch tests, and larger than the test-set noise floor")
        parts.append(f"{len(separated)} of {count_text(len(pairs), 'pairwise gap')} "
                     f"{'is' if 1 in (len(separated), len(pairs)) else 'are'} separated at 95% confidence "
                     f"({method}"
                     + (f"; {untested} involve a model with one seed and cannot be tested)"
                        if untested else ")")
                     + (f", e.g. {separated.iloc[0].label_a} over {separated.iloc[0].label_b} by "
                        f"{separated.iloc[0].mean_diff:.1f} points" if len(separated) else ""))
        parts[-1] += "; a gap not separated is not shown to be absent."
        if "detectable_gap" in tested and tested.detectable_gap.notna().any():
            median = tested.detectable_gap.median()
            count = int(tested.detectable_gap.notna().sum())
            over = "Power, median over " + count_text(count, "pair") if count > 1 else "Power (one pair)"
            parts.append(f"{over}: a true gap of about {median:.1f} points would be separated 80% of the time."
                         if median <= 100 else
                         f"{over}: no possible gap would be separated 80% of the time (it would need over 100 "
                         "points).")
        if together:
            parts.append(f"The seeds cannot separate {word_list(together)} from {best.label}.")
        else:
            parts.append(f"{best.label} is separated from every other model.")
    noise = pairs[pairs.below_noise_floor.astype(bool)]
    if len(noise):
        parts.append(f"{count_text(len(noise), 'gap')} {'is' if len(noise) == 1 else 'are'} under the unpaired "
                     "test-set floor (no per-image outcomes saved; a paired test resolves smaller gaps).")
    budget_words = f"after {budgets[0]}" if len(budgets) == 1 else "under these budgets"
    parts.append(f"It says how these models rank {budget_words}; it cannot say how they "
                 "rank at convergence or under another recipe.")
    return title, parts


def _swap_text(swap: dict, unit: str = "points") -> str:
    separated = {True: "the seeds separate the new order",
                 False: "the new order is not separated by these seeds: Holm p >= 0.05 or under the test-set "
                        "noise floor",
                 None: "too few seeds to test the new order"}[swap["separated"]]
    return (f"{swap['ahead_after']} over {swap['ahead_before']} (was {swap['gap_before']:.2f} {unit} "
            f"behind, now {swap['gap_after']:.2f} ahead; {separated})")


def lead_in(prefix: str, sentence: str) -> str:
    """'Under corruption' + 'The ranking holds...' -> 'Under corruption the ranking holds...'."""
    return f"{prefix} {sentence[:1].lower()}{sentence[1:]}"


def ranking_verdict(shift: dict, before: str, after: str, brief: bool = False) -> str:
    """Whether the order of the models under `before` holds under `after`, from
    `archbench.results.ranking_shift`: Kendall tau and every swapped pair, in words; `brief` (the
    at-a-glance list) names only the swaps beyond noise."""
    models, swapped = shift["models"], shift["swapped"]
    if models < 3:  # over two models tau is +1 or -1 by construction, and its interval spans both
        return (f"Only {count_text(models, 'model')} {'has' if models == 1 else 'have'} both {before} and {after}: "
                "too few to rank (a Kendall tau needs at least three).")
    tau = "undefined" if is_missing(shift["tau"]) else f"{shift['tau']:.2f}"
    head = f"Kendall tau between the {before} and the {after} ranking of {count_text(models, 'model')}: {tau}"
    interval = shift.get("verdict")
    if interval is not None:
        low, high = outward(shift["tau_low"], shift["tau_high"])
        head += f", 95% bootstrap interval {low:.2f} to {high:.2f}"
        if not brief:  # the at-a-glance list leaves the rule to 'How to read this report'
            head += (f"; it holds when the whole interval is at least {TAU_HOLDS}, at most 1 pair in 5 swapped, "
                     "and changes when the whole interval is below")
    pairs = len(swapped)
    separated = [swap for swap in swapped if swap["separated"]]
    swaps = f"{pairs} of {models * (models - 1) // 2} pairs {'swaps' if pairs == 1 else 'swap'} order"
    # What "separated" means for a swap: the seeds separate the pair in its new order (Holm, the after scores).
    meaning = ("the seeds separate none of them in the new order" if not separated else
               f"the seeds separate {len(separated)} of them in the new order")
    if brief:
        word = interval if interval is not None else \
            "holds" if not swapped else "changes" if separated else "inconclusive"
        short = {"holds": "the ranking holds", "changes": "the ranking changes"}.get(
            word, "whether the ranking holds is inconclusive") + f" (Kendall tau {tau}"
        if interval is not None:
            low, high = outward(shift["tau_low"], shift["tau_high"])
            short += f", 95% interval {low:.2f} to {high:.2f}"
        short += f", {count_text(models, 'model')})."
        if not swapped:
            return f"{short[:1].upper()}{short[1:]} No pair changes order."
        tail = "; ".join(f"{swap['ahead_after']} over {swap['ahead_before']}" for swap in separated)
        return (f"{short[:1].upper()}{short[1:]} {swaps}; {meaning}" + (f": {tail}." if tail else "."))
    if interval == "holds" or (interval is None and not swapped):
        if not swapped:
            return f"The ranking holds: {head}; no pair of models changes order."
        verdict = f"The ranking holds: {swaps}"
    elif interval == "changes" or (interval is None and separated):
        verdict = f"The ranking changes: {swaps}; {meaning}"
    else:
        verdict = f"Whether the ranking holds is inconclusive: {swaps}; {meaning}"
    if not swapped:
        return f"{verdict} ({head}); no pair of models changes order in the means."
    return f"{verdict} ({head}). Swapped: " + "; ".join(_swap_text(swap) for swap in swapped) + "."


def tuning_gain_sentence(gain: pd.DataFrame) -> str:
    """Tuned minus shared-recipe mean test top-1 per model, and which differences the seeds separate from
    zero; a difference not separated is not called a change."""
    if gain.empty:
        return "No model ran both under the shared recipe and tuned."
    ordered = gain.sort_values("gain", ascending=False)
    top, bottom = ordered.iloc[0], ordered.iloc[-1]
    tested = gain[gain.gain_p_holm.notna()]
    separated = tested[tested.gain_p_holm < SIGNIFICANCE_LEVEL].sort_values("gain", ascending=False)
    text = (f"Tuned minus shared-recipe mean test top-1: {bottom.gain:+.2f} ({bottom.model}) to {top.gain:+.2f} "
            f"points ({top.model}), tuned runs on fresh seeds only")
    if tested.empty:
        return text + "; with one seed on a side, no difference can be separated from zero."
    if separated.empty:
        return (text + f". None of the {count_text(len(tested), 'difference')} is separated from zero "
                f"(Holm-adjusted Welch), so these seeds do not show that tuning changed any model's accuracy.")
    listed = ", ".join(f"{row.model} ({row.gain:+.2f}, Holm p = {row.gain_p_holm:.2g})"
                       for row in separated.itertuples(index=False))
    return (text + f". {len(separated)} of {count_text(len(tested), 'difference')} "
            f"{'is' if len(separated) == 1 else 'are'} separated from zero (Holm-adjusted Welch p < "
            f"{SIGNIFICANCE_LEVEL}): {listed}; the others are not shown to differ.")


def tuning_findings(best: pd.DataFrame, curves: pd.DataFrame, candidates: int) -> list[str]:
    """A tuning study in words: the effort, the best trial per model, and whether more trials
    would have been likely to help (the expected best at half the trials against all of them)."""
    if best.empty:
        return ["No finished trial has a validation accuracy."]
    findings = [f"{count_text(len(best), 'model')}, each trained with the same "
                f"{count_text(candidates, 'candidate')}; selection reads validation top-1 only "
                "(ties: lower validation loss), never the test set."]
    finished = curves.groupby("model").finished.max() if {"model", "finished"} <= set(curves) else pd.Series()
    lost = {model: candidates - int(n) for model, n in finished.items() if pd.notna(n) and int(n) < candidates}
    if lost:  # a diverged trial was tried and lost: it counts towards the equal effort, never as selectable
        findings[0] += (" Trials that diverged were tried and lost, not rerun: "
                        + ", ".join(f"{model} {n}" for model, n in sorted(lost.items())) + ".")
    top = best.sort_values("val_top1", ascending=False).iloc[0]
    findings.append(f"Best validation top-1: {top.model}, {top.val_top1:.2f}% (trial {int(top.trial)}; the "
                    "selection value, optimistic as the best of several trials: the tuned study's fresh seeds "
                    "give the unbiased figure).")
    gains = []
    for model, curve in curves.groupby("model", sort=True):
        curve = curve.set_index("trials")["expected_best"]
        full = int(curve.index.max())
        if full >= 2:
            gains.append((float(curve[full] - curve[max(1, full // 2)]), model, full))
    if gains:
        largest = max(gains)
        findings.append(f"Doubling the trials from {max(1, largest[2] // 2)} to {largest[2]} raised the "
                        f"expected best validation top-1 by at most {largest[0]:.2f} points ({largest[1]}); "
                        "a large rise means the search had not settled and more trials could change "
                        "the selection.")
    return findings


def corruption_method_text(methods) -> str:
    """The corruption method as the records state it, once; several are named as mixed."""
    distinct = sorted({str(method) for method in methods if isinstance(method, str) and method})
    if not distinct:
        return ""
    if len(distinct) == 1:
        return f"Corruptions: {distinct[0]}."
    return "Corruptions (MIXED methods, so not comparable between models): " + " | ".join(distinct) + "."


def variance_findings(variance: pd.DataFrame) -> list[str]:
    """One plain-words sentence per model of `archbench.results.variance_sources`: how much of
    the run-to-run variance comes from data order and how much from weight initialisation."""
    findings = []
    for row in variance.sort_values("label").itertuples(index=False):
        if not row.complete:
            findings.append(f"{row.label}: not decomposed, because the design is incomplete "
                            f"({row.missing}); the split needs each seed run with each order seed "
                            "exactly once.")
            continue
        if is_missing(row.order_share):
            findings.append(f"For {row.label}, all {row.runs} runs scored the same {row.mean:.2f}%: "
                            "there is no variance to split.")
            continue
        text = (f"For {row.label}, data order contributes {row.order_share:.0%} of the variance of "
                f"test top-1, initialisation {row.seed_share:.0%}, and the residual (their "
                f"interaction and noise) {row.residual_share:.0%}; one run varies by a std of "
                f"{row.total_std:.2f} points ({row.order_std:.2f} from order, {row.seed_std:.2f} from "
                f"initialisation), over {row.runs} runs.")
        clipped = [name for name, raw in (("initialisation", row.seed_var_raw), ("data order", row.order_var_raw))
                   if raw < 0]
        if clipped:
            text += (f" The {' and '.join(clipped)} estimate fell below zero (its mean square was "
                     "smaller than the residual's) and counts as 0.")
        findings.append(text)
    return findings


def variance_verdict(variance: pd.DataFrame) -> str:
    """The sources of variance in one sentence for 'At a glance'; '' when none was decomposed."""
    done = variance[variance.complete.astype(bool) & variance.order_share.notna()].sort_values("label")
    if done.empty:
        return ""
    parts = [f"{row.label}: order {row.order_share:.0%}, initialisation {row.seed_share:.0%}, residual "
             f"{row.residual_share:.0%}" for row in done.itertuples(index=False)]
    return "Sources of variance of test top-1 (shares of the variance of one run): " + "; ".join(parts) + "."
