"""The Python side of scripts/gpu_smoke.sh: the import check, the versions and peaks, and the table.

    python scripts/gpu_smoke_check.py imports [--cuda]
    python scripts/gpu_smoke_check.py versions --out DIR --device cuda|cpu
    python scripts/gpu_smoke_check.py table --out DIR --expect STUDY/DATA/MODEL ... [--since T] [--min-top1 STUDY=PCT]

Each step exits non-zero with a message naming what is wrong, so the shell script never has to guess.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # archbench from this checkout: on the GPU machine it is not installed

# What `python -m archbench` and this script import. The first group comes with the GPU machine;
# the second is what scripts/fetch_gpu_wheels.sh puts into vendor/wheels.
MACHINE_MODULES = ["torch", "torchvision", "timm", "numpy", "PIL", "yaml", "tqdm"]
VENDORED_MODULES = ["hydra", "omegaconf", "antlr4", "fvcore", "iopath", "yacs", "termcolor", "portalocker",
                    "tabulate"]
ARCHBENCH_MODULES = ["archbench.models", "archbench.data", "archbench.measure", "archbench.train",
                     "archbench.run", "archbench.__main__"]
EXIT_MISSING = 3
PEAK_PRECISIONS = [("fp32", False), ("fp32", True), ("bf16", None), ("fp16", None)]


def check_imports(modules: list[str], need_cuda: bool) -> list[str]:
    """One line per module that does not import (or per missing CUDA), empty when all is well."""
    problems = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # an ImportError, or a broken package failing at import time
            if name in VENDORED_MODULES:
                hint = "vendored: run scripts/fetch_gpu_wheels.sh on the development machine and carry vendor/"
            elif name.startswith("archbench"):
                hint = "archbench itself fails to import: see the error"
            else:
                hint = "expected to come with the GPU machine's Python: install it there"
            problems.append(f"{name}: {type(err).__name__}: {err} ({hint})")
    if need_cuda and not problems:
        import torch

        if not torch.cuda.is_available():
            problems.append(f"torch {torch.__version__} sees no CUDA device (torch.version.cuda="
                            f"{torch.version.cuda}); on a CPU machine run scripts/gpu_smoke.sh --cpu-dry")
    return problems


def versions(device: str) -> dict:
    """torch, CUDA, cuDNN and device name, and the matmul peak of each precision on `device`."""
    import torch

    from archbench.measure import device_peak_flops
    from archbench.base.device import cpu_model

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "device": device}
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, capability=f"sm_{props.major}{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), gpu_count=torch.cuda.device_count())
    else:
        info.update(cpu=cpu_model(), threads=torch.get_num_threads())
    peaks = {}
    for precision, tf32 in PEAK_PRECISIONS:
        if device == "cpu" and tf32:
            continue  # TF32 is a CUDA tensor-core mode
        entry = device_peak_flops(device, precision, tf32=tf32 if device == "cuda" else None)
        label = precision + ("+tf32" if entry["tf32"] else "")
        peaks[label] = entry["flops_per_s"] if entry["supported"] else f"unsupported: {entry['reason']}"
    info["peak_flops_per_s"] = peaks
    return info


def format_versions(info: dict) -> str:
    where = (f"GPU {info['gpu']} ({info['capability']}, {info['gpu_memory_gib']} GiB)" if info["device"] == "cuda"
             else f"CPU {info['cpu']} ({info['threads']} threads)")
    peaks = ", ".join(f"{k} {v / 1e12:.3g}" if isinstance(v, float) else f"{k} unsupported"
                      for k, v in info["peak_flops_per_s"].items())
    return (f"torch {info['torch']} | CUDA {info['cuda']} | cuDNN {info['cudnn']} | Python {info['python']} | {where}\n"
            f"matmul peak, TFLOP/s: {peaks}")


# --------------------------------------------------------------------------------------------- the table

COLUMNS = ["model", "data", "precision", "compile", "status", "img/s", "step ms", "MFU", "MFU vs peak",
           "peak mem MiB", "test top-1"]


def run_precision(train: dict) -> str:
    amp = train.get("amp")
    return "fp32" if amp in (None, False, "off", "fp32") else str(amp)


def peak_label(train: dict) -> str | None:
    peak = train.get("device_peak") or {}
    precision = peak.get("precision") or peak.get("dtype")  # records made before per-precision peaks say dtype
    if precision is None:
        return None
    return precision + ("+tf32" if peak.get("tf32") else "")


def check_record(record: dict | None, min_top1: float | None) -> list[str]:
    """Why this job's figures cannot be trusted; empty when they can."""
    if record is None:
        return ["no record (the job did not run or crashed before writing one)"]
    if record.get("status") != "complete":
        error = (record.get("error") or {}).get("message") or ""
        return [f"status {record.get('status')}" + (f": {error.splitlines()[0][:200]}" if error else "")]
    problems = []
    train = record.get("train") or {}
    peak = peak_label(train)
    if train.get("mfu") is not None and (peak or "").split("+")[0] != run_precision(train):
        problems.append(f"MFU divided by the {peak} peak but the run trained in {run_precision(train)}")
    top1 = (record.get("metrics") or {}).get("test_top1")
    if min_top1 is not None and (top1 is None or top1 < min_top1):
        problems.append(f"test top-1 {top1} below the {min_top1}% this check expects")
    return problems


def find_record(out: Path, study: str, data: str, model: str, since: float) -> dict | None:
    """The newest seed-0 record of the job written at or after `since` (a Unix time), else None.

    Searched below the model's folder rather than at one fixed path, so the check keeps working
    when the record layout gains levels (such as a recipe variant); records older than this
    invocation are ignored, so a previous run's success cannot hide a failure now.
    """
    paths = [p for p in (out / "runs" / study / data / model).rglob("seed0/record.json") if p.stat().st_mtime >= since]
    if not paths:
        return None
    newest = max(paths, key=lambda p: p.stat().st_mtime)
    try:
        return json.loads(newest.read_text())
    except (OSError, json.JSONDecodeError) as err:
        return {"status": f"unreadable ({err})"}


def table_rows(out: Path, expected: list[str], min_top1: dict[str, float],
               since: float = 0.0) -> tuple[list[dict], list[str]]:
    rows, problems = [], []
    for job in expected:
        study, data, model = job.split("/")
        record = find_record(out, study, data, model, since)
        for problem in check_record(record, min_top1.get(study)):
            problems.append(f"{job}: {problem}")
        record = record or {}
        train = record.get("train") or {}
        mem = train.get("peak_mem_bytes")
        rows.append({
            "model": model, "data": data, "precision": run_precision(train) if train else None,
            "compile": train.get("compile"), "status": record.get("status", "missing"),
            "img/s": _round(train.get("img_per_s"), 0), "step ms": _round(train.get("step_ms"), 2),
            "MFU": _round(train.get("mfu"), 3), "MFU vs peak": peak_label(train),
            "peak mem MiB": _round(mem / 2**20 if mem else None, 0),
            "test top-1": _round((record.get("metrics") or {}).get("test_top1"), 1),
        })
    return rows, problems


def _round(value, digits):
    return None if value is None else round(float(value), digits)


def format_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    return tabulate([[row[c] for c in COLUMNS] for row in rows], headers=COLUMNS, tablefmt="github",
                    missingval="-", floatfmt="g")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    steps = parser.add_subparsers(dest="step", required=True)
    imports = steps.add_parser("imports", help="import everything the GPU check needs")
    imports.add_argument("--cuda", action="store_true", help="also require a CUDA device")
    imports.add_argument("--extra", nargs="*", default=[], help="more modules to check")
    ver = steps.add_parser("versions", help="print and save versions and the peak of each precision")
    ver.add_argument("--out", type=Path, required=True)
    ver.add_argument("--device", choices=["cuda", "cpu"], required=True)
    table = steps.add_parser("table", help="print the one table; exit 1 unless every job is complete")
    table.add_argument("--out", type=Path, required=True)
    table.add_argument("--expect", nargs="+", required=True, metavar="STUDY/DATA/MODEL")
    table.add_argument("--since", type=float, default=0.0,
                       help="ignore records written before this Unix time (the smoke run's start)")
    table.add_argument("--min-top1", nargs="*", default=[], metavar="STUDY=PCT",
                       help="fail when a study's test top-1 is below PCT")
    args = parser.parse_args(argv)

    if args.step == "imports":
        modules = MACHINE_MODULES + VENDORED_MODULES + ARCHBENCH_MODULES + args.extra
        problems = check_imports(modules, args.cuda)
        for line in problems:
            print(f"gpu_smoke: not ready: {line}", file=sys.stderr)
        if problems:
            print(f"gpu_smoke: {len(problems)} import problem(s); nothing was run", file=sys.stderr)
            return EXIT_MISSING
        print(f"imports ok: {len(modules)} modules" + (", CUDA available" if args.cuda else ""))
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "versions":
        info = versions(args.device)
        (args.out / "versions.json").write_text(json.dumps(info, indent=2))
        print(format_versions(info))
        return 0

    try:
        min_top1 = {k: float(v) for k, v in (item.split("=", 1) for item in args.min_top1)}
    except ValueError:
        parser.error(f"--min-top1 {args.min_top1} must be STUDY=PERCENT pairs, e.g. gpu_smoke_accuracy=50")
    rows, problems = table_rows(args.out, args.expect, min_top1, args.since)
    text = format_table(rows)
    (args.out / "smoke_table.md").write_text(text + "\n")
    (args.out / "smoke_summary.json").write_text(json.dumps({"rows": rows, "problems": problems}, indent=2))
    print(text)
    for line in problems:
        print(f"gpu_smoke: FAILED {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
