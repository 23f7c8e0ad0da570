"""A budget ladder: does a short budget's ranking of the models predict a longer budget's?

A ladder study (`report.ladder.base` in its config: one study or a list) trains the same models on the same
data and recipe as its base studies at other budgets; each base study's runs are one more rung. A base may
train more or fewer models than the ladder (seed_claim trains the claim's seven): a rung ranks the models it
has, and tau against the largest rung reads the models both rungs trained. Each rung is its own run with its
own learning-rate decay (budget-aware schedules), so every rung is a finished training, not a checkpoint of
a longer one. Per rung: the ranking with rank intervals; against the largest rung: Kendall tau with its
bootstrap interval (holds / changes / inconclusive), the pairs that change order and whether each change is
beyond noise (the seeds separate the pair at both rungs, in opposite orders); per model: accuracy against
the training budget (steps and MACs consumed) and the first rung that reaches a target validation accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from archbench import results
from archbench.results.frames import frame_dataset_label
from archbench.stats import BOOTSTRAP_SEED, TAU_HOLDS, outward

# Runs on different machines are never pooled in one rung: the rung keeps its largest machine group.
RUNG_KEYS = ["data", "hardware"]


@dataclass
class Ladder:
    """One ladder: `rungs` (steps, ascending) and what the report shows of them."""
    study: str
    bases: list[str]               # the studies whose runs are rungs besides the ladder study's own
    data: str                      # the dataset's label as the runs recorded it (its known name where none)
    rungs: list[int]
    ranks: pd.DataFrame            # results.rank() per rung, with `steps`
    curve: pd.DataFrame            # per model and rung: mean, interval, seeds, steps, epochs, MACs consumed
    shifts: dict                   # steps -> results.ranking_shift() against the largest rung
    beyond_noise: dict             # steps -> [swapped pairs the seeds separate at both rungs]
    target: dict                   # the target validation top-1 and, per model, the first rung reaching it
    machines: dict                 # steps -> the machine that trained the rung
    base_rungs: dict = field(default_factory=dict)  # steps -> the base study whose runs are that rung
    left_out: list[str] = field(default_factory=list)
    resampled: str = results.RESAMPLED_SEEDS  # what the tau intervals' bootstrap drew, the same for every rung

    @property
    def top(self) -> int:
        return self.rungs[-1]

    @property
    def base_steps(self) -> int | None:
        """The first base study's rung: the budget the ladder asks about by default."""
        return next((steps for steps, name in self.base_rungs.items() if self.bases and name == self.bases[0]),
                    None)

    def models_in_some_rungs(self) -> dict[str, list[int]]:
        """{model: the rungs it trained at} for the models missing from at least one rung."""
        by_model = self.curve.groupby("model")["steps"].apply(lambda steps: sorted(int(s) for s in steps))
        return {model: steps for model, steps in by_model.items() if len(steps) < len(self.rungs)}


def ladder_studies(conf_dir: Path | None = None) -> dict[str, list[str]]:
    """{ladder study: its base studies} from conf/experiment/*.yaml (`report: {ladder: {base: ...}}`, a study
    or a list of them)."""
    import yaml

    conf_dir = Path(conf_dir) if conf_dir else Path(__file__).resolve().parents[2] / "conf" / "experiment"
    found = {}
    for path in sorted(conf_dir.glob("*.yaml")):
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # a broken study config is Hydra's to report when the study runs
        ladder = (config.get("report") or {}).get("ladder") if isinstance(config, dict) else None
        if isinstance(ladder, dict) and config.get("study"):
            found[str(config["study"])] = study_list(ladder.get("base"))
    return found


def study_list(base) -> list[str]:
    """`report.ladder.base` as a list: one study, a list of them, or none."""
    if base is None:
        return []
    return [str(base)] if isinstance(base, str) else [str(name) for name in base]


def budget_ladder(runs: pd.DataFrame, study: str, base: str | list[str] | None = None,
                  metric: str = "test_top1", seed: int = BOOTSTRAP_SEED) -> Ladder | None:
    """The ladder of `study` (plus the runs of `base`, a study or a list, as rungs), or None with fewer than two
    rungs. `seed` is the bootstrap generator's; the verdicts do not depend on it (`archbench.stats.tau_interval`)."""
    bases = study_list(base)
    chosen = runs[runs.study.isin([study, *bases]) & (runs.task == "train") & (runs.status == "complete")].copy()
    if chosen.empty:
        return None
    # A rung is the steps a run trained, whatever its budget's kind (a finished run trained all it planned).
    chosen["rung"] = chosen["steps"]
    left_out = [f"{count} runs of {name} without a step count"
                for name, count in chosen[chosen.rung.isna()].groupby("study").size().items()]
    chosen = chosen[chosen.rung.notna()]
    data = chosen["data"].mode().iloc[0] if len(chosen) else None
    chosen = chosen[chosen["data"] == data]
    # Each rung ranks models, not variants: the budget is what differs, and it is the rung.
    chosen = chosen.assign(rung=chosen.rung.astype(int), variant_label=None, variant=None)
    rungs, machines = {}, {}
    for steps, rung_runs in chosen.groupby("rung", sort=True):
        sizes = rung_runs.groupby("hardware").size().sort_values(ascending=False, kind="stable")
        machine = sizes.index[0]
        for other, count in sizes.iloc[1:].items():
            left_out.append(f"{count} runs at {steps} steps on {other} (the rung keeps {machine})")
        rungs[int(steps)] = rung_runs[rung_runs.hardware == machine].assign(study=f"{steps} steps")
        machines[int(steps)] = machine
    if len(rungs) < 2:
        return None
    order = sorted(rungs)
    top = order[-1]
    ranks, means, pairs = {}, {}, {}
    for steps in order:
        ranks[steps] = results.rank(rungs[steps], metric).assign(steps=steps)
        means[steps] = ranks[steps].set_index("label")["mean"]
        pairs[steps] = results.compare(rungs[steps], metric)
    # Every rung drawn by one method (seeds only unless every rung saved per-image outcomes), so tau compares
    # like with like, and with a fixed generator `seed`.
    drawn, resampled = results.alike_bootstrap_means([(rungs[steps], metric) for steps in order], seed=seed)
    samples = dict(zip(order, drawn))
    shifts, beyond = {}, {}
    for steps in order[:-1]:
        shifts[steps] = results.ranking_shift(means[steps], means[top], pairs[top], samples[steps], samples[top])
        beyond[steps] = [swap for swap in shifts[steps]["swapped"]
                         if swap["separated"] and _separated(pairs[steps], swap["ahead_before"], swap["ahead_after"])]
    return Ladder(study=study, bases=bases, data=frame_dataset_label(chosen, data), rungs=order,
                  ranks=pd.concat(ranks.values(), ignore_index=True),
                  curve=_curve(rungs, samples, metric), shifts=shifts, beyond_noise=beyond,
                  target=_time_to_target(rungs), machines=machines, left_out=left_out,
                  base_rungs={steps: name for name in bases
                              if (steps := _only(chosen.loc[chosen.study == name, "rung"])) is not None},
                  resampled=resampled)


def _only(values: pd.Series) -> int | None:
    distinct = values.unique()
    return int(distinct[0]) if len(distinct) == 1 else None


def _separated(pairs: pd.DataFrame, ahead: str, behind: str) -> bool:
    """Whether the seeds separate `ahead` from `behind` (compare() lists the higher mean as label_a)."""
    match = pairs[(pairs.label_a == ahead) & (pairs.label_b == behind)]
    return bool(len(match)) and not bool(match.iloc[0]["tie"]) and not bool(match.iloc[0]["below_noise_floor"])


def _curve(rungs: dict, samples: dict, metric: str) -> pd.DataFrame:
    """Per model and rung: mean `metric`, its 95% bootstrap interval, seeds, steps, epochs and MACs consumed."""
    rows = []
    for steps, rung_runs in rungs.items():
        for model, model_runs in rung_runs.groupby("model", sort=True):
            draws = samples[steps][model] if model in samples[steps] else pd.Series(dtype=float)
            batch = float(model_runs["batch_size"].iloc[0])
            # Training MACs: each image costs its training FLOPs (forward + backward) / 2 multiply-adds.
            macs = steps * batch * float(model_runs["flops_train"].iloc[0]) / 2
            rows.append({"model": model, "family": model_runs["family"].iloc[0], "steps": steps,
                         "epochs": steps * batch / float(model_runs["train_size"].iloc[0]),
                         "macs_consumed": macs, "mean": float(model_runs[metric].mean()),
                         "low": float(np.quantile(draws, 0.025)) if len(draws) else math.nan,
                         "high": float(np.quantile(draws, 0.975)) if len(draws) else math.nan,
                         "seeds": int(model_runs["seed"].nunique()),
                         "val_mean": float(model_runs["val_top1"].mean()),
                         "precision": _precision(model_runs),
                         "wall_s_mean": float(model_runs["wall_s"].mean())})
    return pd.DataFrame(rows).sort_values(["model", "steps"], ignore_index=True)


def _precision(model_runs: pd.DataFrame) -> str:
    """The precision and layout the runs trained in (amp=auto picks per model and machine), e.g. 'bf16 NHWC'."""
    amp = ", ".join(sorted({str(value) for value in model_runs.get("amp", pd.Series(dtype=object)).dropna()}))
    layouts = {"NHWC" if value else "NCHW" for value in model_runs.get("channels_last", pd.Series(dtype=object))
               .dropna()}
    return f"{'fp32' if amp in ('', 'off') else amp} {'/'.join(sorted(layouts)) or '?'}"


def precision_changes(ladder: Ladder) -> dict[str, dict[int, str]]:
    """{model: {steps: precision}} for the models whose precision or layout differs between rungs."""
    changes = {}
    for model, points in ladder.curve.groupby("model", sort=True):
        if points["precision"].nunique() > 1:
            changes[model] = dict(zip(points.steps, points.precision))
    return changes


def _time_to_target(rungs: dict) -> dict:
    """The target: the lowest model's mean validation top-1 at the largest rung, rounded down to a whole
    point, so every model reaches it there; per model, the first rung whose mean validation top-1 does."""
    top = rungs[max(rungs)]
    val_at_top = top.groupby("model")["val_top1"].mean()
    if val_at_top.empty or not np.isfinite(val_at_top.min()):
        return {"target": math.nan, "reached": pd.DataFrame()}
    target = float(math.floor(val_at_top.min()))
    rows = []
    for model in sorted(val_at_top.index):
        for steps in sorted(rungs):
            model_runs = rungs[steps][rungs[steps].model == model]
            if len(model_runs) and model_runs["val_top1"].mean() >= target:
                batch = float(model_runs["batch_size"].iloc[0])
                rows.append({"model": model, "steps": steps,
                             "macs_consumed": steps * batch * float(model_runs["flops_train"].iloc[0]) / 2,
                             "wall_s": float(model_runs["wall_s"].mean()),
                             "val_mean": float(model_runs["val_top1"].mean())})
                break
    return {"target": target, "reached": pd.DataFrame(rows)}


def verdict(ladder: Ladder, short: int | None = None) -> str:
    """A few short sentences: does the ranking at `short` steps (default the base study's rung, else the
    smallest) predict the ranking at the largest rung?"""
    if short is None:
        short = ladder.base_steps if ladder.base_steps in ladder.shifts else ladder.rungs[0]
    shift = ladder.shifts[short]
    epochs = _epochs_text(ladder, short), _epochs_text(ladder, ladder.top)
    low, high = outward(shift["tau_low"], shift["tau_high"])
    answer = {"holds": "Yes", "changes": "No"}.get(shift["verdict"], "These seeds cannot tell")
    beyond = ladder.beyond_noise[short]
    swaps = (f"{len(beyond)} of {len(shift['swapped'])} swapped pairs change order beyond noise."
             if shift["swapped"] else "No pair changes order.")
    return (f"Does the ranking after {short} steps ({epochs[0]}) predict the one after {ladder.top} steps "
            f"({epochs[1]}) on {ladder.data}? {answer}: Kendall tau {shift['tau']:.2f}, 95% interval "
            f"[{low:.2f}, {high:.2f}], {shift['models']} models. {tau_edge_text(shift)} {swaps}")


def tau_edge_text(shift: dict) -> str:
    """Where tau's interval sits against the 0.6 threshold: the values tau can take there, and the share of
    resamples below it (the verdict reads that share, so it does not move with the generator's seed)."""
    steps = shift.get("attainable") or []
    values = ", ".join(f"{value:.2f}" for value in steps)
    share = shift.get("share_below")
    if not steps or share is None or not math.isfinite(share):
        return ""
    edge = "; within Monte Carlo error of the 2.5% tail, so inconclusive" if shift.get("on_edge") else ""
    return (f"Near {TAU_HOLDS} tau can only be {values}; {share:.1%} of {shift['resamples']:,} resamples fall "
            f"below {TAU_HOLDS}{edge}.")


def _epochs_text(ladder: Ladder, steps: int) -> str:
    epochs = ladder.curve[ladder.curve.steps == steps]["epochs"]
    value = float(epochs.iloc[0]) if len(epochs) else math.nan
    return f"{value:.2g} epochs" if value != 1 else "1 epoch"
