"""Faults lose nothing: kill -9, SIGTERM, a full disk, corrupt files on disk, two sweeps at once."""
import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest

from archbench.record import atomic_write_json
from archbench.run import RunSpec, run
from archbench.train.checkpoint import load_checkpoint, save_checkpoint
from helpers import FAST, archbench, load, record_path, spec_for

# Slow enough per epoch (a second or more on 2 cores) to be interrupted in the middle of epoch 1 of 3.
# Every epoch's end checkpoints (cadence 0, not part of the identity): these tests interrupt a run
# once its first checkpoint exists, which the default one-minute cadence would leave to the last epoch.
LONG = [a for a in FAST if not a.startswith(("train.budget", "data.synthetic_size"))] + [
    "data.synthetic_size=2000", "train.budget.epochs=3", "train.checkpoint_every_s=0"]


def wait_for(path: Path, proc, timeout=240):
    tick = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - tick < timeout, f"{path} never appeared"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    results = tmp_path_factory.mktemp("reference")
    out = archbench(LONG, results)
    assert out.returncode == 0, out.stdout + out.stderr
    return load(record_path(results))


def test_kill_9_mid_epoch_then_rerun_matches_uninterrupted(tmp_path, uninterrupted):
    proc = archbench(LONG, tmp_path, wait=False)
    ckpt = spec_for(LONG, tmp_path).record_dir / "checkpoint.ckpt"
    wait_for(ckpt, proc)  # end of epoch 0: the run is now inside epoch 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not record_path(tmp_path).exists() and ckpt.exists()
    out = archbench(LONG, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "resuming from" in out.stdout + out.stderr
    record = load(record_path(tmp_path))
    assert record["status"] == "complete"
    assert record["train"]["steps"] == uninterrupted["train"]["steps"]
    assert record["train"]["final_lr"] == uninterrupted["train"]["final_lr"]
    assert [h["epoch"] for h in record["history"]] == [0, 1, 2]


def test_sigterm_saves_checkpoint_and_exits_75_then_resumes(tmp_path, uninterrupted):
    proc = archbench(LONG, tmp_path, wait=False)
    ckpt = spec_for(LONG, tmp_path).record_dir / "checkpoint.ckpt"
    wait_for(ckpt, proc)
    first = ckpt.stat().st_mtime_ns
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 75, output
    assert "checkpoint saved" in output and ckpt.stat().st_mtime_ns != first  # a mid-epoch checkpoint
    assert "exiting with code 75: rerun the same command to resume from the checkpoint" in output
    assert not record_path(tmp_path).exists()
    out = archbench(LONG, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    record = load(record_path(tmp_path))
    assert record["train"]["steps"] == uninterrupted["train"]["steps"]
    assert record["train"]["final_lr"] == uninterrupted["train"]["final_lr"]


def test_full_disk_while_saving_checkpoint_keeps_previous(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.ckpt"
    save_checkpoint(path, {"model": {}, "step": 1})
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"model": {}, "step": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.ckpt"]


def tiny_spec(results_dir, measure=None, **run_settings):
    recipe = {"name": "tiny", "batch_size": 32, "budget": {"steps": 2},
              "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9},
              "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
    return RunSpec.from_configs(model={"name": "resnet20"},
                                data={"name": "synthetic", "synthetic_size": 200, "image_size": 16},
                                train=recipe, measure=measure, results_dir=str(results_dir), **run_settings)


def test_full_disk_while_writing_record_reports_and_keeps_previous(tmp_path, monkeypatch):
    import archbench.run.execute as run_module

    from archbench.train.schedules import Cosine
    import functools, torch

    spec = tiny_spec(tmp_path, measure={"warmup": 1, "min_reps": 2, "min_time_s": 0.01, "batch_size": 2}, force=True)
    path = spec.record_dir / "record.json"
    atomic_write_json(path, {"status": "complete", "marker": "previous"})

    def no_space(path, obj):
        raise OSError(errno.ENOSPC, f"No space left on device: {path}")

    monkeypatch.setattr(run_module, "atomic_write_json", no_space)
    with pytest.raises(OSError, match="No space left"):
        run(spec)
    assert json.loads(path.read_text())["marker"] == "previous"


def test_training_crash_writes_failed_record_with_traceback(tmp_path, monkeypatch):
    import functools, torch
    import archbench.train.loop as loop
    from archbench.train.schedules import Cosine

    def crash(*args, **kwargs):
        raise RuntimeError("simulated crash inside training")

    monkeypatch.setattr(loop, "fit", crash)
    spec = tiny_spec(tmp_path)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(spec)
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert record["status"] == "failed" and record["error"]["type"] == "RuntimeError"
    assert "simulated crash" in record["error"]["traceback"]


def test_corrupt_checkpoint_and_record_on_disk_are_moved_aside(tmp_path):
    folder = spec_for(FAST, tmp_path).record_dir
    folder.mkdir(parents=True)
    (folder / "checkpoint.ckpt").write_bytes(b"PK\x03\x04 truncated zip")
    (folder / "record.json").write_text('{"status": "comp')
    out = archbench(FAST, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "record.json.corrupt-0" in text and "checkpoint.ckpt.corrupt-0" in text
    assert (folder / "record.json.corrupt-0").read_text() == '{"status": "comp'
    assert (folder / "checkpoint.ckpt.corrupt-0").read_bytes() == b"PK\x03\x04 truncated zip"
    assert load(folder / "record.json")["status"] == "complete"


def test_two_sweeps_at_once_write_each_record_exactly_once(tmp_path):
    args = ["-m", "model=resnet20,preact_resnet20", *FAST, "threads=1"]  # two processes share 2 cores
    first = archbench(args, tmp_path, wait=False)
    second = archbench(args, tmp_path, wait=False)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    for model in ("resnet20", "preact_resnet20"):
        assert load(record_path(tmp_path, model))["status"] == "complete"
    jobs = [json.loads(p.read_text()) for p in tmp_path.glob("sweeps/default/*/jobs/*.json")]
    assert len(jobs) == 4
    for model in ("resnet20", "preact_resnet20"):
        statuses = sorted(j["status"] for j in jobs if j["model"] == model)
        assert statuses.count("complete") == 1 and statuses[1:] != ["complete"], statuses
