"""scripts/gpu_smoke.sh and its Python side: the import check, the one table, and the exit code."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_smoke.sh"
VENDOR_READY = any((REPO / "vendor" / "wheels").glob("*.whl")) and (REPO / "vendor/data/cifar10-jpg.tar.gz").exists()
needs_vendor = pytest.mark.skipif(not VENDOR_READY, reason="run scripts/fetch_gpu_wheels.sh first (fills vendor/)")


def load_check():
    spec = importlib.util.spec_from_file_location("gpu_smoke_check", REPO / "scripts" / "gpu_smoke_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = load_check()


def write_record(out: Path, study: str, data: str, model: str, status: str = "complete", amp: str = "bf16",
                 peak: str = "bf16", top1: float = 60.0, variant: str = "standard-6s-abc") -> Path:
    """A record in the layout archbench writes, with a recipe-variant level the check must look through."""
    path = out / "runs" / study / data / model / variant / "seed0" / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"status": status, "model": model,
              "train": {"amp": amp, "compile": False, "img_per_s": 1234.5, "step_ms": 2.5, "mfu": 0.31,
                        "peak_mem_bytes": 3 * 2**30, "device_peak": {"precision": peak, "tf32": None}},
              "metrics": {"test_top1": top1},
              "error": {"message": "boom: CUDA error"} if status == "failed" else None}
    path.write_text(json.dumps(record))
    return path


def run_table(out: Path, *expect: str, extra=()) -> int:
    return check.main(["table", "--out", str(out), "--expect", *expect, *extra])


def test_table_passes_when_every_job_is_complete(tmp_path, capsys):
    write_record(tmp_path, "s", "synthetic", "resnet20")
    write_record(tmp_path, "s", "synthetic", "wrn_16_2")
    assert run_table(tmp_path, "s/synthetic/resnet20", "s/synthetic/wrn_16_2") == 0
    printed = capsys.readouterr().out
    header = printed.splitlines()[0]
    for column in check.COLUMNS:
        assert column in header
    assert printed.count("| complete") == 2 and "1234" in printed
    summary = json.loads((tmp_path / "smoke_summary.json").read_text())
    assert summary["problems"] == [] and [r["model"] for r in summary["rows"]] == ["resnet20", "wrn_16_2"]
    assert (tmp_path / "smoke_table.md").read_text().strip() == printed.strip()


@pytest.mark.parametrize("case, expected", [
    ("failed", "status failed: boom"),
    ("missing", "no record"),
    ("wrong_peak", "MFU divided by the fp32 peak but the run trained in bf16"),
    ("low_top1", "test top-1 12.0 below the 50.0%"),
])
def test_table_fails_and_says_why(tmp_path, capsys, case, expected):
    write_record(tmp_path, "s", "synthetic", "resnet20")
    if case == "failed":
        write_record(tmp_path, "s", "synthetic", "bad", status="failed")
    elif case == "wrong_peak":
        write_record(tmp_path, "s", "synthetic", "bad", peak="fp32")
    elif case == "low_top1":
        write_record(tmp_path, "s", "synthetic", "bad", top1=12.0)
    assert run_table(tmp_path, "s/synthetic/resnet20", "s/synthetic/bad", extra=["--min-top1", "s=50"]) == 1
    captured = capsys.readouterr()
    assert f"FAILED s/synthetic/bad: {expected}" in captured.err
    assert "s/synthetic/resnet20" not in captured.err


def test_records_from_before_this_run_do_not_count(tmp_path, capsys):
    old = write_record(tmp_path, "s", "synthetic", "resnet20")
    past = time.time() - 3600
    os.utime(old, (past, past))
    assert run_table(tmp_path, "s/synthetic/resnet20", extra=["--since", str(past + 60)]) == 1
    assert "no record" in capsys.readouterr().err
    assert run_table(tmp_path, "s/synthetic/resnet20", extra=["--since", str(past - 60)]) == 0


def test_fp32_run_matches_the_tf32_peak_label(tmp_path):
    write_record(tmp_path, "s", "synthetic", "resnet20", amp="off", peak="fp32")
    record = json.loads(next(tmp_path.rglob("record.json")).read_text())
    record["train"]["device_peak"]["tf32"] = True
    assert check.check_record(record, None) == []
    assert check.peak_label(record["train"]) == "fp32+tf32"


def test_import_check_names_each_missing_module_with_its_remedy():
    check.VENDORED_MODULES.append("no_such_vendored")
    try:
        problems = check.check_imports(["tabulate", "no_such_vendored", "no_such_machine_module"], need_cuda=False)
    finally:
        check.VENDORED_MODULES.remove("no_such_vendored")
    assert len(problems) == 2
    assert problems[0].startswith("no_such_vendored: ModuleNotFoundError") and "fetch_gpu_wheels.sh" in problems[0]
    assert problems[1].startswith("no_such_machine_module") and "GPU machine's Python" in problems[1]


@pytest.mark.slow  # imports torch, timm, hydra and all of archbench: over 10 s on a busy 2-core machine
def test_import_step_exits_3_and_runs_nothing(capsys):
    assert check.main(["imports", "--extra", "no_such_module_for_the_smoke"]) == check.EXIT_MISSING
    err = capsys.readouterr().err
    assert "not ready: no_such_module_for_the_smoke: ModuleNotFoundError" in err and "nothing was run" in err


def smoke(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PY": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), "--cpu-dry", "--out", str(tmp_path / "out"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@needs_vendor
def test_cpu_dry_run_end_to_end(tmp_path):
    result = smoke(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "installed" in out and "from vendor/wheels" in out  # the offline install path ran
    assert "imports ok" in out and "matmul peak" in out
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].split("|")[1].strip() == "model" and len(table) == 2 + 2  # header, rule, two jobs
    assert all("| complete" in row and "| bf16" in row for row in table[2:])
    assert {"synthetic", "cifar10_jpg"} <= {row.split("|")[2].strip() for row in table[2:]}
    versions = json.loads((tmp_path / "out" / "versions.json").read_text())
    assert versions["torch"] and set(versions["peak_flops_per_s"]) >= {"fp32", "bf16", "fp16"}


@pytest.mark.slow
@needs_vendor
def test_cpu_dry_run_with_a_failing_job_exits_non_zero(tmp_path):
    # An unknown model: archbench refuses it, no record is written, and the table must say so.
    result = smoke(tmp_path, "--models", "no_such_model", "--no-accuracy")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "| missing" in result.stdout
    assert "FAILED gpu_smoke_compile_false/synthetic/no_such_model: no record" in result.stderr
