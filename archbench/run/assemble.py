"""A run's parts, built before its folder exists: data, model and complexity count (`Built`).

Bad input fails here, so it never leaves a `failed` record or a half-made folder behind.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from archbench import data as data_lib
from archbench import models
from archbench.measure import profile_complexity
from archbench.run.spec import RunSpec, resolve_device
from archbench.settings import DataSettings


@dataclass
class Built:
    model: Any
    family: str
    input_shape: tuple
    dataset: Any | None
    data_info: dict
    complexity: dict
    device: str


def build(spec: RunSpec) -> Built:
    device = resolve_device(spec.device)
    seed_everything(spec.seed, spec.recipe is not None and spec.recipe.deterministic)
    if spec.task == "profile":
        dataset, data_info = None, profile_data_info(spec)  # the data config's shape and class count, no files
    else:
        dataset = load_data(spec.data)
        data_info = {"name": spec.dataset_name, "label": dataset.info.get("label") or spec.data.label,
                     "num_classes": dataset.num_classes, "image_size": dataset.image_size,
                     "in_chans": dataset.in_chans, "mean": list(dataset.mean), "std": list(dataset.std),
                     "class_names": list(dataset.class_names), **dataset.info}
        if len(dataset.train.labels) < spec.recipe.batch_size:
            raise ValueError(batch_too_large(spec, len(dataset.train.labels)))
    model, family, input_shape = create_model(spec, data_info)
    try:
        complexity = profile_complexity(model, input_shape)
    except RuntimeError as err:
        raise ValueError(f"model {spec.model.name!r} cannot run on {input_shape[2]}x{input_shape[3]} inputs from "
                         f"data={spec.dataset_name!r} ({err}); use a larger data.image_size, or model.stem=cifar (overall stride 8) or cifar16 (stride 16)") from err
    complexity["stem"] = getattr(model, "archbench_info", {}).get("stem")
    return Built(model, family, input_shape, dataset, data_info, complexity, device)


def batch_too_large(spec: RunSpec, n_train: int) -> str:
    """The batch-size error, with the fix that is possible: a subset can grow, the full split cannot."""
    text = f"train.batch_size={spec.recipe.batch_size} is larger than the training split ({n_train} images): "
    if spec.data.load.get("train_size") is not None:
        return text + "lower it or raise data.train_size"
    return text + ("lower it (every training image is already used; a smaller data.val_size moves some back "
                   "into training, or use a larger dataset)")


def load_data(data: DataSettings):
    return data_lib.load_dataset(**data.load, label=data.label)


def profile_data_info(spec: RunSpec) -> dict:
    load = spec.data.load
    return {"name": spec.dataset_name, "label": spec.data.label, "image_size": load.get("image_size"),
            "in_chans": load.get("in_chans"), "num_classes": load.get("num_classes"), "profile_only": True}


def create_model(spec: RunSpec, data_info: dict):
    model = models.create_model(spec.model.builder_name, num_classes=data_info["num_classes"],
                                in_chans=data_info["in_chans"], input_size=data_info["image_size"],
                                stem=spec.model.stem, **spec.model.kwargs)
    family = getattr(model, "archbench_info", {}).get("family") or models.model_family(spec.model.builder_name)
    return model, family, (1, data_info["in_chans"], data_info["image_size"], data_info["image_size"])


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # Bit-reproducible runs: slower kernels, and an error on any op without a deterministic version.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

