"""Bad input: a clear message naming the value and the fix, a non-zero exit, and nothing written to results."""
import pytest

from archbench.settings import SettingsError

from helpers import FAST, FMNIST, archbench, spec_for

CASES = {
    "unknown model": (["model=resnet2O"], "unknown model 'resnet2O' (closest: resnet32, resnet20"),
    "unknown data": (["data=cifar11"], "unknown data 'cifar11' (closest: cifar10"),
    "unknown recipe": (["train=standrd"], "unknown train 'standrd' (closest: standard"),
    "unknown experiment": (["-m", "experiment=cpu_mnii"], "unknown experiment 'cpu_mnii' (closest: cpu_mini"),
    "misspelt key": (["train.epochss=3"], "train.epochss"),
    "negative epochs": (["train.budget.epochs=-1"], "train.budget.epochs=-1 must be a positive number"),
    "zero batch size": (["train.batch_size=0"], "train.batch_size=0 must be a positive integer"),
    "lr not a number": (["train.optimizer.lr=fast"], "train.optimizer.lr='fast' must be a positive number"),
    "two budget kinds": (["train.budget.epochs=2", "train.budget.steps=3"], "exactly one of epochs, steps"),
    "no budget": (["train.budget.epochs=null"], "found: none"),
    "missing dataset root": (["data=cifar10", "data.root=/nonexistent/cifar"], "/nonexistent/cifar"),
    "wrong layout": (["data=imagefolder", "data.root={tmp}/flat"], "{tmp}/flat"),
    "cuda without cuda": (["device=cuda"], "device='cuda' but this machine has no CUDA device"),
    "input too small": (["model=densenet121", "model.stem=imagenet", "data.image_size=8"],
                        "cannot run on 8x8 inputs"),
    "bad stem": (["model.stem=tiny"], "tiny"),
    "zero threads": (["threads=0"], "threads=0 is not a positive whole number: use threads=N with N >= 1"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_clearly_and_writes_nothing(case, tmp_path):
    args, expected = CASES[case]
    (tmp_path / "flat" / "images").mkdir(parents=True)  # an image folder without train/ and test/
    args, expected = [a.format(tmp=tmp_path) for a in args], expected.format(tmp=tmp_path)
    if case in ("negative epochs", "zero batch size", "lr not a number", "two budget kinds", "no budget",
                "cuda without cuda", "input too small", "bad stem"):
        args = [a for a in FAST if not a.startswith(("train.budget", "train.batch_size"))] + args
        if case not in ("negative epochs", "two budget kinds", "no budget"):
            args.append("train.budget.steps=2")
        if case != "zero batch size":
            args.append("train.batch_size=32")
    out = archbench(args, tmp_path / "results", timeout=120)
    message = out.stdout + out.stderr
    assert out.returncode != 0, message
    assert expected in message, message
    assert "Traceback" not in out.stderr or case == "misspelt key", message
    assert not (tmp_path / "results" / "runs").exists()  # no failed record, no half-made folder


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "two", "true"])
def test_threads_other_than_a_positive_whole_number_are_refused(value, tmp_path):
    with pytest.raises(SettingsError, match=r"threads=.* is not a positive whole number.*threads=null"):
        spec_for([*FAST, f"threads={value}"], tmp_path / "results")


@pytest.mark.parametrize("value", ["1", "3", "null"])
def test_a_positive_thread_count_or_null_is_taken(value, tmp_path):
    assert spec_for([*FAST, f"threads={value}"], tmp_path / "results").config["threads"] == \
        (None if value == "null" else int(value))


@pytest.mark.skipif(not FMNIST.exists(), reason="needs dataset-fashion-mnist")
def test_training_set_smaller_than_validation_split(tmp_path):
    out = archbench(["data=fashion_mnist", "data.val_size=70000", f"data.cache_dir={tmp_path}/cache"],
                    tmp_path / "results", timeout=180)
    assert out.returncode != 0 and "70000" in out.stderr and "val_size" in out.stderr, out.stderr
    assert not (tmp_path / "results" / "runs").exists()


def test_unreadable_image_fails_with_path_when_asked(tmp_path):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            folder = tmp_path / "imgs" / split / cls
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(folder / f"{i}.png")
    (tmp_path / "imgs/train/a/broken.png").write_bytes(b"")  # zero bytes
    args = ["data=imagefolder", f"data.root={tmp_path}/imgs", "data.image_size=16", "data.num_classes=2",
            "data.on_bad_image=error", f"data.cache_dir={tmp_path}/cache", "data.val_size=0",
            "train.batch_size=4", "train.budget.steps=1"]
    out = archbench(args, tmp_path / "results", timeout=120)
    assert out.returncode != 0 and "broken.png" in out.stderr, out.stdout + out.stderr
    assert not (tmp_path / "results" / "runs").exists()


def test_a_key_one_level_too_high_is_matched_by_its_last_part():
    from archbench.__main__ import check_override_keys

    message = check_override_keys(["train.lr=0.05"])  # the case: train, train.amp, train.scheduler
    assert "train.lr is not a setting any stage reads (did you mean train.optimizer.lr," in message, message
    message = check_override_keys(["train.momentum=0.8"])
    assert "(did you mean train.optimizer.momentum," in message, message
    assert "did you mean train.budget.epochs" in check_override_keys(["train.epochss=3"])  # spelling still counts


def test_a_misspelt_key_gets_the_closest_real_key_not_hydras_plus_hint():
    from archbench.__main__ import check_override_keys

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


def test_the_batch_size_error_suggests_only_possible_fixes(tmp_path):
    from archbench.run import batch_too_large

    whole = spec_for([*FAST, "train.batch_size=512"], tmp_path)
    assert "raise data.train_size" not in batch_too_large(whole, 270)
    assert "every training image is already used" in batch_too_large(whole, 270)
    subset = spec_for([*FAST, "train.batch_size=512", "data.train_size=100"], tmp_path)
    assert batch_too_large(subset, 100).endswith("lower it or raise data.train_size")
