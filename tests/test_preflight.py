"""Every shipped study, paper pairing and recipe runs as shipped: checked by the preflight, not by eye.

A new file in conf/experiment, conf/paper or conf/train is covered without editing this file.
"""
import itertools
import math
import os

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from archbench.__main__ import CONF_DIR, spec_from_config
from archbench.run import preflight
from archbench.settings import Recipe, SettingsError

from helpers import FAST, archbench
from test_config import values

# The GPU-scale studies (big networks, many jobs) are checked in test_preflight_gpu_studies.py, so the
# two halves run on separate test workers; every other study, including a new one, is checked here.
GPU_STUDIES = ("cifar_equal_macs", "cifar_paper", "cifar_paper_tuned", "imagenet_complexity", "tune_cifar_paper",
               "gpu_reference", "tune_gpu_reference", "tuned_gpu_reference")
STUDIES = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml") if p.stem not in GPU_STUDIES)
RECIPES = sorted(p.stem for p in (CONF_DIR / "train").glob("*.yaml"))


def compose_job(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def jobs_of(study):
    """Each job of a study's sweep grid as its list of overrides (seeds left out: they change no shape)."""
    params = OmegaConf.to_container(compose_job([f"experiment={study}"]).hydra.sweeper.params)
    params = {k: values(v) for k, v in params.items() if k != "seed"}
    if "trial" in params:  # trials differ only in numbers: the first and the last stand for all
        params["trial"] = [params["trial"][0], params["trial"][-1]]
    return [[f"experiment={study}"] + [f"{k}={v}" for k, v in zip(params, combo)]
            for combo in itertools.product(*params.values())]


_PLANS: dict = {}


def plan(overrides: list[str], results_dir) -> dict:
    """The preflight row of one job, computed once per session (the README and study tests share jobs)."""
    key = tuple(overrides)
    if key not in _PLANS:
        full = overrides + [f"results_dir={results_dir}", "dry_run=true"]  # as `archbench ... dry_run=true`
        _PLANS[key] = preflight(spec_from_config(compose_job(full), full), timed_steps=0)
    return _PLANS[key]


def with_present_data(overrides):
    """Datasets absent here become synthetic data of the same shape and class count (as the issue asks)."""
    cfg = compose_job(overrides)
    if cfg.task == "profile" or cfg.data.name in ("synthetic", "fashion_mnist", "cifar10_jpg"):
        if cfg.data.name != "fashion_mnist" or os.path.exists("/usr/share/datasets/fashion-mnist"):
            return overrides
    return overrides + ["data=synthetic", f"data.image_size={cfg.data.image_size}",
                        f"data.in_chans={cfg.data.in_chans}", f"data.num_classes={cfg.data.num_classes}"]


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_every_job_of_every_study_passes_its_preflight(study, tmp_path_factory, monkeypatch):
    check_study(study, tmp_path_factory, monkeypatch)


def missing_archive(jobs) -> str | None:
    """Why a study cannot be checked here: a job reads an archive this checkout lacks (cifar10_jpg's
    ../shared/data/cifar10-jpg.tar.gz on a clone elsewhere). A synthetic stand-in would pass without
    checking the study's own data, so the test skips and says what to get instead."""
    for job in jobs:
        data = compose_job(job).data
        if data.name == "cifar10_jpg" and not os.path.exists(data.root):  # relative to the launch folder, as a run
            return (f"{data.name} archive {os.path.abspath(data.root)} is absent; build it with "
                    f"scripts/make_cifar10_jpg.py to check this study")
    return None


def check_study(study, tmp_path_factory, monkeypatch):
    jobs = jobs_of(study)
    reason = missing_archive(jobs)
    if reason:
        pytest.skip(reason)
    # Real models, shapes and recipes; a batch of 2 keeps 2 CPU cores to seconds per model.
    monkeypatch.setenv("ARCHBENCH_PREFLIGHT_BATCH", "2")
    for job in jobs:
        row = plan(with_present_data(job), tmp_path_factory.getbasetemp() / "empty-results")
        if compose_job(job).get("tuned_from"):  # stage 2 before stage 1: planned, and says what is missing
            assert row["problem"].startswith("tuned_from="), row
        else:
            assert row["problem"] is None, (job, row)
        assert row["action"] == "run"
        if compose_job(job).task == "train":
            assert row["planned_steps"] and row["planned_steps"] > 0 and row["est_s"] > 0, row
    assert not (tmp_path_factory.getbasetemp() / "empty-results").exists(), "a preflight wrote under results_dir"


def test_a_study_on_an_absent_archive_skips_with_a_one_line_reason(tmp_path, tmp_path_factory, monkeypatch):
    # A launch folder with no ../shared beside it, as on a fresh clone elsewhere; the study's default root
    # is resolved from there, exactly as a run launched there would resolve it.
    monkeypatch.chdir(tmp_path)
    with pytest.raises(pytest.skip.Exception) as skipped:
        check_study("cpu_mini", tmp_path_factory, monkeypatch)
    reason = str(skipped.value)
    assert "\n" not in reason and str(tmp_path.parent / "shared/data/cifar10-jpg.tar.gz") in reason, reason
    assert "scripts/make_cifar10_jpg.py" in reason
    assert missing_archive(jobs_of("demo")) is None  # a study on other data is still checked


# What each shipped recipe's description says its learning rate is (base lr, as a factor) at progress
# 0, 0.5 and 1. A recipe missing here is still checked for the generic properties below.
DESCRIBED_LR_FACTORS = {
    "standard": (0.0, 0.5 * (1 + math.cos(math.pi * (0.5 - 0.025) / 0.975)), 0.0),
    "quick": (0.0, 0.5 * (1 + math.cos(math.pi * (0.5 - 0.05) / 0.95)), 0.0),
    "he2015": (1.0, 0.1, 0.01),            # /10 at 50% and 75%
    "he2015_deep": (0.1, 0.1, 0.01),       # 0.01 for the first epoch, then as he2015
    "wrn2016": (1.0, 0.2, 0.2 ** 3),       # x0.2 at 30%, 60%, 80%
    "densenet2017": (1.0, 0.1, 0.01),      # /10 at 50% and 75%
    "resnext2017": (1.0, 0.1, 0.01),       # /10 at epochs 150 and 225 of 300
    "fractalnet2017": (1.0, 0.1, 1e-4),    # /10 whenever the remaining epochs halve: 200, 300, 350, 375 of 400
}


@pytest.mark.parametrize("recipe_name", RECIPES)
def test_every_recipe_builds_its_optimizer_and_schedule(recipe_name):
    import torch

    cfg = compose_job([f"train={recipe_name}"])
    recipe = Recipe.from_config(OmegaConf.to_container(cfg.train, resolve=True))
    optimizer = recipe.make_optimizer()([torch.nn.Parameter(torch.zeros(2))], lr=recipe.scaled_lr())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(recipe.scaled_lr())
    schedule = recipe.make_schedule()
    factors = [schedule(p) for p in (0.0, 0.5, 1.0)]
    assert all(0.0 <= f <= 1.0 for f in factors) and factors[2] <= factors[1], factors
    if recipe_name in DESCRIBED_LR_FACTORS:
        assert factors == pytest.approx(DESCRIBED_LR_FACTORS[recipe_name], abs=1e-9), factors


def test_unknown_key_names_the_closest_real_key():
    cfg = compose_job(["+train.epochs=3"])
    with pytest.raises(SettingsError, match=r"train\.epochs .*did you mean train\.budget\.epochs"):
        spec_from_config(cfg, ["+train.epochs=3"])
    cfg = compose_job(["+data.sise=64"])
    with pytest.raises(SettingsError, match=r"data\.sise .*data\.image_size|data\.sise .*data\.train_size"):
        spec_from_config(cfg, ["+data.sise=64"])


def test_unknown_key_on_the_command_line_exits_2_and_writes_nothing(tmp_path):
    out = archbench(["+train.epochs=3", *FAST], tmp_path)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "train.budget.epochs" in out.stderr
    assert not any(tmp_path.iterdir())
