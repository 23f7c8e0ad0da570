"""Summary frames -> readable display tables, and the CSV / Markdown / LaTeX files under tables/.

CSV files keep full precision (for re-analysis and citation); Markdown and LaTeX hold the same
rounded strings the report shows. Column names say their units; MACs are multiply-adds as
counted by fvcore, FLOPs are from torch's FlopCounterMode (2 per multiply-add).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from archbench.base.numerics import precision_label
from archbench.results.frames import machines_of

from .document import markdown_table
from .labels import count_text
from .metric_display import DISPLAYS, displayed_metrics

MISSING = "—"


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, digits: int = 2, scale: float = 1.0) -> str:
    """`value / scale` rounded to `digits`, thousands separated; MISSING for null or NaN."""
    if is_missing(value):
        return MISSING
    return f"{value / scale:,.{digits}f}"


def gap_interval_text(low: float, high: float, unit: str = "") -> str:
    """'+1.63 to +6.39' (then `unit`); an interval reaching past ±100 points, which no accuracy gap can, in
    words."""
    return f"{low:+.2f} to {high:+.2f}{unit}" if max(-low, high) <= 100 else "wider than ±100 points"


def gap_points(value, digits: int = 2) -> str:
    """A gap in accuracy points; past 100 (what a seed spread can imply with 2-3 seeds, but no accuracy
    gap can be) it says so instead of printing an impossible number."""
    if is_missing(value):
        return MISSING
    return "over 100" if value > 100 else f"{value:.{digits}f}"


# After a speed figure taken under load (archbench.quiet) or an MFU that cannot be a result: shown
# greyed, never concluded from; the note under the table says why.
UNDER_LOAD_MARK = "‡"


def speed(value, digits: int, reason) -> str:
    """A latency or throughput cell: the number, marked when it was measured under load."""
    text = number(value, digits)
    return f"{text} {UNDER_LOAD_MARK}" if reason and text != MISSING else text


def mfu_text(row) -> str:
    """MFU in percent; an unusable one (peak under load, over 100%) shows as the mark, never as a number."""
    if row.get("mfu_note"):
        return f"{MISSING} {UNDER_LOAD_MARK}"
    return number(row.get("mfu"), 1, scale=0.01)


def speed_note(group: pd.DataFrame, label_column: str = "label") -> str | None:
    """The sentences under a table with speed figures: where they were measured when that is not the
    training machine, and which figures are marked (under load), with one reason of each kind."""
    notes = (_measured_elsewhere(group), _timed_precision(group), _under_load(group, label_column),
             _shared_device(group, label_column))
    return " ".join(note for note in notes if note) or None


def _shared_device(group: pd.DataFrame, label_column: str) -> str | None:
    """Training figures taken while a parallel sweep's jobs shared one GPU: said, and where to compare them."""
    shared = group[group["shared_device"].notna()] if "shared_device" in group else group.iloc[:0]
    if not len(shared):
        return None
    which = "every model" if len(shared) == len(group) else ", ".join(map(str, shared[label_column]))
    return (f"Training throughput, training time, MFU and energy of {which} were taken while the sweep's parallel "
            "jobs shared one GPU, each beside different neighbours: figures while sharing the device, comparable "
            "within this study at most; latency and throughput were timed one model at a time after training.")


def _timed_precision(group: pd.DataFrame) -> str | None:
    """Which precision latency and throughput were timed at, where it is not what every model trained in."""
    if "latency_precision" not in group or "amp" not in group:
        return None
    timed = sorted({str(value) for value in group["latency_precision"].dropna()})
    trained = {precision_label(value) for value in group["amp"].dropna()}
    if not timed or {precision.split()[0] for precision in timed} >= trained:
        return None
    return (f"Latency and throughput were timed at {' / '.join(timed)} (the measure settings), not at each model's "
            "training precision.")


def measured_elsewhere(frame: pd.DataFrame) -> list[str]:
    """The machines task=measure timed these rows on that are not the machine that made them (the rows'
    `hardware`): empty when every speed figure is the runs' own."""
    if "latency_hardware" not in frame or "hardware" not in frame:
        return []
    return sorted(machines_of(frame["latency_hardware"]) - machines_of(frame["hardware"]))


def _measured_elsewhere(group: pd.DataFrame) -> str | None:
    elsewhere = measured_elsewhere(group)
    if not elsewhere:
        return None
    trained_on = sorted({str(h) for h in group["hardware"].dropna()})
    trained = any(column in group and group[column].notna().any() for column in ("mfu", "mfu_raw", "mfu_note"))
    return (f"Latency and throughput were measured again with task=measure on {'; '.join(elsewhere)}, "
            f"not on the machine that made the runs ({'; '.join(trained_on)}): they are that machine's figures"
            + (", and the MFU stays the training machine's." if trained else "."))


def _under_load(group: pd.DataFrame, label_column: str) -> str | None:
    parts = []
    for column, what in (("latency_under_load", "latency and throughput"), ("mfu_note", "MFU")):
        marked = group[group[column].notna()] if column in group else group.iloc[:0]
        if len(marked):
            first = marked.iloc[0]
            parts.append(f"{what} of {', '.join(map(str, marked[label_column]))} (e.g. {first[label_column]}: "
                         f"{first[column]})")
    if not parts:
        return None
    return (f"{UNDER_LOAD_MARK} shown greyed, and no speed conclusion drawn from it: " + "; ".join(parts) + ".")


# After a model's name wherever its results are shown, when any of its runs was made from a
# working tree with uncommitted changes (env.git_dirty): such a result cannot be rebuilt from its commit.
DIRTY_MARK = "†"


def dirty_label(label, dirty_runs) -> str:
    """`resnet20 †` when any run behind the row was made from a dirty tree, else the label."""
    return f"{label} {DIRTY_MARK}" if _count(dirty_runs) > 0 else str(label)


def dirty_note(rows) -> str | None:
    """The sentence under a table with marked rows, or None when every run was clean.

    `rows`: (label, dirty runs, runs) for each row of the table.
    """
    marked = [(label, _count(dirty), _count(runs)) for label, dirty, runs in rows if _count(dirty) > 0]
    if not marked:
        return None
    listed = ", ".join(f"{label}: {dirty} of {count_text(runs, 'run')}" for label, dirty, runs in marked)
    return (f"{DIRTY_MARK} made from a working tree with uncommitted changes: not reproducible from "
            f"its commit ({listed}).")


def summary_dirty_note(group: pd.DataFrame) -> str | None:
    """`dirty_note` of a summary (one row per model and variant, `dirty_runs` and `seeds`)."""
    if "dirty_runs" not in group:
        return None
    return dirty_note(zip(group.label, group.dirty_runs, group.seeds))


def _count(value) -> int:
    return 0 if is_missing(value) else int(value)


def mean_pm_std(mean, std, digits: int = 2) -> str:
    if is_missing(mean):
        return MISSING
    spread = MISSING if is_missing(std) else f"{std:.{digits}f}"
    return f"{mean:.{digits}f} ± {spread}"


def millions(value) -> str:
    """Millions with enough digits to tell small CIFAR models apart."""
    if is_missing(value):
        return MISSING
    return number(value, 2 if value < 1e7 else 1, scale=1e6)


# ------------------------------------------------------------------------------- metric columns
# A metric's column (heading, style, digits) is its display (archbench.report.metric_display); the tables
# below pick metrics by name, and the comparison table also shows every metric with a display that no list
# here names, so a new metric needs no change in this module.

# What a model costs: the comparison table and the profile-only table show the same block.
COST_COLUMNS = ["params", "macs", "flops_forward", "activations", "latency_b1_ms", "throughput_img_s"]
# After the training precision in the comparison table, in the order of the committed report.
TRAINING_COLUMNS = ["ece", "nll", "mean_corruption_top1", "train_img_s", "wall_s", "mfu", "train_j_per_image",
                    "inference_j_per_image"]
HEADLINE_METRICS = ["macs", "params", "latency_b1_ms"]
PRECISION_HEADING = "Training precision"  # what train.amp resolved to: a setting, not a metric

CELL_STYLES = {
    "millions": lambda row, name, digits: millions(row.get(name)),
    "number": lambda row, name, digits: number(row.get(name), digits),
    "speed": lambda row, name, digits: speed(row.get(name), digits, row.get("latency_under_load")),
    "mfu": lambda row, name, digits: mfu_text(row),
    "mean_pm_std": lambda row, name, digits: _mean_pm_std_of(row, name, digits),
}


def heading(metric: str, device: str, trained_on: str = "the training machine") -> str:
    """A metric's column heading: `{device}` the machine its speed was timed on, `{trained_on}` the one
    that trained the runs (training throughput and time are that machine's, taken during training)."""
    return DISPLAYS[metric].heading.format(device=device, trained_on=trained_on)


def metric_cells(row, names, device: str) -> dict:
    """`{heading: text}` of the metrics `names` in a summary row, as their displays show them."""
    cells = {}
    for name in names:
        display = DISPLAYS[name]
        # a comparison pooled across machines shows one machine's training speed: name that one
        speed_machine = row.get("speed_machine") if isinstance(row.get("speed_machine"), str) else row.get("hardware")
        trained_on = speed_machine if isinstance(speed_machine, str) else "the training machine"
        cells[heading(name, device, trained_on)] = CELL_STYLES[display.style](row, name, display.digits)
    return cells


def accuracy_table_metrics() -> list[str]:
    """TRAINING_COLUMNS, then every other metric with a display that no table here names."""
    named = set(COST_COLUMNS) | set(TRAINING_COLUMNS) | set(HEADLINE_METRICS)
    return TRAINING_COLUMNS + [name for name in displayed_metrics() if name not in named]


def accuracy_table(group: pd.DataFrame, ranking: pd.DataFrame, on_front: pd.Series,
                   device: str, ttt_target) -> pd.DataFrame:
    """Display table of a train comparison (one study, data and hardware), best mean first."""
    if group.label.duplicated().any():
        raise ValueError("accuracy_table: pass the summary of one study, data and hardware; "
                         f"models appear more than once: {sorted(set(group.label[group.label.duplicated()]))}")
    ranks = ranking.set_index("label") if len(ranking) else pd.DataFrame()
    target = MISSING if is_missing(ttt_target) else f"{ttt_target:g}%"
    rows = []
    for index, row in group.sort_values(["test_top1_mean", "label"],
                                        ascending=[False, True]).iterrows():
        rows.append({
            "Rank": _rank_text(ranks, row.label),
            "With the best": _with_best_text(ranks, row.label),
            "Model": dirty_label(row.label, row.get("dirty_runs")),
            "Family": row.family or MISSING,
            "Seeds": int(row.seeds),
            "Test top-1 (%)": mean_pm_std(row.test_top1_mean, row.test_top1_std),
            "95% CI": MISSING if is_missing(row.test_top1_ci95) else f"±{row.test_top1_ci95:.2f}"
            if row.test_top1_ci95 <= 100 else "over ±100",
            "Test-set SE": MISSING if is_missing(row.test_top1_se_test)
            else f"±{row.test_top1_se_test:.2f}",
            "Test top-5 (%)": mean_pm_std(row.test_top5_mean, row.test_top5_std),
            "Val top-1 (%)": mean_pm_std(row.val_top1_mean, row.val_top1_std),
            **metric_cells(row, COST_COLUMNS, device),
            PRECISION_HEADING: row.get("amp") or MISSING,
            **metric_cells(row, accuracy_table_metrics(), device),
            f"Time to {target} (s)": _time_to_target(row),
            "Pareto (MACs)": "yes" if on_front.get(index, False) else "",
        })
    table = _without_empty(pd.DataFrame(rows), optional_headings(device))
    if is_missing(ttt_target):
        # No target accuracy was set for these runs: "not reached" would be misleading.
        table = table.drop(columns=[f"Time to {target} (s)"], errors="ignore")
    return table


def optional_headings(device: str) -> list[str]:
    """Columns left out of a table when no model has them (records made before the precision probe or the
    evaluation stage, energy off NVIDIA GPUs), so older reports do not grow columns of dashes."""
    return [PRECISION_HEADING] + [heading(name, device) for name in displayed_metrics() if DISPLAYS[name].optional]


def _without_empty(table: pd.DataFrame, columns) -> pd.DataFrame:
    empty = [column for column in columns if column in table and (table[column] == MISSING).all()]
    return table.drop(columns=empty)


def _mean_pm_std_of(row, metric: str, digits: int = 2) -> str:
    return mean_pm_std(row.get(f"{metric}_mean"), row.get(f"{metric}_std"), digits)


def _ci_text(row, metric: str, digits: int = 2, percent: bool = False) -> str:
    """'±x'; a percentage's interval wider than the whole scale (two seeds far apart) is said in words."""
    value = row.get(f"{metric}_ci95")
    if is_missing(value):
        return MISSING
    return "over ±100" if percent and value > 100 else f"±{value:.{digits}f}"


def _rank_text(ranks: pd.DataFrame, label: str) -> str:
    if label not in ranks.index:
        return MISSING
    return str(int(ranks.loc[label, "rank"]))


def _with_best_text(ranks: pd.DataFrame, label: str) -> str:
    """Whether the seeds can separate this model from the most accurate one (Holm-adjusted)."""
    if label not in ranks.index:
        return MISSING
    if label == ranks.index[0]:  # rank() lists the best mean first
        return "best"
    entry = ranks.loc[label]
    if is_missing(entry["p_holm_vs_best"]):
        return "cannot tell (1 seed)"
    verdict = "yes" if entry["with_best"] else "no"
    return f"{verdict} (Holm p={entry['p_holm_vs_best']:.2g})"


def _time_to_target(row) -> str:
    if row.ttt_reached == 0:
        return "not reached" if row.test_top1_n else MISSING
    return f"{row.ttt_s:,.0f} ({row.ttt_reached}/{row.seeds})"


def headline_table(group: pd.DataFrame, device: str) -> pd.DataFrame:
    """The short table of a headline comparison: what a reader compares first, best mean first."""
    rows = []
    for _index, row in group.sort_values(["test_top1_mean", "label"], ascending=[False, True]).iterrows():
        rows.append({
            "Model": dirty_label(row.label, row.get("dirty_runs")),
            "Test top-1 (%)": number(row.test_top1_mean, 2),
            "95% interval": MISSING if is_missing(row.test_top1_ci95) else
            f"{row.test_top1_mean - row.test_top1_ci95:.2f}–{row.test_top1_mean + row.test_top1_ci95:.2f}"
            if row.test_top1_ci95 <= 100 else "wider than 0–100",
            "Seeds": int(row.seeds),
            **metric_cells(row, HEADLINE_METRICS, device),
            PRECISION_HEADING: row.get("amp") or MISSING,
        })
    return pd.DataFrame(rows)


def profile_table(group: pd.DataFrame, device: str) -> pd.DataFrame:
    """Display table of a profile-only comparison: complexity and speed, no accuracy."""
    rows = []
    for _index, row in group.sort_values(["macs", "model"]).iterrows():
        rows.append({
            "Model": dirty_label(row.model, row.get("dirty_runs")),
            "Family": row.family or MISSING,
            **metric_cells(row, COST_COLUMNS, device),
            "Runs": int(row.seeds),
        })
    return pd.DataFrame(rows)


def evaluation_table(group: pd.DataFrame) -> pd.DataFrame:
    """Calibration and corruption robustness per model, mean ± std over seeds and the 95% CI of
    the mean; the rows of `group` (one comparison's summary) that have either, best ECE first."""
    evaluated = group[(group["ece_n"] > 0) | (group["mean_corruption_top1_n"] > 0)]
    rows = []
    for _index, row in evaluated.sort_values(["ece_mean", "label"], na_position="last").iterrows():
        rows.append({
            "Model": dirty_label(row.label, row.get("dirty_runs")),
            "Seeds": int(max(row.ece_n, row.mean_corruption_top1_n)),
            "ECE (%)": _mean_pm_std_of(row, "ece"),
            "ECE 95% CI": _ci_text(row, "ece", percent=True),
            "ECE after T (%)": _mean_pm_std_of(row, "ece_calibrated"),
            "NLL (nats)": _mean_pm_std_of(row, "nll", 3),
            "NLL 95% CI": _ci_text(row, "nll", 3),
            "NLL after T (nats)": _mean_pm_std_of(row, "nll_calibrated", 3),
            "T fits at their bound (left out of 'after T')": _rejected_fits(row),
            "Brier (0-2)": _mean_pm_std_of(row, "brier", 3),
            "Clean top-1, same images (%)": _mean_pm_std_of(row, "corruption_clean_top1"),
            "Corrupted top-1 (%)": _mean_pm_std_of(row, "mean_corruption_top1"),
            "Corrupted 95% CI": _ci_text(row, "mean_corruption_top1", percent=True),
            "Relative drop (%)": _mean_pm_std_of(row, "relative_corruption_drop", 1),
        })
    table = pd.DataFrame(rows)
    return _without_empty(table, table.columns[2:]) if len(table) else table


def _rejected_fits(row) -> str:
    """'1 of 3 runs' where a temperature fit sat at its bound (archbench.results.temperature_rejected)."""
    rejected = row.get("temperature_rejected_runs")
    if is_missing(rejected) or not rejected:
        return MISSING
    return f"{int(rejected)} of {count_text(int(row.ece_n), 'run')}"


def trials_table(trials: pd.DataFrame, tuned_keys) -> pd.DataFrame:
    """One row per candidate (trial k and its values, identical for every model), one column of
    validation top-1 per model; '*' marks each model's selected trial."""
    if trials.empty:
        return pd.DataFrame()
    best = trials.loc[trials.groupby("model")["val_top1"].idxmax().dropna()]
    selected = set(zip(best.model, best.trial))
    rows = []
    for trial, members in trials.groupby("trial", sort=True):
        row = {"Trial": str(int(trial))}
        for key in tuned_keys:
            values = pd.to_numeric(members[key], errors="coerce").dropna()
            row[key] = f"{values.iloc[0]:.3g}" if len(values) else MISSING
        for entry in members.sort_values("model").itertuples(index=False):
            mark = " *" if (entry.model, trial) in selected else ""
            row[entry.model] = MISSING if is_missing(entry.val_top1) else f"{entry.val_top1:.2f}{mark}"
        rows.append(row)
    return pd.DataFrame(rows).fillna(MISSING)


def best_trials_table(best: pd.DataFrame, trials: pd.DataFrame, curves: pd.DataFrame,
                      tuned_keys) -> pd.DataFrame:
    """Per model: the selected trial, its values and validation top-1, the spread over trials, and
    what half the trials would have been expected to find; † when any trial was made from a
    working tree with uncommitted changes."""
    rows = []
    for entry in best.sort_values(["val_top1", "model"], ascending=[False, True]).itertuples(index=False):
        scores = trials.loc[trials.model == entry.model, "val_top1"].dropna()
        curve = curves[curves.model == entry.model].set_index("trials")["expected_best"]
        half = max(1, len(scores) // 2)
        row = {"Model": dirty_label(entry.model, _dirty_count(trials[trials.model == entry.model])),
               "Trials": f"{len(scores)} of {int(entry.trials)}",
               "Selected trial": str(int(entry.trial))}
        row.update({key: _value(getattr(entry, key)) for key in tuned_keys})
        row.update({
            "Val top-1 (%)": number(entry.val_top1, 2),
            "Val loss": number(entry.val_loss, 3),
            "Median trial (%)": number(scores.median(), 2),
            "Worst trial (%)": number(scores.min(), 2),
            # One column whatever each model's count of finished trials, so no cell is left empty (NaN).
            "Expected best of half the trials (%)": _expected_best_text(curve.get(half), half, len(scores)),
        })
        rows.append(row)
    return pd.DataFrame(rows)


def _expected_best_text(value, half: int, finished: int) -> str:
    if is_missing(value):
        return f"{MISSING} (no estimate from {count_text(finished, 'finished trial')})"
    return f"{value:.2f} (best of {half} of {finished})"


def _dirty_count(runs: pd.DataFrame) -> int:
    return int(runs["git_dirty"].eq(True).sum()) if "git_dirty" in runs else 0


def runs_dirty_note(runs: pd.DataFrame, by: str = "model") -> str | None:
    """`dirty_note` of the runs behind a table whose rows are the values of `by`."""
    if runs.empty:
        return None
    return dirty_note((name, _dirty_count(members), len(members))
                      for name, members in runs.groupby(by, sort=True))


def tuning_gain_table(gain: pd.DataFrame) -> pd.DataFrame:
    """The shared-recipe and the tuned ranking side by side, tuned rank first."""
    rows = []
    for row in gain.itertuples(index=False):
        rows.append({
            "Model": row.model,
            "Rank, shared recipe": str(int(row.shared_rank)),
            "Test top-1, shared (%)": f"{row.shared_mean:.2f} ({count_text(row.shared_n, 'seed')})",
            "Rank, tuned": str(int(row.tuned_rank)),
            "Test top-1, tuned (%)": f"{row.tuned_mean:.2f} ({count_text(row.tuned_n, 'seed')})",
            "Gain (points)": f"{row.gain:+.2f}",
            "Holm p (gain)": _p_text(row.gain_p_holm),
            "lr: shared -> tuned": f"{_value(row.shared_lr)} -> {_value(row.tuned_lr)}",
            "Weight decay: shared -> tuned": f"{_value(row.shared_weight_decay)} -> "
                                             f"{_value(row.tuned_weight_decay)}",
        })
    return pd.DataFrame(rows)


def variance_table(variance: pd.DataFrame) -> pd.DataFrame:
    """Per model with a complete crossed design: the std of one run and the part of it from
    weight initialisation, from data order and the residual; shares of the variance in percent."""
    rows = []
    for row in variance[variance.complete.astype(bool)].sort_values("label").itertuples(index=False):
        rows.append({
            "Model": dirty_label(row.label, row.dirty_runs),
            "Runs": f"{row.runs} ({row.seeds} seeds × {row.order_seeds} order seeds)",
            "Mean test top-1 (%)": number(row.mean, 2),
            "Total std (points)": number(row.total_std, 3),
            "Std from init (points)": number(row.seed_std, 3),
            "Std from order (points)": number(row.order_std, 3),
            "Residual std (points)": number(row.residual_std, 3),
            "Init share (%)": number(row.seed_share, 0, scale=0.01),
            "Order share (%)": number(row.order_share, 0, scale=0.01),
            "Residual share (%)": number(row.residual_share, 0, scale=0.01),
            "F-test p (init)": _p_text(row.p_seed),
            "F-test p (order)": _p_text(row.p_order),
        })
    return pd.DataFrame(rows)


def _value(value) -> str:
    return MISSING if is_missing(value) else f"{value:.3g}"


SIGNIFICANCE_COLUMNS = ["Better", "Worse", "Gap (points)", "95% interval of the gap (unadjusted)", "Seeds", "Test",
                        "p (raw)", "Holm p", "P(better > worse)", "Noise floor (points)", "Separable gap at 80% power",
                        "Verdict"]


def significance_table(pairs: pd.DataFrame, dirty: dict | None = None) -> pd.DataFrame:
    """One row per pair: raw and Holm-adjusted p, P(A > B) with its bootstrap interval, the
    test-set noise floor, and a verdict that uses the adjusted p and the floor. `dirty` maps a
    label to its runs made from a dirty tree (marked †)."""
    dirty = dirty or {}
    rows = []
    for row in pairs.itertuples(index=False):
        rows.append({
            "Better": dirty_label(row.label_a, dirty.get(row.label_a)),
            "Worse": dirty_label(row.label_b, dirty.get(row.label_b)),
            "Gap (points)": f"{row.mean_diff:+.2f}",
            "95% interval of the gap (unadjusted)": MISSING if is_missing(getattr(row, "gap_low", None))
            else gap_interval_text(row.gap_low, row.gap_high),
            "Seeds": f"{row.n_a} vs {row.n_b}",
            "Test": "paired (seeds x images)" if str(getattr(row, "test", "")).startswith("paired") else "Welch",
            "p (raw)": _p_text(row.p_value),
            "Holm p": _p_text(row.p_holm),
            "P(better > worse)": probability_text(row),
            "Noise floor (points)": number(row.noise_floor, 2),
            "Separable gap at 80% power": gap_points(getattr(row, "detectable_gap", None)),
            "Verdict": pair_verdict(row),
        })
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def pair_verdict(pair) -> str:
    if pair.n_a < 2 or pair.n_b < 2:
        return "cannot tell (fewer than 2 seeds)"
    if pair.below_noise_floor:
        return "within test-set noise"
    return "not separated by these seeds" if pair.tie else "separated (Holm p < 0.05)"


def probability_text(pair) -> str:
    """'78% of 9 pairs [44–100%]': P(A > B) over pairs of seeds with its 95% bootstrap
    interval; a bootstrap that cannot vary (seeds that never overlap) shows no interval."""
    if is_missing(pair.p_a_beats_b):
        return MISSING
    text = f"{pair.p_a_beats_b:.0%} of {pair.n_a * pair.n_b} pairs"
    if pair.p_a_beats_b_low == pair.p_a_beats_b_high:
        return text
    return f"{text} [{pair.p_a_beats_b_low:.0%}–{pair.p_a_beats_b_high:.0%}]"


def _p_text(p_value) -> str:
    return MISSING if is_missing(p_value) else f"{p_value:.3g}"


def excluded_table(excluded: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    rows = []
    for row in excluded.sort_values("path").itertuples(index=False):
        rows.append({
            "Record": relative_path(row.path, results_dir),
            "Study": MISSING if is_missing(row.study) else row.study,
            "Model": MISSING if is_missing(row.model) else row.model,
            "Seed": MISSING if is_missing(row.seed) else str(row.seed),
            "Reason": row.reason,
        })
    return pd.DataFrame(rows, columns=["Record", "Study", "Model", "Seed", "Reason"])


def relative_path(path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


# 10 significant digits: more than any figure shows, and short of the last digits that summation order
# (SIMD width, thread count) changes between machines, so a rebuild is byte-for-byte anywhere.
CSV_FLOAT = "%.10g"


def write_table(tables_dir: Path, name: str, caption: str, display: pd.DataFrame,
                raw: pd.DataFrame | None = None, note: str | None = None) -> list[str]:
    """Write `<name>.csv` (raw numbers when given), `.md` and `.tex`, each `.md` and `.tex` with
    the `note` under the table when given; return paths relative to the report folder."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    (raw if raw is not None else display).to_csv(tables_dir / f"{name}.csv", index=False, float_format=CSV_FLOAT)
    below = f"\n{note}\n" if note else ""
    (tables_dir / f"{name}.md").write_text(f"*{caption}*\n\n{markdown_table(display)}\n{below}",
                                           encoding="utf-8")
    (tables_dir / f"{name}.tex").write_text(latex_table(display, caption, f"tab:{name}", note),
                                            encoding="utf-8")
    return [f"{tables_dir.name}/{name}.{suffix}" for suffix in ("csv", "md", "tex")]


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "--", "≥": r"$\geq$", "<": r"$<$", ">": r"$>$", "†": r"\dag{}",
    "×": r"$\times$",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in _LATEX_SPECIALS))


def latex_escape(text) -> str:
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIALS[match.group()], str(text))


def latex_table(frame: pd.DataFrame, caption: str, label: str, note: str | None = None) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); written here so no jinja2 is needed."""
    alignment = "".join("r" if _numeric_column(frame[column]) else "l" for column in frame.columns)
    header = " & ".join(latex_escape(column) for column in frame.columns) + r" \\"
    rows = [" & ".join(latex_escape(value) for value in row) + r" \\"
            for row in frame.itertuples(index=False)]
    lines = [
        "% Generated by archbench.report; needs \\usepackage{booktabs}.",
        r"\begin{table}[htbp]",
        r"\centering",
        rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{alignment}}}",
        r"\toprule",
        header,
        r"\midrule",
        *rows,
        r"\bottomrule",
        r"\end{tabular}",
        *([rf"\par\smallskip{{\footnotesize {latex_escape(note)}}}"] if note else []),
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _numeric_column(column: pd.Series) -> bool:
    cells = [str(value) for value in column if str(value) not in (MISSING, "")]
    return bool(cells) and all(re.match(r"^[+\-±]?[\d.,]", cell) for cell in cells)
