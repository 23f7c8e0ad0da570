"""Does NEW reproduce BASE? The runs of two results folders matched by study, data, model and settings
fingerprint (the variant: every setting except the seed), and per match the change in test and validation
top-1 with a 95% interval from the seeds and the test images, the change in ECE, latency, throughput and
training speed as NEW/BASE ratios with each side's spread, a verdict on each, and every difference in
provenance (commit, versions, device, precision, layout, threads). `archbench.report.compare` is its
command line.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from archbench.record import (PROVENANCE, decode_json_column, encode_json_column, load_record_or_empty,
                              provenance_columns)
from archbench.stats import finite, noise_floor, welch_interval

from .frames import model_label

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


# (column, label, unit, True when higher is faster)
SPEED_METRICS = [("latency_b1_ms", "latency", "ms", False),
                 ("throughput_img_s", "throughput", "img/s", True),
                 ("train_img_s", "train img/s", "img/s", True)]


# ------------------------------------------------------------------------------- changes and verdicts

def accuracy_change(base, new, images) -> dict:
    """Change in an accuracy (points) with its interval from the seeds and from the finite test set.

    The two half-widths add in quadrature. The test-set part is `archbench.stats.noise_floor`,
    as in the report's pairwise tests; it treats both sides' test errors as independent, which
    on a shared test set overstates it, so a change called noise could never be resolved.
    """
    a, b = finite(base), finite(new)
    # A one-seed side borrows the other side's spread: a reproduction with one seed against a reference
    # with three is the common case, and its spread is the same kind of spread.
    seeds = welch_interval(b, a, CONFIDENCE, borrow_spread=True)
    delta, seed_half = seeds.gap, seeds.half
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
    logs = welch_interval(np.log(b), np.log(a), CONFIDENCE, borrow_spread=True)
    delta, half = logs.gap, logs.half
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


# -------------------------------------------------------------------------------------- matching

def with_provenance(runs: pd.DataFrame) -> pd.DataFrame:
    """The provenance fields and the runs' own speed ranges, read from each record: what `match_runs`
    needs beyond `results.load`'s columns."""
    extra = [provenance_columns(load_record_or_empty(path)) for path in runs["path"]]
    return pd.concat([runs.reset_index(drop=True), pd.DataFrame(extra)], axis=1)


def match_runs(base: pd.DataFrame, new: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """`(rows, only_base, only_new)`: one row per matched model and settings (its changes, verdicts and
    provenance differences), and MATCH_KEYS, label and seeds of each variant that only BASE or only NEW ran.
    Both sides are runs `with_provenance`."""
    base_groups = dict(list(base.groupby(MATCH_KEYS, dropna=False, sort=True)))
    new_groups = dict(list(new.groupby(MATCH_KEYS, dropna=False, sort=True)))
    pairs = [(key, key) for key in sorted(base_groups.keys() & new_groups.keys())]
    pairs += _request_pairs({k: v for k, v in base_groups.items() if k not in new_groups},
                            {k: v for k, v in new_groups.items() if k not in base_groups})
    rows = [_row(base_key, base_groups[base_key], new_groups[new_key]) for base_key, new_key in sorted(pairs)]
    matched_base, matched_new = {b for b, _ in pairs}, {n for _, n in pairs}
    return pd.DataFrame(rows), _only(base_groups, matched_base), _only(new_groups, matched_new)


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
            keyed.setdefault((*key[:3], encode_json_column(settings)), []).append(key)
        return keyed
    base_keyed, new_keyed = relaxed(base_left), relaxed(new_left)
    return [(base_keyed[k][0], new_keyed[k][0]) for k in base_keyed.keys() & new_keyed.keys()
            if len(base_keyed[k]) == 1 and len(new_keyed[k]) == 1]


def _settings(group: pd.DataFrame) -> dict:
    text = group["variant_settings"].dropna()
    return decode_json_column(text.iloc[0]) if len(text) else {}


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
    ece = welch_interval(new.get("ece", []), base.get("ece", []), CONFIDENCE, borrow_spread=True)
    ece_delta, ece_half = ece.gap, ece.half
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
