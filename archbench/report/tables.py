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

from .document import markdown_table

MISSING = "—"


def is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value, digits: int = 2, scale: float = 1.0) -> str:
    """`value / scale` rounded to `digits`, thousands separated; MISSING for null or NaN."""
    if is_missing(value):
        return MISSING
    return f"{value / scale:,.{digits}f}"


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
            "Model": row.label,
            "Family": row.family or MISSING,
            "Seeds": int(row.seeds),
            "Test top-1 (%)": mean_pm_std(row.test_top1_mean, row.test_top1_std),
            "95% CI": MISSING if is_missing(row.test_top1_ci95) else f"±{row.test_top1_ci95:.2f}",
            "Test-set SE": MISSING if is_missing(row.test_top1_se_test)
            else f"±{row.test_top1_se_test:.2f}",
            "Test top-5 (%)": mean_pm_std(row.test_top5_mean, row.test_top5_std),
            "Val top-1 (%)": mean_pm_std(row.val_top1_mean, row.val_top1_std),
            "Params (M)": millions(row.params),
            "MACs (M)": millions(row.macs),
            "FLOPs (M)": millions(row.flops_forward),
            f"Batch-1 latency (ms, {device})": number(row.latency_b1_ms, 2),
            f"Throughput (img/s, {device})": number(row.throughput_img_s, 0),
            "Train (img/s)": number(row.train_img_s, 0),
            "Training time (s)": number(row.wall_s, 0),
            "MFU (%)": number(row.mfu, 1, scale=0.01),
            f"Time to {target} (s)": _time_to_target(row),
            "Pareto (MACs)": "yes" if on_front.get(index, False) else "",
        })
    table = pd.DataFrame(rows)
    if is_missing(ttt_target):
        # No target accuracy was set for these runs: "not reached" would be misleading.
        table = table.drop(columns=[f"Time to {target} (s)"], errors="ignore")
    return table


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


def profile_table(group: pd.DataFrame, device: str) -> pd.DataFrame:
    """Display table of a profile-only comparison: complexity and speed, no accuracy."""
    rows = []
    for _index, row in group.sort_values(["macs", "model"]).iterrows():
        rows.append({
            "Model": row.model,
            "Family": row.family or MISSING,
            "Params (M)": millions(row.params),
            "MACs (M)": millions(row.macs),
            "FLOPs (M)": millions(row.flops_forward),
            f"Batch-1 latency (ms, {device})": number(row.latency_b1_ms, 2),
            f"Throughput (img/s, {device})": number(row.throughput_img_s, 0),
            "Runs": int(row.seeds),
        })
    return pd.DataFrame(rows)


SIGNIFICANCE_COLUMNS = ["Better", "Worse", "Gap (points)", "Seeds", "Welch p (raw)", "Holm p",
                        "P(better > worse)", "Noise floor (points)", "Verdict"]


def significance_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: raw and Holm-adjusted p, P(A > B) with its bootstrap interval, the
    test-set noise floor, and a verdict that uses the adjusted p and the floor."""
    rows = []
    for row in pairs.itertuples(index=False):
        rows.append({
            "Better": row.label_a,
            "Worse": row.label_b,
            "Gap (points)": f"{row.mean_diff:+.2f}",
            "Seeds": f"{row.n_a} vs {row.n_b}",
            "Welch p (raw)": _p_text(row.p_value),
            "Holm p": _p_text(row.p_holm),
            "P(better > worse)": probability_text(row),
            "Noise floor (points)": number(row.noise_floor, 2),
            "Verdict": pair_verdict(row),
        })
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def pair_verdict(pair) -> str:
    if pair.n_a < 2 or pair.n_b < 2:
        return "cannot tell (fewer than 2 seeds)"
    if pair.below_noise_floor:
        return "within test-set noise"
    return "not separated" if pair.tie else "significant (Holm p < 0.05)"


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


def write_table(tables_dir: Path, name: str, caption: str, display: pd.DataFrame,
                raw: pd.DataFrame | None = None) -> list[str]:
    """Write `<name>.csv` (raw numbers when given), `.md` and `.tex`; return paths relative
    to the report folder."""
    tables_dir.mkdir(parents=True, exist_ok=True)
    (raw if raw is not None else display).to_csv(tables_dir / f"{name}.csv", index=False)
    (tables_dir / f"{name}.md").write_text(f"*{caption}*\n\n{markdown_table(display)}\n",
                                           encoding="utf-8")
    (tables_dir / f"{name}.tex").write_text(latex_table(display, caption, f"tab:{name}"),
                                            encoding="utf-8")
    return [f"{tables_dir.name}/{name}.{suffix}" for suffix in ("csv", "md", "tex")]


_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "--", "≥": r"$\geq$", "<": r"$<$", ">": r"$>$",
}
_LATEX_PATTERN = re.compile("|".join(re.escape(char) for char in _LATEX_SPECIALS))


def latex_escape(text) -> str:
    return _LATEX_PATTERN.sub(lambda match: _LATEX_SPECIALS[match.group()], str(text))


def latex_table(frame: pd.DataFrame, caption: str, label: str) -> str:
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
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _numeric_column(column: pd.Series) -> bool:
    cells = [str(value) for value in column if str(value) not in (MISSING, "")]
    return bool(cells) and all(re.match(r"^[+\-±]?[\d.,]", cell) for cell in cells)
