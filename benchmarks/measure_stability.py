"""How repeatable is the latency harness? Batch-1 latency of one model in N fresh processes.

    python benchmarks/measure_stability.py [--model resnet20] [--processes 3] [--device cpu]

Prints one JSON line: each process's median, their mean, and the spread (max - min) as a
fraction of the mean. Two models whose latencies differ by less than that spread are not
distinguishable by this harness on this machine.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from archbench.measure import measure_latency_isolated

FALLBACK = ("resnet18", "torchvision.models:get_model")  # when archbench.models is not importable


def _builder_for(model_name: str) -> tuple[str, str]:
    try:
        from archbench.models import list_models
    except ImportError:
        return FALLBACK
    return (model_name, "archbench.models:create_model") if model_name in list_models() else FALLBACK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--min-reps", type=int, default=5)
    parser.add_argument("--min-time-s", type=float, default=1.0)
    args = parser.parse_args()
    if args.processes < 2:
        parser.error(f"--processes={args.processes}: a spread needs at least 2 processes")

    if args.threads is not None:
        torch.set_num_threads(args.threads)  # the child processes inherit this count
    model_name, builder = _builder_for(args.model)
    shape = (3, args.input_size, args.input_size)
    started = time.perf_counter()
    runs = [
        measure_latency_isolated(model_name, {"num_classes": args.num_classes}, shape, builder=builder,
                                 device=args.device, batch_size=1, warmup=args.warmup,
                                 min_reps=args.min_reps, min_time_s=args.min_time_s)
        for _ in range(args.processes)
    ]
    medians = [run["batch_1"]["median_ms"] for run in runs]
    mean = sum(medians) / len(medians)
    print(json.dumps({
        "benchmark": "measure_stability",
        "model": model_name,
        "builder": builder,
        "input_shape": list(shape),
        "device": runs[0]["device"],
        "device_name": runs[0]["device_name"],
        "threads": runs[0]["threads"],
        "settings": {"warmup": args.warmup, "min_reps": args.min_reps, "min_time_s": args.min_time_s},
        "medians_ms": [round(m, 4) for m in medians],
        "reps": [run["batch_1"]["count"] for run in runs],
        "load_avg_1m": [run["load_avg_1m"] for run in runs],
        "mean_ms": round(mean, 4),
        "spread_frac": round((max(medians) - min(medians)) / mean, 4),
        "wall_s": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
