"""Families declare themselves in their own modules; the family tables are read from the declarations.

Adding a family is its module (plus its conf/model files and reference.csv rows): the
subprocess test drops a throwaway family module into a copy of the package and finds it in every
table without any other file changed.
"""
from __future__ import annotations

import filecmp
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from archbench.models import (
    AUTO_SMALL_INPUT_STEM,
    FAMILIES,
    SMALL_REPRESENTATIVES,
    STRIDE16_FAMILIES,
    create_model,
    list_models,
    registry,
)
from archbench.models.registry import Family, ModelSpec, declare_family, family_names

REPO = Path(__file__).resolve().parents[1]


def _load_gen_model_docs():
    spec = importlib.util.spec_from_file_location("gen_model_docs_under_test", REPO / "scripts/gen_model_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derived_tables_keep_their_values():
    """The values the tables had when each was written by hand (other code imports them)."""
    # FractalNet (arXiv 1605.07648) and ResNeXt (1611.05431) joined in publication order.
    assert FAMILIES == ("resnet_v1", "resnet_v2", "wide_resnet", "fractalnet", "densenet", "resnext", "shufflenet_v2",
                        "efficientnet_v2", "timm")
    assert list(SMALL_REPRESENTATIVES.items()) == [
        ("resnet_v1", "resnet20"),
        ("resnet_v2", "preact_resnet20"),
        ("wide_resnet", "wrn_16_2"),
        ("fractalnet", "fractalnet_20_w4"),
        ("densenet", "densenet_bc_40_12"),
        ("resnext", "resnext29_8x64d_w8"),
        ("shufflenet_v2", "shufflenet_v2_x2_0"),
        ("efficientnet_v2", "efficientnetv2_b0"),
    ]
    assert STRIDE16_FAMILIES == ("shufflenet_v2", "efficientnet_v2")
    assert list(AUTO_SMALL_INPUT_STEM.items()) == [("shufflenet_v2", "cifar16"), ("efficientnet_v2", "cifar16")]
    family_modules = _load_gen_model_docs().FAMILY_MODULES
    assert {family: module.__name__ for family, module in family_modules.items()} == {
        "resnet_v1": "archbench.models.resnet",
        "resnet_v2": "archbench.models.preact_resnet",
        "wide_resnet": "archbench.models.wide_resnet",
        "fractalnet": "archbench.models.fractalnet",
        "densenet": "archbench.models.densenet",
        "resnext": "archbench.models.resnext",
        "shufflenet_v2": "archbench.models.shufflenet",
        "efficientnet_v2": "archbench.models.efficientnet",
    }
    assert list(family_modules) == list(FAMILIES[:-1])


FAKE_FAMILY_MODULE = '''"""FakeNet (Nobody et al., "A Throwaway Family", 2022; arXiv:2201.00001).

A single convolution and a classifier: enough to build, nothing to learn from.
"""
from torch import nn

from .registry import Family, ModelSpec, declare_family


def _fakenet(width: int) -> ModelSpec:
    def build(num_classes: int, in_chans: int = 3, stem: str = "imagenet") -> nn.Module:
        stride = 2 if stem == "imagenet" else 1
        return nn.Sequential(nn.Conv2d(in_chans, width, 3, stride, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(width, num_classes))

    return ModelSpec(f"fakenet_w{width}", build)


FAMILY = declare_family(Family(
    name="fakenet",
    arxiv="2201.00001",
    module=__name__,
    models=(_fakenet(8), _fakenet(16)),
    small_representative="fakenet_w8",
    small_input_stems=("cifar16", "cifar"),
))
'''

PROBE = '''
import json, runpy, sys
import archbench.models as m
docs = runpy.run_path(sys.argv[1], run_name="not_main")
model = m.create_model("fakenet_w8", num_classes=3, input_size=32)
print(json.dumps({
    "package": m.__file__,
    "families": m.FAMILIES,
    "small": list(m.SMALL_REPRESENTATIVES.items()),
    "stride16": m.STRIDE16_FAMILIES,
    "auto": m.AUTO_SMALL_INPUT_STEM,
    "models": m.list_models("fakenet"),
    "info": model.archbench_info,
    "doc_modules": {k: v.__name__ for k, v in docs["FAMILY_MODULES"].items()},
}))
'''


def test_a_new_family_is_its_module_alone(tmp_path):
    """Drop one family module into a copy of the package: every family table lists it, nothing else edited."""
    copy = tmp_path / "archbench"
    try:
        shutil.copytree(REPO / "archbench", copy, ignore=shutil.ignore_patterns("__pycache__"))
        (copy / "models" / "fakenet.py").write_text(FAKE_FAMILY_MODULE)
        comparison = filecmp.dircmp(REPO / "archbench" / "models", copy / "models", ignore=["__pycache__"])
        assert comparison.right_only == ["fakenet.py"] and not comparison.left_only
        assert not comparison.diff_files and not comparison.funny_files

        env = {**os.environ, "PYTHONPATH": str(tmp_path)}
        done = subprocess.run([sys.executable, "-c", PROBE, str(REPO / "scripts/gen_model_docs.py")], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(copy, ignore_errors=True)

    assert Path(seen["package"]).is_relative_to(tmp_path), "the probe imported the real package, not the copy"
    # Publication order puts the 2022 paper after EfficientNetV2 (2021); timm stays last.
    assert seen["families"] == [*FAMILIES[:-1], "fakenet", "timm"]
    assert seen["small"] == [*map(list, SMALL_REPRESENTATIVES.items()), ["fakenet", "fakenet_w8"]]
    assert seen["stride16"] == [*STRIDE16_FAMILIES, "fakenet"]
    assert seen["auto"] == {**AUTO_SMALL_INPUT_STEM, "fakenet": "cifar16"}
    assert seen["models"] == ["fakenet_w16", "fakenet_w8"]
    assert seen["info"] == {"name": "fakenet_w8", "family": "fakenet", "stem": "cifar16", "builder": "archbench"}
    assert seen["doc_modules"]["fakenet"] == "archbench.models.fakenet"
    # The copy is gone and this process never saw the fake family.
    assert not copy.exists() and "fakenet" not in FAMILIES


def _build(num_classes: int, in_chans: int = 3, stem: str = "imagenet") -> nn.Module:
    return nn.Linear(in_chans, num_classes)


def _fake(**changes) -> Family:
    fields = {"name": "fake_family", "arxiv": "1409.1556", "module": __name__,
              "models": (ModelSpec("fake_a", _build), ModelSpec("fake_b", _build)),
              "small_representative": "fake_a"}
    return Family(**{**fields, **changes})


@pytest.fixture
def scratch_registry(monkeypatch):
    """Declarations made in a test go into copies of the registry, dropped when the test ends."""
    monkeypatch.setattr(registry, "_FAMILIES", dict(registry._FAMILIES))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_declared_family_joins_the_registry_in_publication_order(scratch_registry):
    declare_family(_fake())
    # arXiv 1409 (2014) comes before ResNet's 1512 (2015).
    assert family_names() == ("fake_family", *FAMILIES)
    assert list_models("fake_family") == ["fake_a", "fake_b"]
    model = create_model("fake_b", num_classes=4, input_size=224)
    assert model.archbench_info == {"name": "fake_b", "family": "fake_family", "stem": "imagenet",
                                    "builder": "archbench"}
    assert create_model("fake_a", num_classes=4, input_size=32).archbench_info["stem"] == "cifar"
    # register() adds to a declared family.
    registry.register("fake_c", "fake_family")(_build)
    assert list_models("fake_family") == ["fake_a", "fake_b", "fake_c"]


def test_scratch_registry_leaves_no_trace():
    assert "fake_family" not in family_names()
    assert not [name for name in list_models() if name.startswith("fake_")]


@pytest.mark.parametrize("changes, message", [
    ({"name": "resnet_v1"}, "'resnet_v1'.*already declared by archbench.models.resnet"),
    ({"name": "timm"}, "already declared"),
    ({"arxiv": "VGG"}, "arxiv='VGG'.*arXiv id"),
    ({"models": ()}, "declares no models"),
    ({"models": (ModelSpec("fake_a", _build), ModelSpec("fake_a", _build))}, "fake_a more than once"),
    ({"models": (ModelSpec("fake_a", _build), ModelSpec("timm/x", _build))}, "may not start with 'timm/'"),
    ({"small_representative": "fake_z"}, "small_representative='fake_z'.*fake_a, fake_b"),
    ({"small_input_stems": ("imagenet",)}, "small_input_stems=.*cifar, cifar16"),
    ({"small_input_stems": ()}, "small_input_stems="),
])
def test_bad_declarations_are_named_and_add_nothing(scratch_registry, changes, message):
    before = (dict(registry._FAMILIES), dict(registry._REGISTRY))
    with pytest.raises(ValueError, match=message):
        declare_family(_fake(**changes))
    assert (registry._FAMILIES, registry._REGISTRY) == before


def test_a_model_name_taken_by_another_family_adds_nothing(scratch_registry):
    before = dict(registry._REGISTRY)
    with pytest.raises(ValueError, match="'resnet20' .*already registered \\(family 'resnet_v1'\\)"):
        declare_family(_fake(models=(ModelSpec("fake_a", _build), ModelSpec("resnet20", _build))))
    assert registry._REGISTRY == before and "fake_family" not in family_names()


def test_register_needs_a_declared_family():
    with pytest.raises(ValueError, match="Unknown family 'transformer'.*declare_family"):
        registry.register("brand_new_net", "transformer")
    with pytest.raises(ValueError, match="Unknown family 'timm'"):
        registry.register("brand_new_net", "timm")
