"""Run records -> pandas tables: one row per run, one row per model, pairwise significance.

Reads the `record.json` files that `archbench/record.py` writes (schema 1). Nothing here imports
torch or Hydra, so results can be analysed on any machine with pandas and scipy.

Records that cannot be used (unreadable, other schema, failed, diverged, partial, synthetic,
duplicate) are never dropped silently: `load_with_exclusions` returns them with the reason.
"""
from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

SCHEMA_VERSION = 1
RECORD_FILENAME = "record.json"

# A model is identified within a comparison by these keys; runs from different machines are
# never pooled, because latency, throughput and even accuracy (nondeterministic kernels) differ.
GROUP_KEYS = ["study", "data", "hardware"]
MODEL_KEYS = GROUP_KEYS + ["model"]
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
    "ttt_s",
]
SIGNIFICANCE_LEVEL = 0.05

EXCLUDED_COLUMNS = ["path", "reason", "study", "data", "model", "seed"]


def load(results_dir, include_synthetic: bool = False) -> pd.DataFrame:
    """One row per usable run found under `results_dir` (any depth), flat columns."""
    runs, _excluded = load_with_exclusions(results_dir, include_synthetic=include_synthetic)
    return runs


def load_with_exclusions(results_dir, include_synthetic: bool = False):
    """Return `(runs, excluded)`: usable runs, and every other record with `path` and `reason`."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(
            f"results_dir={str(results_dir)!r} is not a directory: pass the folder that holds "
            f"runs/<study>/<data>/<model>/seed<k>/{RECORD_FILENAME} (default: results)"
        )
    rows, excluded = [], []
    for path in sorted(results_dir.glob(f"**/{RECORD_FILENAME}")):
        record, problem = _read_record(path)
        if problem is None:
            row = _flatten(record, path)
            problem = _unusable_reason(record, row, include_synthetic)
        if problem is None:
            rows.append(row)
        else:
            identity = _identity(record or {}, path)
            excluded.append({"path": str(path), "reason": problem, **identity})
    runs = pd.DataFrame(rows)
    runs, duplicates = _split_duplicates(runs)
    excluded_df = pd.DataFrame(excluded + duplicates, columns=EXCLUDED_COLUMNS)
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
    if schema != SCHEMA_VERSION:
        if not isinstance(schema, int):
            return f"schema {schema!r} is not an archbench record schema (expected {SCHEMA_VERSION})"
        if schema < SCHEMA_VERSION:
            return (f"schema {schema} is older than this archbench's schema {SCHEMA_VERSION}: "
                    "rerun or migrate")
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


def _identity(record: dict, path: Path) -> dict:
    """Study, data, model and seed from the record, else from its path (runs/<s>/<d>/<m>/seed<k>)."""
    from_path = _identity_from_path(path)
    return {key: _present_or(record.get(key), from_path.get(key))
            for key in ("study", "data", "model", "seed")}


def _present_or(value, fallback):
    return fallback if value is None else value


def _identity_from_path(path: Path) -> dict:
    parts = path.parts
    if len(parts) < 5 or not parts[-2].startswith("seed"):
        return {}
    seed_text = parts[-2][len("seed"):]
    seed = int(seed_text) if seed_text.isdigit() else None
    return {"study": parts[-5], "data": parts[-4], "model": parts[-3], "seed": seed}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _get(mapping, *keys):
    """Nested lookup that tolerates missing or null levels."""
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return mapping


def _number(value):
    """A float, or NaN for anything that is not a real number (null, missing, text, bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def hardware_label(device, device_name, cpu_model, threads) -> str:
    """Readable machine label, e.g. 'cpu: AMD EPYC 7B13, 2 threads' or 'cuda: NVIDIA H100'.

    CPU thread count is part of the label because CPU latency and throughput scale with it.
    """
    device = str(device) if device else "unknown device"
    kind = device.split(":")[0]
    if kind == "cpu":
        model = cpu_model or device_name or "unknown CPU"
        label = f"cpu: {model}"
        if not _is_missing(threads) and threads is not None:
            label += f", {int(threads)} threads"
        return label
    model = device_name or "unknown model"
    return f"{kind}: {model}"


def _flatten(record: dict, path: Path) -> dict:
    env = record.get("env") or {}
    latency = record.get("latency") or {}
    complexity = record.get("complexity") or {}
    train = record.get("train") or {}
    metrics = record.get("metrics") or {}
    dataset = record.get("dataset") or {}
    train_config = _get(record, "config", "train") or {}
    identity = _identity(record, path)
    threads = _present_or(env.get("threads"), latency.get("threads"))
    return {
        **identity,
        "family": record.get("family"),
        "status": record.get("status"),
        "task": record.get("task"),
        "synthetic": bool(record.get("synthetic", False)),
        "hardware": hardware_label(env.get("device") or latency.get("device"),
                                   env.get("device_name") or latency.get("device_name"),
                                   env.get("cpu_model"), threads),
        "device": env.get("device"),
        "device_name": env.get("device_name"),
        "cpu_model": env.get("cpu_model"),
        "threads": _number(threads),
        "torch": env.get("torch"),
        "python": env.get("python"),
        "cuda": env.get("cuda"),
        "archbench_version": env.get("archbench_version"),
        "git_commit": env.get("git_commit"),
        "git_dirty": env.get("git_dirty"),
        "hostname": env.get("hostname"),
        "start_time": env.get("start_time"),
        "end_time": env.get("end_time"),
        "recipe": train_config.get("name"),
        # Canonical text of the whole recipe, so a study can check that every model had the same one.
        "recipe_config": json.dumps(train_config, sort_keys=True) if train_config else None,
        "budget": json.dumps(train_config.get("budget"), sort_keys=True)
        if train_config.get("budget") is not None else None,
        "batch_size": _number(train_config.get("batch_size")),
        "train_size": _number(dataset.get("train_size")),
        "val_size": _number(dataset.get("val_size")),
        "test_size": _number(dataset.get("test_size")),
        "num_classes": _number(dataset.get("num_classes")),
        "image_size": _number(dataset.get("image_size")),
        "params": _number(complexity.get("params")),
        "trainable_params": _number(complexity.get("trainable_params")),
        "macs": _number(complexity.get("macs")),
        "flops_forward": _number(complexity.get("flops_forward")),
        "flops_train": _number(complexity.get("flops_train")),
        "latency_device": latency.get("device"),
        "latency_b1_ms": _number(_get(latency, "batch_1", "median_ms")),
        "latency_b1_p10_ms": _number(_get(latency, "batch_1", "p10_ms")),
        "latency_b1_p90_ms": _number(_get(latency, "batch_1", "p90_ms")),
        "throughput_batch_size": _number(_get(latency, "throughput", "batch_size")),
        "throughput_img_s": _number(_get(latency, "throughput", "img_per_s")),
        "train_img_s": _number(train.get("img_per_s")),
        "wall_s": _number(train.get("wall_s")),
        "epochs": _number(train.get("epochs")),
        "steps": _number(train.get("steps")),
        "mfu": _number(train.get("mfu")),
        "peak_mem_bytes": _number(train.get("peak_mem_bytes")),
        "ttt_target": _number(_get(train, "time_to_target", "target_top1")),
        "ttt_s": _number(_get(train, "time_to_target", "seconds")),
        "ttt_epoch": _number(_get(train, "time_to_target", "epoch")),
        "val_top1": _number(metrics.get("val_top1")),
        "val_top5": _number(metrics.get("val_top5")),
        "test_top1": _number(metrics.get("test_top1")),
        "test_top5": _number(metrics.get("test_top5")),
        "test_top1_last": _number(metrics.get("test_top1_last")),
        "best_epoch": _number(metrics.get("best_epoch")),
        "path": str(path),
    }


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
                                     "hardware, model and seed)",
         "study": row.study, "data": row.data, "model": row.model, "seed": row.seed}
        for index, row in runs[duplicated].iterrows()
    ]
    return runs[~duplicated].reset_index(drop=True), duplicates


def history(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch history of every train run in `runs` (long format, one row per run and epoch).

    Columns: the run keys, `family`, then whatever each history entry holds (`epoch`,
    `val_top1`, `elapsed_s`, ...). Reads the records again from `runs.path`.
    """
    frames = []
    for row in runs.itertuples(index=False):
        if getattr(row, "task", None) != "train":
            continue
        record, problem = _read_record(Path(row.path))
        entries = (record or {}).get("history") or []
        entries = [entry for entry in entries if isinstance(entry, dict)]
        if problem is not None or not entries:
            continue
        frame = pd.DataFrame(entries)
        for key in RUN_KEYS + ["family"]:
            frame[key] = getattr(row, key)
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=RUN_KEYS + ["family", "epoch", "val_top1", "elapsed_s"])
    return pd.concat(frames, ignore_index=True)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per study, data, hardware and model.

    Accuracies get `<metric>_mean`, `_std` (sample), `_ci95` (half-width, Student t) and `_n`
    (seeds with a value); cost columns get the mean over runs; `seeds` counts runs and
    `ttt_reached` counts runs that reached the time-to-target accuracy.
    """
    _require_columns(runs, MODEL_KEYS, "summarize")
    if runs.empty:
        return pd.DataFrame(columns=MODEL_KEYS + ["family", "seeds"])
    rows = []
    for keys, group in runs.groupby(MODEL_KEYS, dropna=False, sort=True):
        row = dict(zip(MODEL_KEYS, keys))
        row["family"] = _first_present(group.get("family"))
        row["task"] = ",".join(sorted(group["task"].dropna().astype(str).unique())) \
            if "task" in group else None
        row["recipe"] = _first_present(group.get("recipe"))
        row["seeds"] = len(group)
        for metric in ACCURACY_METRICS:
            values = _values(group, metric)
            mean, std, ci95 = mean_std_ci95(values)
            row.update({f"{metric}_mean": mean, f"{metric}_std": std,
                        f"{metric}_ci95": ci95, f"{metric}_n": len(values)})
        for metric in COST_METRICS:
            values = _values(group, metric)
            row[metric] = float(values.mean()) if len(values) else math.nan
        row["ttt_reached"] = len(_values(group, "ttt_s"))
        rows.append(row)
    return pd.DataFrame(rows)


def mean_std_ci95(values) -> tuple[float, float, float]:
    """Mean, sample standard deviation and 95% confidence half-width (Student t).

    With one value the spread is unknown, so std and ci95 are NaN rather than zero.
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
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


def compare(runs: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """Pairwise Welch t-tests of `metric` across seeds, within each study, data and hardware.

    One row per pair, `model_a` being the one with the higher mean. `tie` is True when the
    seeds cannot separate the two: p >= 0.05, or fewer than two seeds on either side.
    """
    columns = GROUP_KEYS + ["model_a", "model_b", "mean_a", "mean_b", "mean_diff", "n_a", "n_b",
                            "p_value", "tie"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    _require_columns(runs, MODEL_KEYS + [metric], "compare")
    rows = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        samples = {model: _values(model_runs, metric).to_numpy()
                   for model, model_runs in group.groupby("model", sort=True)}
        samples = {model: values for model, values in samples.items() if len(values)}
        ordered = sorted(samples, key=lambda model: (-samples[model].mean(), model))
        for model_a, model_b in itertools.combinations(ordered, 2):
            a, b = samples[model_a], samples[model_b]
            p_value = welch_p_value(a, b)
            rows.append({
                **dict(zip(GROUP_KEYS, keys)),
                "model_a": model_a, "model_b": model_b,
                "mean_a": float(a.mean()), "mean_b": float(b.mean()),
                "mean_diff": float(a.mean() - b.mean()), "n_a": len(a), "n_b": len(b),
                "p_value": p_value,
                "tie": bool(math.isnan(p_value) or p_value >= SIGNIFICANCE_LEVEL),
            })
    return pd.DataFrame(rows, columns=columns)


def welch_p_value(a, b) -> float:
    """Two-sided Welch t-test p-value; NaN when either side has fewer than two seeds."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        # Seeds that reproduce exactly: any difference in means is systematic, none is a tie.
        return 1.0 if a.mean() == b.mean() else 0.0
    return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def rank(runs: pd.DataFrame, metric: str = "test_top1") -> pd.DataFrame:
    """Rank models within each study, data and hardware, sharing ranks the seeds cannot separate.

    `rank` is 1 + the number of models significantly better; `tied_with` lists the models
    this one cannot be told apart from.
    """
    columns = MODEL_KEYS + ["mean", "rank", "tied_with"]
    pairs = compare(runs, metric)
    if runs.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for keys, group in runs.groupby(GROUP_KEYS, dropna=False, sort=True):
        group_pairs = pairs
        for key, value in zip(GROUP_KEYS, keys):
            group_pairs = group_pairs[_same(group_pairs[key], value)]
        means = {model: _values(model_runs, metric).mean()
                 for model, model_runs in group.groupby("model", sort=True)
                 if len(_values(model_runs, metric))}
        for model, mean in sorted(means.items(), key=lambda item: (-item[1], item[0])):
            beaten_by = group_pairs[(group_pairs.model_b == model) & ~group_pairs.tie]
            tied = group_pairs[((group_pairs.model_a == model) | (group_pairs.model_b == model))
                               & group_pairs.tie]
            tied_models = sorted((set(tied.model_a) | set(tied.model_b)) - {model})
            rows.append({**dict(zip(GROUP_KEYS, keys)), "model": model, "mean": float(mean),
                         "rank": 1 + len(beaten_by), "tied_with": ", ".join(tied_models)})
    return pd.DataFrame(rows, columns=columns)


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
