"""The last step of scripts/gpu_reference.sh: what comes back from the GPU machine, as four flat files.

    python scripts/gpu_reference_pack.py --results WORK/results --versions WORK/versions.json --out OUT \
        --study gpu_reference --smoke-study gpu_reference_smoke --expect-models a,b --expect-seeds 0,1,2

writes into OUT (beside the log the shell script already writes there):
    summary.md         the time of every phase beside its GPU estimate, the smoke table and one row per
                       study job (model, seed, status, top-1, training img/s, MFU, peak memory, energy, and
                       the latency and inference img/s timed alone), then each model's mean over its seeds
    versions.json      versions, the matmul peak of each precision, the phases and every row above
    records.tar.gz     every record.json, run.log and test_outcomes.npz under --results (no weights, no
                       checkpoints): what `results/reference/` receives once committed
The device tool returns at most 8 files no more than 2 folders below OUT, so nothing here nests.
Exits 1 when any expected job has no complete record (the files are written all the same).
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_smoke_check import check_record, peak_label, run_precision  # noqa: E402

# What leaves the machine: the results, never weights or checkpoints (large, and not results).
# test_outcomes.npz: which test images each run got right; records name it, and paired comparisons read it.
PACKED_NAMES = ("record.json", "run.log", "test_outcomes.npz")
# Training figures of a parallel study are taken while its jobs share the GPU (the record's
# train.shared_device); the latency columns are the closing pass's, one model alone on the device.
SHARED = " (shared GPU)"
COLUMNS = ["model", "seed", "status", "precision", "test top-1", "val top-1", "epochs", "train s", "img/s",
           "MFU", "MFU vs peak", "peak mem MiB", "J/train img", "J/infer img", "batch-1 ms (alone)",
           "infer img/s (alone)"]
SHARED_COLUMNS = ("img/s", "MFU", "J/train img", "J/infer img", "mean img/s")
PEAK_MEM_NOTE = ("peak mem: CUDA memory at its peak in training (weights, optimizer state, gradients, "
                 "activations and the float32 augmented epoch, about 553 MB for 45,000 CIFAR images; not the "
                 "resident uint8 dataset)")


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def read_records(results: Path, study: str) -> dict[tuple[str, int], tuple[Path, dict]]:
    """{(model, seed): (path, record)} of `study`, the newest when a job has several variants."""
    found: dict[tuple[str, int], tuple[Path, dict]] = {}
    for path in sorted((results / "runs" / study).rglob("record.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            record = {"status": f"unreadable ({err})", "model": path.parents[2].name}
        key = (record.get("model") or path.parents[2].name, int(record.get("seed", path.parent.name[4:] or 0)))
        if key not in found or path.stat().st_mtime > found[key][0].stat().st_mtime:
            found[key] = (path, record)
    return found


def job_row(model: str, seed: int, record: dict | None) -> dict:
    record = record or {}
    train, metrics, energy = record.get("train") or {}, record.get("metrics") or {}, record.get("energy") or {}
    mem = train.get("peak_mem_bytes")
    latency = record.get("latency") or {}
    alone = latency if latency.get("batch_1") and not latency.get("under_load") else {}
    return {"model": model, "seed": seed, "status": record.get("status", "missing"),
            "shared": bool(train.get("shared_device") or energy.get("shared_device")),
            "batch-1 ms (alone)": _round((alone.get("batch_1") or {}).get("median_ms"), 3),
            "infer img/s (alone)": _round((alone.get("throughput") or {}).get("img_per_s"), 0),
            "precision": run_precision(train) if train else None,
            "test top-1": _round(metrics.get("test_top1"), 2), "val top-1": _round(metrics.get("val_top1"), 2),
            "epochs": _round(train.get("epochs"), 2), "train s": _round(train.get("wall_s"), 1),
            "img/s": _round(train.get("img_per_s"), 0), "MFU": _round(train.get("mfu"), 3),
            "MFU vs peak": peak_label(train) if train else None,
            "peak mem MiB": _round(mem / 2**20 if mem else None, 0),
            "J/train img": _round(energy.get("train_j_per_image"), 4),
            "J/infer img": _round(energy.get("inference_j_per_image"), 4)}


def means(rows: list[dict]) -> list[dict]:
    """Each model's mean test top-1 and img/s over its complete seeds."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        done = [r for r in rows if r["model"] == model and r["status"] == "complete"]
        top1 = [r["test top-1"] for r in done if r["test top-1"] is not None]
        speed = [r["img/s"] for r in done if r["img/s"] is not None]
        out.append({"model": model, "complete seeds": len(done), "shared": any(r["shared"] for r in done),
                    "mean test top-1": _round(statistics.fmean(top1), 2) if top1 else None,
                    "std": _round(statistics.stdev(top1), 2) if len(top1) > 1 else None,
                    "mean img/s": _round(statistics.fmean(speed), 0) if speed else None})
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    from tabulate import tabulate

    shared = any(row.get("shared") for row in rows)
    headers = [c + SHARED if shared and c in SHARED_COLUMNS else c for c in columns]
    return tabulate([[row.get(c) for c in columns] for row in rows], headers=headers, tablefmt="github",
                    missingval="-", floatfmt="g")


def parse_phases(text: str | None) -> list[dict]:
    """'install=3:10 smoke=40:60' (name=seconds:GPU estimate) -> rows, with the totals."""
    rows = []
    for item in (text or "").split():
        name, _, times = item.partition("=")
        took, _, estimate = times.partition(":")
        rows.append({"phase": name, "seconds": int(float(took)), "GPU estimate s": int(float(estimate or 0))})
    if rows:
        rows.append({"phase": "total", "seconds": sum(r["seconds"] for r in rows),
                     "GPU estimate s": sum(r["GPU estimate s"] for r in rows)})
    return rows


def cut_note(rows: list[dict], limit_s: int) -> str:
    """What a stop at the study's limit cost: later jobs, or only the closing pass's speed figures."""
    missing = [r for r in rows if r["status"] != "complete"]
    if missing:
        return (f"the study was stopped at its {limit_s} s limit: {len(missing)} of {len(rows)} jobs have no "
                f"complete record (the latest in study order)")
    untimed = sum(r["batch-1 ms (alone)"] is None for r in rows)
    return (f"the study was stopped at its {limit_s} s limit after every job had finished: only the closing "
            f"measurement pass was cut ({untimed} of {len(rows)} records without a latency timed alone)")


def pack_records(results: Path, tarball: Path) -> int:
    """records.tar.gz of every record and run log under `results`, paths relative to it; returns the count."""
    members = sorted(p for p in results.rglob("*") if p.is_file() and p.name in PACKED_NAMES)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in members:
            tar.add(path, arcname=str(path.relative_to(results)))
    tmp = tarball.with_name(tarball.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(tarball)
    return len(members)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, required=True, help="the study's results_dir (work folder)")
    parser.add_argument("--versions", type=Path, help="versions.json written by gpu_smoke_check.py versions")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--study", default="gpu_reference")
    parser.add_argument("--smoke-study", default="gpu_reference_smoke")
    parser.add_argument("--expect-models", required=True, help="comma-separated, in study order")
    parser.add_argument("--smoke-models", help="comma-separated; default: --expect-models")
    parser.add_argument("--expect-seeds", default="0,1,2")
    parser.add_argument("--note", action="append", default=[], help="a line for the summary")
    parser.add_argument("--stopped-at", type=int, help="the study sweep was stopped at this limit (seconds)")
    parser.add_argument("--phases", help="name=seconds:gpu_estimate ... of every phase, from the shell script")
    args = parser.parse_args(argv)

    models = [m for m in args.expect_models.split(",") if m]
    seeds = [int(s) for s in args.expect_seeds.split(",") if s != ""]
    args.out.mkdir(parents=True, exist_ok=True)
    smoke = read_records(args.results, args.smoke_study)
    smoke_models = [m for m in (args.smoke_models or args.expect_models).split(",") if m]
    smoke_rows = [job_row(m, 0, (smoke.get((m, 0)) or (None, None))[1]) for m in smoke_models]
    study = read_records(args.results, args.study)
    # Study order (all models for seed 0, then seed 1, ...): a call cut short loses whole later seeds.
    rows = [job_row(m, s, (study.get((m, s)) or (None, None))[1]) for s in seeds for m in models]
    problems = [f"{args.study} {r['model']} seed {r['seed']}: {p}" for r in rows
                for p in check_record((study.get((r["model"], r["seed"])) or (None, None))[1], None)]
    versions = json.loads(args.versions.read_text()) if args.versions and args.versions.exists() else {}
    notes = list(args.note) + ([cut_note(rows, args.stopped_at)] if args.stopped_at is not None else [])
    if any(r["shared"] for r in rows):
        notes.append(f"columns marked{SHARED} were taken while the study's jobs shared the GPU, each beside "
                     "different neighbours: compare them only within this table; the '(alone)' columns were "
                     "timed one model at a time after training")
    phases = parse_phases(args.phases)

    packed = pack_records(args.results, args.out / "records.tar.gz")
    lines = [f"# {args.study}: {sum(r['status'] == 'complete' for r in rows)} of {len(rows)} jobs complete", ""]
    if versions:
        lines += [f"torch {versions.get('torch')}, CUDA {versions.get('cuda')}, "
                  f"{versions.get('gpu') or versions.get('cpu')}", ""]
    lines += [*(f"- {note}" for note in notes), f"- {PEAK_MEM_NOTE}", ""]
    if phases:
        lines += ["## Phases", "", markdown(phases, ["phase", "seconds", "GPU estimate s"]), ""]
    lines += ["## Smoke: one short training", "",
              markdown(smoke_rows, COLUMNS), "", "## Study, one row per job", "", markdown(rows, COLUMNS), "",
              "## Mean over complete seeds", "",
              markdown(means(rows), ["model", "complete seeds", "mean test top-1", "std", "mean img/s"]), "",
              f"records.tar.gz: {packed} files (record.json, run.log and test_outcomes.npz; no weights or "
              "checkpoints)"]
    if problems:
        lines += ["", "## Not complete", "", *(f"- {p}" for p in problems)]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "versions.json").write_text(json.dumps(
        {**versions, "smoke": smoke_rows, "study": rows, "problems": problems, "notes": notes, "phases": phases},
        indent=2))
    print("\n".join(lines))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
