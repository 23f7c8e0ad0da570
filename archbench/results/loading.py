"""Records -> the runs table: one row per usable run, every other record with the reason it is left out,
and the per-run sections read beside it (history, per-image outcomes, calibration and robustness).

The record module reads the files and maps a record to columns (`archbench.record`); this module finds
which records are usable results. Nothing is dropped silently: `load_with_exclusions` returns every
record that cannot be used (unreadable, other schema, failed, diverged, partial, synthetic, duplicate,
a repeated tuning trial, a seed trained twice in a comparison pooled across machines) with the reason.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from archbench.outcomes import read_outcomes
from archbench.record import (RECORD_FILE, corruption_rows, decode_json_column, evaluation_columns, find_records,
                              history_rows, load_record, load_record_or_empty, metrics as declared_metrics,
                              record_columns, record_key, reliability_rows, unusable_reason)

from .frames import MODEL_KEYS, RUN_KEYS, _differing_keys, _short, model_label
from .pooling import pool_across_machines

EXCLUDED_COLUMNS = ["path", "reason", "study", "data", "model", "variant", "seed"]


def load(results_dir, include_synthetic: bool = False) -> pd.DataFrame:
    """One row per usable run found under `results_dir` (any depth), flat columns."""
    runs, _excluded = load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    return runs


def load_with_exclusions(results_dir, include_synthetic: bool = False, exclude=()):
    """Return `(runs, excluded)`: usable runs, and every other record with `path` and `reason`.

    `exclude`: folders under `results_dir` whose records are skipped, e.g. the reference records
    inside `results` when comparing the two (they would otherwise count as duplicates of the runs).
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"results_dir={str(results_dir)!r} is not a directory: pass the folder that holds "
            f"runs/<study>/<data>/<model>/seed<k>/{RECORD_FILE} (default: results)"
        )
    rows, excluded = [], []
    skipped = [Path(folder).resolve() for folder in exclude]
    for path in find_records(results_dir):
        if any(path.resolve().is_relative_to(folder) for folder in skipped):
            continue
        record, problem = load_record(path)
        if problem is None:
            row = record_columns(record, path)
            problem = unusable_reason(record, row, include_synthetic)
        if problem is None:
            rows.append(row)
        else:
            excluded.append({"path": str(path), "reason": problem, **record_key(record or {}, path)})
    runs = pd.DataFrame(rows)
    runs, duplicates = _split_duplicates(runs)
    runs, repeats = _split_repeated_trials(runs)
    runs, seeds_twice = pool_across_machines(runs)
    runs = _label_variants(runs)
    excluded_df = pd.DataFrame(excluded + duplicates + repeats + seeds_twice, columns=EXCLUDED_COLUMNS)
    return runs, excluded_df


def _label_variants(runs: pd.DataFrame) -> pd.DataFrame:
    """`variant_label`: the settings in which a model's variants differ (e.g. `lr=0.1`); empty when one.

    Seeds of one variant are averaged; different variants are different rows, named by what differs.
    """
    if runs.empty:
        return runs.assign(variant_label=pd.Series(dtype=str))
    labels = pd.Series("", index=runs.index, dtype=object)
    for _, group in runs.groupby(["study", "data", "model"], dropna=False, sort=False):
        variants = group.drop_duplicates("variant")
        if len(variants) < 2:
            continue
        settings = {row.variant: decode_json_column(row.variant_settings) for row in variants.itertuples()}
        differing = _differing_keys(settings)
        for index, row in group.iterrows():
            values = settings[row["variant"]]
            labels[index] = ", ".join(f"{_short(k)}={values.get(k)}" for k in differing)
    return runs.assign(variant_label=labels)


ORDER_SEED_KEY = "data.order_seed"


def pool_order_seeds(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs of a model whose variants differ in nothing but `data.order_seed`, pooled as one row.

    Each order seed is its own variant folder (it is part of the data identity), so `load` labels
    them `order_seed=0`, `order_seed=1`, ... For a study that varies the order seed on purpose
    (conf/experiment/variance_sources.yaml) the natural reading is one model whose runs vary in
    weight initialisation and data order: its variants get one `variant`
    (`<recipe-budget>-pooled-<digest of the shared settings>`), an empty `variant_label`, and
    `pooled_order_seeds` True; `variant_folder` keeps each run's own folder. Variants that also
    differ in anything else are left as they are. Calling it twice changes nothing more.
    """
    runs = runs.assign(variant_folder=runs["variant_folder"] if "variant_folder" in runs else runs.get("variant"),
                       pooled_order_seeds=runs["pooled_order_seeds"] if "pooled_order_seeds" in runs else False)
    if runs.empty or "variant_settings" not in runs:
        return runs
    runs = runs.copy()
    for _, group in runs.groupby(["study", "data", "model"], dropna=False, sort=False):
        variants = group.drop_duplicates("variant")
        if len(variants) < 2:
            continue
        settings = {row.variant: decode_json_column(row.variant_settings) for row in variants.itertuples()}
        if _differing_keys(settings) != [ORDER_SEED_KEY]:
            continue
        shared = {key: value for key, value in next(iter(settings.values())).items() if key != ORDER_SEED_KEY}
        digest = hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:8]
        prefixes = {str(name).rsplit("-", 1)[0] for name in settings}
        prefix = prefixes.pop() if len(prefixes) == 1 else "variants"
        runs.loc[group.index, "variant"] = f"{prefix}-pooled-{digest}"
        runs.loc[group.index, "variant_label"] = ""
        runs.loc[group.index, "pooled_order_seeds"] = True
    return runs


def _split_duplicates(runs: pd.DataFrame):
    """Keep the first record of each study/data/hardware/model/seed; averaging a seed twice
    (e.g. a copy under results/reference) would shrink the confidence interval dishonestly."""
    if runs.empty:
        return runs, []
    runs = runs.reset_index(drop=True)
    keyed = runs.assign(_seed=runs["seed"].astype(str), _task=runs["task"].astype(str))
    key_columns = MODEL_KEYS + ["_seed", "_task"]
    duplicated = keyed.duplicated(subset=key_columns, keep="first")
    first_path = keyed.groupby(key_columns, dropna=False)["path"].transform("first")
    duplicates = [
        {"path": row.path, "reason": f"duplicate of {first_path[index]} (same study, data, "
                                     "hardware, model, variant and seed)",
         "study": row.study, "data": row.data, "model": row.model, "variant": row.variant, "seed": row.seed}
        for index, row in runs[duplicated].iterrows()
    ]
    return runs[~duplicated].reset_index(drop=True), duplicates


def _split_repeated_trials(runs: pd.DataFrame):
    """Leave out every tuned run whose fingerprint (settings and seed) is a tuning trial's.

    Such a run is the selection run again: its candidate won on that very seed, so counting it would
    bias the tuned mean upwards by exactly the luck that selected it. Only runs on seeds the trials
    never used estimate how the chosen recipe does.
    """
    if runs.empty or "fingerprint" not in runs or "tuned_from" not in runs or "trial" not in runs:
        return runs, []
    trials = runs[runs["trial"].notna() & runs["fingerprint"].notna()]
    trial_of = {row.fingerprint: row for row in trials.itertuples()}
    repeated = runs["tuned_from"].notna() & runs["fingerprint"].isin(list(trial_of))
    rows = []
    for _index, row in runs[repeated].iterrows():
        trial = trial_of[row["fingerprint"]]
        rows.append({"path": row["path"],
                     "reason": f"repeats trial {int(trial.trial)} of {trial.study} (same candidate, same seed "
                               f"{row['seed']}): a selection run, not a fresh seed; rerun the tuned study on "
                               "seeds its trials never used",
                     "study": row["study"], "data": row["data"], "model": row["model"],
                     "variant": row["variant"], "seed": row["seed"]})
    return runs[~repeated].reset_index(drop=True), rows


def history(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch history of every train run in `runs` (long format, one row per run and epoch).

    Columns: the run keys, `family`, `label` (the model as displayed), then whatever each
    history entry holds (`epoch`, `val_top1`, `elapsed_s`, ...). Reads the records again from
    `runs.path`.
    """
    frames = []
    for index, row in runs.iterrows():
        if row.get("task") != "train":
            continue
        entries = history_rows(load_record_or_empty(row["path"]))
        if not entries:
            continue
        frame = pd.DataFrame(entries)
        for key in RUN_KEYS + ["order_seed", "family"]:
            frame[key] = row.get(key)
        frame["label"] = model_label(row.get("model"), row.get("variant_label"))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RUN_KEYS + ["order_seed", "family", "label", "epoch", "val_top1",
                                                "elapsed_s"])
    return pd.concat(frames, ignore_index=True)


def test_outcomes(runs: pd.DataFrame) -> dict:
    """Per-image test outcomes of the runs in `runs` that saved them (archbench.outcomes), by record path:
    `{"predicted", "labels", "correct"}` numpy arrays. Runs made before outcomes were saved are absent.

    Raises ValueError naming the file when a record's outcomes are missing or disagree with it.
    """
    found = {}
    for path in runs["path"] if "path" in runs else []:
        outcomes = read_outcomes(path, load_record_or_empty(path))
        if outcomes is not None:
            found[str(path)] = outcomes
    return found


# ------------------------------------------------------------------ calibration and robustness

def evaluation_run_columns() -> list[str]:
    """The per-run columns `with_evaluation` adds: the metrics declared at the evaluation stage, and
    `temperature_rejected`, whether the run's temperature fit sat at its bound (`temperature_rejected`)."""
    return [metric.name for metric in declared_metrics(stage="evaluation")] + ["temperature_rejected"]


# The temperature search range of records written before calibrate() stored its own (then
# archbench.evaluate.calibration.TEMPERATURE_BOUNDS), and the factor within which a fit counts as at a
# bound (calibration.BOUND_FACTOR); copied, not imported, to keep torch off the analysis path.
LEGACY_TEMPERATURE_BOUNDS = (0.05, 20.0)
BOUND_FACTOR = 1.01
SCALED_COLUMNS = ("ece_calibrated", "nll_calibrated", "brier_calibrated")


def temperature_rejected(record: dict) -> bool:
    """Whether a record's temperature fit sat at (or near) an end of its search range: no minimum inside
    it, so the scaled figures are not calibration (one such fit made test ECE 1.3 -> 11.4%). Newer records
    say so themselves (`temperature_fit.at_bound`); older ones are judged on the fitted value."""
    section = record.get("calibration") or {}
    fit = section.get("temperature_fit") or {}
    if isinstance(fit, dict) and "at_bound" in fit:
        return bool(fit["at_bound"])
    temperature = section.get("temperature")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        return False
    low, high = LEGACY_TEMPERATURE_BOUNDS
    return not low * BOUND_FACTOR < float(temperature) < high / BOUND_FACTOR


@dataclass
class Evaluation:
    """The record sections `calibration` and `robustness` of some runs, as three tables.

    `runs`: one row per run (the run keys, `path` and `evaluation_run_columns()`), NaN where a run
    has no such section. `reliability`: one row per run, scaling (`uncalibrated` or
    `temperature_scaled`) and confidence bin (`bin_lower`, `confidence` and `accuracy` in percent,
    `count` images). `corruptions`: one row per run, corruption and severity (`top1`, and the
    run's `clean_top1` on the same images).
    """
    runs: pd.DataFrame
    reliability: pd.DataFrame
    corruptions: pd.DataFrame


_LABEL_KEYS = RUN_KEYS + ["family", "label"]


def evaluation(runs: pd.DataFrame) -> Evaluation:
    """Read the calibration and robustness sections of the records behind `runs` (from `runs.path`).

    A missing or switched-off section leaves NaN: older records have none, and that is not an error.
    """
    per_run, bins, cells = [], [], []
    for _index, row in runs.iterrows():
        record = load_record_or_empty(row["path"])
        keys = {key: row.get(key) for key in RUN_KEYS + ["family"]}
        keys["label"] = model_label(row.get("model"), row.get("variant_label"))
        columns = {**evaluation_columns(record), "temperature_rejected": temperature_rejected(record)}
        if columns["temperature_rejected"]:
            # A fit at its bound is not calibration: its scaled figures stay out of every mean.
            columns.update({column: float("nan") for column in SCALED_COLUMNS})
        per_run.append({**keys, "path": row["path"], **columns})
        for scaling in ("uncalibrated",) + (() if columns["temperature_rejected"] else ("temperature_scaled",)):
            bins += [{**keys, "scaling": scaling, **entry} for entry in reliability_rows(record, scaling)]
        cells += [{**keys, **entry} for entry in corruption_rows(record)]
    return Evaluation(
        pd.DataFrame(per_run, columns=_LABEL_KEYS + ["path"] + evaluation_run_columns()),
        pd.DataFrame(bins, columns=_LABEL_KEYS + ["scaling", "bin_lower", "confidence", "accuracy", "count"]),
        pd.DataFrame(cells, columns=_LABEL_KEYS + ["corruption", "severity", "top1", "clean_top1"]))


def with_evaluation(runs: pd.DataFrame, table: Evaluation | None = None) -> pd.DataFrame:
    """`runs` with the per-run calibration and robustness columns added, so `summarize` and
    `compare(runs, metric="mean_corruption_top1")` see them."""
    columns = evaluation_run_columns()
    if runs.empty:
        return runs.assign(**{column: pd.Series(dtype=float) for column in columns})
    table = evaluation(runs) if table is None else table
    added = table.runs.set_index("path")[columns]
    return runs.drop(columns=[c for c in columns if c in runs]).join(added, on="path")
