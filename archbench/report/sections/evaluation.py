"""Calibration and corruption robustness of a trained comparison: its table, notes and figures."""
from __future__ import annotations

from archbench import results

from .. import figures as plots
from ..document import BulletList, Heading
from ..findings import corruption_method_text, lead_in, ranking_verdict
from ..tables import evaluation_table, summary_dirty_note


def corruption_shift(analysis, comparison):
    """How the ranking moves from clean to mean corruption top-1; None when nothing was corrupted."""
    group = comparison.summary
    if group.empty or not group.mean_corruption_top1_n.gt(0).any():
        return None
    runs = comparison.runs
    pairs = results.compare(runs, "mean_corruption_top1")
    return results.ranking_shift(group.set_index("label").test_top1_mean,
                                 group.set_index("label").mean_corruption_top1_mean, pairs,
                                 results.bootstrap_means(runs, "test_top1")[0],
                                 results.bootstrap_means(runs, "mean_corruption_top1")[0])


def blocks(context, comparison) -> list:
    group = comparison.summary
    display = evaluation_table(group)
    if display.empty:
        return []
    evaluated = comparison.rows(context.analysis.evaluation.runs)
    blocks = [Heading("Calibration and corruption robustness", 4)]
    notes = ["ECE: 15 equal-width bins of top-1 confidence, in percent; NLL in nats per "
             "image; Brier summed over classes (0-2). 'After T': after temperature scaling "
             "fitted on the validation split, never on test."]
    method = corruption_method_text(evaluated.corruption_method)
    if method:
        notes.append(method)
    shift = corruption_shift(context.analysis, comparison)
    if shift is not None:
        notes.append(lead_in("From clean test top-1 to mean corruption top-1,",
                             ranking_verdict(shift, "clean", "corrupted")))
    shown = group[(group["ece_n"] > 0) | (group["mean_corruption_top1_n"] > 0)]
    blocks += [BulletList(notes), context.table(
        f"{comparison.stem}--evaluation", f"{comparison.study} / {comparison.label} on {comparison.hardware}: "
        "calibration on the test set and top-1 under corruptions, mean ± std over seeds", display, group,
        summary_dirty_note(shown))]
    return blocks


def figures(context, comparison) -> list:
    evaluation = context.analysis.evaluation
    bins = comparison.rows(evaluation.reliability)
    curve = results.reliability_curve(bins[bins.scaling == "uncalibrated"])
    cells = comparison.rows(evaluation.corruptions)
    title, label, families, colors = comparison.title, comparison.label, comparison.families, context.colors
    return context.figures([
        (plots.reliability_diagram(curve, title, families, colors), "reliability",
         f"Reliability diagram (test set, before temperature scaling, seeds pooled), {label}"),
        (plots.corruption_by_severity(cells, title, families, colors), "corruption-severity",
         f"Top-1 by corruption severity, mean over corruptions and seeds, {label}"),
        (plots.clean_vs_corrupted(comparison.summary, title, colors), "clean-vs-corrupted",
         f"Mean corruption top-1 against clean top-1 on the same images, {label}; bars are "
         "± std over seeds"),
    ], comparison.stem)
