"""Training speed of every precision x memory-format candidate, and of `auto`, per small representative.

For each of the six small representatives at batch 128 on 3x32x32 synthetic images: training
img/s of fp32 / low precision (bf16, or fp16 on a CUDA GPU without bf16) x NCHW / channels_last,
measured here with more steps than the probe takes; then what `choose_precision` (the probe,
with its own default few steps) picks, and the speed of that pick by this script's
measurement, so `auto_vs_fastest` shows what the probe's shortness costs (goal: >= 0.95).
With --strides, also ShuffleNetV2 and EfficientNetV2 at both small-input strides (stem
cifar16 and cifar), in the precision `auto` picks. With --accuracy, the test top-1 of the
same short run (experiment=demo: a 4,000-image Fashion-MNIST subset, 2 epochs) under `auto` and
under NCHW fp32, 2 seeds each, for the models `auto` runs in low precision: precision may change
speed, not what is learned. Prints one JSON object. On a CPU without native bf16 it says so and
measures fp32 only.

    python benchmarks/precision.py                 # about 3 minutes on 2 idle CPU cores
    python benchmarks/precision.py --steps 3 --models resnet20 --strides
    python benchmarks/precision.py --models resnet20 --accuracy   # + about 4 minutes
Run on an idle machine: the JSON carries the 1-minute load average at start and end.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import scipy.stats
import torch

from archbench.base.device import device_label, device_name, resolve_device
from archbench.measure.complexity import profile_complexity
from archbench.models import SMALL_REPRESENTATIVES, create_model
from archbench.train.precision import (
    candidate_label,
    choose_precision,
    measure_training_speed,
    native_low_precision,
)

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
STRIDE_MODELS = ("shufflenet_v2_x2_0", "efficientnetv2_b0")


def model_speeds(name: str, device: torch.device, batch_size: int, warmup: int, steps: int,
                 low_precision: str | None) -> dict:
    amps = ["off"] + ([low_precision] if low_precision else [])
    speeds = {}
    for amp in amps:
        for channels_last in (False, True):
            model = create_model(name, num_classes=NUM_CLASSES, input_size=INPUT_SHAPE[1])
            speed = measure_training_speed(model, amp, channels_last, INPUT_SHAPE, batch_size, NUM_CLASSES, device,
                                           warmup, steps)
            speeds[candidate_label(amp, channels_last)] = None if speed is None else round(speed, 1)
    with tempfile.TemporaryDirectory() as cache:  # a fresh probe, as the first run of a sweep pays it
        choice = choose_precision(lambda: create_model(name, num_classes=NUM_CLASSES, input_size=INPUT_SHAPE[1]),
                                  INPUT_SHAPE, batch_size, NUM_CLASSES, device, cache_dir=cache)
    picked = candidate_label(choice["amp"], choice["channels_last"])
    fastest = max((v for v in speeds.values() if v is not None), default=None)
    return {
        "img_per_s": speeds,
        "auto": picked,
        "auto_img_per_s": speeds[picked],
        "auto_vs_fastest": round(speeds[picked] / fastest, 3) if fastest and speeds[picked] else None,
        "auto_vs_fp32_nchw": round(speeds[picked] / speeds["fp32_nchw"], 2) if speeds["fp32_nchw"] else None,
        "probe_img_per_s": {k: None if v is None else round(v, 1) for k, v in choice["probe"].items()},
        "probe_reason": choice["reason"],
    }


def stride_speeds(name: str, device: torch.device, batch_size: int, warmup: int, steps: int, amp: str,
                  channels_last: bool) -> dict:
    rows = {}
    for stem in ("cifar16", "cifar"):
        model = create_model(name, num_classes=NUM_CLASSES, input_size=INPUT_SHAPE[1], stem=stem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = profile_complexity(model, INPUT_SHAPE)
        speed = measure_training_speed(model, amp, channels_last, INPUT_SHAPE, batch_size, NUM_CLASSES, device,
                                       warmup, steps)
        rows[stem] = {"final_feature_map": stats["final_feature_map"], "mmacs": round(stats["macs"] / 1e6, 1),
                      "img_per_s": None if speed is None else round(speed, 1),
                      "precision": candidate_label(amp, channels_last)}
    return rows


def short_run_accuracy(name: str, seeds: tuple[int, ...] = (0, 1)) -> dict:
    """Test top-1 of experiment=demo's run of `name` under auto and under NCHW fp32, per seed."""
    settings = {"auto": ["train.amp=auto", "train.channels_last=auto"],
                "fp32_nchw": ["train.amp=off", "train.channels_last=false"]}
    top1 = {label: [] for label in settings}
    ran = {}
    with tempfile.TemporaryDirectory() as results:
        for label, overrides in settings.items():
            for seed in seeds:
                command = [sys.executable, "-m", "archbench", "experiment=demo", f"model={name}", f"seed={seed}",
                           f"results_dir={results}", f"study=precision_{label}", "evaluate.after_train=false",
                           "progress_bar=false", *overrides]
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                path, = Path(results).glob(f"runs/precision_{label}/*/{name}/*/seed{seed}/record.json")
                record = json.loads(path.read_text())
                if record["status"] != "complete":
                    raise RuntimeError(f"{path}: status {record['status']}")
                top1[label].append(round(record["metrics"]["test_top1"], 2))
                choice = record.get("train_precision") or record["recipe"]
                ran[label] = candidate_label(choice["amp"], choice["channels_last"])
                test_images = record["dataset"]["test_size"]
    mean = {label: statistics.fmean(values) for label, values in top1.items()}
    # One test set of n images: a difference below ~2 binomial standard errors is noise whatever the seeds.
    p = mean["fp32_nchw"] / 100
    noise_floor = 100 * 2 * math.sqrt(2 * p * (1 - p) / test_images)
    # Seeds are paired (same seed, same data order, only the precision differs): a paired t-test says
    # whether the seeds can tell the two apart; with few seeds it cannot prove them equal either.
    paired_p = float(scipy.stats.ttest_rel(top1["auto"], top1["fp32_nchw"]).pvalue) if len(seeds) > 1 else None
    difference = mean["auto"] - mean["fp32_nchw"]
    return {"test_top1": top1, "mean": {k: round(v, 2) for k, v in mean.items()}, "ran": ran,
            "difference": round(difference, 2), "noise_floor_2se": round(noise_floor, 2),
            "paired_t_p": None if paired_p is None else round(paired_p, 3),
            "within_noise": abs(difference) <= noise_floor or (paired_p is not None and paired_p >= 0.05)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per candidate")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per candidate (median step time)")
    parser.add_argument("--models", nargs="*", default=list(SMALL_REPRESENTATIVES.values()))
    parser.add_argument("--strides", action="store_true", help="also time both small-input strides of "
                        + " and ".join(STRIDE_MODELS))
    parser.add_argument("--accuracy", action="store_true", help="also the test top-1 of a short run under auto "
                        "and NCHW fp32 (2 seeds) for the models auto runs in low precision")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    low_precision, why = native_low_precision(device)
    out = {
        "machine": device_name(device), "device": device_label(device), "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(), "batch_size": args.batch_size, "input_shape": list(INPUT_SHAPE),
        "warmup_steps": args.warmup, "timed_steps": args.steps, "low_precision": low_precision,
        "low_precision_note": why, "load_average_1min_start": round(os.getloadavg()[0], 2), "models": {},
    }
    for name in args.models:
        out["models"][name] = model_speeds(name, device, args.batch_size, args.warmup, args.steps, low_precision)
    if args.strides:
        out["strides"] = {}
        for name in STRIDE_MODELS:
            picked = out["models"].get(name, {}).get("auto", "fp32_nchw")
            amp = "off" if picked.startswith("fp32") else picked.split("_")[0]
            out["strides"][name] = stride_speeds(name, device, args.batch_size, args.warmup, args.steps, amp,
                                                 picked.endswith("channels_last"))
    if args.accuracy:
        out["accuracy"] = {name: short_run_accuracy(name) for name, row in out["models"].items()
                           if not row["auto"].startswith("fp32")}
    out["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
