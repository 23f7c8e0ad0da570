"""A budget-ladder study (`report.ladder.base` in its config): its rungs, the base studies' runs among them,
in place of the per-comparison tables a study of one budget gets; its verdict is one line at a glance."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd

from archbench.results.ladder import Ladder, budget_ladder, precision_changes, verdict
from archbench.results import RESAMPLED_SEEDS_AND_IMAGES
from archbench.stats import outward

from ..document import BulletList, Heading, Paragraph
from ..labels import count_text


def of(context, study) -> Ladder | None:
    """The ladder of `study` when its config declares one and its runs make two or more rungs."""
    if study not in context.ladders:
        return None
    return budget_ladder(context.analysis.runs, study, context.ladders[study])


def glance(context, study) -> tuple[str, str] | None:
    """(title, verdict) for the at-a-glance list."""
    ladder = of(context, study)
    return None if ladder is None else (f"{study}, budget ladder on {ladder.data}", verdict(ladder))


def blocks(context, study) -> list:
    """Heading, verdict, rankings per rung, tau against the largest rung, accuracy vs budget, time to target."""
    ladder = of(context, study)
    if ladder is None:
        return []
    writer = context
    stem = f"ladder--{ladder.study}"
    top = ladder.top
    rungs_text = ", ".join(f"{steps} steps ({_epochs(ladder, steps)}, {_seeds(ladder, steps)})"
                           for steps in ladder.rungs)
    partial = ladder.models_in_some_rungs()
    bases_text = "; ".join(f"the {steps}-step rung is {name}'s runs" for steps, name in ladder.base_rungs.items())
    blocks = [Heading(f"Study: {ladder.study} (budget ladder)", 2), Paragraph(
        f"{verdict(ladder)} "
        + (f"The same models, data and recipe at {len(ladder.rungs)} budgets" if not partial else
           f"The same data and recipe at {len(ladder.rungs)} budgets (the models differ: below)")
        + f": {rungs_text}" + (f"; {bases_text}" if bases_text else "")
        + ". Each budget is its own run with its own learning-rate schedule. Tau is Kendall's between each "
        "rung's ranking (mean test top-1) and the largest rung's, with a 95% bootstrap interval: 'holds' when "
        "the whole interval is at or above 0.6, 'changes' when it is below, else 'inconclusive'; the verdict "
        "reads the share of resamples below 0.6, and a share within Monte Carlo error of the 2.5% tail is "
        f"'inconclusive'. Every rung is resampled the same way: {_resampled_text(ladder)}. A swap is "
        "beyond noise when the seeds separate the pair (Holm) at both rungs, in opposite orders.")]
    if partial:
        # A base study may train other models (seed_claim: the claim's seven); tau reads the common ones.
        blocks.append(Paragraph("Models trained at some rungs only: " + "; ".join(
            f"{model} ({', '.join(str(steps) for steps in rungs)} steps)" for model, rungs in partial.items())
            + ". Each rung ranks the models it trained; tau between two rungs reads the models both trained."))
    machines = sorted(set(ladder.machines.values()))
    if len(machines) > 1:
        blocks.append(Paragraph("Rungs trained on different machines (a confound for speed, and for accuracy "
                                "where the chosen precision differs): " + "; ".join(
                                    f"{steps} steps on {machine}" for steps, machine in ladder.machines.items()) + "."))
    changed = precision_changes(ladder)
    if changed:
        blocks.append(Paragraph("Precision or memory layout differs between rungs (train.amp=auto chose per machine): "
                                + "; ".join(f"{model}: " + ", ".join(f"{precision} at {steps} steps"
                                                                      for steps, precision in by_rung.items())
                                            for model, by_rung in changed.items()) + "."))
    findings = []
    for steps in ladder.rungs[:-1]:
        shift = ladder.shifts[steps]
        swaps = shift["swapped"]
        beyond = {(s["ahead_before"], s["ahead_after"]) for s in ladder.beyond_noise[steps]}
        # A swap is beyond noise only when the seeds separate the pair at both rungs, in opposite orders.
        noise = {True: "separated at both rungs: beyond noise", False: "not separated at both rungs"}
        swap_text = "; ".join(
            f"{s['ahead_before']} ahead by {s['gap_before']:.1f} → {s['ahead_after']} ahead by {s['gap_after']:.1f}"
            f" ({noise[(s['ahead_before'], s['ahead_after']) in beyond]})"
            for s in swaps) or "no pair changes order"
        low, high = outward(shift["tau_low"], shift["tau_high"])
        share = "" if not math.isfinite(shift["share_below"]) else \
            f" ({shift['share_below']:.1%} of resamples below 0.6{', on the edge' if shift['on_edge'] else ''})"
        findings.append(f"{steps} → {top} steps: tau {shift['tau']:.2f} [{low:.2f}, {high:.2f}], "
                        f"{shift['verdict']}{share}; {swap_text}.")
    target = ladder.target
    if not math.isnan(target["target"]) and len(target["reached"]):
        reached = target["reached"]
        findings.append(
            f"Time to {target['target']:.0f}% validation top-1 (the weakest model's mean at {top} steps, rounded "
            "down; checked at the end of each rung): " + "; ".join(
                f"{row.model} at {int(row.steps)} steps ({row.macs_consumed / 1e12:.1f} T training MACs)"
                for row in reached.sort_values(["steps", "macs_consumed"]).itertuples(index=False)) + ".")
    findings += [f"Left out: {reason}." for reason in ladder.left_out]
    blocks.append(BulletList(findings))
    blocks.append(writer.table(f"{stem}--ranks", f"{ladder.study}: test top-1 per model and budget, mean over "
                               "seeds [95% bootstrap interval], rank [95% rank interval] and share of resamples "
                               "in which the model is first", _rank_table(ladder), _raw(ladder)))
    blocks += writer.figure(accuracy_vs_budget(ladder, writer.colors), f"{stem}--accuracy",
                            f"{ladder.study}: mean test top-1 with its 95% bootstrap interval against the "
                            "training budget, in steps (left) and in training MACs consumed (right); one line "
                            "per model, each point a separate run of that budget")
    return blocks


def _resampled_text(ladder: Ladder) -> str:
    if ladder.resampled == RESAMPLED_SEEDS_AND_IMAGES:
        return "test images drawn once for all models, each model's mean over seeds drawn from Student t"
    return ("each model's mean drawn as mean + s/√n × Student t with n − 1 degrees of freedom, seeds only "
            "(not every rung saved per-image outcomes, so test-set sampling is left out at all of them)")


def _epochs(ladder: Ladder, steps: int) -> str:
    epochs = ladder.curve[ladder.curve.steps == steps]["epochs"]
    return f"{float(epochs.iloc[0]):.2g} epochs" if len(epochs) else "? epochs"


def _seeds(ladder: Ladder, steps: int) -> str:
    seeds = ladder.curve[ladder.curve.steps == steps]["seeds"]
    low, high = int(seeds.min()), int(seeds.max())
    return count_text(low, "seed") if low == high else f"{low}-{high} seeds"


def _rank_table(ladder: Ladder) -> pd.DataFrame:
    """One row per model (best at the largest rung first), one column per rung."""
    ranks = ladder.ranks
    order = ranks[ranks.steps == ladder.top].sort_values(["rank", "label"]).label.tolist()
    order += sorted(set(ranks.label) - set(order))
    curve = ladder.curve.set_index(["model", "steps"])
    rows = []
    for label in order:
        row = {"Model": label}
        for steps in ladder.rungs:
            match = ranks[(ranks.label == label) & (ranks.steps == steps)]
            if match.empty:
                row[f"{steps} steps"] = "—"
                continue
            rank = match.iloc[0]
            point = curve.loc[(label, steps)]
            interval = f"{rank.rank_low}" if rank.rank_low == rank.rank_high else f"{rank.rank_low}-{rank.rank_high}"
            row[f"{steps} steps"] = (f"{point['mean']:.1f} [{point.low:.1f}, {point.high:.1f}], rank {rank['rank']} "
                                     f"[{interval}], first {rank.share_first:.0%}")
        rows.append(row)
    return pd.DataFrame(rows)


def _raw(ladder: Ladder) -> pd.DataFrame:
    ranks = ladder.ranks[["label", "steps", "rank", "rank_low", "rank_high", "share_first", "n"]]
    curve = ladder.curve.rename(columns={"model": "label"})
    return curve.merge(ranks, on=["label", "steps"], how="left")


def accuracy_vs_budget(ladder: Ladder, colors: dict):
    """Mean test top-1 with its interval against steps (log) and training MACs consumed (log), per model."""
    curve = ladder.curve
    if curve.empty:
        return None
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    for (model, points), style in zip(curve.groupby("model", sort=True), _styles(curve)):
        points = points.sort_values("steps")
        line = "-" if len(points) >= 3 else "none"  # two rungs are two measurements, not a curve
        for ax, x in zip(axes, ("steps", "macs_consumed")):
            ax.errorbar(points[x], points["mean"], yerr=[points["mean"] - points.low, points.high - points["mean"]],
                        fmt="o", linestyle=line if line == "none" else style, capsize=3,
                        color=colors.get(str(points.family.iloc[0]), "0.3"), label=model)
    for ax, label in zip(axes, ("Training steps (batch 128)", "Training MACs consumed")):
        ax.set_xscale("log")
        ax.set_xlabel(label)
    axes[0].set_xticks(ladder.rungs, [str(steps) for steps in ladder.rungs])
    axes[0].minorticks_off()
    axes[0].set_ylabel("Test top-1 accuracy (%), mean and 95% interval")
    axes[1].legend(fontsize=7, loc="lower right")
    figure.suptitle(f"{ladder.study}: accuracy against training budget", fontsize=10)
    figure.tight_layout()
    return figure


def _styles(curve: pd.DataFrame):
    """A line style per model: models of one family share a colour, so they differ in style."""
    seen, styles = {}, ["-", "--", ":", "-."]
    for _, points in curve.groupby("model", sort=True):
        family = str(points.family.iloc[0])
        yield styles[seen.get(family, 0) % len(styles)]
        seen[family] = seen.get(family, 0) + 1
