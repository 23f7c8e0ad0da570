"""scripts/gpu_reference.sh: the one prepared GPU call, run here on the CPU (--cpu-dry), and its packing."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "gpu_reference.sh"
# The archive wherever this checkout has it: carried in vendor/, or the shared folder beside the repo.
DATA = next((p for p in (REPO / "vendor/data/cifar10-jpg.tar.gz", REPO.parent / "shared/data/cifar10-jpg.tar.gz",
                         Path(os.environ.get("ARCHBENCH_CIFAR10_JPG", "/nonexistent"))) if p.exists()), None)
# The device tool brings back at most 8 files, none more than 2 folders below $OUT.
MAX_FILES, MAX_DEPTH = 8, 2


def load_pack():
    spec = importlib.util.spec_from_file_location("gpu_reference_pack", REPO / "scripts" / "gpu_reference_pack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_record(results: Path, study: str, model: str, seed: int, status: str = "complete") -> Path:
    folder = results / "runs" / study / "cifar10_jpg" / model / "quick-8ep-abc" / f"seed{seed}"
    folder.mkdir(parents=True)
    record = {"status": status, "model": model, "seed": seed,
              "train": {"amp": "bf16", "img_per_s": 1000.0 + seed, "mfu": 0.1, "wall_s": 5.0, "epochs": 8,
                        "peak_mem_bytes": 2**30, "device_peak": {"precision": "bf16"}},
              "metrics": {"test_top1": 88.0 + seed, "val_top1": 87.0},
              "error": {"message": "boom"} if status == "failed" else None}
    (folder / "record.json").write_text(json.dumps(record))
    (folder / "run.log").write_text("log\n")
    (folder / "weights.pt").write_bytes(b"0" * 1000)
    (folder / "checkpoint.ckpt").write_bytes(b"0" * 1000)
    return folder


def out_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.is_file()]


def test_pack_writes_few_flat_files_without_weights(tmp_path):
    results, out = tmp_path / "work" / "results", tmp_path / "out"
    for seed in (0, 1):
        write_record(results, "gpu_reference", "resnet20", seed)
    write_record(results, "gpu_reference", "wrn_16_2", 0, status="failed")
    write_record(results, "gpu_reference_smoke", "resnet20", 0)
    rc = load_pack().main(["--results", str(results), "--out", str(out), "--expect-models", "resnet20,wrn_16_2",
                           "--expect-seeds", "0,1", "--note", "stopped at its limit"])
    assert rc == 1  # wrn_16_2 failed on seed 0 and never ran seed 1
    assert sorted(p.name for p in out_files(out)) == ["records.tar.gz", "summary.md", "versions.json"]
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
    assert len(names) == 8 and all(n.endswith(("record.json", "run.log")) for n in names)
    summary = (out / "summary.md").read_text()
    assert "2 of 4 jobs complete" in summary and "stopped at its limit" in summary
    assert "wrn_16_2 seed 0: status failed: boom" in summary and "wrn_16_2 seed 1: no record" in summary
    rows = json.loads((out / "versions.json").read_text())["study"]
    # study order: every model's seed 0, then seed 1
    assert [(r["model"], r["seed"]) for r in rows] == [("resnet20", 0), ("wrn_16_2", 0), ("resnet20", 1),
                                                      ("wrn_16_2", 1)]
    assert rows[0]["test top-1"] == 88.0 and rows[1]["status"] == "failed" and rows[3]["status"] == "missing"


@pytest.mark.slow  # two short CPU trainings, then a 2-job study of four: minutes on 2 busy cores
@pytest.mark.skipif(DATA is None, reason="no cifar10-jpg.tar.gz in vendor/data or ../shared/data")
# About 90 s alone on 2 cores: back in every suite run now that the suite's processes use one thread each.
def test_cpu_dry_run_with_optional_modules_hidden(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    # Every Python the script starts (joblib workers too) finds these optional packages missing.
    (hide / "sitecustomize.py").write_text(
        "import sys\nfor name in ('imagecorruptions', 'pynvml'):\n    sys.modules[name] = None\n")
    # The script's own time limits are for the GPU window; here the path must finish however busy the machine.
    env = {**os.environ, "PY": sys.executable, "DATA": str(DATA), "TMPDIR": str(tmp_path), "LIMIT_S": "3000",
           "SMOKE_S": "1200",
           "PYTHONPATH": os.pathsep.join([str(hide), str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "out"
    result = subprocess.run(["bash", str(SCRIPT), "--cpu-dry", "--out", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=3600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    files = out_files(out)
    assert len(files) <= MAX_FILES and all(len(p.relative_to(out).parts) - 1 <= MAX_DEPTH for p in files), files
    assert {p.name for p in files} == {"gpu_reference.log", "summary.md", "versions.json", "records.tar.gz"}
    summary = (out / "summary.md").read_text()
    assert "4 of 4 jobs complete" in summary, summary
    versions = json.loads((out / "versions.json").read_text())
    assert versions["torch"] and set(versions["peak_flops_per_s"]) >= {"fp32", "bf16"}
    assert [r["status"] for r in versions["smoke"]] == ["complete"] * 2
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
        assert not any(n.endswith((".pt", ".ckpt")) for n in names)
        study = [json.load(tar.extractfile(n)) for n in names
                 if n.startswith("runs/gpu_reference/") and n.endswith("record.json")]
    assert len(study) == 4 and all(r["status"] == "complete" for r in study)
    assert all("imagecorruptions-imaug is not installed" in r["robustness"]["skipped"] for r in study)
    assert "imagecorruptions-imaug" in (out / "gpu_reference.log").read_text()
