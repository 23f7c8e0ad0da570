"""The numerics identity: what can change what a model learns, and the golden losses that guard its code part.

Accuracy may pool across machines and commits only at one numerics identity (archbench.settings
.numerics_identity). Its code part is CODE_MAJOR_VERSION, which a refactor keeps only if it changes no
numbers: three deterministic fp32 steps of each family, through the real data pipeline and training loop,
must reproduce the losses pinned here. A change that moves them must bump CODE_MAJOR_VERSION and re-pin.
"""
import json

import pytest
import torch

from archbench.run import RunSpec, run
from archbench.settings import CODE_MAJOR_VERSION, numerics_identity

# Mean training loss of the first 3 steps (batch 16, SGD lr 0.05 momentum 0.9, cosine, fp32 NCHW, synthetic
# 32x32 data, 96 images), torch 2.14 on CPU. Thread count and CPU kind move the last digits (shufflenet's
# depthwise convolutions most: 6.5e-4 relative between 1 and 2 threads on an AMD EPYC Zen 5), hence RTOL.
GOLDEN_TORCH = "2.14"
GOLDEN = {"resnet20": 2.66005, "preact_resnet20": 2.36840, "wrn_16_2": 2.30942, "densenet_bc_40_12": 2.33647,
          "densenet_40_12": 2.33205, "shufflenet_v2_x2_0": 2.36401, "efficientnetv2_b0": 4.15857,
          "fractalnet_20_w4": 3.05959, "resnext29_8x64d_w8": 2.40559}
RTOL = 3e-3


def golden_spec(model: str, results_dir) -> RunSpec:
    recipe = {"name": "golden", "batch_size": 16, "budget": {"steps": 3}, "amp": "off", "channels_last": False,
              "deterministic": True, "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9},
              "scheduler": {"_target_": "archbench.train.schedules.Cosine"}}
    return RunSpec.from_configs(model={"name": model}, data={"name": "synthetic", "synthetic_size": 96, "image_size": 32},
                                train=recipe, measure={"warmup": 1, "min_reps": 1, "min_time_s": 0.0, "batch_size": 1},
                                results_dir=str(results_dir), force=True, evaluate=None)


@pytest.mark.skipif(".".join(torch.__version__.split(".")[:2]) != GOLDEN_TORCH,
                    reason=f"golden losses are pinned for torch {GOLDEN_TORCH} (constraints.txt)")
@pytest.mark.parametrize("model", sorted(GOLDEN))
def test_a_few_fp32_steps_reproduce_the_pinned_losses(model, tmp_path):
    spec = golden_spec(model, tmp_path)
    run(spec)
    record = json.loads((spec.record_dir / "record.json").read_text())
    loss = record["history"][0]["train_loss"]
    assert loss == pytest.approx(GOLDEN[model], rel=RTOL), (
        f"{model}: 3 fp32 steps now give loss {loss:.5f}, pinned {GOLDEN[model]:.5f}: this change alters what "
        f"models learn. If that is intended, bump CODE_MAJOR_VERSION (now {CODE_MAJOR_VERSION}) in "
        "archbench/settings.py and re-pin GOLDEN, so new runs never pool with the old ones")
    assert record["numerics"]["precision"] == "fp32" and record["numerics"]["code"] == CODE_MAJOR_VERSION


def test_the_numerics_identity_leaves_the_machine_out_and_keeps_what_changes_learning():
    identity = {"code": 1, "task": "train", "model": {"name": "resnet20"}, "data": {"name": "cifar10_jpg"},
                "recipe": {"lr": 0.1}, "measure": None, "seed": 0}
    base = numerics_identity(identity, "bf16", True, "2.14.1+cpu")
    # the seed, the task and the build's local suffix do not change it; nothing about the machine enters it
    assert numerics_identity({**identity, "seed": 3}, "bf16", True, "2.14.1") == base
    assert base["torch"] == "2.14" and base["precision"] == "bf16"
    for changed in (numerics_identity(identity, "off", True, "2.14.1"),        # precision
                    numerics_identity(identity, "bf16", False, "2.14.1"),      # layout
                    numerics_identity(identity, "bf16", True, "2.15.0"),       # torch minor
                    numerics_identity({**identity, "recipe": {"lr": 0.2}}, "bf16", True, "2.14.1"),
                    numerics_identity({**identity, "code": 2}, "bf16", True, "2.14.1")):
        assert changed["fingerprint"] != base["fingerprint"]
