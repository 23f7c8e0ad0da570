"""Smaller slips: archbench's own message for a misspelt key, honest log lines, fixes that are possible."""
import pytest

from archbench.__main__ import check_override_keys
from archbench.data import DataNotFoundError, load_dataset

from helpers import FAST, archbench


def test_a_misspelt_key_gets_the_closest_real_key_not_hydras_plus_hint():
    message = check_override_keys(["train.epochss=3", "results_dir=x"])
    assert message.startswith("train.epochss is not a setting any stage reads (did you mean train.budget.epochs")
    assert "+train" not in message
    assert "data.root" in check_override_keys(["data=imagefolder", "data.roots=/x"])
    for ok in (["-m", "experiment=demo", "seed=0,1", "train.budget.steps=3"], ["model=resnet20,resnet32",
               "model.stem=cifar", "hydra/launcher=slurm_gpu", "hydra.launcher.timeout_min=3", "+trial=0"]):
        assert check_override_keys(ok) is None, ok


@pytest.mark.slow  # a real command line
def test_a_misspelt_key_on_the_command_line_exits_2_without_hydras_hint(tmp_path):
    out = archbench(["train.epochss=3"], tmp_path)
    assert out.returncode == 2 and "did you mean train.budget.epochs" in out.stderr, out.stderr[-2000:]
    assert "To append to your config use" not in out.stderr and "Traceback" not in out.stderr


def test_a_missing_relative_root_says_it_is_relative_to_the_launch_folder_and_how_to_get_the_archive(tmp_path,
                                                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10_jpg", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert f"taken from the folder the command is launched in (here {tmp_path})" in message
    assert "archbench does not download it" in message and "../shared/data/cifar10-jpg.tar.gz" in message
    # where the archive comes from, and how to tell a rebuilt one is the same
    assert "python scripts/make_cifar10_jpg.py" in message and "sha256 is d877bdec11f54282" in message


def test_the_batch_size_error_suggests_only_possible_fixes(tmp_path):
    from archbench.run import batch_too_large
    from helpers import spec_for

    whole = spec_for([*FAST, "train.batch_size=512"], tmp_path)
    assert "raise data.train_size" not in batch_too_large(whole, 270)
    assert "every training image is already used" in batch_too_large(whole, 270)
    subset = spec_for([*FAST, "train.batch_size=512", "data.train_size=100"], tmp_path)
    assert batch_too_large(subset, 100).endswith("lower it or raise data.train_size")


def test_a_profile_run_does_not_promise_latency_after_training(tmp_path, caplog):
    import logging

    from archbench.run import run
    from helpers import spec_for

    spec = spec_for(["task=profile", "model=resnet20", "data=synthetic", "data.image_size=16", "measure.warmup=1",
                     "measure.min_reps=1", "measure.min_time_s=0.01", "measure.batch_size=2", "device=cpu"], tmp_path)
    with caplog.at_level(logging.INFO, logger="archbench"):
        run(spec)
    assert "building resnet20 on synthetic: model and complexity count, then latency" in caplog.text
    assert "after training" not in caplog.text


def test_report_help_lists_every_subcommand():
    import subprocess
    import sys

    from helpers import REPO

    out = subprocess.run([sys.executable, "-m", "archbench.report", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "export" in out.stdout and "compare" in out.stdout
    out = subprocess.run([sys.executable, "-m", "archbench.report", "export", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "out=runs.parquet" in out.stdout
