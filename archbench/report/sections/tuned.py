"""A tuned study (each model rerun with its selected candidate) set beside its shared-recipe counterpart."""
from __future__ import annotations

import pandas as pd

from archbench import results

from ..context import rows_matching, slug
from ..document import Heading, Paragraph
from ..findings import lead_in, ranking_verdict, tuning_gain_sentence
from ..tables import tuning_gain_table


def against_shared(analysis, comparison, brief: bool = False) -> list[tuple[str, str, pd.DataFrame]]:
    """(shared study, [ranking verdict, tuning-gain sentence], gain table) for each shared-recipe
    counterpart of a tuned comparison; `brief` for the at-a-glance list."""
    keys = comparison.keys
    matches = rows_matching(analysis.counterparts.rename(columns={"tuned_study": "study"}), keys)
    compared = []
    for shared_study, shared_hardware in zip(matches.shared_study, matches.shared_hardware):
        tuned = rows_matching(analysis.runs, keys)
        shared = rows_matching(analysis.runs, {**keys, "study": shared_study, "hardware": shared_hardware})
        gain = results.tuning_gain(shared, tuned)
        pairs = rows_matching(analysis.pairs, keys).assign(
            label_a=lambda frame: frame.model_a, label_b=lambda frame: frame.model_b)
        (before, after), _basis = results.alike_bootstrap_means([(shared[shared.task == "train"], "test_top1"),
                                                                 (tuned[tuned.task == "train"], "test_top1")])
        shift = results.ranking_shift(gain.set_index("model").shared_mean,
                                      gain.set_index("model").tuned_mean, pairs, before, after)
        where = "" if shared_hardware == comparison.hardware else f" (trained on {shared_hardware})"
        ranking = lead_in(f"Against the shared recipe of {shared_study}{where},",
                          ranking_verdict(shift, "shared-recipe", "tuned", brief=brief))
        sentences = [ranking, tuning_gain_sentence(gain)]
        if where and not brief:
            sentences.append(f"The two studies ran on different machines, {shared_hardware} and "
                             f"{comparison.hardware}, with each model in the same precision, layout and torch "
                             "version: at those, another machine changes a run only through kernel rounding, as "
                             "another seed would (the numerics rule under 'How to read'), so the accuracies are "
                             "compared directly.")
        compared.append((shared_study, sentences, gain))
    return compared


def blocks(context, comparison) -> list:
    sources = sorted(set(comparison.runs.tuned_from.dropna()))
    blocks = [Heading("Tuning", 4),
              Paragraph(f"Each model ran with the candidate of its best trial in "
                        f"{', '.join(sources)} (best validation top-1, ties by lower "
                        "validation loss); the test set played no part in the choice.")]
    compared = against_shared(context.analysis, comparison)
    if not compared:
        return blocks + [Paragraph(
            "No shared-recipe study with the same data, budget, training images and models, trained on "
            "this machine or at the same precision, layout and torch version, is in this report, so the "
            "tuned ranking is not set beside a shared one.")]
    for shared_study, verdict, gain in compared:
        blocks += [Paragraph(" ".join(verdict)), context.table(
            f"{comparison.stem}--vs-{slug(shared_study)}",
            f"{comparison.study} / {comparison.label}: ranking under the shared recipe ({shared_study}) and "
            "after equal-effort tuning, mean test top-1 over seeds", tuning_gain_table(gain), gain)]
    return blocks
