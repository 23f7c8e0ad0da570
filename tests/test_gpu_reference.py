"""scripts/gpu_reference.sh: the one prepared GPU call, run here on the CPU (--cpu-dry), and its packing."""
from __future__ import annotations

import importlib.util
import json
import os
import re
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


def write_record(results: Path, study: str, model: str, seed: int, status: str = "complete",
                 shared: bool = False, latency: bool = False) -> Path:
    folder = results / "runs" / study / "cifar10_jpg" / model / "quick-8ep-abc" / f"seed{seed}"
    folder.mkdir(parents=True)
    record = {"status": status, "model": model, "seed": seed,
              "train": {"amp": "bf16", "img_per_s": 1000.0 + seed, "mfu": 0.1, "wall_s": 5.0, "epochs": 8,
                        "peak_mem_bytes": 2**30, "device_peak": {"precision": "bf16"},
                        **({"shared_device": "trained beside the sweep's other jobs"} if shared else {})},
              "latency": {"batch_1": {"median_ms": 1.25}, "throughput": {"img_per_s": 52000.0}} if latency
              else {"deferred": "parallel sweep"},
              "metrics": {"test_top1": 88.0 + seed, "val_top1": 87.0},
              "error": {"message": "boom"} if status == "failed" else None}
    (folder / "record.json").write_text(json.dumps(record))
    (folder / "run.log").write_text("log\n")
    (folder / "test_outcomes.npz").write_bytes(b"npz")
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
    assert len(names) == 12 and all(n.endswith(("record.json", "run.log", "test_outcomes.npz")) for n in names)
    summary = (out / "summary.md").read_text()
    assert "2 of 4 jobs complete" in summary and "stopped at its limit" in summary
    assert "wrn_16_2 seed 0: status failed: boom" in summary and "wrn_16_2 seed 1: no record" in summary
    rows = json.loads((out / "versions.json").read_text())["study"]
    # study order: every model's seed 0, then seed 1
    assert [(r["model"], r["seed"]) for r in rows] == [("resnet20", 0), ("wrn_16_2", 0), ("resnet20", 1),
                                                      ("wrn_16_2", 1)]
    assert rows[0]["test top-1"] == 88.0 and rows[1]["status"] == "failed" and rows[3]["status"] == "missing"


def test_pack_labels_shared_figures_and_says_what_a_cut_cost(tmp_path):
    results, out = tmp_path / "work" / "results", tmp_path / "out"
    for model in ("resnet20", "wrn_16_2"):
        write_record(results, "gpu_reference", model, 0, shared=True, latency=model == "resnet20")
    args = ["--results", str(results), "--out", str(out), "--expect-models", "resnet20,wrn_16_2",
            "--expect-seeds", "0", "--smoke-models", "resnet20"]
    rc = load_pack().main([*args, "--stopped-at", "300", "--phases", "install=3:10 smoke=50:60"])
    summary = (out / "summary.md").read_text()
    assert rc == 0 and "img/s (shared GPU)" in summary and "MFU (shared GPU)" in summary
    assert "batch-1 ms (alone)" in summary and " 1.25 |" in summary
    # every job finished: the note blames the closing pass, not missing jobs
    assert "after every job had finished" in summary and "1 of 2 records without a latency" in summary
    phases = json.loads((out / "versions.json").read_text())["phases"]
    assert phases[-1] == {"phase": "total", "seconds": 53, "GPU estimate s": 70}
    write_record(results, "gpu_reference", "resnet20", 1)  # seed 1 of wrn_16_2 never ran
    load_pack().main([*args[:-4], "--expect-seeds", "0,1", "--stopped-at", "300"])
    summary = (out / "summary.md").read_text()
    assert "1 of 4 jobs have no complete record" in summary and "after every job" not in summary
    # a study that did not share its device is not labelled
    plain = tmp_path / "plain"
    write_record(plain, "gpu_reference", "resnet20", 0)
    load_pack().main(["--results", str(plain), "--out", str(tmp_path / "o2"), "--expect-models", "resnet20",
                      "--expect-seeds", "0"])
    assert "shared GPU" not in (tmp_path / "o2" / "summary.md").read_text()


def test_the_gpu_call_adds_every_phase_up_to_its_own_limit():
    script = SCRIPT.read_text()
    estimates = dict(re.findall(r"\[(\w+)\]=(\d+)", re.search(r"GPU_ESTIMATE_S=\((.*)\)", script).group(1)))
    limit = int(re.search(r"LIMIT_S=\$\{LIMIT_S:-(\d+)\}\n  SMOKE_S=\$\{SMOKE_S:-90", script).group(1))
    assert set(estimates) == {"install", "imports", "checks", "smoke", "study", "closing_pass", "pack"}
    assert sum(map(int, estimates.values())) <= limit <= 480
    # the study's sizing states the same phases and seconds
    sizing = (REPO / "conf" / "experiment" / "gpu_reference.yaml").read_text()
    for phase, seconds in estimates.items():
        assert re.search(rf"{phase}\s+{seconds} s", sizing), (phase, seconds)


def test_killing_the_scripts_parent_ends_the_workers_it_started(tmp_path):
    """The sweep runs in a session of its own: a SIGKILL to the caller's whole group must not orphan it."""
    import signal
    import time

    marker = f"{3000 + os.getpid() % 1000}.5"  # a sleep no other process runs
    fake = tmp_path / "fake_python"
    fake.write_text(f"""#!/usr/bin/env bash
case "$*" in
  *"-m archbench -m"*) sleep {marker} & sleep {marker} & touch "{tmp_path}/started"; wait ;;
  *) exit 0 ;;
esac
""")
    fake.chmod(0o755)
    data = tmp_path / "data.tar.gz"
    data.write_bytes(b"")
    env = {**os.environ, "PY": str(fake), "DATA": str(data), "TMPDIR": str(tmp_path)}
    parent = subprocess.Popen(["bash", "-c", f"bash {SCRIPT} --cpu-dry --out {tmp_path / 'out'}; echo after"],
                              cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "started").exists() and time.time() < deadline:
            time.sleep(0.2)
        assert (tmp_path / "started").exists(), "the fake sweep never started"
        assert subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 0
        os.killpg(parent.pid, signal.SIGKILL)  # the caller and the script, as a tool's time-out would
        deadline = time.time() + 20
        while subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 0:
            assert time.time() < deadline, "the sweep's workers outlived the script"
            time.sleep(0.5)
    finally:
        subprocess.run(["pkill", "-f", f"sleep {marker}"])
        parent.wait(timeout=30)


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
    # The quiet wait is real here (the suite caps it at 0 elsewhere), but capped at 10 s: this busy machine
    # is never quiet, and the full 120 s wait only costs time.
    env = {**os.environ, "PY": sys.executable, "DATA": str(DATA), "TMPDIR": str(tmp_path), "LIMIT_S": "3000",
           "SMOKE_S": "1200", "ARCHBENCH_QUIET_MAX_WAIT_S": "10",
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
    assert [r["status"] for r in versions["smoke"]] == ["complete"]
    assert [p["phase"] for p in versions["phases"]] == ["install", "imports", "checks", "smoke", "study",
                                                        "closing_pass", "pack", "total"]
    assert "## Phases" in summary and "a report builds from the packed records" in log
    with tarfile.open(out / "records.tar.gz") as tar:
        names = tar.getnames()
        assert not any(n.endswith((".pt", ".ckpt")) for n in names)
        outcomes = [n for n in names if n.startswith("runs/gpu_reference/") and n.endswith("test_outcomes.npz")]
        assert len(outcomes) == 4
        study = [json.load(tar.extractfile(n)) for n in names
                 if n.startswith("runs/gpu_reference/") and n.endswith("record.json")]
    assert len(study) == 4 and all(r["status"] == "complete" for r in study)
    assert all("imagecorruptions-imaug is not installed" in r["robustness"]["skipped"] for r in study)
    assert "imagecorruptions-imaug" in (out / "gpu_reference.log").read_text()
