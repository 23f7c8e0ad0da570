"""Faults end in one paragraph, never a traceback: an exit code, the path and the fix, and nothing lost.

Read-only and full file systems are real ones where the machine allows it (a tmpfs in a user namespace:
`unshare -rm`, no root needed); a write failure in the middle of training is an ENOSPC injected into the
real process through a sitecustomize module.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from archbench.__main__ import local_dry_run
from archbench.settings import SettingsError, parse_bool

from helpers import FAST, REPO, archbench, load, record_path, run_folder


def can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs none /mnt 2>/dev/null || "
                                                          "mount -t tmpfs none /tmp"], capture_output=True)
    return probe.returncode == 0


TMPFS = can_mount_tmpfs()
needs_tmpfs = pytest.mark.skipif(not TMPFS, reason="cannot mount a tmpfs in a user namespace here")


def archbench_on_tmpfs(args, mount, options, prepare=""):
    """`python -m archbench args` with results_dir on a fresh tmpfs at `mount` (prepared, then remounted)."""
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "archbench", *args,
                                                 f"results_dir={mount}/results"])
    script = (f"mount -t tmpfs -o size=64m none {shlex.quote(str(mount))} && {prepare} "
              f"mount -o remount,{options} {shlex.quote(str(mount))} && {command}; rc=$?; "
              f"cat {shlex.quote(str(mount))}/results/keep.txt; exit $rc")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def one_paragraph(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("archbench: error:")]
    assert len(lines) == 1, text[-3000:]
    return lines[0]


@needs_tmpfs
def test_read_only_results_folder_is_refused_before_anything_is_built(tmp_path):
    mount = tmp_path / "ro"
    mount.mkdir()
    out = archbench_on_tmpfs(FAST, mount, "ro", prepare=f"mkdir {mount}/results && echo kept > {mount}/results/keep.txt &&")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    message = one_paragraph(out.stderr)
    assert f"results_dir={mount}/results is not writable" in message and "Read-only file system" in message
    assert "Set results_dir=" in message and "Traceback" not in out.stderr
    assert "building" not in out.stdout + out.stderr  # refused before the data and model were built
    assert out.stdout.strip().endswith("kept")  # what was there before is untouched


@needs_tmpfs
def test_too_little_free_space_is_refused_before_training(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    out = archbench_on_tmpfs(FAST, mount, "size=2m",
                             prepare=f"mkdir {mount}/results && echo kept > {mount}/results/keep.txt &&")
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    message = one_paragraph(out.stderr)
    assert "MiB free on its disk" in message and "a checkpoint of about" in message and "Traceback" not in out.stderr
    assert out.stdout.strip().endswith("kept")


SITECUSTOMIZE = """
import errno, os
_real_fsync = os.fsync
_seen = []
def fsync(fd):
    name = os.readlink(f"/proc/self/fd/{fd}")
    if ".checkpoint.ckpt." in name:
        _seen.append(name)
        if len(_seen) == int(os.environ["FAIL_CHECKPOINT"]):
            raise OSError(errno.ENOSPC, "No space left on device")
    return _real_fsync(fd)
os.fsync = fsync
"""


@pytest.mark.slow  # two real runs
@pytest.mark.skipif(not os.path.exists("/proc/self/fd"), reason="finds the file being written through /proc")
def test_disk_full_at_the_second_checkpoint_is_one_paragraph_keeps_the_first_and_resumes(tmp_path):
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(textwrap.dedent(SITECUSTOMIZE))
    # 300 images, 30 held out: 8 steps an epoch, so epochs end (and checkpoint) at steps 8 and 16 of 20
    args = [a for a in FAST if not a.startswith("train.budget")] + ["train.budget.steps=20", "train.checkpoint_every_s=0", "train.amp=off",
                                                                      "train.channels_last=false"]
    env = {"PYTHONPATH": f"{tmp_path / 'inject'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "FAIL_CHECKPOINT": "2"}
    out = archbench(args, tmp_path / "results", env=env)
    assert out.returncode == 74, out.stdout[-2000:] + out.stderr[-3000:]
    message = one_paragraph(out.stderr)
    checkpoint = run_folder(tmp_path / "results") / "checkpoint.ckpt"
    assert f"cannot write {checkpoint}" in message and "No space left on device" in message
    assert "the previous" in message and "is intact" in message and "run the same command again" in message
    assert "Traceback" not in out.stderr
    assert checkpoint.exists()  # the first epoch's checkpoint was kept
    again = archbench(args, tmp_path / "results")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr
    assert load(record_path(tmp_path / "results"))["train"]["steps"] == 20


@pytest.mark.slow  # one real run, then the evaluation
def test_corrupt_weights_under_task_evaluate_name_the_file_and_keep_the_record(tmp_path):
    args = [*FAST, "evaluate.after_train=false"]
    first = archbench(args, tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    record = record_path(tmp_path)
    before = record.read_bytes()
    weights = record.parent / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    out = archbench([*args, "task=evaluate"], tmp_path)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-3000:]
    message = one_paragraph(out.stderr)
    assert str(weights) in message and "left unchanged" in message and "task=train force=true" in message
    assert "Traceback" not in out.stderr
    assert record.read_bytes() == before


@pytest.mark.parametrize("spelling", ["true", "True", "TRUE", "yes", "on", "1"])
def test_every_true_spelling_makes_a_local_dry_run(spelling):
    argv = ["-m", "model=resnet20", f"dry_run={spelling}", "hydra/launcher=slurm_gpu"]
    assert local_dry_run(argv) == ["-m", "model=resnet20", f"dry_run={spelling}"]
    assert parse_bool(spelling, "dry_run") is True


def test_false_spellings_and_non_booleans():
    for spelling in ("false", "False", "NO", "off", "0", False, 0):
        assert parse_bool(spelling, "force") is False
    assert local_dry_run(["dry_run=False", "hydra/launcher=slurm_gpu"]) == ["dry_run=False", "hydra/launcher=slurm_gpu"]
    assert parse_bool("Auto", "progress_bar", ("auto",)) == "auto"
    with pytest.raises(SettingsError, match=r"force='maybe' is not a boolean"):
        parse_bool("maybe", "force")


def test_a_string_no_is_false_in_the_settings():
    from archbench.settings import DataSettings, MeasureSettings, Recipe

    recipe = Recipe.from_config({"name": "r", "budget": {"steps": 2}, "deterministic": "no", "compile": "False",
                                 "channels_last": "auto", "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
                                 "scheduler": {"_target_": "archbench.train.schedules.Cosine"}})
    assert (recipe.deterministic, recipe.compile, recipe.channels_last) == (False, "off", "auto")  # compile: a mode
    assert MeasureSettings.from_config({"isolate": "off"}).isolate is False
    assert DataSettings.from_config({"name": "synthetic", "download": "no"}).load["download"] is False


@pytest.mark.slow  # a real dry run: imports, data, one timed step
def test_dry_run_True_with_the_slurm_launcher_plans_here(tmp_path):
    args = ["model=resnet20", "dry_run=True", "hydra/launcher=slurm_gpu", *FAST]
    out = subprocess.run([sys.executable, "-m", "archbench", *args, f"results_dir={tmp_path}"], cwd=REPO,
                         capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "srun" not in out.stdout + out.stderr and "| resnet20 |" in out.stdout
    assert not (tmp_path / "runs").exists()
