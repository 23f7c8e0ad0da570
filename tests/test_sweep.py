"""Multirun sweeps: parallel launcher, idempotent reruns, failing jobs reported, submitit_local."""
import os
import time

import pytest

from helpers import FAST, archbench, load, record_path

MODELS = ("resnet20", "preact_resnet20")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    args = ["-m", f"model={','.join(MODELS)}", "seed=0,1", *FAST, "hydra/launcher=local_parallel", "threads=1"]
    first = archbench(args, results, timeout=600)
    return results, args, first


@pytest.mark.slow
def test_joblib_sweep_writes_four_records(sweep):
    results, _, first = sweep
    assert first.returncode == 0, first.stdout + first.stderr
    for model in MODELS:
        for seed in (0, 1):
            record = load(record_path(results, model, seed=seed))
            assert record["status"] == "complete" and record["env"]["threads"] == 1
    summary = (results / "runs/default/sweep_summary.md").read_text()
    assert summary.count("| complete |") == 4


@pytest.mark.slow
def test_rerun_skips_all_four(sweep):
    results, args, _ = sweep
    stamps = {m: record_path(results, m).stat().st_mtime_ns for m in MODELS}
    again = archbench(args, results, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = (results / "runs/default/sweep_summary.md").read_text()
    assert summary.count("| skipped |") == 4 and "4 skipped" in summary
    assert {m: record_path(results, m).stat().st_mtime_ns for m in MODELS} == stamps
    assert "building" not in again.stdout + again.stderr  # skipped without loading data or models


def test_failing_job_leaves_others_complete_and_is_reported(tmp_path):
    # The second job's budget is invalid; the sweep runs the first, reports the second, and exits 1.
    out = archbench(["-m", "model=resnet20", *FAST, "train.budget.steps=4,-1", "seed=0"], tmp_path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert load(record_path(tmp_path, "resnet20"))["status"] == "complete"
    summary = (tmp_path / "runs/default/sweep_summary.md").read_text()
    assert "| failed |" in summary and "1 complete, 1 failed" in summary
    assert "steps=-1" in out.stdout + out.stderr


@pytest.mark.slow
def test_submitit_local_launcher_completes_a_job(tmp_path):
    out = archbench(["-m", "model=resnet20", *FAST, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"],
                    tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert load(record_path(tmp_path))["status"] == "complete"


@pytest.mark.slow
def test_sigterm_to_a_local_parallel_sweep_stops_its_workers_which_checkpoint(tmp_path):
    import fcntl
    import signal
    import time

    args = ["-m", "model=resnet20,preact_resnet20", *FAST, "train.budget.steps=100000", "threads=1",
            "hydra/launcher=local_parallel", "train.checkpoint_every_s=3600"]  # only the signal writes one
    parent = archbench(args, tmp_path, wait=False)
    deadline = time.time() + 240
    logs = []
    while time.time() < deadline:  # both workers have started training
        logs = [p for p in tmp_path.glob("runs/default/synthetic/*/*/seed0/run.log") if "plan:" in p.read_text()]
        if len(logs) == 2:
            break
        time.sleep(1)
    assert len(logs) == 2, parent.stdout.read() if parent.poll() is not None else "workers did not start"
    time.sleep(3)
    parent.send_signal(signal.SIGTERM)
    output = parent.communicate(timeout=180)[0]
    assert parent.returncode == 75, output[-3000:]
    assert "stopping: each job saves a checkpoint at its next step" in output
    for log in logs:
        # Written on the signal (no timed or epoch-end checkpoint is due in an hour): the worker was not
        # killed before it could save.
        assert (log.parent / "checkpoint.ckpt").exists(), output[-3000:]
        assert "signal 15 at epoch" in log.read_text(), log.read_text()[-2000:]
        with open(log.parent / ".lock", "w") as handle:  # no worker still holds its run
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    plan = archbench(["-m", "model=resnet20,preact_resnet20", *FAST, "train.budget.steps=100000", "dry_run=true"],
                     tmp_path)
    table = [line for line in plan.stdout.splitlines() if line.startswith("|")]  # each job's line is also logged
    assert sum("resume at step" in line for line in table) == 2, plan.stdout[-3000:]


def _submitit_tasks(folder) -> list[int]:
    """PIDs of submitit task processes (`python -m submitit.core._submit <folder>`) whose folder is under `folder`."""
    from pathlib import Path

    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"submitit.core._submit" in cmdline and any(str(folder).encode() in part for part in cmdline):
            pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_sigusr2_under_submitit_saves_then_requeues_and_the_requeued_task_resumes(tmp_path):
    # SLURM preemption through submitit's own machinery, on CPU: its local executor runs the task, SIGUSR2
    # reaches the task as SLURM would send it; archbench checkpoints, hands over to submitit's handler,
    # which requeues (exit 144); the controller starts the task again and it resumes to completion.
    import signal

    args = ["-m", "model=resnet20", *FAST, "train.budget.steps=null", "train.budget.epochs=null",
            "train.budget.seconds=8", "train.amp=off", "train.channels_last=false", "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=5"]
    parent = archbench(args, tmp_path, wait=False)
    deadline = time.time() + 240
    log = None
    while time.time() < deadline and log is None and parent.poll() is None:  # the task has started training
        logs = [p for p in tmp_path.glob("runs/default/synthetic/resnet20/*/seed0/run.log") if "plan:" in p.read_text()]
        log = logs[0] if logs else None
        time.sleep(0.5)
    assert log is not None, parent.stdout.read() if parent.poll() is not None else "the task did not start"
    started = time.time()  # training has begun once the loop logs its estimate (after 10 timed steps)
    while "estimated training time left" not in log.read_text() and time.time() - started < 5:
        time.sleep(0.2)
    tasks = _submitit_tasks(tmp_path)
    assert len(tasks) == 1, tasks
    os.kill(tasks[0], signal.SIGUSR2)
    output = parent.communicate(timeout=600)[0]
    assert parent.returncode == 0, output[-3000:]
    record = load(log.parent / "record.json")
    assert record["status"] == "complete", record.get("error")
    text = log.read_text()
    assert "resuming from" in text, text[-3000:]  # the requeued task found the checkpoint the signal wrote
    task_logs = "".join(p.read_text() for p in tmp_path.glob("sweeps/**/.submitit/**/*_log.*"))
    assert "Requeued job" in task_logs, task_logs[-3000:]
    assert record["train"]["wall_s"] >= 8.0  # the budget counts the training time before and after the requeue
