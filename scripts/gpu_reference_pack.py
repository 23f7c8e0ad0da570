"""The last step of scripts/gpu_reference.sh: what comes back from the GPU machine, as four flat files.

    python scripts/gpu_reference_pack.py --results WORK/results --versions WORK/versions.json --out OUT \
        --study gpu_reference --smoke-study gpu_reference_smoke --expect-models a,b --expect-seeds 0,1,2

writes into OUT (beside the log the shell script already writes there):
    summary.md         the smoke table and one row per study job (model, seed, status, top-1, img/s, MFU,
                       peak memory, energy), then each model's mean over the seeds that finished
    versions.json      versions, the matmul peak of each precision, and every row above, machine-readable
    records.tar.gz     every record.json and run.log under --results (no weights, no checkpoints): what
                       `results/reference/` receives once committed
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
PACKED_NAMES = ("record.json", "run.log")
COLUMNS = ["model", "seed", "status", "precision", "test top-1", "val top-1", "epochs", "train s", "img/s",
           "MFU", "MFU vs peak", "peak mem MiB", "J/train img", "J/infer img"]


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
    return {"model": model, "seed": seed, "status": record.get("status", "missing"),
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
        out.append({"model": model, "complete seeds": len(done),
                    "mean test top-1": _round(statistics.fmean(top1), 2) if top1 else None,
                    "std": _round(statistics.stdev(top1), 2) if len(top1) > 1 else None,
                    "mean img/s": _round(statistics.fmean(speed), 0) if speed else None})
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    from tabulate import tabulate

    return tabulate([[row.get(c) for c in columns] for row in rows], headers=columns, tablefmt="github",
                    missingval="-", floatfmt="g")


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
    parser.add_argument("--note", action="append", default=[], help="a line for the summary (e.g. a timeout)")
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

    packed = pack_records(args.results, args.out / "records.tar.gz")
    lines = [f"# {args.study}: {sum(r['status'] == 'complete' for r in rows)} of {len(rows)} jobs complete", ""]
    if versions:
        lines += [f"torch {versions.get('torch')}, CUDA {versions.get('cuda')}, "
                  f"{versions.get('gpu') or versions.get('cpu')}", ""]
    lines += [*(f"- {note}" for note in args.note), "", "## Smoke: one short training per representative", "",
              markdown(smoke_rows, COLUMNS), "", "## Study, one row per job", "", markdown(rows, COLUMNS), "",
              "## Mean over complete seeds", "",
              markdown(means(rows), ["model", "complete seeds", "mean test top-1", "std", "mean img/s"]), "",
              f"records.tar.gz: {packed} files (record.json and run.log; no weights or checkpoints)"]
    if problems:
        lines += ["", "## Not complete", "", *(f"- {p}" for p in problems)]
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    (args.out / "versions.json").write_text(json.dumps(
        {**versions, "smoke": smoke_rows, "study": rows, "problems": problems, "notes": args.note}, indent=2))
    print("\n".join(lines))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
