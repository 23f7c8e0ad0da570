"""Equal-effort tuning: every architecture gets the same N candidate recipes, then its best is rerun.

The protocol of the Deep Learning Tuning Playbook and MLCommons AlgoPerf, as two ordinary sweeps:
1. a tuning study (`+trial=range(N)`): job k trains candidate k of a scrambled Sobol sequence over the
   declared space (scipy.stats.qmc, fixed seed), so every model receives identical candidates;
2. a final study (`tuned_from=<tuning study>`): each model reruns, over the study's seeds, with the
   candidate of its best trial by validation accuracy (ties: lower validation loss). Test accuracy is
   never read for the choice, and the final stage refuses to start while any trial is missing, and on
   a seed any trial of the model used: a rerun of the winning trial on its own seed is the selection run
   again (its luck is why it won), so the tuned mean is taken over fresh seeds only.
Each trial and each final run is a normal record with its own identity plus a `tuning` section.
Part of the analysis (records and the results table, no torch): the entry point asks it for a job's candidate,
and the report for what each search found.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from archbench.record import is_diverged_reason, load_record_or_empty, nested

from .loading import load_with_exclusions

# Where each tunable name lives in a recipe (conf/train/*.yaml).
RECIPE_PATHS = {
    "lr": ("optimizer", "lr"),
    "weight_decay": ("optimizer", "weight_decay"),
    "label_smoothing": ("label_smoothing",),
}


class TuningError(ValueError):
    """A tuning space, trial or selection that cannot be used; the message names the fix."""


@dataclass(frozen=True)
class Dimension:
    name: str
    low: float
    high: float
    log: bool = False

    def value(self, u: float) -> float:
        """Map a point of the unit interval onto the dimension (log-uniform when `log`)."""
        if self.log:
            return float(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))
        return float(self.low + u * (self.high - self.low))


@dataclass(frozen=True)
class TuningSpace:
    dimensions: tuple[Dimension, ...]
    trials: int
    seed: int = 0

    @classmethod
    def from_config(cls, config: dict) -> "TuningSpace":
        unknown = set(config) - {"space", "trials", "seed"}
        if unknown:
            raise TuningError(f"tuning.{sorted(unknown)[0]} is not a tuning setting (known: space, trials, seed)")
        trials, seed = config.get("trials"), config.get("seed", 0)
        if not isinstance(trials, int) or isinstance(trials, bool) or trials < 1:
            raise TuningError(f"tuning.trials={trials!r} must be a positive integer, e.g. 8")
        dims = []
        for name, spec in sorted((config.get("space") or {}).items()):
            if name not in RECIPE_PATHS:
                raise TuningError(f"tuning.space.{name} is not tunable (tunable: {', '.join(RECIPE_PATHS)})")
            low, high, log = spec.get("low"), spec.get("high"), bool(spec.get("log", False))
            if not (isinstance(low, (int, float)) and isinstance(high, (int, float)) and low < high):
                raise TuningError(f"tuning.space.{name} needs numbers low < high (got low={low!r}, high={high!r})")
            if log and low <= 0:
                raise TuningError(f"tuning.space.{name}: a log-uniform range needs low > 0 (got {low!r})")
            dims.append(Dimension(name, float(low), float(high), log))
        if not dims:
            raise TuningError("tuning.space is empty: declare e.g. lr: {low: 0.01, high: 1.0, log: true}")
        return cls(tuple(dims), trials, int(seed))

    def candidates(self) -> list[dict]:
        """The N candidates every model receives: a scrambled Sobol sequence with a fixed seed."""
        from scipy.stats import qmc

        sampler = qmc.Sobol(d=len(self.dimensions), scramble=True, seed=self.seed)
        # Sobol's balance holds for powers of two; draw the next one and keep the first N (same for all).
        points = sampler.random(2 ** math.ceil(math.log2(self.trials)))[: self.trials]
        return [{dim.name: dim.value(u) for dim, u in zip(self.dimensions, point)} for point in points]


def apply_candidate(train_config: dict, candidate: dict) -> dict:
    """A copy of the recipe's config with the candidate's values in place."""
    config = copy.deepcopy(train_config)
    for name, value in candidate.items():
        *parents, leaf = RECIPE_PATHS[name]
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


def trial_settings(tuning: dict, trial: int, study: str) -> tuple[dict, dict]:
    """(candidate, the record's tuning section) for job `trial` of a tuning study."""
    space = TuningSpace.from_config(tuning)
    if not isinstance(trial, int) or isinstance(trial, bool) or not 0 <= trial < space.trials:
        raise TuningError(f"trial={trial!r} must be an integer in [0, {space.trials - 1}] (tuning.trials={space.trials})")
    candidate = space.candidates()[trial]
    return candidate, {"study": study, "trial": trial, "trials": space.trials, "seed": space.seed,
                       "candidate": candidate}


def best_trials(runs) -> "object":
    """Per study, data, hardware and model: the trial with the best validation accuracy (ties: lower loss).

    Reads only validation columns: a fixture where the best test trial is another proves it.
    """
    trials = runs[runs["trial"].notna()] if "trial" in runs else runs.iloc[0:0]
    if trials.empty:
        return trials
    ordered = trials.assign(_loss=trials["val_loss"].fillna(np.inf)).sort_values(
        ["val_top1", "_loss", "trial"], ascending=[False, True, True], kind="stable")
    keys = ["tuning_study", "data", "hardware", "model"]
    return ordered.groupby(keys, sort=True, dropna=False).head(1).drop(columns="_loss").reset_index(drop=True)


def select(results_dir, tuning_study: str, data: str, model: str, seed: int | None = None) -> tuple[dict, dict]:
    """(candidate, the final record's tuning section) of `model`'s best trial; refuses an incomplete study,
    and a `seed` that a trial of `model` ran on (the final stage's seeds must be fresh)."""
    try:
        runs, excluded = load_with_exclusions(results_dir, include_synthetic=True)
    except FileNotFoundError as err:
        raise TuningError(f"tuned_from={tuning_study!r}: {err}") from err
    if not runs.empty and "tuning_study" in runs:
        runs = runs[(runs["tuning_study"] == tuning_study) & (runs["data"] == data) & (runs["model"] == model)]
    if runs.empty:
        raise TuningError(f"tuned_from={tuning_study!r}: no complete trials of {model} on {data} under "
                          f"{results_dir} (run `archbench -m experiment={tuning_study}` first)")
    expected = int(runs["trials"].max())
    # A diverged trial is finished: its candidate was tried and lost (too high an lr, say), so it counts
    # towards the equal budget and can never be selected.
    diverged = _diverged_trials(excluded, tuning_study, data, model)
    missing = sorted(set(range(expected)) - {int(t) for t in runs["trial"]} - diverged)
    if missing:
        raise TuningError(f"tuned_from={tuning_study!r}: {model} on {data} has {len(missing)} of {expected} trials "
                          f"missing or unfinished (trial {', '.join(map(str, missing))}): rerun "
                          f"`archbench -m experiment={tuning_study}` to finish them")
    trial_seeds = sorted({int(value) for value in runs["seed"].dropna()} | _diverged_seeds(excluded, tuning_study,
                                                                                           data, model))
    if seed is not None and seed in trial_seeds:
        raise TuningError(f"tuned_from={tuning_study!r}: seed={seed} is a seed the trials of {model} ran on (seed "
                          f"{', '.join(map(str, trial_seeds))}), so a tuned run on it would repeat or share a "
                          f"selection run and overstate the tuned accuracy; run the tuned stage on seeds the "
                          f"trials never used (e.g. seed={max(trial_seeds) + 1}; conf/experiment/tuned_*.yaml "
                          f"use 1,2,3)")
    best = best_trials(runs).iloc[0]
    # A copy: the final run writes it into its own record, and the trial's parsed record is shared.
    candidate = copy.deepcopy(nested(load_record_or_empty(best["path"]), "tuning", "candidate") or {})
    return candidate, {"tuned_from": tuning_study, "selected_trial": int(best["trial"]), "trials": expected,
                       "candidate": candidate, "selected_val_top1": float(best["val_top1"]),
                       "selection": "best validation top-1, ties by lower validation loss"}


def _diverged_trials(excluded, tuning_study: str, data: str, model: str) -> set[int]:
    """Trial numbers of `model`'s diverged trials in `tuning_study` (records the results loader leaves out)."""
    trials = set()
    for row in excluded.itertuples():
        if is_diverged_reason(row.reason) and (row.study, row.data, row.model) == (tuning_study, data, model):
            tuning = load_record_or_empty(row.path).get("tuning") or {}
            if tuning.get("study") == tuning_study and tuning.get("trial") is not None:
                trials.add(int(tuning["trial"]))
    return trials


def _diverged_seeds(excluded, tuning_study: str, data: str, model: str) -> set[int]:
    return {int(row.seed) for row in excluded.itertuples()
            if is_diverged_reason(row.reason) and (row.study, row.data, row.model) == (tuning_study, data, model)
            and isinstance(row.seed, (int, np.integer))}
