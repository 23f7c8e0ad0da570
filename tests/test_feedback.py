"""Feedback while it runs: a progress bar on a (pseudo-)terminal, an estimate for the whole sweep, readable ETAs."""
import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from archbench.sweep import count_jobs, progress_line
from archbench.base.timefmt import duration
from archbench.train.budget import Budget
from archbench.train.loop import _bar_total, _log_eta

from helpers import FAST, REPO, archbench


def test_durations_below_a_minute_are_seconds():
    assert [duration(s) for s in (0.4, 42, 59.4, 75, 250, 1800, 9000)] == \
        ["0 s", "42 s", "59 s", "1 min 15 s", "4 min 10 s", "30 min", "2.5 h"]


def test_a_training_eta_of_tens_of_seconds_is_said_in_seconds(caplog):
    state = SimpleNamespace(train_s=11.0, step=11)
    with caplog.at_level(logging.INFO, logger="archbench"):
        _log_eta(state, SimpleNamespace(budget=Budget("steps", 41)), planned_steps=41, start=(1, 1.0))  # 1 s a step, 30 left
    assert "estimated training time left: 30 s (1000 ms per step)" in caplog.text


def test_the_number_of_jobs_is_counted_from_sweeper_params_and_command_line():
    config = OmegaConf.create({"hydra": {"sweeper": {"params": {"model": "a,b,c", "seed": "0,1"}},
                                         "overrides": {"task": ["data=x,y", "train.budget.steps=3"]}}})
    assert count_jobs(config) == 12
    config = OmegaConf.create({"hydra": {"sweeper": {"params": None}, "overrides": {"task": ["seed=range(0,5)"]}}})
    assert count_jobs(config) == 5


def test_the_sweep_estimate_follows_the_jobs_finished_so_far():
    line = progress_line([{}] * 3, 12, 90.0, now=0)
    assert line.startswith("sweep: 3 of 12 jobs done in 1 min 30 s; about 4 min 30 s left, ending about ")
    assert progress_line([{}] * 12, 12, 900.0) == "sweep: 12 of 12 jobs done in 15 min"


@pytest.mark.slow  # a two-job sweep
def test_a_sweep_says_its_size_at_the_start_and_an_estimate_as_jobs_finish(tmp_path):
    out = archbench(["-m", "model=resnet20", "seed=0,1", *FAST, "evaluate.after_train=false"], tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "sweep: 2 job(s); an estimate for the whole sweep follows as jobs finish" in text
    assert "sweep: 1 of 2 jobs done in " in text and " left, ending about " in text
    assert "sweep: 2 of 2 jobs done in " in text
    assert text.index("sweep: 1 of 2 jobs done") < text.index("sweep summary")


@pytest.mark.slow  # a two-job dry run
def test_a_dry_run_sweep_prints_each_job_as_it_is_planned(tmp_path):
    out = archbench(["-m", "model=resnet20", "seed=0,1", *FAST, "dry_run=true"], tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "to plan (dry run: nothing is written)" in text
    assert "planned 1 of 2: | 0 | resnet20 | synthetic | 0 |" in text
    assert "planned 2 of 2: | 1 | resnet20 | synthetic | 1 |" in text
    assert text.index("planned 1 of 2") < text.index("planned 2 of 2") < text.index("dry run (nothing written")
    assert not (tmp_path / "runs").exists()


def run_in_pty(args, timeout=600) -> str:
    """`python -m archbench args` with stdin, stdout and stderr on a pseudo-terminal (isatty() is true there)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec at once, nothing else
        os.chdir(REPO)
        os.execv(sys.executable, [sys.executable, "-m", "archbench", *args])
    output, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 5)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.waitpid(pid, 0)
    os.close(fd)
    return output.decode(errors="replace")


@pytest.mark.slow  # one real run on a terminal
def test_the_progress_bar_appears_on_a_pseudo_terminal(tmp_path):
    text = run_in_pty([*FAST, "evaluate.after_train=false", "progress_bar=true", f"results_dir={tmp_path}"])
    assert "wrote " in text, text[-3000:]
    assert "epoch 0: " in text and "%|" in text and "it/s]" in text, text[-3000:]


def test_the_bar_total_is_what_the_budget_leaves_of_the_epoch():
    def total(planned, step, resumed_batches=0, batches=351):
        return _bar_total(SimpleNamespace(planned_steps=planned), SimpleNamespace(step=step), range(batches),
                          {"batches": resumed_batches})

    assert total(40, 0) == 40  # the case: 40 steps of a 351-batch epoch
    assert total(400, 351) == 49  # the second epoch's last 49 steps
    assert total(40, 12, resumed_batches=12) == 40  # resumed mid-epoch: the bar replays the first 12
    assert total(4000, 0) == 351 and total(None, 0) == 351  # a longer budget, or seconds: the whole epoch


@pytest.mark.slow  # one real run on a terminal, about 15 s
def test_with_a_steps_budget_the_bar_counts_the_steps_and_log_lines_sit_above_it(tmp_path):
    # 1,080 training images in batches of 32: 34 batches an epoch, of which the budget takes 14; the ETA
    # line is logged after step 11, while the bar is drawn.
    args = [*FAST, "data.synthetic_size=1200", "train.budget.steps=14", "evaluate.after_train=false",
            "progress_bar=true", f"results_dir={tmp_path}"]
    text = run_in_pty(args)
    assert "wrote " in text, text[-3000:]
    assert "/14 [" in text and "/34 [" not in text, text[-3000:]  # tqdm redraws at most every 0.1 s: no 14/14
    # what stays on each screen line: the text after its last carriage return (the terminal ends lines in \r\n)
    screen_lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")]
    eta = [line for line in screen_lines if "estimated training time left" in line]
    assert eta and not any("%|" in line or "it/s" in line for line in eta), eta


def test_a_dry_run_times_each_network_once_whatever_the_class_count(tmp_path, monkeypatch):
    import importlib

    from helpers import spec_for

    run_module = importlib.import_module("archbench.run.preflight")  # the function of that name shadows it
    monkeypatch.setattr(run_module, "_STEP_TIMES", {})
    built = []
    real = run_module.create_model
    monkeypatch.setattr(run_module, "create_model", lambda *a, **k: built.append(1) or real(*a, **k))
    spec = spec_for([*FAST, "device=cpu"], tmp_path)
    for classes in (10, 100, 10):
        run_module._time_steps(spec, {"in_chans": 3, "image_size": 16, "num_classes": classes}, timed_steps=1)
    assert len(built) == 1


@pytest.mark.slow  # a dry-run sweep, interrupted after its first job
def test_an_interrupted_dry_run_says_nothing_was_written(tmp_path):
    import signal

    proc = archbench(["-m", "model=resnet20", "seed=0,1,2,3", *FAST, "dry_run=true"], tmp_path, wait=False)
    seen = ""
    for line in proc.stdout:
        seen += line
        if "planned 1 of 4" in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    text = seen + rest
    assert proc.returncode == 75, text[-3000:]
    assert "dry run interrupted; a dry run writes nothing under results_dir" in text
    assert "checkpoint" not in text.lower()
    assert not (tmp_path / "runs").exists()


def _record_made_on(results_dir, study, cpu, threads, machine=None):
    """A finished record of `study` on the synthetic data, trained on `cpu` with `threads` threads."""
    from archbench import record as rec

    from helpers import fixture_record

    record = fixture_record(study, "preact_resnet20", "resnet_v2", 0, test_top1=50.0)
    record["data"] = "synthetic"
    record["env"].update(cpu_model=cpu, threads=threads, machine=machine)
    folder = Path(results_dir) / "runs" / study / "synthetic" / "preact_resnet20" / "quick-4st-00000000" / "seed0"
    folder.mkdir(parents=True, exist_ok=True)
    rec.write_record(folder, record)


def test_a_seed_added_on_other_hardware_is_told_it_starts_a_comparison_of_its_own(tmp_path, caplog):
    """Seeds 1-2 made on one machine, seed 3 planned on another: the report keeps them apart (GROUP_KEYS
    include the hardware), so the plan and the run say so before the time is spent."""
    import torch

    from archbench.record import this_machine
    from archbench.run import format_plan, preflight, run

    from helpers import spec_for

    _record_made_on(tmp_path, "grown", "AMD EPYC 9B14 (elsewhere)", 1)
    spec = spec_for(["model=resnet20", "study=grown", "seed=3", *FAST], tmp_path)
    row = preflight(spec, timed_steps=0)
    assert "1 on cpu: AMD EPYC 9B14 (elsewhere), 1 thread" in row["note"]
    assert this_machine("cpu") in row["note"]
    assert not row["problem"]  # a warning, not a failure: a comparison of this machine's own is legitimate
    assert "note (job 0): study grown on synthetic already has 1 finished run(s), none on this hardware" \
        in format_plan([row])
    with caplog.at_level(logging.WARNING, logger="archbench"):
        assert run(spec)["status"] == "complete"
    assert any("none on this hardware" in r.getMessage() for r in caplog.records)

    # Once the study has a run from this hardware, the next seed from here joins it: no note.
    assert preflight(spec_for(["model=resnet20", "study=grown", "seed=4", *FAST], tmp_path), timed_steps=0)["note"] \
        is None
    # A different thread count is different hardware too (CPU speed scales with it).
    from archbench.base.device import cpu_model, machine_identity
    _record_made_on(tmp_path, "threads", cpu_model(), torch.get_num_threads() + 1, machine_identity("cpu"))
    assert "none on this hardware" in preflight(spec_for(["model=resnet20", "study=threads", *FAST], tmp_path),
                                                timed_steps=0)["note"]
