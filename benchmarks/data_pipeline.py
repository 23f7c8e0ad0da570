"""One training epoch of CIFAR-10 (JPEG archive) through archbench's data pipeline and through torchvision's.

    python benchmarks/data_pipeline.py [--archive PATH] [--batch-size 512] [--workers 2] [--device cpu]

Both do the same work per image: random 32x32 crop of the 4-pixel zero-padded image (offset drawn per
sample), horizontal flip with probability 1/2 (per sample), conversion to float and normalization.
archbench: decode once into a uint8 cache (timed separately: cache_build_s cold, cache_load_s warm),
then gather + augment + normalize whole batches on the device. torchvision: ImageFolder on the
extracted archive, RandomCrop + RandomHorizontalFlip + ToTensor + Normalize per PIL image, DataLoader
with --workers processes. Timings cover the epoch only (worker start-up included for torchvision, as
every epoch pays it without persistent workers). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from archbench.data import load_dataset, make_loaders
from archbench.base.device import synchronize

DEFAULT_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpg.tar.gz"
AUGMENT = {"crop_padding": 4, "padding_mode": "zero", "flip": True, "cutout": 0}  # = RandomCrop(32, 4) + flip


def archbench_epoch(dataset, batch_size: int, device: str) -> tuple[int, float]:
    train_loader, _, _ = make_loaders(dataset, batch_size=batch_size, device=device, augment=AUGMENT, seed=0)
    train_loader.set_epoch(0)
    synchronize(device)
    started = time.perf_counter()
    images = 0
    for x, _ in train_loader:
        images += len(x)
    synchronize(device)
    return images, time.perf_counter() - started


def torchvision_epoch(train_dir: Path, mean, std, batch_size: int, workers: int) -> tuple[int, float]:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
    loader = torch.utils.data.DataLoader(ImageFolder(str(train_dir), transform=transform), batch_size=batch_size,
                                         shuffle=True, num_workers=workers, drop_last=True)
    started = time.perf_counter()
    images = 0
    for x, _ in loader:
        images += len(x)
    return images, time.perf_counter() - started


def extract(archive: Path, into: Path) -> Path:
    """Unpack the archive and return the folder holding train/ (archives often wrap it in one folder)."""
    with tarfile.open(archive) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # refuse paths outside `into`
        tar.extractall(into, **safe)
    return next(p.parent for p in sorted(into.rglob("train")) if p.is_dir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE, help="CIFAR-10 JPEG image-folder archive")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--workers", type=int, default=2, help="torchvision DataLoader worker processes")
    parser.add_argument("--device", default="cpu", help="where archbench's batches are made (cpu, cuda)")
    args = parser.parse_args()
    if not args.archive.is_file():
        raise SystemExit(f"{args.archive} not found; pass --archive PATH to the CIFAR-10 JPEG .tar.gz")

    with tempfile.TemporaryDirectory(prefix="archbench-bench-") as tmp:
        tmp = Path(tmp)
        cache_dir = tmp / "cache"  # a fresh cache, so the one-off build is measured too
        options = dict(root=args.archive, image_size=32, val_size=0, cache_dir=cache_dir)
        started = time.perf_counter()
        load_dataset("imagefolder", **options)
        cache_build_s = time.perf_counter() - started
        started = time.perf_counter()
        dataset = load_dataset("imagefolder", **options)
        cache_load_s = time.perf_counter() - started

        ours_images, ours_s = archbench_epoch(dataset, args.batch_size, args.device)

        started = time.perf_counter()
        extracted = extract(args.archive, tmp / "extracted")
        extract_s = time.perf_counter() - started
        ref_images, ref_s = torchvision_epoch(extracted / "train", dataset.mean, dataset.std, args.batch_size,
                                              args.workers)

    ours_rate, ref_rate = ours_images / ours_s, ref_images / ref_s
    print(json.dumps({
        "archbench_img_s": round(ours_rate), "torchvision_img_s": round(ref_rate),
        "ratio": round(ours_rate / ref_rate, 1),
        "archbench_epoch_s": round(ours_s, 3), "torchvision_epoch_s": round(ref_s, 3),
        "images": ours_images, "batch_size": args.batch_size, "torchvision_workers": args.workers,
        "device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "cache_build_s": round(cache_build_s, 2), "cache_load_s": round(cache_load_s, 2),
        "extract_s": round(extract_s, 2),
    }))


if __name__ == "__main__":
    main()
