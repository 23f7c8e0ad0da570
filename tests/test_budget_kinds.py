"""A budget kind is one class in archbench.train.budget plus its config key: a throwaway kind, registered here
only, goes through the settings, the command line's override handling and the training loop unchanged."""
import math
import re
from pathlib import Path

import pytest

from archbench.__main__ import budget_from_overrides
from archbench.settings import Recipe, SettingsError, variant_name
from archbench.train import budget as budget_module
from archbench.train.budget import Budget, Usage, budget_consumed, parse_budget
from archbench.train.loop import fit
from test_train import loaders, toy_model

RECIPE = {"name": "tiny", "batch_size": 32, "budget": {"images": 320},
          "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1, "momentum": 0.9},
          "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}


@pytest.fixture
def images_budget():
    """Training images seen, as a budget kind: defined and registered in this test only."""

    @budget_module.register("images")
    class Images(Budget):
        UNIT, WHOLE = "img", True

        def _steps(self, steps_per_epoch, train_macs_per_step, images_per_step):
            return math.ceil(self.value / images_per_step)

        @staticmethod
        def consumed(usage: Usage):
            return usage.images

    yield Images
    del budget_module.BUDGETS["images"]


def test_an_unregistered_kind_is_refused_by_the_settings():
    with pytest.raises(SettingsError, match="train.budget.images is not a setting"):
        Recipe.from_config(RECIPE)


def test_a_new_budget_kind_is_one_class_and_its_config_key(images_budget):
    recipe = Recipe.from_config(RECIPE)
    assert isinstance(recipe.budget, images_budget) and recipe.budget == Budget("images", 320)
    assert parse_budget(images=320.0) == recipe.budget  # a whole number, as declared
    with pytest.raises(ValueError, match="whole number"):
        parse_budget(images=2.5)
    assert recipe.describe()["budget_kind"] == "images" and recipe.identity()["budget"] == {"images": 320}
    assert variant_name("train", recipe, {"seed": 0}).startswith("tiny-320img-")
    # the command line's train.budget.images=... replaces the recipe's budget, as for the shipped kinds
    overridden = budget_from_overrides({"epochs": 3}, ["train.budget.images=640"])
    assert overridden["images"] is None and overridden["epochs"] is None
    assert budget_from_overrides({"images": 640}, ["train.budget.images=640"])["images"] == 640

    train, val, test = loaders()  # 256 training images in batches of 32: 8 steps an epoch
    result = fit(toy_model(), train, val, test, recipe.train_settings(amp="off", channels_last=False))
    assert result.status == "complete"
    assert result.train["budget"] == {"images": 320}
    assert result.train["planned_steps"] == result.train["steps"] == 10  # 320 images / 32 per step
    assert result.train["budget_consumed"]["images"] == 320
    assert result.train["epochs"] == 2 and result.train["budget_consumed"]["epochs"] == 10 / 8


def test_budget_consumed_lists_every_registered_kind_in_order():
    usage = Usage(steps=10, epochs=1.25, seconds=3.0, images=320, macs=None)
    assert budget_consumed(usage) == {"epochs": 1.25, "steps": 10, "seconds": 3.0, "macs": None}


def test_no_budget_kind_is_compared_outside_the_budget_module():
    """Code that branches on a kind's name would need editing for every new kind."""
    root = Path(budget_module.__file__).resolve().parents[1]
    kinds = "|".join(("epochs", "steps", "seconds", "macs"))
    compared = re.compile(rf"""budget\w*(\.kind|_kind|\[["']kind["']\])\s*(==|!=|\bin\b|\bnot in\b)"""
                          rf"""|(==|!=|\bin\b)\s*\(?["']({kinds})["']|["']({kinds})["']\s*(==|!=)""")
    found = [f"{path.relative_to(root)}:{n}: {line.strip()}"
             for path in sorted(root.rglob("*.py")) if path != Path(budget_module.__file__).resolve()
             for n, line in enumerate(path.read_text().splitlines(), 1) if compared.search(line)]
    assert found == []
