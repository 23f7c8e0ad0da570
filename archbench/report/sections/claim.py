"""Claims tested: a declared order of families (archbench.claims) against each comparison that has runs of
one model for every family of the claim at one scale.

For each such comparison: the claimed order; the measured order of the claim's models with rank intervals
among them; Kendall tau between claim and measurement with its bootstrap interval; and each adjacent pair of
the claim as confirmed, reversed beyond noise, or not separated (the study's own pairwise tests).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from archbench import results, stats
from archbench.claims import CLAIMS

from ..document import BulletList, Heading, Paragraph
from ..labels import count_text

CONFIRMED, REVERSED, NOT_SEPARATED = "confirmed", "reversed beyond noise", "not separated"


def scale_tested(claim, comparison) -> str | None:
    """The scale at which `comparison` has runs of one model per family of `claim`; None if none."""
    if not comparison.trained:
        return None
    return claim.scale_in(comparison.runs[comparison.runs.task == "train"].model.unique())


def tested(context, claim) -> list[tuple]:
    """(comparison, scale) for every trained comparison with runs of one model per family of `claim`."""
    return [(comparison, scale) for study in context.studies
            for comparison in context.analysis.comparisons(study)
            if (scale := scale_tested(claim, comparison)) is not None]


def section(context) -> list:
    blocks = []
    for claim in CLAIMS:
        found = tested(context, claim)
        if not found:
            continue
        blocks += [Heading(f"Claim: {claim.statement}", 2), Paragraph(
            f"Source: {claim.source}. Tested on every comparison with runs of one model per family of the "
            "claim; other models of the study take no part in this order.")]
        for comparison, scale in found:
            blocks += comparison_blocks(context, claim, comparison, scale)
    return blocks


def glance_lines(context, comparison) -> list[str]:
    """One sentence per claim that `comparison` tests: its tau and adjacent-pair counts, for the glance."""
    lines = []
    for claim in CLAIMS:
        scale = scale_tested(claim, comparison)
        result = claim_result(context, claim, comparison, scale) if scale is not None else None
        if result is not None:
            lines.append(f"The claim {claim.statement}: Kendall tau {result['tau']:.2f}, 95% interval "
                         f"[{result['low']:.2f}, {result['high']:.2f}] ({result['verdict']}); adjacent pairs: "
                         + _counts_text(result["counts"]) + " (the section 'Claim' below).")
    return lines


def claim_result(context, claim, comparison, scale: str) -> dict | None:
    """The claim against one comparison: ranking, tau with its interval, adjacent pairs; None when a model
    of the claim ran under more than one setting there (no single run set stands for its family)."""
    models = claim.models(scale)
    runs = _claim_runs(comparison, models)
    if _several_settings(runs):
        return None
    ranking = results.rank(runs)
    measured = ranking.set_index("model")
    samples, basis = results.bootstrap_means(runs)
    labels = dict(zip(ranking.model, ranking.label))
    claimed_scores = -np.arange(len(models), dtype=float)  # best first: higher is better
    measured_means = measured.loc[models, "mean"].to_numpy(dtype=float)
    tau, _p, _swaps = stats.rank_agreement(claimed_scores, measured_means)
    drawn = samples[[labels[model] for model in models]].to_numpy(dtype=float)
    interval = stats.tau_interval(np.tile(claimed_scores, (len(drawn), 1)), drawn)
    low, high = stats.outward(interval["low"], interval["high"])
    pairs = adjacent_pairs(comparison.rows(context.analysis.pairs), models)
    counts = {verdict: sum(row["Verdict"] == verdict for row in pairs) for verdict in (CONFIRMED, REVERSED,
                                                                                         NOT_SEPARATED)}
    return {"models": models, "ranking": ranking, "measured": measured, "basis": basis, "tau": tau, "low": low,
            "high": high, "verdict": interval["verdict"], "pairs": pairs, "counts": counts}


def _claim_runs(comparison, models: list[str]):
    return comparison.runs[(comparison.runs.task == "train") & comparison.runs.model.isin(models)]


def _several_settings(runs) -> list[str]:
    """The models with runs under more than one setting (variant): none of their run sets stands alone."""
    variants = runs.groupby("model").variant.nunique()
    return list(variants[variants > 1].index)


def _counts_text(counts: dict) -> str:
    return (f"{counts[CONFIRMED]} confirmed, {counts[REVERSED]} reversed beyond noise, "
            f"{counts[NOT_SEPARATED]} not separated")


def comparison_blocks(context, claim, comparison, scale: str) -> list:
    heading = Heading(f"{comparison.study} / {comparison.label} on {comparison.hardware} ({scale} models)", 3)
    result = claim_result(context, claim, comparison, scale)
    if result is None:
        several = _several_settings(_claim_runs(comparison, claim.models(scale)))
        return [heading, Paragraph(
            f"Not tested: {', '.join(several)} ran under more than one setting here, so no single run set stands "
            "for its family.")]
    models, ranking, measured = result["models"], result["ranking"], result["measured"]
    family_of = claim.label_of(scale)
    blocks = [heading, Paragraph(
        f"Claimed: {' > '.join(f'{family_of[m]} ({m})' for m in models)}. Measured (mean test top-1 over "
        f"{seeds_text(measured.n)}): "
        f"{' > '.join(f'{family_of[m]} ({m})' for m in ranking.model)}. Kendall tau between the claimed and "
        f"the measured order: {result['tau']:.2f}, 95% interval [{result['low']:.2f}, {result['high']:.2f}] "
        f"(bootstrap over {result['basis']}; verdict against tau >= {stats.TAU_HOLDS}: {result['verdict']}). "
        f"Adjacent pairs of the claim: {_counts_text(result['counts'])}.")]
    blocks.append(context.table(
        f"{comparison.stem}--claim-{claim.name}",
        f"{comparison.study} / {comparison.label}: the claim's models in measured order, mean test top-1 with "
        "the 95% rank interval among them",
        measured_table(ranking, family_of, models), ranking))
    blocks.append(context.table(
        f"{comparison.stem}--claim-{claim.name}-pairs",
        f"{comparison.study} / {comparison.label}: each adjacent pair of the claim, the study's pairwise test",
        pd.DataFrame(result["pairs"]), None))
    blocks.append(BulletList([
        f"confirmed: the claimed-better model has the higher mean and the study's test separates the pair "
        f"(Holm p < 0.05); reversed beyond noise: the other way round, separated; not separated: the seeds "
        f"(or the test set) cannot tell the pair apart."]))
    return blocks


def seeds_text(counts: pd.Series) -> str:
    low, high = int(counts.min()), int(counts.max())
    return count_text(low, "seed") if low == high else f"{low} to {high} seeds"


def adjacent_pairs(pairs: pd.DataFrame, models: list[str]) -> list[dict]:
    """One row per adjacent pair of the claimed order, with its verdict from the study's pairwise test."""
    rows = []
    for better, worse in zip(models, models[1:]):
        match = pairs[((pairs.model_a == better) & (pairs.model_b == worse))
                      | ((pairs.model_a == worse) & (pairs.model_b == better))]
        if match.empty:
            rows.append({"Claimed": f"{better} > {worse}", "Gap (points)": "—", "Verdict": NOT_SEPARATED})
            continue
        pair = match.iloc[0]
        gap = float(pair.mean_a - pair.mean_b) * (1 if pair.model_a == better else -1)
        separated = not bool(pair.tie) and not bool(pair.below_noise_floor)
        verdict = NOT_SEPARATED if not separated else (CONFIRMED if gap > 0 else REVERSED)
        rows.append({"Claimed": f"{better} > {worse}", "Gap (points)": f"{gap:+.2f}", "Verdict": verdict})
    return rows


def measured_table(ranking: pd.DataFrame, family_of: dict, models: list[str]) -> pd.DataFrame:
    claimed_rank = {model: position + 1 for position, model in enumerate(models)}
    return pd.DataFrame([{
        "Measured rank": int(row.rank), "Family (claim)": family_of[row.model], "Model": row.model,
        "Claimed rank": claimed_rank[row.model], "Mean test top-1 (%)": f"{row.mean:.2f}",
        "Rank interval": f"{int(row.rank_low)}–{int(row.rank_high)}", "Seeds": int(row.n),
    } for row in ranking.itertuples(index=False)])
