"""Run records -> pandas tables: one row per run, one row per model, pairwise significance.

Reads the `record.json` files that `archbench/record.py` writes; the record module owns the format and
the mapping from a record to the flat columns here (`archbench.record.record_columns`: one row per run,
units in the column names). Nothing here imports torch or Hydra, so results can be analysed on any
machine with pandas and scipy.

Records that cannot be used (unreadable, other schema, failed, diverged, partial, synthetic,
duplicate) are never dropped silently: `load_with_exclusions` returns them with the reason.
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from archbench.stats import (binomial_se, detectable_gap, expected_max_curve, finite, gap_interval, holm,
                             rank_agreement, rank_distribution, noise_floor, prob_outperform, prob_outperform_interval,
                             seed_means, seeds_needed, tau_interval, two_level_means, variance_components,
                             welch_p_value)
from archbench.record import READABLE_SCHEMAS, RECORD_FILENAME, SCHEMA as SCHEMA_VERSION, record_columns, record_key

# A model is identified within a comparison by these keys; runs from different machines are
# never pooled, because latency, throughput and even accuracy (nondeterministic kernels) differ.
GROUP_KEYS = ["study", "data", "hardware"]
# One row of a comparison is one model under one setting (variant); within it only seeds vary.
MODEL_KEYS = GROUP_KEYS + ["model", "variant"]
RUN_KEYS = MODEL_KEYS + ["seed"]

# Summarised over seeds with mean, standard deviation, 95% confidence interval and count.
ACCURACY_METRICS = ["test_top1", "test_top5", "val_top1"]
# Summarised over seeds with the mean only: they describe the model or the machine, not luck.
COST_METRICS = [
    "params",
    "trainable_params",
    "macs",
    "flops_forward",
    "flops_train",
    "latency_b1_ms",
    "throughput_img_s",
    "train_img_s",
    "wall_s",
    "mfu",
    "train_j_per_image",
    "inference_j_per_image",
    "ttt_s",
]
SIGNIFICANCE_LEVEL = 0.05

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
            f"runs/<study>/<data>/<model>/seed<k>/{RECORD_FILENAME} (default: results)"
        )
    rows, excluded = [], []
    skipped = [Path(folder).resolve() for folder in exclude]
    for path in sorted(results_dir.glob(f"**/{RECORD_FILENAME}")):
        if any(path.resolve().is_relative_to(folder) for folder in skipped):
            continue
        record, problem = _read_record(path)
        if problem is None:
            row = record_columns(record, path)
            problem = _unusable_reason(record, row, include_synthetic)
        if problem is None:
            rows.append(row)
        else:
            excluded.append({"path": str(path), "reason": problem, **record_key(record or {}, path)})
    runs = pd.DataFrame(rows)
    runs, duplicates = _split_duplicates(runs)
    runs, repeats = _split_repeated_trials(runs)
    runs = _label_variants(runs)
    excluded_df = pd.DataFrame(excluded + duplicates + repeats, columns=EXCLUDED_COLUMNS)
    return runs, excluded_df


def _read_record(path: Path):
    """Return `(record, None)` or `(None, reason)` for a file that is not a readable record."""
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
    except json.JSONDecodeError as error:
        return None, (f"unreadable: corrupt JSON ({error.msg}, line {error.lineno} column "
                      f"{error.colno}); rerun this run")
    except (OSError, UnicodeDecodeError) as error:
        return None, f"unreadable: {error}"
    if not isinstance(record, dict):
        return None, f"unreadable: top level is a {type(record).__name__}, not a JSON object"
    return record, None


def _unusable_reason(record: dict, row: dict, include_synthetic: bool):
    """Why this record must not be averaged in, or None when it is a usable result."""
    schema = record.get("schema")
    if schema not in READABLE_SCHEMAS:
        if not isinstance(schema, int):
            return f"schema {schema!r} is not an archbench record schema (expected {SCHEMA_VERSION})"
        if schema < min(READABLE_SCHEMAS):
            return (f"schema {schema} is older than the schemas this archbench reads "
                    f"({', '.join(map(str, READABLE_SCHEMAS))}): rerun or migrate")
        return (f"schema {schema} is newer than this archbench's schema {SCHEMA_VERSION}: "
                "upgrade archbench")
    status = record.get("status")
    if status in ("failed", "diverged"):
        error = _error_text(record.get("error"))
        return f"{status}" + (f": {error}" if error else "")
    if status != "complete":
        return f"status {status!r} is not 'complete' (partial or interrupted run)"
    if row.get("synthetic") and not include_synthetic:
        return "synthetic data (a smoke test, not a result); include_synthetic=true to show it"
    missing = [key for key in ("study", "data", "model") if _is_missing(row.get(key))]
    if missing:
        return f"missing {', '.join(missing)}: cannot tell which comparison this run belongs to"
    if row.get("task") == "train":
        test_top1 = row.get("test_top1")
        if _is_missing(test_top1):
            return "train record without a test_top1 metric (partial run?)"
        for metric in ACCURACY_METRICS + ["test_top5"]:
            value = row.get(metric)
            if not _is_missing(value) and not 0.0 <= value <= 100.0:
                return (f"{metric}={value} is outside [0, 100]: accuracies are percentages, "
                        "the writer must multiply fractions by 100")
    elif row.get("task") != "profile":
        return f"task {row.get('task')!r} is neither 'train' nor 'profile'"
    return None


def _error_text(error) -> str:
    """One short line from a record's error (a dict with type and message, or text)."""
    if error is None:
        return ""
    if isinstance(error, dict):
        text = ": ".join(str(part) for part in (error.get("type"), error.get("message")) if part)
    else:
        text = str(error)
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= 200 else first[:197] + "..."


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


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
        settings = {row.variant: json.loads(row.variant_settings) for row in variants.itertuples()}
        differing = _differing_keys(settings)
        for index, row in group.iterrows():
            values = settings[row["variant"]]
            labels[index] = ", ".join(f"{_short(k)}={values.get(k)}" for k in differing)
    return runs.assign(variant_label=labels)


def _short(key: str) -> str:
    """`recipe.optimizer.lr` -> `lr`: the last part, or the last two where one part is ambiguous."""
    parts = key.split(".")
    return parts[-1] if parts[-1] not in ("value", "name", "kind") else ".".join(parts[-2:])


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
        settings = {row.variant: json.loads(row.variant_settings) for row in variants.itertuples()}
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


def _differing_keys(settings: dict) -> list[str]:
    """The flattened setting keys whose values differ between variants (variant -> settings)."""
    keys = sorted({k for values in settings.values() for k in values})
    return [k for k in keys if len({json.dumps(v.get(k), sort_keys=True) for v in settings.values()}) > 1]


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
        record, problem = _read_record(Path(row["path"]))
        entries = (record or {}).get("history") or []
        entries = [entry for entry in entries if isinstance(entry, dict)]
        if problem is not None or not entries:
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
    from archbench.outcomes import read_outcomes

    found = {}
    for path in runs["path"] if "path" in runs else []:
        record, _problem = _read_record(Path(path))
        outcomes = read_outcomes(path, record or {})
        if outcomes is not None:
            found[str(path)] = outcomes
    return found


# What tells two rows of one comparison apart: the model, and its variant once the records
# carry one. Derived from the keys so that a new identity key needs no change here.
ENTRY_KEYS = [key for key in MODEL_KEYS if key not in GROUP_KEYS]


def model_label(model, variant_label=None) -> str:
    """The model as a reader sees it: `resnet20`, or `resnet20 (lr=0.05)` for one variant of
    several."""
    text = str(model)
    if isinstance(variant_label, str) and variant_label.strip():
        text += f" ({variant_label.strip()})"
    return text


# Summarised like accuracy (mean, std, 95% CI over seeds); present once `with_evaluation` added
# them. ECE in percent, NLL in nats per image, Brier 0-2, corruption accuracies in percent.
EVALUATION_METRICS = ["ece", "nll", "brier", "ece_calibrated", "nll_calibrated",
                      "corruption_clean_top1", "mean_corruption_top1", "relative_corruption_drop"]
# Like COST_METRICS (the mean over runs): fvcore's activation count of one forward pass.
DESCRIPTIVE_METRICS = ["activations"]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per study, data, hardware and model (per `MODEL_KEYS`).

    Accuracies, and the calibration and corruption metrics when `runs` carries them (see
    `with_evaluation`), get `<metric>_mean`, `_std` (sample), `_ci95` (half-width, Student t)
    and `_n` (seeds with a value); cost columns get the mean over runs; `amp` lists the
    training precisions; `dirty_runs` counts runs made from a working tree with uncommitted
    changes (env.git_dirty); `seeds` counts runs and
    `ttt_reached` counts runs that reached the time-to-target accuracy. `test_top1_se_test`
    is the binomial standard error of the mean test top-1 given `test_size` test images.
    """
    _require_columns(runs, MODEL_KEYS, "summarize")
    if runs.empty:
        return pd.DataFrame(columns=MODEL_KEYS + ["label", "family", "seeds"])
    rows = []
    for keys, group in runs.groupby(MODEL_KEYS, dropna=False, sort=True):
        row = dict(zip(MODEL_KEYS, keys))
        variant_label = _first_present(group.get("variant_label"))
        row["label"] = model_label(row["model"], variant_label)
        row["variant_label"] = variant_label
        row["data_label"] = _first_present(group.get("data_label"))
        row["family"] = _first_present(group.get("family"))
        row["task"] = ",".join(sorted(group["task"].dropna().astype(str).unique())) \
            if "task" in group else None
        for column in ("recipe", "recipe_config", "budget"):
            row[column] = _first_present(group.get(column))
        for column in ("train_size", "val_size", "test_size"):
            row[column] = _first_present(group.get(column))
        row["seeds"] = len(group)
        for metric in ACCURACY_METRICS + EVALUATION_METRICS:
            values = _values(group, metric)
            mean, std, ci95 = mean_std_ci95(values)
            row.update({f"{metric}_mean": mean, f"{metric}_std": std,
                        f"{metric}_ci95": ci95, f"{metric}_n": len(values)})
        row["test_top1_se_test"] = binomial_se(row["test_top1_mean"], row["test_size"])
        for metric in COST_METRICS + DESCRIPTIVE_METRICS:
            values = _values(group, metric)
            row[metric] = float(values.mean()) if len(values) else math.nan
        # The precision training ran in (train.amp=auto picks it per model), e.g. 'bf16'.
        row["amp"] = _distinct_text(group.get("amp"))
        row["ttt_reached"] = len(_values(group, "ttt_s"))
        # Speed figures taken under load, and MFUs that cannot be shown (archbench.quiet): the reason, or None.
        for column in ("latency_under_load", "mfu_note"):
            notes = group[column].dropna() if column in group else pd.Series(dtype=object)
            row[column] = notes.iloc[0] if len(notes) else None
            row[f"{column}_runs"] = len(notes)
        # Variants that differ only in data.order_seed, pooled as one row (pool_order_seeds).
        row["pooled_order_seeds"] = bool(group["pooled_order_seeds"].fillna(False).astype(bool).any()) \
            if "pooled_order_seeds" in group else False
        row["order_seeds"] = int(group["order_seed"].nunique()) if "order_seed" in group else 0
        # Runs made from a working tree with uncommitted changes: not reproducible from their commit.
        row["dirty_runs"] = int(group["git_dirty"].eq(True).sum()) if "git_dirty" in group else 0
        # Runs whose accuracy is within noise of chance: they learned nothing measurable.
        row["near_chance_runs"] = int(group["near_chance"].fillna(False).astype(bool).sum()) \
            if "near_chance" in group else 0
        rows.append(row)
    return pd.DataFrame(rows)


VARIANCE_FACTORS = {"seed": "weight initialisation", "order_seed": "data order and augmentation draws"}
VARIANCE_COLUMNS = MODEL_KEYS + [
    "label", "family", "metric", "runs", "seeds", "order_seeds", "complete", "missing", "mean", "runs_std",
    "total_std", "seed_std", "order_std", "residual_std", "seed_share", "order_share", "residual_share",
    "seed_var_raw", "order_var_raw", "p_seed", "p_order", "dirty_runs"]


def variance_sources(runs: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """Where the spread of `metric` over runs comes from, for every model whose runs cross seeds
    (weight initialisation) with order seeds (data order and augmentation draws).

    One row per study, data, hardware, model and variant (after `pool_order_seeds`) whose train
    runs have two or more seeds and two or more order seeds, crossed: some seed ran with two
    order seeds and some order seed with two seeds. (A run without an explicit order seed draws
    its order from its seed, so an ordinary seeds-only study is never crossed.) When every
    (seed, order seed) combination ran exactly once (`complete`), `archbench.stats.
    variance_components` splits the variance of one run into `seed`, `order` and `residual`
    (interaction and noise) parts: `*_std` is the square root of each part, `total_std` of their
    sum, `*_share` each part over the sum (0-1), `*_var_raw` the estimate before clipping at 0,
    and `p_seed` / `p_order` the F test of each factor. `runs_std` is the plain sample std over
    the runs. An incomplete design gets `complete` False, NaN parts and `missing` naming the gaps.
    """
    if runs.empty or "order_seed" not in runs:
        return pd.DataFrame(columns=VARIANCE_COLUMNS)
    runs = pool_order_seeds(runs)
    train = runs[(runs.task == "train") & np.isfinite(pd.to_numeric(runs[metric], errors="coerce"))]
    rows = []
    for keys, group in train.groupby(MODEL_KEYS, dropna=False, sort=True):
        if not _crossed(group):
            continue
        seeds, orders = sorted(group.seed.unique()), sorted(group.order_seed.unique())
        row = {**dict(zip(MODEL_KEYS, keys)), "metric": metric,
               "label": model_label(keys[MODEL_KEYS.index("model")], _first_present(group.get("variant_label"))),
               "family": _first_present(group.get("family")), "runs": len(group), "seeds": len(seeds),
               "order_seeds": len(orders), "mean": float(group[metric].mean()),
               "runs_std": float(group[metric].std(ddof=1)),
               "dirty_runs": int(group["git_dirty"].eq(True).sum()) if "git_dirty" in group else 0}
        missing = _design_gaps(group, seeds, orders)
        row.update(complete=not missing, missing="; ".join(missing))
        if missing:
            rows.append(row)
            continue
        parts = variance_components(group, metric, ["seed", "order_seed"])
        components = parts["components"]
        row.update(total_std=math.sqrt(parts["total"]),
                   seed_std=math.sqrt(components["seed"]), order_std=math.sqrt(components["order_seed"]),
                   residual_std=math.sqrt(components["residual"]),
                   seed_share=parts["shares"]["seed"], order_share=parts["shares"]["order_seed"],
                   residual_share=parts["shares"]["residual"], seed_var_raw=parts["raw"]["seed"],
                   order_var_raw=parts["raw"]["order_seed"], p_seed=parts["p_values"]["seed"],
                   p_order=parts["p_values"]["order_seed"])
        rows.append(row)
    return pd.DataFrame(rows, columns=VARIANCE_COLUMNS)


def _crossed(group: pd.DataFrame) -> bool:
    """Two or more seeds and order seeds, and each varied while the other stayed fixed."""
    if group.seed.nunique() < 2 or group.order_seed.nunique() < 2:
        return False
    return (group.groupby("seed").order_seed.nunique().max() >= 2
            and group.groupby("order_seed").seed.nunique().max() >= 2)


def _design_gaps(group: pd.DataFrame, seeds, orders) -> list[str]:
    """What keeps a crossed design from being complete: missing and repeated combinations."""
    counts = group.groupby(["seed", "order_seed"]).size()
    gaps = [f"seed {seed} with order seed {order} missing" for seed in seeds for order in orders
            if (seed, order) not in counts.index]
    gaps += [f"seed {seed} with order seed {order} {count} times" for (seed, order), count in counts.items()
             if count > 1]
    return gaps


def mean_std_ci95(values) -> tuple[float, float, float]:
    """Mean, sample standard deviation and 95% confidence half-width (Student t).

    With one value the spread is unknown, so std and ci95 are NaN rather than zero.
    """
    values = finite(values)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    std = float(values.std(ddof=1))
    ci95 = float(stats.t.ppf(0.975, len(values) - 1) * std / math.sqrt(len(values)))
    return mean, std, ci95


def _values(group: pd.DataFrame, column: str) -> pd.Series:
    if column not in group:
        return pd.Series(dtype=float)
    values = pd.to_numeric(group[column], errors="coerce")
    return values[np.isfinite(values)]


def _distinct_text(series):
    """The distinct values of a column joined ('bf16' or 'bf16, off'); None when none is set."""
    if series is None:
        return None
    present = sorted({str(value) for value in series.dropna()})
    return ", ".join(present) if present else None


def _first_present(series):
    if series is None:
        return None
    present = series.dropna()
    return present.iloc[0] if len(present) else None


def _require_columns(frame: pd.DataFrame, columns, caller: str):
    missing = [column for column in columns if column not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"{caller}: missing columns {missing}; pass the DataFrame from "
                         "archbench.results.load(results_dir)")


def _entries(group: pd.DataFrame, metric: str) -> list[dict]:
    """The rows of one comparison with their seeds' values of `metric`, best mean first."""
    entries = []
    for keys, entry_runs in group.groupby(ENTRY_KEYS, dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        values = _values(entry_runs, metric)
        if len(values):
            entries.append({
                "keys": dict(zip(ENTRY_KEYS, keys)),
                "label": model_label(keys[0], _first_present(entry_runs.get("variant_label"))),
                "values": values.to_numpy(),
                "paths": [str(path) for path in entry_runs.loc[values.index, "path"]] if "path" in entry_runs
                else [],
                "test_size": _first_present(entry_runs.get("test_size")),
            })
    return sorted(entries, key=lambda entry: (-entry["values"].mean(), entry["label"]))


COMPARE_COLUMNS = (GROUP_KEYS + [f"{key}_a" for key in ENTRY_KEYS]
                   + [f"{key}_b" for key in ENTRY_KEYS]
                   + ["label_a", "label_b", "mean_a", "mean_b", "mean_diff", "n_a", "n_b",
                      "p_value", "p_holm", "tie", "p_a_beats_b", "p_a_beats_b_low",
                      "p_a_beats_b_high", "noise_floor", "below_noise_floor", "test", "gap_low", "gap_high",
                      "gap_se", "detectable_gap", "seeds_needed"])

# How a pair was tested: paired over test images where every run saved its outcomes, else the fallback.
PAIRED_TEST = "paired bootstrap over seeds and test images"
UNPAIRED_TEST = "Welch over seeds, independent test-set floor (no per-image outcomes)"


def compare(runs: pd.DataFrame, metric: str = "test_top1", outcomes: dict | None = None) -> pd.DataFrame:
    """Every pair of models within each study, data and hardware, `model_a` the higher mean.

    For test top-1, where every run of both models saved its per-image outcomes (`outcomes`, as from
    `test_outcomes(runs)`, read here when None), the gap is tested by a two-level bootstrap that draws
    the test images once for both models (they are paired) and the seeds within each
    (`archbench.stats.two_level_means`): `gap_low`/`gap_high` its 95% interval, `gap_se` its standard
    error, `p_value` the normal p from it; test-set sampling is then inside the interval, so there is
    no separate floor. Otherwise (`test` says which) `p_value` is the two-sided Welch t-test over seeds,
    `gap_low`/`gap_high` Welch's interval, and `noise_floor` is the smallest gap a test set of
    `test_size` images can resolve with the two models' errors taken as independent;
    `below_noise_floor` marks a smaller gap, whatever the seeds say.
    `p_holm` is Holm-adjusted over all pairs of the same comparison, and `tie` (not separated) uses
    it: `p_holm >= 0.05`, or fewer than two seeds on either side. `p_a_beats_b` is P(A > B) over
    pairs of seeds with its 95% bootstrap interval. `detectable_gap` is the gap this pair's seeds
    would separate with 80% power at Holm's strictest threshold, and `seeds_needed` roughly how many
    seeds per model would separate the observed gap (inf: more seeds cannot, the test set limits it).
    """
    if runs.empty:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    _require_columns(runs, MODEL_KEYS + [metric], "compare")
    if outcomes is None and metric == "test_top1":
        outcomes = test_outcomes(runs[runs["outcomes_file"].notna()]) if "outcomes_file" in runs else {}
    frames = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        entries = _entries(group, metric)
        samples = _paired_samples(entries, outcomes if metric == "test_top1" else None)
        tests = len(entries) * (len(entries) - 1) // 2
        rows = [_pair_row(dict(zip(GROUP_KEYS, keys)), entries[i], entries[j],
                          None if samples is None else (samples[:, i], samples[:, j]), tests)
                for i, j in itertools.combinations(range(len(entries)), 2)]
        if rows:
            frame = pd.DataFrame(rows)
            # One family of tests per comparison: the pairs a reader scans together.
            frame["p_holm"] = holm(frame["p_value"])
            frame["tie"] = ~(frame["p_holm"] < SIGNIFICANCE_LEVEL)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    return pd.concat(frames, ignore_index=True)[COMPARE_COLUMNS]


def _outcome_matrix(entry: dict, outcomes: dict | None):
    """(seeds, images) 0/1 outcomes of one entry, or None unless every one of its runs saved them."""
    if not outcomes or not entry["paths"] or any(path not in outcomes for path in entry["paths"]):
        return None
    rows = [outcomes[path]["correct"] for path in entry["paths"]]
    return np.array(rows, dtype=float) if len({len(row) for row in rows}) == 1 else None


def _paired_samples(entries: list[dict], outcomes: dict | None):
    """Two-level bootstrap means (resamples, entries) when every entry has outcomes on one test set."""
    matrices = [_outcome_matrix(entry, outcomes) for entry in entries]
    if len(entries) < 2 or any(matrix is None for matrix in matrices) or \
            len({matrix.shape[1] for matrix in matrices}) != 1:
        return None
    # Paired only when every run saw the same labels in the same order: the same test images.
    labels = [outcomes[path]["labels"] for entry in entries for path in entry["paths"]]
    if any(not np.array_equal(labels[0], other) for other in labels[1:]):
        return None
    return two_level_means(matrices)


def _pair_row(group_keys: dict, better: dict, worse: dict, samples, tests: int) -> dict:
    a, b = better["values"], worse["values"]
    low, high = prob_outperform_interval(a, b)
    gap = float(a.mean() - b.mean())
    seed_spread = math.sqrt(np.var(a, ddof=1) + np.var(b, ddof=1)) if min(len(a), len(b)) >= 2 else math.nan
    seeds = min(len(a), len(b))
    row = {
        **group_keys,
        **{f"{key}_a": value for key, value in better["keys"].items()},
        **{f"{key}_b": value for key, value in worse["keys"].items()},
        "label_a": better["label"], "label_b": worse["label"],
        "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": gap,
        "n_a": len(a), "n_b": len(b),
        "p_holm": math.nan, "tie": True,
        "p_a_beats_b": prob_outperform(a, b), "p_a_beats_b_low": low, "p_a_beats_b_high": high,
    }
    if samples is not None:
        interval = gap_interval(samples[0], samples[1], gap)
        # The part of the bootstrap variance more seeds would not shrink: test-set sampling.
        seed_part = (np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b)) if seeds >= 2 else 0.0
        fixed = math.sqrt(max(interval["se"] ** 2 - seed_part, 0.0))
        row.update(test=PAIRED_TEST, noise_floor=math.nan, below_noise_floor=False,
                   p_value=interval["p_value"] if seeds >= 2 else math.nan,
                   gap_low=interval["low"], gap_high=interval["high"], gap_se=interval["se"])
    else:
        floor = noise_floor(a.mean(), b.mean(), _first_of(better["test_size"], worse["test_size"]))
        welch_low, welch_high, se = _welch_interval(a, b)
        fixed = floor / 1.959964 if np.isfinite(floor) else 0.0
        row.update(test=UNPAIRED_TEST, noise_floor=floor, below_noise_floor=bool(gap < floor),
                   p_value=welch_p_value(a, b), gap_low=welch_low, gap_high=welch_high, gap_se=se)
    row["detectable_gap"] = detectable_gap(seed_spread, seeds, tests, fixed) if np.isfinite(seed_spread) \
        else math.nan
    row["seeds_needed"] = seeds_needed(gap, seed_spread, tests, fixed) if np.isfinite(seed_spread) else math.nan
    return row


def _welch_interval(a, b) -> tuple[float, float, float]:
    """Welch's 95% interval of mean(a) - mean(b) and its standard error; NaN with fewer than two seeds."""
    if min(len(a), len(b)) < 2:
        return math.nan, math.nan, math.nan
    se = math.sqrt(np.var(a, ddof=1) / len(a) + np.var(b, ddof=1) / len(b))
    if se == 0:
        gap = float(a.mean() - b.mean())
        return gap, gap, 0.0
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return float(interval.low), float(interval.high), se


def _first_of(*values):
    return next((value for value in values if not _is_missing(value)), None)


RANK_COLUMNS = MODEL_KEYS + ["label", "mean", "n", "rank", "with_best", "p_holm_vs_best", "share_first", "rank_low",
                             "rank_high", "rank_basis"]


def rank(runs: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """Rank models within each study, data and hardware by mean `metric`, best first.

    `rank` is 1 + the number of models with a strictly higher mean, so a worse mean never gets
    a better rank. `with_best` is True for the best model and for every model the seeds cannot
    separate from it (Holm-adjusted p >= 0.05 against the best, or fewer than two seeds);
    `p_holm_vs_best` is that adjusted p-value. `share_first` is the share of bootstrap resamples in
    which the model has the best mean, `rank_low`..`rank_high` its 95% rank interval, and
    `rank_basis` what was resampled (`bootstrap_means`).
    """
    if runs.empty:
        return pd.DataFrame(columns=RANK_COLUMNS)
    outcomes = _outcomes_if_any(runs, metric)
    pairs = compare(runs, metric, outcomes)
    rows = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        group_keys = dict(zip(GROUP_KEYS, keys))
        entries = _entries(group, metric)
        group_pairs = _rows_with(pairs, group_keys)
        means = [entry["values"].mean() for entry in entries]
        if not entries:
            continue
        samples, basis = _samples(entries, outcomes)
        spread = rank_distribution(samples)
        for position, entry in enumerate(entries):
            versus_best = _pair_with(group_pairs, entries[0]["keys"], entry["keys"])
            p_holm = math.nan if versus_best is None else float(versus_best["p_holm"])
            rows.append({
                **group_keys, **entry["keys"], "label": entry["label"],
                "mean": float(means[position]), "n": len(entry["values"]),
                "rank": 1 + sum(mean > means[position] for mean in means),
                "with_best": position == 0 or bool(versus_best["tie"]),
                "p_holm_vs_best": p_holm,
                "share_first": float(spread["share_first"][position]),
                "rank_low": int(spread["rank_low"][position]), "rank_high": int(spread["rank_high"][position]),
                "rank_basis": basis,
            })
    return pd.DataFrame(rows, columns=RANK_COLUMNS)


RESAMPLED_SEEDS = "seeds"
RESAMPLED_SEEDS_AND_IMAGES = "seeds and test images"


def _outcomes_if_any(runs: pd.DataFrame, metric: str) -> dict:
    if metric != "test_top1" or "outcomes_file" not in runs:
        return {}
    return test_outcomes(runs[runs["outcomes_file"].notna()])


def _samples(entries: list[dict], outcomes: dict | None):
    """(bootstrap means (resamples, entries), what was resampled): seeds and test images where every
    entry saved per-image outcomes of one test set, else seeds only."""
    samples = _paired_samples(entries, outcomes)
    if samples is not None:
        return samples, RESAMPLED_SEEDS_AND_IMAGES
    return seed_means([entry["values"] for entry in entries]), RESAMPLED_SEEDS


def bootstrap_means(runs: pd.DataFrame, metric: str = "test_top1") -> tuple[pd.DataFrame, str]:
    """Bootstrap means of `metric` per model of ONE comparison: a (resamples, labels) frame, and what
    was resampled ('seeds and test images' where every run saved per-image outcomes, else 'seeds')."""
    entries = _entries(runs, metric)
    if not entries:
        return pd.DataFrame(), RESAMPLED_SEEDS
    samples, basis = _samples(entries, _outcomes_if_any(runs, metric))
    return pd.DataFrame(samples, columns=[entry["label"] for entry in entries]), basis


def _rows_with(frame: pd.DataFrame, keys: dict) -> pd.DataFrame:
    mask = pd.Series(True, index=frame.index)
    for key, value in keys.items():
        mask &= _same(frame[key], value)
    return frame[mask]


def _pair_with(pairs: pd.DataFrame, keys_a: dict, keys_b: dict):
    if keys_a == keys_b:
        return None
    matched = _rows_with(pairs, {**{f"{key}_a": value for key, value in keys_a.items()},
                                 **{f"{key}_b": value for key, value in keys_b.items()}})
    return matched.iloc[0] if len(matched) else None


def _same(series: pd.Series, value) -> pd.Series:
    if _is_missing(value):
        return series.isna()
    return series == value


def pareto_front(summary: pd.DataFrame, x: str = "macs", y: str = "test_top1_mean") -> pd.Series:
    """True for rows no other row beats: lower-or-equal `x` and higher-or-equal `y`, one strictly.

    Computed separately within each study, data and hardware when those columns exist; rows
    with a missing `x` or `y` are never on the front.
    """
    for column in (x, y):
        if column not in summary.columns:
            raise ValueError(f"pareto_front: column {column!r} not in summary; available: "
                             f"{sorted(summary.columns)}")
    on_front = pd.Series(False, index=summary.index, name=f"pareto_{x}_{y}")
    keys = [key for key in GROUP_KEYS if key in summary.columns]
    groups = summary.groupby(keys, dropna=False, sort=False) if keys else [(None, summary)]
    for _keys, group in groups:
        points = group[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
        for index, (cost, score) in points.iterrows():
            dominated = ((points[x] <= cost) & (points[y] >= score)
                         & ((points[x] < cost) | (points[y] > score))).any()
            on_front[index] = not dominated
    return on_front


# ------------------------------------------------------------------ calibration and robustness



EVALUATION_RUN_COLUMNS = EVALUATION_METRICS + ["brier_calibrated", "temperature", "calibration_images",
                                               "corruption_images", "corruption_source",
                                               "corruption_method"]


@dataclass
class Evaluation:
    """The record sections `calibration` and `robustness` of some runs, as three tables.

    `runs`: one row per run (the run keys, `path` and EVALUATION_RUN_COLUMNS), NaN where a run
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
        record, _problem = _read_record(Path(row["path"]))
        keys = {key: row.get(key) for key in RUN_KEYS + ["family"]}
        keys["label"] = model_label(row.get("model"), row.get("variant_label"))
        calibration = (record or {}).get("calibration") or {}
        robustness = (record or {}).get("robustness") or {}
        per_run.append({**keys, "path": row["path"],
                        **_calibration_columns(calibration), **_robustness_columns(robustness)})
        for scaling in ("uncalibrated", "temperature_scaled"):
            bins += [{**keys, "scaling": scaling, **entry}
                     for entry in _reliability_rows(calibration.get(scaling))]
        cells += [{**keys, **entry} for entry in _corruption_rows(robustness)]
    return Evaluation(
        pd.DataFrame(per_run, columns=_LABEL_KEYS + ["path"] + EVALUATION_RUN_COLUMNS),
        pd.DataFrame(bins, columns=_LABEL_KEYS + ["scaling", "bin_lower", "confidence", "accuracy", "count"]),
        pd.DataFrame(cells, columns=_LABEL_KEYS + ["corruption", "severity", "top1", "clean_top1"]))


def with_evaluation(runs: pd.DataFrame, table: Evaluation | None = None) -> pd.DataFrame:
    """`runs` with the per-run calibration and robustness columns added, so `summarize` and
    `compare(runs, metric="mean_corruption_top1")` see them."""
    if runs.empty:
        return runs.assign(**{column: pd.Series(dtype=float) for column in EVALUATION_RUN_COLUMNS})
    table = evaluation(runs) if table is None else table
    added = table.runs.set_index("path")[EVALUATION_RUN_COLUMNS]
    return runs.drop(columns=[c for c in EVALUATION_RUN_COLUMNS if c in runs]).join(added, on="path")


def _calibration_columns(section: dict) -> dict:
    before = section.get("uncalibrated") or {}
    # "calibrated" in early drafts of the section, "temperature_scaled" in the records written now.
    after = section.get("temperature_scaled") or section.get("calibrated") or {}
    return {
        "ece": _number_or_nan(before.get("ece")), "nll": _number_or_nan(before.get("nll")),
        "brier": _number_or_nan(before.get("brier")),
        "ece_calibrated": _number_or_nan(after.get("ece")), "nll_calibrated": _number_or_nan(after.get("nll")),
        "brier_calibrated": _number_or_nan(after.get("brier")),
        "temperature": _number_or_nan(section.get("temperature")),
        "calibration_images": _number_or_nan(section.get("images")),
    }


def _robustness_columns(section: dict) -> dict:
    return {
        "corruption_clean_top1": _number_or_nan(section.get("clean_top1")),
        "mean_corruption_top1": _number_or_nan(section.get("mean_corruption_top1")),
        "relative_corruption_drop": _number_or_nan(section.get("relative_drop")),
        "corruption_images": _number_or_nan(section.get("images")),
        "corruption_source": section.get("source"),
        # A run without the optional corruptions package says why instead of a method.
        "corruption_method": section.get("method") or (f"not measured ({section['skipped']})"
                                                         if section.get("skipped") else None),
    }


def _reliability_rows(metrics) -> list[dict]:
    bins = (metrics or {}).get("reliability") if isinstance(metrics, dict) else None
    if not isinstance(bins, dict):
        return []
    columns = [bins.get(key) or [] for key in ("lower", "confidence", "accuracy", "count")]
    return [{"bin_lower": _number_or_nan(lower), "confidence": _number_or_nan(confidence),
             "accuracy": _number_or_nan(accuracy), "count": _number_or_nan(count)}
            for lower, confidence, accuracy, count in zip(*columns)]


def _corruption_rows(section: dict) -> list[dict]:
    table = section.get("top1")
    if not isinstance(table, dict):
        return []
    return [{"corruption": corruption, "severity": int(severity), "top1": _number_or_nan(top1),
             "clean_top1": _number_or_nan(section.get("clean_top1"))}
            for corruption, by_severity in table.items() if isinstance(by_severity, dict)
            for severity, top1 in by_severity.items() if str(severity).isdigit()]


def _number_or_nan(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def reliability_curve(bins: pd.DataFrame) -> pd.DataFrame:
    """Reliability points per label and bin, pooled over seeds: accuracy and confidence weighted
    by each seed's images in the bin (pooling the images, not averaging the seeds' percentages)."""
    filled = bins.dropna(subset=["confidence", "accuracy", "count"])
    filled = filled[filled["count"] > 0]
    if filled.empty:
        return pd.DataFrame(columns=["label", "bin_lower", "confidence", "accuracy", "count"])
    weighted = filled.assign(confidence=filled.confidence * filled["count"],
                             accuracy=filled.accuracy * filled["count"])
    pooled = weighted.groupby(["label", "bin_lower"], as_index=False)[["confidence", "accuracy", "count"]].sum()
    return pooled.assign(confidence=pooled.confidence / pooled["count"], accuracy=pooled.accuracy / pooled["count"])


def ranking_shift(before: pd.Series, after: pd.Series, after_pairs: pd.DataFrame | None = None,
                  before_samples: pd.DataFrame | None = None, after_samples: pd.DataFrame | None = None) -> dict:
    """How a ranking changes between two scorings of the same models (label -> mean score).

    Returns `models`, Kendall `tau` and its `p_value` (scipy), and `swapped`: one dict per pair
    whose order flips (`ahead_before`, `ahead_after`, `gap_before`, `gap_after` in points, and
    `separated`: whether the seeds separate the new order, from `after_pairs` (a `compare()` of
    the after scores; None when not given or the pair is not in it)). Models missing either score
    are left out. With bootstrap means of both scorings (`bootstrap_means`, columns = labels), also
    `tau_low`/`tau_high`, the 95% interval of tau over resamples, and `verdict`: 'holds', 'changes' or
    'inconclusive' (archbench.stats.tau_interval); None without them.
    """
    both = pd.concat({"before": before, "after": after}, axis=1).dropna().sort_index()
    tau, p_value, swaps = rank_agreement(both["before"].to_numpy(), both["after"].to_numpy())
    labels = list(both.index)
    swapped = []
    for ahead, behind in swaps:
        a, b = labels[ahead], labels[behind]
        swapped.append({"ahead_before": a, "ahead_after": b,
                        "gap_before": float(both.before[a] - both.before[b]),
                        "gap_after": float(both.after[b] - both.after[a]),
                        "separated": _separated(after_pairs, b, a)})
    swapped.sort(key=lambda swap: -swap["gap_after"])
    interval = {"low": math.nan, "high": math.nan, "verdict": None}
    if before_samples is not None and after_samples is not None and len(labels) >= 2 and \
            all(label in before_samples and label in after_samples for label in labels):
        interval = tau_interval(before_samples[labels].to_numpy(), after_samples[labels].to_numpy())
    return {"models": len(both), "tau": tau, "p_value": p_value, "swapped": swapped,
            "tau_low": interval["low"], "tau_high": interval["high"], "verdict": interval["verdict"]}


def _separated(pairs, label_a, label_b):
    if pairs is None or pairs.empty:
        return None
    match = pairs[(pairs.label_a == label_a) & (pairs.label_b == label_b)]
    if match.empty or _is_missing(match.iloc[0]["p_holm"]):
        return None
    return not bool(match.iloc[0]["tie"]) and not bool(match.iloc[0]["below_noise_floor"])


# ------------------------------------------------------------------------- equal-effort tuning

def study_kind(runs: pd.DataFrame) -> str:
    """'tuning' (trials for selection), 'tuned' (reruns of selected trials) or 'plain'."""
    if "trial" in runs and runs["trial"].notna().any():
        return "tuning"
    if "tuned_from" in runs and runs["tuned_from"].notna().any():
        return "tuned"
    return "plain"


def expected_best(trials: pd.DataFrame, metric: str = "val_top1") -> pd.DataFrame:
    """Expected best `metric` after n = 1..N trials, per tuning study, data, hardware and model
    (archbench.stats.expected_max_curve: Dodge et al. 2019, unbiased estimator of Tang et al. 2020).

    Columns: GROUP_KEYS, `model`, `trials` (n), `expected_best`, `std` (over n-trial subsets),
    `finished` (N).
    """
    columns = GROUP_KEYS + ["model", "trials", "expected_best", "std", "finished"]
    trials = trials[trials["trial"].notna()] if "trial" in trials else trials.iloc[0:0]
    rows = []
    for keys, group in trials.groupby(GROUP_KEYS + ["model"], sort=True, dropna=False):
        values = _values(group, metric)
        if values.empty:
            continue
        counts, mean, spread = expected_max_curve(values.to_numpy())
        rows += [{**dict(zip(GROUP_KEYS + ["model"], keys)), "trials": int(n), "expected_best": float(m),
                  "std": float(s), "finished": len(values)} for n, m, s in zip(counts, mean, spread)]
    return pd.DataFrame(rows, columns=columns)


COUNTERPART_COLUMNS = ["tuned_study", "shared_study", "data", "hardware"]


def shared_counterparts(runs: pd.DataFrame) -> pd.DataFrame:
    """The shared-recipe study of each tuned study: same data, hardware, training-set size and
    budget, the same set of models, one setting per model, and no tuning (no `trial`, no
    `tuned_from`). A study that also changes anything else is not recognised: the ranking is
    compared only between studies that differ in the recipe's tuned values alone.
    """
    if runs.empty or "tuned_from" not in runs:
        return pd.DataFrame(columns=COUNTERPART_COLUMNS)
    train = runs[runs.task == "train"]
    profiles = {}
    for (study, data, hardware), group in train.groupby(GROUP_KEYS, sort=True):
        profiles[(study, data, hardware)] = (study_kind(group), _comparable(group))
    rows = []
    for (study, data, hardware), (kind, profile) in profiles.items():
        if kind != "tuned" or profile is None:
            continue
        rows += [{"tuned_study": study, "shared_study": other, "data": data, "hardware": hardware}
                 for (other, other_data, other_hardware), (other_kind, other_profile) in profiles.items()
                 if other_kind == "plain" and (other_data, other_hardware) == (data, hardware)
                 and other_profile == profile]
    return pd.DataFrame(rows, columns=COUNTERPART_COLUMNS)


def _comparable(group: pd.DataFrame):
    """What two studies must share to compare rankings; None when a model has several settings."""
    if group.groupby("model")["variant"].nunique().max() > 1:
        return None
    return (frozenset(group.model), frozenset(group.budget.dropna()), frozenset(group.train_size.dropna()))


TUNING_GAIN_COLUMNS = ["model", "family", "shared_rank", "shared_mean", "shared_n", "tuned_rank", "tuned_mean",
                       "tuned_n", "gain", "gain_p_holm", "shared_lr", "tuned_lr", "shared_weight_decay",
                       "tuned_weight_decay", "selected_trial"]


def tuning_gain(shared: pd.DataFrame, tuned: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """The two rankings side by side: per model, rank and mean `metric` under the shared recipe and
    after tuning, the `gain` (tuned - shared, points), and its Holm-adjusted Welch p over models.

    `shared` and `tuned` are the runs of one comparison each (one study, data and hardware).
    """
    rows = []
    ranks = {name: rank(frame, metric).set_index("model") for name, frame in (("shared", shared), ("tuned", tuned))}
    for model in sorted(set(ranks["shared"].index) & set(ranks["tuned"].index)):
        values = {name: _values(frame[frame.model == model], metric) for name, frame in
                  (("shared", shared), ("tuned", tuned))}
        first = {name: frame[frame.model == model].iloc[0] for name, frame in (("shared", shared), ("tuned", tuned))}
        rows.append({
            "model": model, "family": first["tuned"].get("family"),
            **{f"{name}_{column}": ranks[name].loc[model, source] for name in ("shared", "tuned")
               for column, source in (("rank", "rank"), ("mean", "mean"), ("n", "n"))},
            "gain": float(values["tuned"].mean() - values["shared"].mean()),
            "gain_p": welch_p_value(values["tuned"], values["shared"]),
            **{f"{name}_{column}": first[name].get(column) for name in ("shared", "tuned")
               for column in ("lr", "weight_decay")},
            "selected_trial": first["tuned"].get("selected_trial"),
        })
    if not rows:
        return pd.DataFrame(columns=TUNING_GAIN_COLUMNS)
    table = pd.DataFrame(rows)
    table["gain_p_holm"] = holm(table.pop("gain_p"))
    return table.sort_values(["tuned_rank", "model"]).reset_index(drop=True)[TUNING_GAIN_COLUMNS]


# ------------------------------------------------------------------------------------ confounds

# Settings a run resolves per model, named as a reader knows them; values as shown.
CONFOUND_SETTINGS = {
    "precision": ("amp", lambda value: {"off": "fp32"}.get(str(value), str(value))),
    "memory layout": ("channels_last", lambda value: "channels_last" if value else "NCHW"),
    "stem": ("stem", str),
    "final feature map": ("final_feature_map", str),
    "batch halved to fit memory": ("batch_size_halved", lambda value: f"to {value:g}"),
}


def confounds(runs: pd.DataFrame, ignore: tuple = ()) -> list[tuple[str, dict]]:
    """Every setting that differs between the models of one study's train runs: `(setting, {value:
    [labels]})`, the resolved precision and memory layout (train.amp=auto picks them per model), stem,
    final feature-map size, a batch halved to fit memory, and any identity setting in which the models'
    variants differ beyond the model itself (`ignore`: flattened keys that differ by design, e.g. a
    tuned study's tuned values). A setting that varies the same way within every model (an order seed
    crossed with every model) is no confound. Empty when the models differ in nothing but architecture.
    """
    train = runs[runs["task"] == "train"] if "task" in runs else runs
    if train.empty or train["model"].nunique() < 2:
        return []
    labels = [model_label(row.model, getattr(row, "variant_label", None)) for row in train.itertuples()]
    found = []
    for name, (column, show) in CONFOUND_SETTINGS.items():
        if column in train:
            values = ["not recorded" if _is_missing(value) else show(value) for value in train[column]]
            if column == "batch_size_halved" and set(values) == {"not recorded"}:
                continue
            found += _differing(name, labels, values)
    if "variant_settings" in train:
        settings = [json.loads(text) for text in train["variant_settings"]]
        keys = sorted({key for entry in settings for key in entry})
        for key in keys:
            # The architecture differs by definition; its stem is reported above from the built model.
            if key.startswith("model.") or key in ignore or key == "seed":
                continue
            found += _differing(_short(key), labels, [json.dumps(entry.get(key), default=str) for entry in settings])
    return found


def _differing(name: str, labels: list, values: list) -> list:
    per_label: dict = {}
    for label, value in zip(labels, values):
        per_label.setdefault(label, set()).add(value)
    if len({frozenset(found) for found in per_label.values()}) < 2:
        return []
    by_value: dict = {}
    for label, found in per_label.items():
        for value in found:
            by_value.setdefault(value, set()).add(label)
    return [(name, {value: sorted(models) for value, models in sorted(by_value.items())})]


def confounds_text(found: list[tuple[str, dict]]) -> str:
    """'precision: bf16 (a, b), fp32 (c); stem: ...' from `confounds`."""
    return "; ".join(f"{name}: " + ", ".join(f"{value} ({', '.join(models)})" for value, models in values.items())
                     for name, values in found)


# ------------------------------------------------------------------------------- across studies

ACROSS_COLUMNS = ["protocol", "model", "family", "studies", "runs", "iqm", "iqm_low", "iqm_high"]
PROFILE_COLUMNS = ["protocol", "model", "comparison", "distance"]


def across_studies(runs: pd.DataFrame, metric: str = "test_top1") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where the same models ran in several comparable comparisons (the same protocol: shared recipe, or
    tuned; different data or budget), `(aggregate, profile)`:

    `aggregate`, one row per protocol and model: the interquartile mean of each run's normalised score,
    (accuracy - chance) / (best model's mean - chance) within its comparison, so chance is 0 and the
    comparison's best mean is 1, with a stratified bootstrap interval (runs resampled within each
    comparison; Agarwal et al. 2021). `profile`: per protocol, model and comparison, the model's
    `distance` from that comparison's best mean in points, from which the performance profile (share of
    comparisons within a given distance of the best) is drawn. Only models present in every chosen
    comparison are aggregated, so no model's score leans on easier studies. Empty frames when fewer than
    two comparisons share two or more models.
    """
    from archbench.stats import stratified_iqm_interval

    empty = pd.DataFrame(columns=ACROSS_COLUMNS), pd.DataFrame(columns=PROFILE_COLUMNS)
    if runs.empty or metric not in runs:
        return empty
    train = runs[(runs["task"] == "train") & np.isfinite(pd.to_numeric(runs[metric], errors="coerce"))]
    train = train[train.groupby(GROUP_KEYS + ["model"])["variant"].transform("nunique") == 1] if len(train) else train
    aggregate, profile = [], []
    for protocol in ("plain", "tuned"):
        kinds = {keys: study_kind(group) for keys, group in train.groupby(GROUP_KEYS, sort=True)}
        comparisons = {keys: set(group["model"]) for keys, group in train.groupby(GROUP_KEYS, sort=True)
                       if kinds[keys] == protocol}
        chosen, models = _shared_models(comparisons)
        if len(chosen) < 2 or len(models) < 2:
            continue
        strata: dict = {model: [] for model in models}
        for keys in chosen:
            group = _rows_with(train, dict(zip(GROUP_KEYS, keys)))
            group = group[group["model"].isin(models)]
            means = group.groupby("model")[metric].mean()
            classes = _first_present(group.get("num_classes"))
            chance = 100.0 / classes if not _is_missing(classes) and classes else 0.0
            scale = means.max() - chance
            for model in models:
                values = pd.to_numeric(group.loc[group["model"] == model, metric])
                strata[model].append(((values - chance) / scale).to_numpy() if scale > 0 else np.full(len(values), 1.0))
                profile.append({"protocol": protocol, "model": model, "comparison": " / ".join(map(str, keys[:2])),
                                "distance": float(means.max() - means[model])})
        for model in models:
            point, low, high = stratified_iqm_interval(strata[model])
            family = _first_present(train.loc[train["model"] == model, "family"])
            aggregate.append({"protocol": protocol, "model": model, "family": family, "studies": len(chosen),
                              "runs": int(sum(len(values) for values in strata[model])),
                              "iqm": point, "iqm_low": low, "iqm_high": high})
    if not aggregate:
        return empty
    return (pd.DataFrame(aggregate, columns=ACROSS_COLUMNS).sort_values(["protocol", "iqm"], ascending=[True, False])
            .reset_index(drop=True), pd.DataFrame(profile, columns=PROFILE_COLUMNS))


def _shared_models(comparisons: dict) -> tuple[list, list]:
    """The comparisons that hold every model seen in two or more of them; when fewer than two do, the
    rarest model is dropped and the search repeated."""
    counts = pd.Series([model for models in comparisons.values() for model in models], dtype=object).value_counts()
    models = set(counts[counts >= 2].index)
    while len(models) >= 2:
        chosen = sorted(keys for keys, present in comparisons.items() if models <= present)
        if len(chosen) >= 2:
            return chosen, sorted(models)
        models.discard(min(models, key=lambda model: (counts[model], model)))
    return [], []
