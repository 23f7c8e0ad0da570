"""Threads on shared cores: with another 1-thread training job already on the machine, is a new run faster
with torch's default (every core) or with the cores left free?

The question behind `threads: null` (conf/config.yaml): a run started beside other work (another archbench
job, a sweep's worker) either oversubscribes the cores with one thread per core, or takes the free ones.
A background process trains resnet20 (batch 128, fp32, 1 thread) on random tensors for the whole benchmark;
the foreground times the same step with each thread count in turn, and the background's own step rate in
each phase (what the new run costs its neighbour). Prints one JSON line per phase, then a summary:
    {"phase": "threads=2", "img_s": ..., "neighbour_img_s": ...}
Run on an otherwise idle machine (the neighbour is the only other load): python benchmarks/shared_cores.py
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time

import torch
import torch.nn as nn

from archbench.models import create_model

BATCH = 128


def _step_fn(model_name: str):
    model = create_model(model_name, num_classes=10).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    x, y = torch.randn(BATCH, 3, 32, 32), torch.randint(0, 10, (BATCH,))

    def step():
        loss = criterion(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def neighbour(model_name: str, stop, steps_done) -> None:
    """The other job: 1 thread, stepping until told to stop, counting its steps."""
    torch.set_num_threads(1)
    step = _step_fn(model_name)
    while not stop.is_set():
        step()
        with steps_done.get_lock():
            steps_done.value += 1


def timed(step, seconds: float) -> float:
    """Images per second over at least `seconds` of steps, after one warm-up step."""
    step()
    done, tick = 0, time.perf_counter()
    while time.perf_counter() - tick < seconds:
        step()
        done += 1
    return done * BATCH / (time.perf_counter() - tick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    context = mp.get_context("spawn")
    stop, steps_done = context.Event(), context.Value("i", 0)
    other = context.Process(target=neighbour, args=(args.model, stop, steps_done), daemon=True)
    other.start()
    time.sleep(10)  # the neighbour builds its model and settles
    summary = {"cpu_cores": cores, "model": args.model, "batch": BATCH}
    try:
        for threads in sorted({cores, max(cores - 1, 1)}, reverse=True):
            torch.set_num_threads(threads)
            step = _step_fn(args.model)
            before, tick = steps_done.value, time.perf_counter()
            img_s = timed(step, args.seconds)
            neighbour_img_s = (steps_done.value - before) * BATCH / (time.perf_counter() - tick)
            row = {"phase": f"threads={threads}", "img_s": round(img_s, 1),
                   "neighbour_img_s": round(neighbour_img_s, 1)}
            print(json.dumps(row), flush=True)
            summary[f"threads_{threads}"] = row
    finally:
        stop.set()
        other.join(timeout=30)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
