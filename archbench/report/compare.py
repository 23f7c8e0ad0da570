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
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from archbench.base.files import atomic_write_bytes
from archbench.record import PROVENANCE, RECORD_FILE, load_record_or_empty, provenance_columns
from archbench.results import load_with_exclusions, model_label, with_evaluation
from archbench.stats import finite, noise_floor

EXIT_SAME, EXIT_WORSE, EXIT_BAD_INPUT = 0, 1, 2
# Git-ignored (.gitignore), so a comparison never lands in tracked files.
DEFAULT_OUT = "results/compare"
MARKER = ".archbench-compare"
CONFIDENCE = 0.95
MATCH_KEYS = ["study", "data", "model", "variant"]
# Settings that ask for a precision or layout; the one chosen is provenance (see _request_pairs).
PRECISION_REQUESTS = ("recipe.amp", "recipe.channels_last")

SAME, BETTER, WORSE, UNKNOWN = "same within noise", "better", "worse beyond noise", "undetermined"
FASTER, SLOWER, SAME_SPEED, MIXED = "faster", "slower", "same within spread", "mixed"
NOT_MEASURED = "—"
# A side whose latency and throughput were all taken under load (archbench.quiet): no speed verdict, as in the report.
UNDER_LOAD = "not compared: taken under load"
# Latency and throughput carry the quiet check's mark; training throughput is timed while training.
LOAD_MARKED = ("latency_b1_ms", "throughput_img_s")

# Exclusion reasons (archbench.results) that a results folder may rightly hold: a run that failed
# or is still running, a smoke test, a second copy. Any other reason is a broken record: bad input.
BENIGN_EXCLUSIONS = ("failed", "diverged", "status ", "synthetic", "duplicate")

# (column, label, unit, True when higher is faster)
SPEED_METRICS = [("latency_b1_ms", "latency", "ms", False),
                 ("throughput_img_s", "throughput", "img/s", True),
                 ("train_img_s", "train img/s", "img/s", True)]

class CompareInputError(ValueError):
    """Input that cannot be compared; the message names the value and the fix."""


# ------------------------------------------------------------------------------------ statistics

def difference_interval(base, new, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """`(mean(new) - mean(base), half-width of its interval over seeds)`, Welch's t.

    A side with one seed borrows the other side's standard deviation: a reproduction with one seed
    against a reference with three is the common case, and its spread is the same kind of spread.
    The half-width is NaN when neither side has two seeds (the spread is unknown, not zero).
    """
    a, b = finite(base), finite(new)
    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    delta = float(b.mean() - a.mean())
    sa = float(a.std(ddof=1)) if len(a) > 1 else math.nan
    sb = float(b.std(ddof=1)) if len(b) > 1 else math.nan
    if math.isnan(sa) and math.isnan(sb):
        return delta, math.nan
    if math.isnan(sa) or math.isnan(sb):
        measured = len(a) if math.isnan(sb) else len(b)
        spread = sb if math.isnan(sa) else sa
        df = measured - 1
        variance = spread ** 2 / len(a) + spread ** 2 / len(b)
    else:
        va, vb = sa ** 2 / len(a), sb ** 2 / len(b)
        variance = va + vb
        # Welch-Satterthwaite; both spreads zero (exact reproduction) leaves nothing to widen.
        df = variance ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if variance > 0 else 1
    if variance == 0:
        return delta, 0.0
    return delta, float(stats.t.ppf(0.5 + confidence / 2, df) * math.sqrt(variance))


def accuracy_change(base, new, images) -> dict:
    """Change in an accuracy (points) with its interval from the seeds and from the finite test set.

    The two half-widths add in quadrature. The test-set part is `archbench.stats.noise_floor`,
    as in the report's pairwise tests; it treats both sides' test errors as independent, which
    on a shared test set overstates it, so a change called noise could never be resolved.
    """
    a, b = finite(base), finite(new)
    delta, seed_half = difference_interval(a, b)
    if math.isnan(delta):
        return {"delta": math.nan, "seed_half": math.nan, "test_half": math.nan, "half": math.nan,
                "verdict": NOT_MEASURED}
    test_half = noise_floor(a.mean(), b.mean(), images)
    parts = [part for part in (seed_half, test_half) if not math.isnan(part)]
    half = math.hypot(*parts) if parts else math.nan
    if delta == 0:
        verdict = SAME
    elif math.isnan(seed_half):
        verdict = UNKNOWN  # one seed a side: seeds often differ by more than the test set can
    elif delta + half < 0:
        verdict = WORSE
    elif delta - half > 0:
        verdict = BETTER
    else:
        verdict = SAME
    return {"delta": delta, "seed_half": seed_half, "test_half": test_half, "half": half,
            "verdict": verdict}


def speed_change(base, new, base_ranges, new_ranges, higher_is_faster: bool) -> dict:
    """NEW/BASE ratio of a speed figure with its 95% interval, and each side's spread.

    Speeds are compared on the log scale (a ratio), runs being the repetitions: Welch's interval
    of the difference of mean logs, a one-run side borrowing the other's spread. With one run a
    side, the runs' own measurement ranges (p10-p90) must not overlap. The centre of a side is the
    geometric mean over runs, its spread the smallest and largest run (or the one run's p10-p90).
    """
    a, b = finite(base), finite(new)
    a, b = a[a > 0], b[b > 0]
    empty = {"base": math.nan, "new": math.nan, "base_low": math.nan, "base_high": math.nan,
             "new_low": math.nan, "new_high": math.nan, "ratio": math.nan, "ratio_low": math.nan,
             "ratio_high": math.nan, "verdict": NOT_MEASURED}
    if len(a) == 0 or len(b) == 0:
        return empty
    delta, half = difference_interval(np.log(a), np.log(b))
    row = {**empty, "base": float(np.exp(np.log(a).mean())), "new": float(np.exp(np.log(b).mean())),
           "ratio": float(np.exp(delta))}
    for side, values, ranges in (("base", a, base_ranges), ("new", b, new_ranges)):
        low, high = (values.min(), values.max()) if len(values) > 1 else _one_range(ranges)
        row[f"{side}_low"], row[f"{side}_high"] = float(low), float(high)
    if not math.isnan(half):
        row["ratio_low"], row["ratio_high"] = float(np.exp(delta - half)), float(np.exp(delta + half))
        above, below = row["ratio_low"] > 1, row["ratio_high"] < 1
    else:
        above = row["new_low"] > row["base_high"]
        below = row["new_high"] < row["base_low"]
    if delta == 0 or not (above or below):
        known = not math.isnan(half) or not math.isnan(row["base_low"] + row["new_low"])
        row["verdict"] = SAME_SPEED if known or delta == 0 else UNKNOWN
    else:
        row["verdict"] = FASTER if above == higher_is_faster else SLOWER
    return row


def _one_range(ranges) -> tuple[float, float]:
    ranges = [pair for pair in ranges if pair is not None and all(np.isfinite(pair))]
    return ranges[0] if len(ranges) == 1 else (math.nan, math.nan)


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
    return Side(name, folder, _with_provenance(runs), excluded)


def _studies(study) -> list[str]:
    return [name.strip() for name in str(study).split(",") if name.strip()] if study else []


def _with_provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """The provenance fields and the runs' own speed ranges, read from each record."""
    extra = [provenance_columns(load_record_or_empty(path)) for path in runs["path"]]
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)


# ------------------------------------------------------------------------------------ comparison

@dataclass
class Comparison:
    rows: pd.DataFrame        # one row per matched model and settings
    only_base: pd.DataFrame   # MATCH_KEYS + label + seeds
    only_new: pd.DataFrame
    base: Side
    new: Side

    @property
    def worse(self) -> pd.DataFrame:
        return self.rows[self.rows.accuracy == WORSE]

    def exit_code(self) -> int:
        return EXIT_WORSE if len(self.worse) else EXIT_SAME


def compare_sides(base: Side, new: Side) -> Comparison:
    base_groups = dict(list(base.runs.groupby(MATCH_KEYS, dropna=False, sort=True)))
    new_groups = dict(list(new.runs.groupby(MATCH_KEYS, dropna=False, sort=True)))
    pairs = [(key, key) for key in sorted(base_groups.keys() & new_groups.keys())]
    pairs += _request_pairs({k: v for k, v in base_groups.items() if k not in new_groups},
                            {k: v for k, v in new_groups.items() if k not in base_groups})
    rows = [_row(base_key, base_groups[base_key], new_groups[new_key]) for base_key, new_key in sorted(pairs)]
    matched_base, matched_new = {b for b, _ in pairs}, {n for _, n in pairs}
    return Comparison(pd.DataFrame(rows), _only(base_groups, matched_base), _only(new_groups, matched_new),
                      base, new)


def _request_pairs(base_left: dict, new_left: dict) -> list[tuple]:
    """Unmatched variants that differ only in the requested precision or layout, paired one to one.

    `train.amp=auto` and `off` are different settings (variant folders), yet what matters is the
    precision a run chose, which is compared as provenance: so a run with the default `auto`
    still answers whether it reproduces a reference made with `off`. Exact matches come first,
    and a variant that could pair with two is left unpaired rather than guessed.
    """
    def relaxed(groups):
        keyed = {}
        for key, group in groups.items():
            settings = {k: v for k, v in _settings(group).items() if k not in PRECISION_REQUESTS}
            keyed.setdefault((*key[:3], json.dumps(settings, sort_keys=True, default=str)), []).append(key)
        return keyed
    base_keyed, new_keyed = relaxed(base_left), relaxed(new_left)
    return [(base_keyed[k][0], new_keyed[k][0]) for k in base_keyed.keys() & new_keyed.keys()
            if len(base_keyed[k]) == 1 and len(new_keyed[k]) == 1]


def _settings(group: pd.DataFrame) -> dict:
    text = group["variant_settings"].dropna()
    return json.loads(text.iloc[0]) if len(text) else {}


def _only(these: dict, others) -> pd.DataFrame:
    rows = [{**dict(zip(MATCH_KEYS, key)), "label": _label(group), "seeds": len(group)}
            for key, group in sorted(these.items()) if key not in others]
    return pd.DataFrame(rows, columns=MATCH_KEYS + ["label", "seeds"])


def _label(group: pd.DataFrame) -> str:
    labels = group.get("variant_label", pd.Series(dtype=str)).dropna()
    label = model_label(group.model.iloc[0], labels.iloc[0] if len(labels) else None)
    # Tuned learning rates print with 17 digits; three tell the variants apart.
    return re.sub(r"\d+\.\d{4,}(?:e-?\d+)?", lambda number: f"{float(number.group()):.3g}", label)


def _first(*series):
    for values in series:
        present = pd.to_numeric(values, errors="coerce").dropna() if values is not None else []
        if len(present):
            return float(present.iloc[0])
    return None


def _row(key, base: pd.DataFrame, new: pd.DataFrame) -> dict:
    row = {**dict(zip(MATCH_KEYS, key)), "variant_new": new.variant.iloc[0], "label": _label(base),
           "seeds_base": len(base), "seeds_new": len(new)}
    for metric, size in (("test_top1", "test_size"), ("val_top1", "val_size")):
        change = accuracy_change(base[metric], new[metric], _first(base.get(size), new.get(size)))
        row[f"{metric}_base"] = _mean(base[metric])
        row[f"{metric}_new"] = _mean(new[metric])
        row.update({f"{metric}_{name}": value for name, value in change.items()})
    ece_delta, ece_half = difference_interval(base.get("ece", []), new.get("ece", []))
    row.update(ece_base=_mean(base.get("ece")), ece_new=_mean(new.get("ece")), ece_delta=ece_delta,
               ece_half=ece_half)
    row["accuracy"] = row.pop("test_top1_verdict")
    speed_verdicts = {}
    for column, label, _unit, higher in SPEED_METRICS:
        ranges = {"latency_b1_ms": "latency_range", "throughput_img_s": "throughput_range"}.get(column)
        quiet_base, quiet_new = (_quiet(base), _quiet(new)) if column in LOAD_MARKED else (base, new)
        change = speed_change(quiet_base[column], quiet_new[column],
                              list(quiet_base[ranges]) if ranges else [], list(quiet_new[ranges]) if ranges else [],
                              higher)
        if column in LOAD_MARKED and (quiet_base.empty or quiet_new.empty) and not (base.empty or new.empty):
            change["verdict"] = UNDER_LOAD  # a figure taken beside other work says nothing about the code
        row.update({f"{column}_{name}": value for name, value in change.items()})
        speed_verdicts[label] = change["verdict"]
    row["speed"] = _speed_verdict(speed_verdicts)
    row["speed_detail"] = "; ".join(f"{label} {verdict}" for label, verdict in speed_verdicts.items()
                                    if verdict in (FASTER, SLOWER))
    differences = _setting_differences(base, new) + _provenance_differences(base, new)
    row["provenance"] = "; ".join(differences)
    row["note"] = _note(row, differences)
    return row


def _quiet(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs whose latency and throughput were not marked as taken under load."""
    return runs[runs["latency_under_load"].isna()] if "latency_under_load" in runs else runs


def _mean(values) -> float:
    values = finite(pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")) if values is not None else []
    return float(np.mean(values)) if len(values) else math.nan


def _speed_verdict(verdicts: dict) -> str:
    found = set(verdicts.values())
    if {FASTER, SLOWER} <= found:
        return MIXED
    for verdict in (SLOWER, FASTER, SAME_SPEED, UNKNOWN):
        if verdict in found:
            return verdict
    return NOT_MEASURED


def _provenance_differences(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    differences = []
    for name, _keys in PROVENANCE:
        before, after = _values(base[f"prov:{name}"], name), _values(new[f"prov:{name}"], name)
        if before != after:
            differences.append(f"{name} {', '.join(before)} → {', '.join(after)}")
    return differences


def _setting_differences(base: pd.DataFrame, new: pd.DataFrame) -> list[str]:
    before, after = _settings(base), _settings(new)
    return [f"setting {key} {before.get(key)} → {after.get(key)}" for key in PRECISION_REQUESTS
            if before.get(key) != after.get(key)]


def _values(series: pd.Series, name: str) -> list[str]:
    values = sorted(set(series.astype(str)))
    return [value[:7] for value in values] if name == "commit" else values


def _note(row: dict, differences: list[str]) -> str:
    """Why a row is not the same: the provenance that differs, else a call for a rerun."""
    changed = row["accuracy"] in (WORSE, BETTER) or row["speed"] in (FASTER, SLOWER, MIXED)
    if not changed:
        return ""
    if len(differences) == 1:
        return f"likely cause: {differences[0]} (the only difference in provenance)"
    if differences:
        return f"likely cause: one of its {len(differences)} provenance differences (listed with the table)"
    return "same code, versions and machine: rerun to tell a change from noise"


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
    from . import figures  # noqa: F401  (sets the Agg backend and the deterministic metadata)
    import matplotlib.pyplot as plt

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
    from .document import Figure, Glance, Heading, Paragraph, Table, render_html, render_markdown
    from .figures import save
    from .folder import swap_in

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise CompareInputError(
            f"--out {str(out)!r} exists and is not an earlier comparison (no {MARKER} file), so it "
            f"will not be replaced: pass a new or empty folder, e.g. --out {DEFAULT_OUT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        blocks = [Heading("archbench compare", 1),
                  Paragraph(f"BASE: {comparison.base.folder}. NEW: {comparison.new.folder}. "
                            f"Made by: {command}"),
                  Glance(overall(comparison)), Paragraph(INTERVAL_TEXT)]
        if len(comparison.rows):
            comparison.rows.to_csv(staging / "compare.csv", index=False)
            blocks.append(Table("compare", "Matched runs (study, data, model and settings)",
                                display_table(comparison.rows, spreads=True), files=["compare.csv"]))
            figure = delta_figure(comparison.rows)
            if figure is not None:
                png, svg = save(figure, staging / "figures", "test_top1_delta")
                blocks.append(Figure("Change in test top-1 per model, with its 95% interval", png, svg))
        for name, only in (("BASE", comparison.only_base), ("NEW", comparison.only_new)):
            if len(only):
                blocks.append(Paragraph(f"Only in {name}: " + ", ".join(
                    f"{r.study}/{r.label} ({r.seeds} seeds, {r.variant})" for r in only.itertuples())))
        for side in (comparison.base, comparison.new):
            if len(side.excluded):
                blocks.append(Paragraph(f"Excluded from {side.name}: " + "; ".join(
                    f"{path} ({reason})" for path, reason in zip(side.excluded.path, side.excluded.reason))))
        atomic_write_bytes(staging / "README.md", render_markdown(blocks).encode())
        atomic_write_bytes(staging / "index.html",
                           render_html(blocks, staging, "archbench compare").encode())
        written = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        atomic_write_bytes(staging / MARKER, ("\n".join([command, *written]) + "\n").encode())
    except BaseException:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
        raise
    swap_in(staging, out)
    return out


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
