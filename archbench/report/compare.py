"""`archbench-report compare BASE NEW [--study NAME] [--out DIR] [--include-synthetic]`

Does NEW reproduce BASE within noise? Each side is a results folder (or any folder above its
record.json files). Runs are matched by study, data, model and settings fingerprint (the variant
folder: every setting except the seed), so runs from other machines, versions and commits match;
a variant left unmatched pairs with one that differs only in the requested precision or layout.
Per match: the change in test and validation top-1 with a 95% interval from the seeds and the test
images, the change in ECE, and latency, throughput and training speed as NEW/BASE ratios with each
side's spread; every difference in provenance (commit, versions, device, precision, layout,
threads) is named. Exit code 0 when no match is worse beyond noise, 1 when one is, 2 for bad input.
A table goes to the terminal; README.md, index.html, compare.csv and one figure go to --out.

The matching, the changes and their verdicts are `archbench.results.reproduction`'s; this module reads
the two sides and lays the comparison out.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

# The Agg backend and the deterministic metadata are set by .figures, which archbench.report imports first.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from archbench.base.files import atomic_write_bytes
from archbench.record import RECORD_FILE
from archbench.results import load_with_exclusions, with_evaluation
from archbench.results.reproduction import (BETTER, FASTER, MIXED, NOT_MEASURED, SAME, SAME_SPEED, SLOWER,
                                            SPEED_METRICS, UNKNOWN, WORSE, match_runs, with_provenance)

from .document import Figure, Glance, Heading, Paragraph, Table, render_html, render_markdown
from .figures import save
from .folder import write_then_swap_in

EXIT_SAME, EXIT_WORSE, EXIT_BAD_INPUT = 0, 1, 2
# Git-ignored (.gitignore), so a comparison never lands in tracked files.
DEFAULT_OUT = "results/compare"
MARKER = ".archbench-compare"

# Exclusion reasons (archbench.results) that a results folder may rightly hold: a run that failed
# or is still running, a smoke test, a second copy. Any other reason is a broken record: bad input.
BENIGN_EXCLUSIONS = ("failed", "diverged", "status ", "synthetic", "duplicate")


class CompareInputError(ValueError):
    """Input that cannot be compared; the message names the value and the fix."""


# ----------------------------------------------------------------------------------------- input

@dataclass
class Side:
    name: str          # BASE or NEW
    folder: Path
    runs: pd.DataFrame
    excluded: pd.DataFrame


def load_side(name: str, folder, study=None, include_synthetic=False, exclude=()) -> Side:
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareInputError(
            f"{name}={str(folder)!r} is not a folder: pass a results folder (one that holds "
            "runs/<study>/...), e.g. results/reference for the committed reference records, or "
            "results for your own runs")
    runs, excluded = load_with_exclusions(folder, include_synthetic=include_synthetic, exclude=exclude)
    if runs.empty and excluded.empty:
        raise CompareInputError(f"{name}={str(folder)!r} holds no {RECORD_FILE}: run a study first "
                                "(e.g. archbench -m experiment=demo), or pass the folder that holds runs/")
    wanted = _studies(study)
    if wanted:
        if not runs.empty:
            runs = runs[runs.study.isin(wanted)]
        excluded = excluded[excluded.study.isin(wanted) | excluded.study.isna()]
    broken = excluded[~excluded.reason.astype(str).str.startswith(BENIGN_EXCLUSIONS)]
    if len(broken):
        first = broken.iloc[0]
        more = f" (and {len(broken) - 1} more malformed records)" if len(broken) > 1 else ""
        raise CompareInputError(
            f"{name} record {first.path} is malformed: {first.reason}{more}. Fix or remove that file "
            "(a rerun of its run rewrites it), or compare a folder without it")
    if runs.empty:
        available = sorted({str(s) for s in load_with_exclusions(folder, include_synthetic, exclude)[0]
                            .get("study", pd.Series(dtype=str)).dropna()})
        hint = (f"; studies there: {', '.join(available)}" if available
                else "; every record there was excluded (failed, partial, synthetic: "
                     "--include-synthetic counts smoke tests)")
        raise CompareInputError(f"{name}={str(folder)!r} has no usable runs"
                                + (f" of study {study!r}" if wanted else "") + hint)
    runs = with_evaluation(runs)
    return Side(name, folder, with_provenance(runs), excluded)


def _studies(study) -> list[str]:
    return [name.strip() for name in str(study).split(",") if name.strip()] if study else []


# ------------------------------------------------------------------------------------ comparison

@dataclass
class Comparison:
    rows: pd.DataFrame        # one row per matched model and settings
    only_base: pd.DataFrame   # match keys + label + seeds
    only_new: pd.DataFrame
    base: Side
    new: Side

    @property
    def worse(self) -> pd.DataFrame:
        return self.rows[self.rows.accuracy == WORSE]

    def exit_code(self) -> int:
        return EXIT_WORSE if len(self.worse) else EXIT_SAME


def compare_sides(base: Side, new: Side) -> Comparison:
    return Comparison(*match_runs(base.runs, new.runs), base, new)


# ---------------------------------------------------------------------------------------- output

def overall(comparison: Comparison) -> list[tuple[str, str]]:
    rows = comparison.rows
    accuracy = rows[rows.accuracy != NOT_MEASURED] if len(rows) else rows
    lines = []
    if len(accuracy) == 0:
        lines.append(("Accuracy", "no matched run measured accuracy"))
    elif len(comparison.worse):
        lines.append(("Accuracy", f"{WORSE}: {', '.join(_names(comparison.worse))}"))
    else:
        better = accuracy[accuracy.accuracy == BETTER]
        unknown = accuracy[accuracy.accuracy == UNKNOWN]
        text = (f"{BETTER}: {', '.join(_names(better))}; the rest {SAME}" if len(better)
                else f"{SAME} ({len(accuracy) - len(unknown)} of {len(accuracy)} matches)")
        if len(unknown):
            text += f"; {UNKNOWN} (one seed a side): {', '.join(_names(unknown))}"
        lines.append(("Accuracy", text))
    for verdict in (SLOWER, FASTER, MIXED):
        matched = rows[rows.speed == verdict] if len(rows) else rows
        if len(matched):
            lines.append((f"Speed: {verdict}", ", ".join(f"{name} ({detail})" for name, detail in
                                                       zip(_names(matched), matched.speed_detail))))
    if not any(title.startswith("Speed") for title, _ in lines):
        found = set(rows.speed) if len(rows) else set()
        lines.append(("Speed", SAME_SPEED if SAME_SPEED in found else
                      f"{UNKNOWN} (one run a side and no measured range)" if UNKNOWN in found else "not measured"))
    differences = sorted({part for text in rows.get("provenance", []) for part in text.split("; ") if part})
    lines.append(("Provenance", "; ".join(differences) if differences else "no difference"))
    lines.append(("Matched", f"{len(rows)} model settings; {len(comparison.only_base)} only in BASE, "
                             f"{len(comparison.only_new)} only in NEW"))
    return lines


def _names(rows: pd.DataFrame) -> list[str]:
    return [f"{study}/{label}" for study, label in zip(rows.study, rows.label)]


def _num(value, digits=2, sign=False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NOT_MEASURED
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _change(delta, half) -> str:
    if math.isnan(delta):
        return NOT_MEASURED
    if math.isnan(half):
        return f"{delta:+.2f} (interval unknown)"
    if half > 100:  # two seeds far apart: no accuracy change can span this, so say it in words
        return f"{delta:+.2f} (interval wider than ±100 points)"
    return f"{delta:+.2f} [{delta - half:+.2f}, {delta + half:+.2f}]"


def _ratio(row: dict, column: str, unit: str, spreads: bool) -> str:
    ratio = row[f"{column}_ratio"]
    if math.isnan(ratio):
        return NOT_MEASURED
    text = f"×{ratio:.2f}"
    low, high = row[f"{column}_ratio_low"], row[f"{column}_ratio_high"]
    if not math.isnan(low):
        text += f" [{low:.2f}, {high:.2f}]"
    if spreads:
        def side(name):
            return (f"{row[f'{column}_{name}']:.3g} ({row[f'{column}_{name}_low']:.3g}–"
                    f"{row[f'{column}_{name}_high']:.3g})")
        text = f"{side('base')} → {side('new')} {unit}: {text}"
    verdict = row[f"{column}_verdict"]
    return text + (f" {verdict}" if verdict in (FASTER, SLOWER) else "")


def display_table(rows: pd.DataFrame, spreads: bool) -> pd.DataFrame:
    table = []
    for row in rows.to_dict("records"):
        entry = {"study": row["study"], "model": row["label"],
                 "seeds": f"{row['seeds_base']} → {row['seeds_new']}",
                 "test top-1 %": f"{_num(row['test_top1_base'])} → {_num(row['test_top1_new'])}",
                 "Δ test [95%]": _change(row["test_top1_delta"], row["test_top1_half"]),
                 "accuracy": row["accuracy"],
                 "Δ val [95%]": _change(row["val_top1_delta"], row["val_top1_half"]),
                 "Δ ECE %": _change(row["ece_delta"], row["ece_half"])}
        for column, label, unit, _higher in SPEED_METRICS:
            entry[label] = _ratio(row, column, unit, spreads)
        entry["speed"] = row["speed"]
        if spreads:
            entry["provenance differences"] = row["provenance"] or "none"
        entry["note"] = row["note"]
        table.append(entry)
    return pd.DataFrame(table)


INTERVAL_TEXT = ("Δ is NEW minus BASE, in points; the 95% interval combines the spread over seeds "
                 "(Welch's t; a side with one seed borrows the other side's spread) and the test-set "
                 "sampling error (binomial, as in the report's noise floor). Accuracy is worse or better "
                 "only when the whole interval is below or above zero. Speeds are NEW/BASE ratios of the "
                 "geometric means over runs, with a 95% interval over runs (log scale); each side's "
                 "spread is its slowest and fastest run (one run: its p10–p90). Faster or slower means "
                 "the interval excludes ×1.00 (one run a side: the ranges do not overlap).")


def terminal_text(comparison: Comparison) -> str:
    lines = [f"archbench compare: BASE {comparison.base.folder} vs NEW {comparison.new.folder}", ""]
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        if len(comparison.rows):
            lines += [display_table(comparison.rows, spreads=False).to_string(index=False), ""]
    differing = comparison.rows[comparison.rows.provenance != ""] if len(comparison.rows) else comparison.rows
    for text, group in differing.groupby("provenance", sort=True) if len(differing) else []:
        lines.append(f"provenance differs ({', '.join(_names(group))}): {text}")
    for name, only in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
        if len(only):
            lines.append(f"only in {name} ({len(only)}): "
                         + ", ".join(f"{r.study}/{r.label} [{r.variant}]" for r in only.itertuples()))
    for side in (comparison.base, comparison.new):
        if len(side.excluded):
            lines.append(f"excluded from {side.name} ({len(side.excluded)}): "
                         + "; ".join(f"{path} ({reason})" for path, reason in
                                     zip(side.excluded.path, side.excluded.reason)))
    lines += ["", *[f"{title}: {text}" for title, text in overall(comparison)]]
    return "\n".join(lines)


def delta_figure(rows: pd.DataFrame):
    """Per-model change in test top-1 with its 95% interval, coloured by verdict; None if none."""
    points = rows[np.isfinite(pd.to_numeric(rows.get("test_top1_delta"), errors="coerce"))] if len(rows) else rows
    if len(points) == 0:
        return None
    colors = {WORSE: "tab:red", BETTER: "tab:green", SAME: "0.35", UNKNOWN: "tab:orange"}
    figure, axes = plt.subplots(figsize=(6.4, 1.2 + 0.28 * len(points)), layout="constrained")
    positions = np.arange(len(points))[::-1]
    for position, row in zip(positions, points.itertuples()):
        half = row.test_top1_half if np.isfinite(row.test_top1_half) else None
        axes.errorbar(row.test_top1_delta, position, xerr=half, fmt="o", capsize=3,
                      color=colors.get(row.accuracy, "0.35"),
                      markerfacecolor="none" if half is None else None)
    axes.axvline(0, color="0.6", linewidth=1)
    axes.set_yticks(positions, [f"{s}/{label}" for s, label in zip(points.study, points.label)], fontsize=7)
    axes.set_xlabel("Δ test top-1, NEW − BASE (points, 95% interval)")
    axes.set_title("red: worse beyond noise · green: better · grey: same within noise", fontsize=8)
    return figure


def write_report(comparison: Comparison, out, command: str) -> Path:
    """Write README.md, index.html, compare.csv and figures/ into `out`, swapped in when complete.

    `out` must be new, empty or an earlier comparison (its marker file), so a comparison never
    overwrites a tracked file or a user's folder.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise CompareInputError(
            f"--out {str(out)!r} exists and is not an earlier comparison (no {MARKER} file), so it "
            f"will not be replaced: pass a new or empty folder, e.g. --out {DEFAULT_OUT}")
    write_then_swap_in(out, lambda folder: _write_files(comparison, folder, command))
    return out


def _write_files(comparison: Comparison, folder: Path, command: str):
    blocks = [Heading("archbench compare", 1),
              Paragraph(f"BASE: {comparison.base.folder}. NEW: {comparison.new.folder}. "
                        f"Made by: {command}"),
              Glance(overall(comparison)), Paragraph(INTERVAL_TEXT)]
    if len(comparison.rows):
        comparison.rows.to_csv(folder / "compare.csv", index=False)
        blocks.append(Table("compare", "Matched runs (study, data, model and settings)",
                            display_table(comparison.rows, spreads=True), files=["compare.csv"]))
        figure = delta_figure(comparison.rows)
        if figure is not None:
            png, svg = save(figure, folder / "figures", "test_top1_delta")
            blocks.append(Figure("Change in test top-1 per model, with its 95% interval", png, svg))
    for name, only in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
        if len(only):
            blocks.append(Paragraph(f"Only in {name}: " + ", ".join(
                f"{r.study}/{r.label} ({r.seeds} seeds, {r.variant})" for r in only.itertuples())))
    for side in (comparison.base, comparison.new):
        if len(side.excluded):
            blocks.append(Paragraph(f"Excluded from {side.name}: " + "; ".join(
                f"{path} ({reason})" for path, reason in zip(side.excluded.path, side.excluded.reason))))
    atomic_write_bytes(folder / "README.md", render_markdown(blocks).encode())
    atomic_write_bytes(folder / "index.html", render_html(blocks, folder, "archbench compare").encode())
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    atomic_write_bytes(folder / MARKER, ("\n".join([command, *written]) + "\n").encode())


# ------------------------------------------------------------------------------------------- CLI

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archbench-report compare",
        description="Does NEW reproduce BASE within noise? Exit code 0: nothing worse beyond noise; "
                    "1: some accuracy worse beyond noise; 2: bad input.")
    parser.add_argument("base", help="results folder of the reference, e.g. results/reference")
    parser.add_argument("new", help="results folder to check, e.g. results")
    parser.add_argument("--study", help="compare only this study (comma-separated for several)")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"folder for README.md, index.html, compare.csv and the figure "
                             f"(default {DEFAULT_OUT}, git-ignored)")
    parser.add_argument("--include-synthetic", action="store_true",
                        help="also compare runs on synthetic data (smoke tests)")
    return parser


def main(arguments=None) -> int:
    arguments = sys.argv[1:] if arguments is None else list(arguments)
    try:
        options = _parser().parse_args(arguments)
    except SystemExit as exit_:  # argparse has printed the usage or the error
        return int(exit_.code or 0)
    try:
        base_folder, new_folder = Path(options.base), Path(options.new)
        # A reference folder inside the other side (results/reference in results) is not a rerun of itself.
        base = load_side("BASE", base_folder, options.study, options.include_synthetic,
                         exclude=_nested(new_folder, base_folder))
        new = load_side("NEW", new_folder, options.study, options.include_synthetic,
                        exclude=_nested(base_folder, new_folder))
        comparison = compare_sides(base, new)
        if comparison.rows.empty:
            raise CompareInputError(
                f"no run in NEW={options.new!r} matches one in BASE={options.base!r} (same study, data, "
                f"model and settings): BASE has {_keys_text(comparison.only_base)}; NEW has "
                f"{_keys_text(comparison.only_new)}. Run NEW with the same experiment and settings")
        print(terminal_text(comparison))
        command = "archbench-report compare " + " ".join(arguments)
        out = write_report(comparison, options.out, command)
    except CompareInputError as error:
        print(f"archbench-report compare: error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"\ncomparison written to {out}/README.md and {out}/index.html")
    return comparison.exit_code()


def _nested(inner: Path, outer: Path) -> list[Path]:
    """`[inner]` when it is a folder strictly inside `outer`, else nothing to leave out."""
    inner, outer = inner.resolve(), outer.resolve()
    return [inner] if inner != outer and inner.is_relative_to(outer) else []


def _keys_text(only: pd.DataFrame) -> str:
    if only.empty:
        return "nothing"
    shown = [f"{r.study}/{r.model} [{r.variant}]" for r in only.head(4).itertuples()]
    return ", ".join(shown) + (f" and {len(only) - 4} more" if len(only) > 4 else "")


if __name__ == "__main__":
    sys.exit(main())
