"""Short findings written from the numbers of one comparison (study, data, hardware).

Each sentence states what the data support and no more: a gap the seeds cannot separate is
called a tie, and a model with one seed is said to have an unknown spread.
"""
from __future__ import annotations

import pandas as pd

from archbench.results import SIGNIFICANCE_LEVEL

from .tables import is_missing


def train_findings(group: pd.DataFrame, pairs: pd.DataFrame, on_front: pd.Series,
                   hardware: str) -> list[str]:
    trained = group.dropna(subset=["test_top1_mean"])
    if trained.empty:
        return ["No model has a test accuracy in this comparison."]
    ordered = trained.sort_values(["test_top1_mean", "model"], ascending=[False, True])
    best = ordered.iloc[0]
    findings = [
        f"Most accurate: {best.model} ({best.family}), test top-1 "
        f"{_accuracy(best)} over {int(best.test_top1_n)} seed(s); "
        f"best family in accuracy: {best.family}."
    ]
    if len(ordered) > 1:
        findings.append(_top_two_gap(ordered.iloc[0], ordered.iloc[1], pairs))
    findings += _efficiency(trained, on_front)
    findings += _speed(group, hardware)
    single = sorted(trained.model[trained.test_top1_n < 2])
    if single:
        findings.append(f"One seed only, so spread unknown and never significantly different "
                        f"from anything: {', '.join(single)}.")
    return findings


def _accuracy(row) -> str:
    if is_missing(row.test_top1_std):
        return f"{row.test_top1_mean:.2f}%"
    return f"{row.test_top1_mean:.2f} ± {row.test_top1_std:.2f}%"


def _top_two_gap(first, second, pairs: pd.DataFrame) -> str:
    pair = pairs[(pairs.model_a == first.model) & (pairs.model_b == second.model)]
    gap = first.test_top1_mean - second.test_top1_mean
    lead = f"Top-2 gap: {first.model} leads {second.model} by {gap:.2f} points"
    if pair.empty or is_missing(pair.iloc[0].p_value):
        return (f"{lead}; fewer than two seeds on one side, so the seeds cannot tell "
                "whether the gap is real (tie).")
    p_value = pair.iloc[0].p_value
    if pair.iloc[0].tie:
        return (f"{lead}, not significant (Welch p = {p_value:.3g} ≥ {SIGNIFICANCE_LEVEL}): "
                "the seeds cannot separate them (tie).")
    return f"{lead}, significant (Welch p = {p_value:.3g} < {SIGNIFICANCE_LEVEL})."


def _efficiency(trained: pd.DataFrame, on_front: pd.Series) -> list[str]:
    with_macs = trained[trained.macs > 0]
    if with_macs.empty:
        return []
    per_gmac = with_macs.test_top1_mean / (with_macs.macs / 1e9)
    best = with_macs.loc[per_gmac.idxmax()]
    front = trained[on_front.reindex(trained.index, fill_value=False)].sort_values("macs")
    findings = [f"Best accuracy per MAC: {best.model} ({best.family}), "
                f"{per_gmac.max():,.1f} accuracy points per GMAC."]
    if not front.empty:
        findings.append("Pareto-optimal in accuracy vs MACs (no model is both cheaper and more "
                        f"accurate): {', '.join(front.model)}.")
    return findings


def _speed(group: pd.DataFrame, hardware: str) -> list[str]:
    findings = []
    timed = group.dropna(subset=["latency_b1_ms"])
    if not timed.empty:
        fastest = timed.loc[timed.latency_b1_ms.idxmin()]
        findings.append(f"Fastest at batch 1: {fastest.model} ({fastest.family}), "
                        f"{fastest.latency_b1_ms:.2f} ms median (on {hardware}).")
    throughput = group.dropna(subset=["throughput_img_s"])
    if not throughput.empty:
        top = throughput.loc[throughput.throughput_img_s.idxmax()]
        findings.append(f"Highest inference throughput: {top.model} ({top.family}), "
                        f"{top.throughput_img_s:,.0f} img/s (on {hardware}).")
    return findings


def profile_findings(group: pd.DataFrame, hardware: str) -> list[str]:
    findings = []
    for column, what in (("macs", "Fewest MACs"), ("params", "Fewest parameters")):
        present = group.dropna(subset=[column])
        if not present.empty:
            smallest = present.loc[present[column].idxmin()]
            findings.append(f"{what}: {smallest.model} ({smallest.family}), "
                            f"{smallest[column] / 1e6:,.2f} M.")
    return findings + _speed(group, hardware)
