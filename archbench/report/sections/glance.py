"""At a glance: the headline studies (verdict, figure, short table), then one verdict per other
comparison, in the order of the study sections below."""
from __future__ import annotations

from .. import figures as plots
from ..context import notes
from ..document import BulletList, Glance, Heading, Paragraph
from ..findings import glance_verdict, lead_in, ranking_verdict, variance_verdict
from ..labels import count_text
from ..tables import headline_table, summary_dirty_note, speed_note
from . import claim, evaluation, ladder, recipe, tuned, tuning


def section(context) -> list:
    analysis = context.analysis
    verdicts = {(comparison.study, comparison.data, comparison.hardware): verdict(analysis, comparison)
                for comparison in analysis.comparisons() if comparison.study not in context.ladders}
    for study in context.ladders:  # a ladder mixes budgets: one verdict about its rankings, not per comparison
        found = ladder.glance(context, study)
        if found is not None:
            verdicts[(study, None, None)] = (found[0], [found[1]])
    blocks = [Heading("At a glance", 2)]
    headline = [study for study in context.studies if study in context.headline]
    for study in headline:
        blocks += headline_blocks(context, study, verdicts)
    rank_of = {study: index for index, study in enumerate(context.studies)}
    others = [verdicts[keys] for keys in sorted(verdicts, key=lambda keys: rank_of[keys[0]])
              if keys[0] not in headline]
    if headline and others:
        blocks.append(Paragraph("The other comparisons, in the order of the sections below:"))
    if others or not headline:
        blocks.append(Glance(others or [("No usable runs", "nothing to compare.")]))
    return blocks


def headline_blocks(context, study, verdicts) -> list:
    """A headline comparison: its verdict, mean test top-1 with 95% intervals, and a short table."""
    blocks = []
    for comparison in context.analysis.comparisons(study):
        if not comparison.trained:
            continue
        group, label, hardware = comparison.summary, comparison.label, comparison.hardware
        title, sentences = verdicts[(study, comparison.data, hardware)]
        stem = f"headline--{comparison.stem}"
        # one point a line: read at a glance; a claim this comparison tests is its last point
        blocks += [Heading(f"Headline: {title}", 3), BulletList(sentences + claim.glance_lines(context, comparison))]
        blocks += context.figure(plots.headline_accuracy(group, comparison.title, context.colors),
                                 stem, f"Mean test top-1 per model with its 95% interval over seeds, {label} "
                                       f"on {hardware}")
        display = headline_table(group, comparison.device)
        blocks.append(context.table(stem, f"{study} / {label} on {hardware}: the main columns, best mean "
                                          "first (every column: the study's section below)", display, group,
                                    notes(summary_dirty_note(group), speed_note(group))))
    return blocks


def verdict(analysis, comparison) -> tuple[str, list[str]]:
    """(title, the verdict's sentences in plain words) of one comparison."""
    study, label, hardware = comparison.study, comparison.label, comparison.hardware
    title = f"{study}, {label} on {hardware}"
    if not comparison.trained:
        return title, [f"profile only: size and speed of {count_text(comparison.runs.model.nunique(), 'model')}, "
                       "no training, so nothing about which model learns best."]
    kind = analysis.kinds.get(study)
    if kind == "tuning":
        return title, tuning.findings(comparison.runs)[:2]
    title, sentences = glance_verdict(study, label, hardware, comparison.summary, comparison.rows(analysis.pairs),
                                 comparison.rows(analysis.ranking))
    extra = [sentence for _shared, brief, _gain in tuned.against_shared(analysis, comparison, brief=True)
             for sentence in brief]
    differ = [name for name, _values in recipe.study_confounds(comparison.runs, kind)]
    if kind == "tuned":  # each model runs its own best candidate: the point of the study, named all the same
        differ.insert(0, "each model's tuned values (by design)")
    if differ:
        extra.insert(0, f"Identical except: {', '.join(differ)} (listed in the study's recipe section).")
    variance = variance_verdict(comparison.rows(analysis.variance))
    if variance:
        extra.append(variance)
    corruption = evaluation.corruption_shift(analysis, comparison)
    if corruption is not None:
        extra.append(lead_in("Under corruption", ranking_verdict(corruption, "clean", "corrupted", brief=True)))
    return title, [*sentences, *extra]

