"""Sources of variance: where a model's runs cross seeds with data-order seeds, how much of the
spread comes from weight initialisation and how much from data order."""
from __future__ import annotations

import pandas as pd

from .. import figures as plots
from ..document import BulletList, Heading, Paragraph
from ..findings import variance_findings
from ..tables import dirty_note, variance_table


def blocks(context, comparison) -> list:
    variance = comparison.rows(context.analysis.variance)
    if variance.empty:
        return []
    study, label, hardware = comparison.study, comparison.label, comparison.hardware
    blocks = [Heading("Sources of variance", 4), Paragraph(
        "These runs cross weight initialisation (seed) with data order and augmentation draws "
        "(data.order_seed): each seed ran with each order seed. Per model, a two-way "
        "random-effects analysis of variance of test top-1 (statsmodels OLS and anova_lm; "
        "standard expected-mean-squares estimators for a crossed design without replication, "
        "negative estimates clipped at 0) splits the variance of one run into a part from "
        "initialisation, a part from data order, and a residual that holds their interaction "
        "and the noise that neither explains alone." + _degrees_text(variance)),
        BulletList(variance_findings(variance))]
    display = variance_table(variance)
    if display.empty:
        return blocks
    complete = variance[variance.complete.astype(bool)]
    blocks.append(context.table(
        f"{comparison.stem}--variance",
        f"{study} / {label} on {hardware}: sources of variance of test top-1 per model; total "
        "std = √(sum of the three parts), the std of one run with seed and order seed both "
        "drawn anew; shares are of the variance, not of the std",
        display, variance, dirty_note(zip(complete.label, complete.dirty_runs, complete.runs))))
    blocks += context.figure(
        plots.variance_bars(variance, comparison.title), f"{comparison.stem}--variance",
        f"Variance of one run's test top-1 per model, {label}, split into weight initialisation, "
        "data order and residual (interaction and noise); labels are shares of the variance")
    return blocks


def _degrees_text(variance: pd.DataFrame) -> str:
    """How much the variance split rests on, from the design's size: few levels, rough shares."""
    designs = {(int(row.seeds), int(row.order_seeds))
               for row in variance[variance.complete.astype(bool)].itertuples(index=False)}
    if len(designs) != 1:
        return " The F-test p says whether a factor's part can be told from zero."
    seeds, orders = designs.pop()
    return (f" With {seeds} seeds and {orders} order seeds, the initialisation part rests on "
            f"{seeds - 1} degrees of freedom, the order part on {orders - 1} and the residual on "
            f"{(seeds - 1) * (orders - 1)}, so the shares are rough; the F-test p says whether a "
            "factor's part can be told from zero.")
