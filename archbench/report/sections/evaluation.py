"""Calibration and corruption robustness of a trained comparison: its table, notes and figures."""
from __future__ import annotations

import re

import pandas as pd

from archbench import results

from .. import figures as plots
from ..document import BulletList, Heading
from ..findings import corruption_method_text, lead_in, ranking_verdict
from ..labels import count_text
from ..tables import evaluation_table, is_missing, summary_dirty_note


# The clause of a generated set's method that says which published results it is not comparable with:
# records name CIFAR-10-C (older ones, whatever the dataset) or every benchmark; the report names the
# dataset's own.
_NOT_PUBLISHED = re.compile(r"NOT with (?:any )?published .*$")


def corruption_benchmark(data, label=None) -> str | None:
    """The published corruption benchmark of a dataset (CIFAR-10-C, CIFAR-100-C, ImageNet-C), else None."""
    for name in (data, label):
        text = re.sub(r"[^a-z0-9]", "", str(name or "").lower())
        if text.startswith("cifar100"):
            return "CIFAR-100-C"
        if text.startswith("cifar10"):
            return "CIFAR-10-C"
        if text.startswith(("imagenet", "ilsvrc")):
            return "ImageNet-C"
    return None


def dataset_method(method, data, label=None):
    """A record's corruption method, with the published results it cannot be compared with named for
    its dataset; other methods (official files, a skip reason) unchanged."""
    if not isinstance(method, str) or not _NOT_PUBLISHED.search(method):
        return method
    benchmark = corruption_benchmark(data, label)
    clause = (f"NOT with published {benchmark} results" if benchmark else
              "NOT with any published corruption benchmark (CIFAR-10-C, ImageNet-C)")
    return _NOT_PUBLISHED.sub(clause, method)


def images_scored(runs) -> str | None:
    """How many test images the corruptions were scored on, and whether that is a subset."""
    if "corruption_images" not in runs:
        return None
    scored = runs[runs["corruption_images"].gt(0)]
    counts = sorted({int(count) for count in scored["corruption_images"]})
    if not counts:
        return None
    sizes = sorted({int(size) for size in scored.get("test_size", []) if not is_missing(size)})
    if len(counts) > 1:
        return (f"Corruption top-1 (and the clean top-1 beside it) is scored on {counts[0]:,} to {counts[-1]:,} "
                "test images, depending on the run (evaluate.test_subset differs).")
    count = counts[0]
    if len(sizes) == 1 and count >= sizes[0]:
        return f"Corruption top-1 (and the clean top-1 beside it) is scored on all {count:,} test images."
    of = f" of the {sizes[0]:,}" if len(sizes) == 1 else ""
    return (f"Corruption top-1 (and the clean top-1 beside it) is scored on {count:,}{of} test images: "
            "a fixed subset (evaluate.test_subset, drawn with evaluate.seed), the same images for every "
            "corruption and severity.")


def corruption_shift(analysis, comparison):
    """How the ranking moves from clean to mean corruption top-1; None when nothing was corrupted."""
    group = comparison.summary
    if group.empty or not group.mean_corruption_top1_n.gt(0).any():
        return None
    runs = comparison.runs
    pairs = results.compare(runs, "mean_corruption_top1")
    # Clean and corrupted on the same images: the corruption subset's own clean score where every model
    # has one (evaluate.test_subset scores fewer images than the whole test set), else the full test set.
    clean = "corruption_clean_top1" if "corruption_clean_top1_mean" in group \
        and group.corruption_clean_top1_mean[group.mean_corruption_top1_n.gt(0)].notna().all() else "test_top1"
    # One resampling method for both scorings: the corrupted scores have no per-image outcomes.
    (before, after), _basis = results.alike_bootstrap_means([(runs, clean), (runs, "mean_corruption_top1")])
    shift = results.ranking_shift(group.set_index("label")[f"{clean}_mean"],
                                  group.set_index("label").mean_corruption_top1_mean, pairs, before, after)
    return {**shift, "clean": "clean top-1 on the same images" if clean != "test_top1" else "clean test top-1"}


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
    rejected = int(group.get("temperature_rejected_runs", pd.Series(dtype=int)).fillna(0).sum())
    if rejected:
        notes.append(f"{count_text(rejected, 'temperature fit')} reached the end of "
                     f"{'its' if rejected == 1 else 'their'} search range (T 0.05-20): "
                     "no minimum inside it, so no calibration; T = 1 is kept for "
                     f"{'it' if rejected == 1 else 'them'}, and 'after T' averages the other runs.")
    method = corruption_method_text(dataset_method(method, comparison.data, comparison.label)
                                    for method in evaluated.corruption_method)
    if method:
        notes.append(method)
    scored = images_scored(comparison.runs)
    if scored:
        notes.append(scored)
    shift = corruption_shift(context.analysis, comparison)
    if shift is not None:
        notes.append(lead_in(f"From {shift['clean']} to mean corruption top-1,",
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
