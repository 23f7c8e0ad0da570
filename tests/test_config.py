"""Every config composes with Hydra's compose API, and every study's grid has the expected size."""
import itertools
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from archbench.__main__ import CONF_DIR, budget_from_overrides, check_group_choices

EXPECTED_GRID = {"demo": 6, "cpu_mini": 18, "cifar_paper": 36, "cifar_equal_macs": 18, "paper_recipes": 27,
                 "imagenet_complexity": 26, "tune_fmnist": 48, "tuned_fmnist": 18,
                 "tune_cifar_paper": 96, "cifar_paper_tuned": 18, "variance_sources": 18,
                 "cifar_cpu": 18, "tune_cifar_cpu": 24, "tuned_cifar_cpu": 18,
                 "gpu_reference": 18, "tune_gpu_reference": 24, "tuned_gpu_reference": 18,
                 "cifar_cpu_ladder": 36, "seed_claim": 21}


def names(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def compose_with(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


def grid(cfg):
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    return [dict(zip(params, combo)) for combo in itertools.product(*(values(v) for v in params.values()))]


def values(sweep) -> list[str]:
    """A sweep's values: `a,b,c` or Hydra's `range(start,stop)`."""
    text = str(sweep)
    if text.startswith("range("):
        start, stop = (int(x) for x in text[len("range("):-1].split(","))
        return [str(i) for i in range(start, stop)]
    return text.split(",")


@pytest.mark.parametrize("experiment", names("experiment"))
def test_experiment_composes_and_grid_has_expected_size(experiment):
    cfg = compose_with([f"experiment={experiment}"])
    assert cfg.study == experiment
    jobs = grid(cfg)
    assert len(jobs) == EXPECTED_GRID[experiment]
    for job in jobs[:3] + jobs[-3:]:  # each job's own overrides compose too
        job_cfg = compose_with([f"experiment={experiment}"] + [f"{k}={v}" for k, v in job.items()])
        budget = {k: v for k, v in OmegaConf.to_container(job_cfg.train.budget).items() if v is not None}
        assert job_cfg.task == "profile" or len(budget) == 1, budget


def test_experiments_state_one_identical_recipe_per_study():
    cfg = compose_with(["experiment=cpu_mini"])
    assert cfg.data.name == "cifar10_jpg" or cfg.data.name == "imagefolder"
    runs = [compose_with(["experiment=cpu_mini", f"model={m}"]) for m in ("resnet20", "efficientnetv2_b0")]
    assert OmegaConf.to_container(runs[0].train) == OmegaConf.to_container(runs[1].train)


@pytest.mark.parametrize("group", ["model", "data", "train", "measure"])
def test_every_group_option_composes(group):
    for name in names(group):
        cfg = compose_with([f"{group}={name}"] + (["model.name=resnet18"] if name == "timm" else []))
        assert cfg[group] is not None


def test_paper_pairs_model_with_its_recipe():
    cfg = compose_with(["paper=wrn_28_10"])
    assert cfg.model.name == "wrn_28_10" and cfg.train.name == "wrn2016" and cfg.model.kwargs.dropout == 0.3


def test_unknown_group_option_lists_closest_names():
    message = check_group_choices(["model=resnet2O"])
    assert "unknown model 'resnet2O'" in message and "resnet20" in message
    assert check_group_choices(["model=resnet20,resnet56", "data=cifar10"]) is None
    assert "unknown experiment 'dmeo'" in check_group_choices(["experiment=dmeo"])


def test_budget_override_replaces_recipe_budget():
    budget = {"epochs": 200, "steps": 100, "seconds": None, "macs": None}
    assert budget_from_overrides(budget, ["train.budget.steps=100"]) == {"epochs": None, "steps": 100,
                                                                          "seconds": None, "macs": None}
    assert budget_from_overrides(budget, ["seed=1"]) == budget  # nothing named: left for validation to judge
