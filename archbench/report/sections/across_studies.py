"""Across studies: the same models over several comparable comparisons, one aggregate per protocol."""
from __future__ import annotations

from archbench import results

from .. import figures as plots
from ..document import Heading, Paragraph
from ..labels import count_text

PROTOCOL_NAMES = {"plain": "shared recipe", "tuned": "after equal-effort tuning"}


def section(context) -> list:
    """An aggregate with its interval and a performance profile, one figure per protocol (shared recipe,
    tuned); nothing when no two comparisons share their models."""
    aggregate, profile = results.across_studies(context.analysis.runs)
    if aggregate.empty:
        return []
    blocks = [Heading("Across studies", 2)]
    for protocol, rows in aggregate.groupby("protocol", sort=True):
        name = PROTOCOL_NAMES.get(protocol, protocol)
        shown = profile[profile.protocol == protocol]
        comparisons = sorted(shown.comparison.unique())
        best = rows.iloc[0]
        blocks.append(Paragraph(
            f"{name.capitalize()}: {count_text(len(rows), 'model')} in all of "
            f"{', '.join(comparisons)}. Each run's test top-1 is normalised within its comparison (0 = chance, "
            "1 = the best model's mean) and summarised by the interquartile mean with a stratified bootstrap "
            f"interval (runs resampled within each comparison). Highest: {best.model}, "
            f"{best.iqm:.2f} [{best.iqm_low:.2f}, {best.iqm_high:.2f}]; "
            + "; ".join(f"{row.model} {row.iqm:.2f} [{row.iqm_low:.2f}, {row.iqm_high:.2f}]"
                        for row in rows.iloc[1:].itertuples(index=False))
            + f". With {count_text(len(comparisons), 'comparison')}, this says how consistent a ranking is "
            "across these data and budgets, not how the models rank elsewhere."))
        blocks += context.figure(plots.across_studies(rows, shown, f"Across studies, {name}", context.colors),
                                 f"across-studies--{protocol}",
                                 f"Across studies ({name}): IQM of the normalised score "
                                 "with its 95% stratified bootstrap interval, and the performance profile (share "
                                 "of comparisons within a given distance of the best)")
    return blocks
