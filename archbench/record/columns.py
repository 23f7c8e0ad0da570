"""A record as flat columns: one row per run for `archbench.results.load` (who ran what, where and how, plus
every declared metric), the per-epoch, reliability and corruption rows, and the provenance that
`archbench.report compare` names. Columns are named with their units: *_ms milliseconds, *_s seconds,
*_bytes bytes, accuracies in percent; MACs count multiply-adds (fvcore).
"""
from __future__ import annotations

import hashlib
import json
import math
import os

from archbench.base.device import cpu_label, cpu_model, machine_identity
from archbench.settings import flatten

from .fields import nested, number_or_nan, present_or, record_threads
from .metrics import METRICS
from .storage import parse_record_path


def variant_settings(record: dict) -> tuple[str | None, dict]:
    """(variant, flattened identity settings without the seed) of a record of any readable schema.

    Schema 1 records predate identities: their variant is derived from the resolved config's model,
    data and train sections (locations and display-only keys left out), so their seeds still group.
    """
    identity = record.get("identity")
    if isinstance(identity, dict) and identity.get("settings"):
        settings = {k: v for k, v in identity["settings"].items() if k != "seed"}
        return identity.get("variant"), flatten(settings)
    config = record.get("config") or {}
    data = {k: v for k, v in (config.get("data") or {}).items()
            if k not in ("root", "download", "cache_dir", "on_bad_image")}
    train = {k: v for k, v in (config.get("train") or {}).items() if k not in ("eval_batch_size", "target_top1")}
    settings = {"task": record.get("task"), "model": config.get("model") or {}, "data": data,
                "recipe": train if record.get("task") == "train" else None}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{train.get('name') or record.get('task')}-v1-{digest}", flatten(settings)


def record_key(record: dict, path: str | os.PathLike) -> dict:
    """Study, data, model, variant and seed from the record, else from its path."""
    from_path = parse_record_path(path)
    key = {k: present_or(record.get(k), from_path.get(k)) for k in ("study", "data", "model", "seed")}
    key["variant"] = variant_settings(record)[0] or from_path.get("variant")
    return key


def _order_seed(record: dict, seed):
    """The seed of the run's data order: identity.settings.data.order_seed (schema 2), else the
    resolved config's data.order_seed (schema 1); null follows the run's seed."""
    order_seed = nested(record, "identity", "settings", "data", "order_seed")
    if order_seed is None:
        order_seed = nested(record, "config", "data", "order_seed")
    if isinstance(order_seed, bool) or not isinstance(order_seed, int):
        return seed
    return order_seed


def hardware_label(device, device_name, cpu_model, threads, machine: dict | None = None) -> str:
    """Readable machine label, e.g. 'cpu: AMD EPYC (Zen 4, AVX512-BF16), 2 threads' or 'cuda: NVIDIA H100'.

    CPU thread count is part of the label because CPU latency and throughput scale with it; so are the
    microarchitecture and instruction sets (env.machine), where the record has them: records made before
    keep the bare model name, a less specific label that may cover several kinds of CPU.
    """
    device = str(device) if device else "unknown device"
    kind = device.split(":")[0]
    if kind == "cpu":
        label = f"cpu: {cpu_label(machine, cpu_model or device_name or 'unknown CPU')}"
        if isinstance(threads, (int, float)) and not isinstance(threads, bool) and math.isfinite(threads):
            label += f", {int(threads)} thread{'' if int(threads) == 1 else 's'}"
        return label
    return f"{kind}: {device_name or 'unknown model'}"


def record_hardware(record: dict) -> str:
    """The label of the machine that made `record` (its training machine): one comparison group's hardware."""
    env, latency = record.get("env") or {}, record.get("latency") or {}
    return hardware_label(env.get("device") or latency.get("device"),
                          env.get("device_name") or latency.get("device_name"), env.get("cpu_model"),
                          record_threads(record), env.get("machine"))


def this_machine(device: str) -> str:
    """The label a run on `device` here would record, as `record_hardware` reads it back."""
    import torch  # here, not at the top: analysis reads records on machines without torch

    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return hardware_label(device, torch.cuda.get_device_name(torch.device(device)) if cuda else "cpu", cpu_model(),
                          torch.get_num_threads(), machine_identity(device))


def _latency_hardware(latency: dict, hardware: str) -> str | None:
    """Where latency and throughput were measured: the training machine, unless task=measure timed them
    again elsewhere (`other_machine`), whose label it then is."""
    if not latency.get("batch_1"):
        return None
    if not latency.get("other_machine"):
        return hardware
    return hardware_label(latency.get("device"), latency.get("device_name"), None, latency.get("threads"))


# A structure held in one column (a run's settings, its recipe, its budget) is canonical JSON text: a frame
# cell that compares equal for equal structures, so runs group by it and a study can check that every model
# had the same recipe.
def encode_json_column(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def decode_json_column(text):
    """The structure a JSON-text column holds (`variant_settings`, `recipe_config`, `budget`); None for an
    empty cell."""
    return json.loads(text) if isinstance(text, str) else None


# Who ran what, where and how is mapped here; what was measured comes from the METRICS declarations.
def record_columns(record: dict, path: str | os.PathLike) -> dict:
    env = record.get("env") or {}
    latency = record.get("latency") or {}
    complexity = record.get("complexity") or {}
    train = record.get("train") or {}
    dataset = record.get("dataset") or {}
    recipe = record.get("recipe") or nested(record, "config", "train") or {}
    threads = record_threads(record)
    _, settings = variant_settings(record)
    key = record_key(record, path)
    hardware = record_hardware(record)
    return {
        **key,
        # Data order and augmentation draws (data.order_seed); a record without one (null, or made
        # before the setting existed) drew them from its seed, so the seed is its order seed.
        "order_seed": _order_seed(record, key["seed"]),
        "variant_settings": encode_json_column(settings),
        "family": record.get("family"),
        "status": record.get("status"),
        "task": record.get("task"),
        "synthetic": bool(record.get("synthetic", False)),
        "near_chance": "near_chance" in (record.get("flags") or []),
        "hardware": hardware,
        # Runs of one numerics identity learn alike on any machine (archbench.settings.numerics_identity).
        "numerics": nested(record, "numerics", "fingerprint"),
        # Where latency and throughput were measured: the training machine, or the one `task=measure`
        # re-measured them on (a speed is that machine's, whatever trained the weights).
        "latency_hardware": _latency_hardware(latency, hardware),
        "device": env.get("device"),
        "device_name": env.get("device_name"),
        "cpu_model": env.get("cpu_model"),
        "threads": number_or_nan(threads),
        "torch": env.get("torch"),
        "python": env.get("python"),
        "cuda": env.get("cuda"),
        "archbench_version": env.get("archbench_version"),
        "git_commit": env.get("git_commit"),
        "git_dirty": env.get("git_dirty"),
        "hostname": env.get("hostname"),
        "start_time": env.get("start_time"),
        "end_time": env.get("end_time"),
        "data_label": dataset.get("label") or nested(record, "config", "data", "label"),
        "recipe": recipe.get("name"),
        # Canonical text of the whole recipe, so a study can check that every model had the same one.
        "recipe_config": encode_json_column(recipe) if recipe else None,
        "budget": encode_json_column(recipe["budget"]) if recipe.get("budget") is not None else None,
        "batch_size": number_or_nan(recipe.get("batch_size")),
        "lr": number_or_nan(recipe.get("lr", nested(recipe, "optimizer", "lr"))),
        "weight_decay": number_or_nan(recipe.get("weight_decay", nested(recipe, "optimizer", "weight_decay"))),
        "label_smoothing": number_or_nan(recipe.get("label_smoothing")),
        # Equal-effort tuning (archbench.results.tuning): which trial of which tuning study, or what a final run used.
        "tuning_study": nested(record, "tuning", "study"),
        "trial": number_or_nan(nested(record, "tuning", "trial")),
        "trials": number_or_nan(nested(record, "tuning", "trials")),
        "tuned_from": nested(record, "tuning", "tuned_from"),
        "selected_trial": number_or_nan(nested(record, "tuning", "selected_trial")),
        # Everything that can change the result, seed included: a tuned run with a trial's fingerprint repeats it.
        "fingerprint": nested(record, "identity", "fingerprint"),
        # Per-image test outcomes beside the record (archbench.outcomes); None for runs made before them.
        "outcomes_file": nested(record, "test_outcomes", "file"),
        "amp": train.get("amp"),
        # What the run resolved per model, which can differ between models of one study (a confound).
        "channels_last": train.get("channels_last"),
        "batch_size_halved": train.get("batch_size_halved"),
        "stem": complexity.get("stem"),
        "final_feature_map": "x".join(map(str, complexity["final_feature_map"]))
        if isinstance(complexity.get("final_feature_map"), list) else None,
        "train_size": number_or_nan(dataset.get("train_size")),
        "val_size": number_or_nan(dataset.get("val_size")),
        "test_size": number_or_nan(dataset.get("test_size")),
        "num_classes": number_or_nan(dataset.get("num_classes")),
        "image_size": number_or_nan(dataset.get("image_size")),
        **{metric.name: metric.read(record) for metric in METRICS.values() if metric.stage == "load"},
        "path": str(path),
    }


# ------------------------------------------------------------------------------- rows within a run

def history_rows(record: dict) -> list[dict]:
    """The per-epoch entries of a record's training history (epoch, val_top1, elapsed_s, ...)."""
    return [entry for entry in record.get("history") or [] if isinstance(entry, dict)]


def reliability_rows(record: dict, scaling: str) -> list[dict]:
    """Reliability bins of one calibration scaling (`uncalibrated` or `temperature_scaled`): the bin's
    lower edge, confidence and accuracy in percent, and its count of images."""
    section = nested(record, "calibration", scaling)
    bins = section.get("reliability") if isinstance(section, dict) else None
    if not isinstance(bins, dict):
        return []
    columns = [bins.get(key) or [] for key in ("lower", "confidence", "accuracy", "count")]
    return [{"bin_lower": number_or_nan(lower), "confidence": number_or_nan(confidence),
             "accuracy": number_or_nan(accuracy), "count": number_or_nan(count)}
            for lower, confidence, accuracy, count in zip(*columns)]


def corruption_rows(record: dict) -> list[dict]:
    """Top-1 per corruption and severity, beside the run's clean top-1 on the same images."""
    section = record.get("robustness") or {}
    table = section.get("top1")
    if not isinstance(table, dict):
        return []
    return [{"corruption": corruption, "severity": int(severity), "top1": number_or_nan(top1),
             "clean_top1": number_or_nan(section.get("clean_top1"))}
            for corruption, by_severity in table.items() if isinstance(by_severity, dict)
            for severity, top1 in by_severity.items() if str(severity).isdigit()]


# ----------------------------------------------------------------------------------- provenance

# (name shown, where in the record): what `archbench.report compare` names when it differs between two runs.
PROVENANCE = [
    ("commit", ("env", "git_commit")),
    ("uncommitted changes", ("env", "git_dirty")),
    ("torch", ("env", "torch")),
    ("torchvision", ("env", "torchvision")),
    ("CUDA", ("env", "cuda")),
    ("cuDNN", ("env", "cudnn")),
    ("device", ("env", "device")),
    ("device name", ("env", "device_name")),
    ("CPU", ("env", "cpu_model")),
    ("threads", ("env", "threads")),
    ("training precision", ("train", "amp")),
    ("training channels_last", ("train", "channels_last")),
    ("latency precision", ("latency", "precision")),
    ("latency layout", ("latency", "memory_format")),
]


def provenance_columns(record: dict) -> dict:
    """`prov:<name>` (the value as text, "none" when absent) of each PROVENANCE field, and the run's own speed
    ranges: `latency_range` (p10, p90 ms) and `throughput_range` (img/s), None when not measured."""
    row = {f"prov:{name}": _provenance_text(nested(record, *keys)) for name, keys in PROVENANCE}
    latency = record.get("latency") or {}
    row["latency_range"] = _positive_pair(nested(latency, "batch_1", "p10_ms"), nested(latency, "batch_1", "p90_ms"))
    # A slow batch (p90 time) is a low throughput: the range of img/s runs from p90 to p10.
    batch, slow_ms, fast_ms = (nested(latency, "throughput", key) for key in ("batch_size", "p90_ms", "p10_ms"))
    row["throughput_range"] = (_positive_pair(1000 * batch / slow_ms, 1000 * batch / fast_ms)
                               if _positive(batch, slow_ms, fast_ms) else None)
    return row


def _provenance_text(value) -> str:
    return "none" if value is None else str(value)


def _positive(*values) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)


def _positive_pair(low, high):
    return (float(low), float(high)) if _positive(low, high) else None
