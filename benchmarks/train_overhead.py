"""Training-loop overhead: archbench's `fit` against a minimal hand-written PyTorch loop, same process.

resnet20, batch 128, the same data and augmentation (archbench's batched loader over the CIFAR-10 JPEG
image folder), 50 steps each after a warm-up; prints one JSON line:
    {"archbench_img_s": ..., "bare_img_s": ..., "ratio": ..., "mfu": ..., ...}
Also reports resnet20's training MFU on this CPU against the measured fp32 matmul peak, and the aten ops
per training step of the input pipeline (per-batch augmentation, and the GPU path's one pass per epoch)
and of the whole step, counted with torch.profiler.
Target (2 CPU cores): ratio >= 0.95. Run on an idle machine: python benchmarks/train_overhead.py
"""
from __future__ import annotations

import argparse
import functools
import json
import time

import torch
import torch.nn as nn

from archbench.data import load_dataset, make_loaders
from archbench.measure import device_peak_flops, profile_complexity
from archbench.models import create_model
from archbench.train.budget import Budget
from archbench.train.loop import TrainSettings, fit
from archbench.train.schedules import Cosine

AUGMENT = {"crop_padding": 4, "padding_mode": "reflect", "flip": True, "cutout": 0}


def bare_loop(model, loader, steps):
    """The least a training step can do: forward, loss, backward, SGD step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    model.train()
    done, tick = 0, time.perf_counter()
    while done < steps:
        for x, y in loader:
            loss = criterion(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == steps:
                break
    return time.perf_counter() - tick


def archbench_loop(model, loader, test_loader, steps, batch_size):
    settings = TrainSettings(budget=Budget("steps", steps), batch_size=batch_size,
                             make_optimizer=functools.partial(torch.optim.SGD, momentum=0.9, nesterov=True),
                             lr=0.05, weight_decay=5e-4, schedule=Cosine(0.05))
    result = fit(model, loader, None, test_loader, settings)
    return result.train["wall_s"]  # the training loop itself; the final test evaluation is excluded


def input_ops_per_step(loader, batches: int = 4) -> int:
    """aten ops the loader runs per batch after the first (the profiler on CPU; an epoch pass runs once, first)."""
    iterator = iter(loader)
    next(iterator)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(batches):
            next(iterator)
    return sum(1 for event in prof.events() if event.name.startswith("aten::")) // batches


def step_ops(model, loader) -> int:
    """aten ops of one bare training step's forward, loss, backward and SGD update (input excluded)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x, y = next(iter(loader))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="../shared/data/cifar10-jpg.tar.gz")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternate the two loops this many times")
    args = parser.parse_args()

    torch.manual_seed(0)
    data = load_dataset("cifar10_jpg", root=args.root, train_size=args.batch_size * (args.steps + 10), val_size=5000)
    train_loader, _, _ = make_loaders(data, batch_size=args.batch_size, augment=AUGMENT, seed=0)
    # A tiny test split keeps fit's closing evaluation short (it is not timed anyway).
    tiny = load_dataset("synthetic", image_size=32, in_chans=3, num_classes=10, synthetic_size=300)
    _, _, tiny_test = make_loaders(tiny, batch_size=args.batch_size)
    model = create_model("resnet20", num_classes=10)
    complexity = profile_complexity(model, (1, 3, 32, 32))

    bare_loop(model, train_loader, 5)  # warm-up: oneDNN primitive creation, allocator
    bare_s, arch_s = [], []
    for _ in range(args.repeats):  # alternate so drift on a shared machine hits both equally
        bare_s.append(bare_loop(create_model("resnet20", num_classes=10), train_loader, args.steps))
        arch_s.append(archbench_loop(create_model("resnet20", num_classes=10), train_loader, tiny_test, args.steps,
                                     args.batch_size))
    epoch_pass, _, _ = make_loaders(data, batch_size=args.batch_size, augment=AUGMENT, seed=0)
    epoch_pass.epoch_pass = True  # what a GPU run does; here only to count its ops
    ops = {"input_ops_per_step_per_batch": input_ops_per_step(train_loader),
           "input_ops_per_step_epoch_pass": input_ops_per_step(epoch_pass),
           "model_ops_per_step": step_ops(create_model("resnet20", num_classes=10), train_loader)}
    images = args.steps * args.batch_size
    bare_img_s, arch_img_s = images / min(bare_s), images / min(arch_s)
    peak = device_peak_flops("cpu", refresh=True)  # the ceiling of this machine now, not a cached figure
    achieved = complexity["flops_train"] * arch_img_s
    print(json.dumps({
        "archbench_img_s": round(arch_img_s, 1), "bare_img_s": round(bare_img_s, 1),
        "ratio": round(arch_img_s / bare_img_s, 3),
        "train_flops_per_image": complexity["flops_train"], "achieved_gflops": round(achieved / 1e9, 2),
        "peak_gflops_fp32_matmul": round(peak["flops_per_s"] / 1e9, 1), "mfu": round(achieved / peak["flops_per_s"], 3),
        "steps": args.steps, "batch_size": args.batch_size, "threads": torch.get_num_threads(),
        "cpu": peak.get("device_name"), "torch": torch.__version__, **ops,
    }))


if __name__ == "__main__":
    main()
