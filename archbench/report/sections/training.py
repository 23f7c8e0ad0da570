"""A trained comparison's accuracy: findings, the summary over seeds, every pair's test, and its figures."""
from __future__ import annotations

import pandas as pd

from archbench import results

from .. import figures as plots
from ..context import notes, rows_matching
from ..document import BulletList, Paragraph
from ..findings import train_findings
from ..tables import accuracy_table, significance_table, summary_dirty_note, speed_note


def blocks(context, comparison) -> list:
    study, label, hardware = comparison.study, comparison.label, comparison.hardware
    group = comparison.summary
    pairs = comparison.rows(context.analysis.pairs)
    ranking = comparison.rows(context.analysis.ranking)
    on_front = results.pareto_front(group)
    target = comparison.runs.ttt_target.dropna()
    display = accuracy_table(group, ranking, on_front, comparison.device,
                             target.iloc[0] if len(target) else None)
    blocks = [Paragraph("Findings:"),
              BulletList(train_findings(group, pairs, ranking, on_front, hardware)),
              context.table(f"{comparison.stem}--summary",
                            f"{study} / {label}: summary over seeds on {hardware}, best mean "
                            "first" + _pooled_text(group),
                            display, group.assign(pareto_macs=on_front),
                            notes(summary_dirty_note(group), speed_note(group)))]
    if not pairs.empty:
        dirty = dict(zip(group.label, group.dirty_runs))
        shown = set(pairs.label_a) | set(pairs.label_b)
        blocks.append(context.table(
            f"{comparison.stem}--significance",
            f"{study} / {label} on {hardware}: every pair of models, test top-1 (paired t over "
            "seeds and test images where every run saved its per-image outcomes, else Welch t-tests over "
            "seeds with the independent test-set floor; Holm's correction over the pairs; P(better > "
            "worse) over seed pairs)",
            significance_table(pairs, dirty), pairs,
            summary_dirty_note(group[group.label.isin(shown)])))
    return blocks


def figures(context, comparison) -> list:
    group, label, title = comparison.summary, comparison.label, comparison.title
    device, families, colors = comparison.device, comparison.families, context.colors
    curves = rows_matching(context.analysis.curves, {"study": comparison.study, "data": group.data.iloc[0],
                                                     "hardware": comparison.hardware})
    caption = comparison.speed_caption
    return context.figures([
        (plots.accuracy_vs(group, "macs", "MACs (M, multiply-adds)", title, colors,
                           scale=1e6, on_front=results.pareto_front(group)),
         "acc-vs-macs", f"Test top-1 vs MACs, {label}; the dashed staircase is the Pareto front"),
        (plots.accuracy_vs(group, "latency_b1_ms", f"Batch-1 latency (ms, {device})", title, colors),
         "acc-vs-latency", caption(f"Test top-1 vs batch-1 latency, {label}")),
        (plots.accuracy_vs(group, "throughput_img_s", f"Throughput (img/s, {device})", title, colors),
         "acc-vs-throughput", caption(f"Test top-1 vs throughput, {label}")),
        (plots.params_vs_accuracy(group, title, colors), "params-vs-acc",
         f"Parameters vs test top-1, {label}"),
        (plots.validation_curves(curves, "epoch", "Epoch", title, families, colors),
         "val-vs-epoch", f"Validation top-1 vs epoch (mean over seeds), {label}"),
        (plots.validation_curves(curves, "elapsed_s", "Training time (s)", title, families, colors),
         "val-vs-time", f"Validation top-1 vs training time (mean over seeds), {label}"),
        (plots.family_dots(group, title, colors), "family-dots",
         f"Test top-1 per model, grouped by family, {label}; bars are ± std over seeds, "
         "hollow dots had 1 seed"),
        (plots.accuracy_vs(group, "activations", "Activations (M, fvcore count per image)",
                           title, colors, scale=1e6), "acc-vs-activations",
         f"Test top-1 vs activations, {label}: activations track memory traffic, which MACs miss"),
    ], comparison.stem)


def _pooled_text(group: pd.DataFrame) -> str:
    """The caption's note on models whose order-seed variants were pooled as seeds; '' when none."""
    if "pooled_order_seeds" not in group:
        return ""
    pooled = group[group.pooled_order_seeds.fillna(False).astype(bool)]
    if pooled.empty:
        return ""
    return (f"; {', '.join(sorted(pooled.label))}: runs that differ in nothing but data.order_seed are "
            "pooled as one row, so Seeds counts every (seed, order seed) run and mean ± std is over runs; "
            "the 95% CI and the tests take the seed as the unit (each seed's runs averaged over their order "
            "seeds), since runs that share a seed are not independent (see Sources of variance)")
