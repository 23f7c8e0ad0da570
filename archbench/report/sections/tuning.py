"""A tuning study's comparison: what each model's search found, never a ranking of the candidates."""
from __future__ import annotations

import pandas as pd

from archbench import results
from archbench.results.tuning import RECIPE_PATHS, best_trials

from .. import figures as plots
from ..document import BulletList, Paragraph
from ..findings import tuning_findings
from ..tables import best_trials_table, runs_dirty_note, trials_table


def blocks(context, comparison) -> list:
    trials, study, label = comparison.runs, comparison.study, comparison.label
    stem, title = comparison.stem, comparison.title
    keys = tuned_keys(trials)
    curves = results.expected_best(trials)
    best = best_trials(trials)
    families = dict(zip(trials.model, trials.family))
    blocks = [Paragraph("These runs choose each model's recipe; they are not a comparison of "
                        "models. Findings:"),
              BulletList(findings(trials)),
              context.table(f"{stem}--selected", f"{study} / {label}: the trial selected per model "
                            "(best validation top-1), and the spread over its trials",
                            best_trials_table(best, trials, curves, keys), best,
                            runs_dirty_note(trials)),
              context.table(f"{stem}--trials", f"{study} / {label}: validation top-1 of every "
                            "candidate (the same for every model); * the selected trial",
                            trials_table(trials, keys),
                            trials[["model", "trial", *keys, "val_top1", "val_loss", "path"]])]
    blocks += context.figure(plots.sensitivity(trials, title), f"{stem}--sensitivity",
                             f"Validation top-1 against learning rate per model, {label}; colour: "
                             "weight decay; ringed: the selected trial")
    blocks += context.figure(plots.expected_best(curves, title, families, context.colors),
                             f"{stem}--expected-best",
                             f"Expected best validation top-1 against trials per model, {label} "
                             "(Dodge et al. 2019, unbiased estimator of Tang et al. 2020); band: "
                             "± one std over trial subsets")
    return blocks


def findings(trials: pd.DataFrame) -> list[str]:
    candidates = int(pd.to_numeric(trials.trials, errors="coerce").max())
    return tuning_findings(best_trials(trials), results.expected_best(trials), candidates)


def tuned_keys(trials: pd.DataFrame) -> list[str]:
    """The tunable values that differ between a tuning study's candidates, e.g. ['lr', 'weight_decay']."""
    return [key for key in RECIPE_PATHS
            if key in trials and pd.to_numeric(trials[key], errors="coerce").nunique() > 1]
