"""One comparison from many machines: accuracy pooled at one numerics identity, speed kept to one machine.

The rule (docs/design.md, "One comparison from many machines"): runs of one study, dataset, model and
variant whose records carry the same numerics identity (archbench.settings.numerics_identity: settings,
resolved precision and layout, torch major.minor, the code's numerics version) learn alike on any machine,
so their accuracy, calibration and robustness pool across machines and commits. What a machine measures
(the `machine_bound` metrics: speed, time, memory, energy) never pools: a pooled comparison shows the
figures of one machine, its speed machine, and leaves the others' out.

Before pooling, the machine's effect on test top-1 is tested (`machine_effect`); a machine whose effect is
beyond noise is not pooled, and the comparison says why. Records without a numerics identity (made before
it existed) are read as they are: one comparison per machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from archbench.record import metrics

from .frames import MACHINE_SEPARATOR, MODEL_KEYS

# A machine effect whose 90% interval lies within this many points of test top-1 is called equivalent
# (two one-sided tests at 5%): same-seed reruns on another CPU landed 0.35-1.7 points apart, the spread of
# a fresh seed, so a bound below a point asks more than seeds can show and one above it hides real drift.
EQUIVALENCE_POINTS = 1.0
POOL_COLUMNS = ["trained_on", "speed_machine", "machine_check"]
# Everything a machine measures, blanked in a pooled comparison for runs not on its speed machine.
MACHINE_BOUND_COLUMNS = [metric.name for metric in metrics() if metric.machine_bound] + ["latency_hardware"]


@dataclass(frozen=True)
class MachineEffect:
    """Test top-1 on `other` minus on `reference`, from runs of one numerics identity on both."""
    reference: str
    other: str
    effect: float | None  # points; None when it cannot be estimated
    low: float | None     # 95% interval
    high: float | None
    equivalent: bool      # the 90% interval lies within ±EQUIVALENCE_POINTS
    pairs: int            # seed pairs (same model, variant, seed on both) or models on both
    paired_by: str        # "seed" or "model"

    @property
    def differs(self) -> bool:
        """Beyond noise and not shown negligible: the 95% interval excludes zero and the effect is not
        equivalent within the bound (a 0.05-point effect measured precisely is no reason to split)."""
        return self.low is not None and (self.low > 0 or self.high < 0) and not self.equivalent

    def sentence(self) -> str:
        between = f"{self.other} minus {self.reference}"
        if self.effect is None:
            return (f"machine effect ({between}) not testable: {self.pairs} {self.paired_by}"
                    f"{'s' if self.pairs != 1 else ''} on both machines, 2 needed; pooled on the numerics rule alone")
        unit = "seed pairs" if self.paired_by == "seed" else "models on both, paired by model"
        verdict = ("differs beyond noise: not pooled" if self.differs
                   else f"equivalent within ±{EQUIVALENCE_POINTS:g} point; pooled" if self.equivalent
                   else f"not separated from zero, equivalence within ±{EQUIVALENCE_POINTS:g} point not shown "
                        "at this power; pooled")
        return (f"machine effect on test top-1 ({between}): {self.effect:+.2f} points, 95% CI "
                f"{self.low:+.2f} to {self.high:+.2f} ({self.pairs} {unit}): {verdict}")


def machine_effect(runs: pd.DataFrame, reference: str, other: str, value: str = "test_top1") -> MachineEffect:
    """The effect of training on `other` instead of `reference` (machine labels in `trained_on`).

    Seed-paired where at least two (model, variant, seed) ran on both machines; else paired by model (a
    two-way layout without replication: each model's mean on `other` minus on `reference`, the model x
    machine interaction and seed noise as the error), with a t interval over the pairs.
    """
    keys = ["model", "variant", "seed"]
    cells = runs.assign(_seed=runs["seed"].astype(str))[keys[:-1] + ["_seed", "trained_on", value]]
    cells = cells[np.isfinite(pd.to_numeric(cells[value], errors="coerce"))]
    wide = cells.pivot_table(index=["model", "variant", "_seed"], columns="trained_on", values=value, aggfunc="mean")
    paired_by = "seed"
    if not {reference, other} <= set(wide.columns) or wide[[reference, other]].dropna().shape[0] < 2:
        paired_by = "model"
        wide = cells.pivot_table(index=["model", "variant"], columns="trained_on", values=value, aggfunc="mean")
    differences = (wide[other] - wide[reference]).dropna().to_numpy(float) \
        if {reference, other} <= set(wide.columns) else np.array([])
    pairs = len(differences)
    if pairs < 2:
        return MachineEffect(reference, other, None, None, None, False, pairs, paired_by)
    mean, se, df = float(differences.mean()), float(differences.std(ddof=1) / np.sqrt(pairs)), pairs - 1
    half95 = float(scipy_stats.t.ppf(0.975, df)) * se
    half90 = float(scipy_stats.t.ppf(0.95, df)) * se
    equivalent = abs(mean) + half90 < EQUIVALENCE_POINTS
    return MachineEffect(reference, other, mean, mean - half95, mean + half95, equivalent, pairs, paired_by)


def pool_across_machines(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """`(runs, left_out)`: trained runs of one numerics identity pooled into one comparison per study and data.

    Adds `trained_on` (the run's own machine), `speed_machine` (whose speed figures the comparison shows)
    and `machine_check` (the machine-effect sentences; None where one machine trained the comparison). A
    pooled run's `hardware` becomes the machines joined by MACHINE_SEPARATOR; its machine-bound figures are
    blanked unless it ran on the speed machine. A seed trained on two machines counts once (the speed
    machine's run); the other is in `left_out` with the reason, after both entered the machine check.
    """
    runs = runs.assign(trained_on=runs.get("hardware"), speed_machine=runs.get("hardware"), machine_check=None)
    if runs.empty or "numerics" not in runs:
        return runs, []
    runs = runs.copy()
    poolable = runs[(runs["task"] == "train") & runs["numerics"].notna()]
    left_out: list[dict] = []
    for _, group in poolable.groupby(["study", "data"], sort=True):
        members = _one_identity_per_model(group)
        machines = sorted(members["trained_on"].unique())
        if len(machines) < 2:
            continue
        speed_machine = _speed_machine(members)
        checks = [machine_effect(members, speed_machine, other) for other in machines if other != speed_machine]
        runs.loc[members.index, "machine_check"] = "; ".join(check.sentence() for check in checks)
        split = {check.other for check in checks if check.differs}
        pooled = members[~members["trained_on"].isin(split)]
        if pooled["trained_on"].nunique() < 2:
            continue
        runs.loc[pooled.index, "hardware"] = MACHINE_SEPARATOR.join(sorted(pooled["trained_on"].unique()))
        runs.loc[pooled.index, "speed_machine"] = speed_machine
        elsewhere = pooled.index[pooled["trained_on"] != speed_machine]
        _blank(runs, elsewhere)
        left_out += _repeated_seeds(runs.loc[pooled.index], speed_machine)
    dropped = {row["index"] for row in left_out}
    return runs.drop(index=list(dropped)), [{k: v for k, v in row.items() if k != "index"} for row in left_out]


def _blank(runs: pd.DataFrame, index) -> None:
    """Leave out the machine-bound figures of the runs at `index`: NaN in number columns, None elsewhere."""
    for column in [column for column in MACHINE_BOUND_COLUMNS if column in runs]:
        if pd.api.types.is_float_dtype(runs[column]):
            runs.loc[index, column] = float("nan")
        else:
            runs[column] = runs[column].astype(object)
            runs.loc[index, column] = None


def _one_identity_per_model(group: pd.DataFrame) -> pd.DataFrame:
    """The runs of each model and variant that share its most common numerics identity (ties: the first in
    order): a machine that could not follow the study's decisions trained another identity, its own group."""
    keep = []
    for _, runs in group.groupby(["model", "variant"], sort=False):
        counts = runs["numerics"].value_counts(sort=False)
        keep.append(runs[runs["numerics"] == counts.idxmax()])
    return pd.concat(keep)


def _speed_machine(members: pd.DataFrame) -> str:
    """The machine that trained the most models (then the most runs, then by name): one machine's speed
    for every model it trained, so speed compares within one machine."""
    per_machine = members.groupby("trained_on").agg(models=("model", "nunique"), runs=("model", "size"))
    per_machine = per_machine.reset_index().sort_values(["models", "runs", "trained_on"],
                                                        ascending=[False, False, True], kind="stable")
    return str(per_machine["trained_on"].iloc[0])


def _repeated_seeds(pooled: pd.DataFrame, speed_machine: str) -> list[dict]:
    """A seed of one model and variant trained on two machines: keep the speed machine's run, else the first."""
    keyed = pooled.assign(_seed=pooled["seed"].astype(str), _here=pooled["trained_on"] != speed_machine)
    keyed = keyed.sort_values(["_here"], kind="stable")
    repeated = keyed.duplicated(subset=MODEL_KEYS + ["_seed"], keep="first")
    kept = keyed[~repeated].set_index(MODEL_KEYS + ["_seed"])["trained_on"]
    return [{"index": index, "path": row.path,
             "reason": f"seed {row.seed} also trained on {kept[tuple(row[k] for k in MODEL_KEYS) + (row['_seed'],)]}"
                       " (same numerics identity): a pooled comparison counts each seed once; both runs "
                       "entered its machine-effect check",
             "study": row.study, "data": row.data, "model": row.model, "variant": row.variant, "seed": row.seed}
            for index, row in keyed[repeated].iterrows()]
