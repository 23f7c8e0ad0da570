"""Runs summarised: one row per model over its seeds, where the spread comes from (seeds vs data order),
the Pareto front, reliability curves, the settings that differ between a study's models (confounds), and
the same models aggregated across studies."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

from archbench.base.numerics import precision_label
from archbench.record import decode_json_column, metrics as declared_metrics
from archbench.stats import binomial_se, finite, stratified_iqm_interval, variance_components

from .frames import (GROUP_KEYS, MODEL_KEYS, _distinct_text, _first_present, _is_missing, _require_columns,
                     _rows_with, _short, _values, distinct_machines, model_label)
from .loading import pool_order_seeds
from .tuning_analysis import study_kind

# Which metrics a summary holds, and how, is declared with the metric (archbench.record.METRICS:
# "seeds" gets mean, std, 95% CI and count over seeds, like accuracy; "mean" the mean over runs, for what
# describes the model or the machine, not luck). These lists fix the order of the summary's columns as
# the committed report has them; a metric declared later follows them in declaration order.
SEED_SUMMARY_ORDER = ["test_top1", "test_top5", "val_top1", "ece", "nll", "brier", "ece_calibrated",
                      "nll_calibrated", "corruption_clean_top1", "mean_corruption_top1", "relative_corruption_drop"]
MEAN_SUMMARY_ORDER = ["params", "trainable_params", "macs", "flops_forward", "flops_train", "latency_b1_ms",
                      "throughput_img_s", "train_img_s", "wall_s", "mfu", "train_j_per_image",
                      "inference_j_per_image", "ttt_s", "activations"]


def summarised(kind: str) -> list[str]:
    """The metrics summarised as `kind` ("seeds" or "mean"), in the summary's column order."""
    declared = [metric.name for metric in declared_metrics(summary=kind)]
    order = SEED_SUMMARY_ORDER if kind == "seeds" else MEAN_SUMMARY_ORDER
    return [name for name in order if name in declared] + [name for name in declared if name not in order]


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
        pooled = "pooled_order_seeds" in group and bool(group["pooled_order_seeds"].fillna(False).astype(bool).any())
        for metric in summarised("seeds"):
            values = _values(group, metric)
            mean, std, ci95 = mean_std_ci95(values)
            if pooled and "seed" in group and len(values):
                # Runs of one seed share its initialisation: the interval's unit is the seed (its runs
                # averaged over their order seeds), as in the tests, not the run.
                ci95 = mean_std_ci95(group.loc[values.index].groupby("seed")[metric].mean())[2]
            row.update({f"{metric}_mean": mean, f"{metric}_std": std,
                        f"{metric}_ci95": ci95, f"{metric}_n": len(values)})
        row["test_top1_se_test"] = binomial_se(row["test_top1_mean"], row["test_size"])
        for metric in summarised("mean"):
            values = _values(group, metric)
            row[metric] = float(values.mean()) if len(values) else math.nan
        # The precision training ran in (train.amp=auto picks it per model), e.g. 'bf16'.
        row["amp"] = _distinct_text(group.get("amp"))
        row["ttt_reached"] = len(_values(group, "ttt_s"))
        row["latency_hardware"] = distinct_machines(group.get("latency_hardware"))
        # Pooled across machines (archbench.results.pooling): whose speed the row shows, which machines
        # trained its seeds, and the comparison's machine-effect check.
        row["speed_machine"] = _first_present(group.get("speed_machine"))
        row["trained_on"] = distinct_machines(group.get("trained_on"))
        row["machine_check"] = _first_present(group.get("machine_check"))
        row["latency_precision"] = _distinct_text(group.get("latency_precision"))
        # Speed figures taken under load, and MFUs that cannot be shown (archbench.quiet): the reason, or None.
        for column in ("latency_under_load", "mfu_note", "shared_device"):
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
        # Seeds of one row pooled across code versions (same settings, different commits): said, never silent.
        commits = sorted({str(value)[:7] for value in group["git_commit"].dropna()}) if "git_commit" in group else []
        row["commits"] = ", ".join(commits)
        row["commit_count"] = len(commits)
        # Temperature fits at their bound (archbench.results.temperature_rejected): left out of the scaled means.
        row["temperature_rejected_runs"] = int(group["temperature_rejected"].eq(True).sum()) \
            if "temperature_rejected" in group else 0
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


# ------------------------------------------------------------------------------------ confounds

# Settings a run resolves per model, named as a reader knows them; values as shown.
CONFOUND_SETTINGS = {
    "precision": ("amp", precision_label),
    "memory layout": ("channels_last", lambda value: "channels_last" if value else "NCHW"),
    "stem": ("stem", str),
    "final feature map": ("final_feature_map", str),
    "batch halved to fit memory": ("batch_size_halved", lambda value: f"to {value:g}"),
    # Runs made at different commits may differ in code the settings do not name (a model's wiring).
    "code version": ("git_commit", lambda value: f"commit {str(value)[:7]}"),
}


def confounds(runs: pd.DataFrame, ignore: tuple = ()) -> list[tuple[str, dict]]:
    """Every setting that differs between the models of one study's train runs: `(setting, {value:
    [labels]})`, the resolved precision and memory layout (train.amp=auto picks them per model), stem,
    final feature-map size, a batch halved to fit memory, the code version (git commit), and any identity
    setting in which the models' variants differ beyond the model itself (`ignore`: flattened keys that differ by design, e.g. a
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
        settings = [decode_json_column(text) for text in train["variant_settings"]]
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
