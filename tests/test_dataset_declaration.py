"""A dataset is its reader module plus one YAML: a throwaway one, declared in this module and in a YAML written
to a temporary config folder, loads, caches and trains through the real entry point's settings and run, with
no other file of archbench naming it."""
import json
from pathlib import Path

import pytest
import torch

from archbench.data import DATASETS, DataNotFoundError, RawData, Split, load_dataset, register, registry

NAME = "throwaway_stripes"
CLASSES, SIZE, TRAIN, TEST = 4, 12, 96, 32
FILE = "stripes.pt"


# --- the dataset's module: everything archbench needs to know about it ---------------------------------------

def find_stripes(request: registry.Request):
    path = request.root / FILE
    if not path.is_file():
        raise DataNotFoundError(f"{NAME}: {path} is missing")
    return [path], None


@register(NAME, label="Throwaway stripes", native=(SIZE, 3), train_images=TRAIN, sources=find_stripes)
def read_stripes(request: registry.Request, files: list[Path]) -> RawData:
    payload = torch.load(files[0], weights_only=True)
    return RawData(Split(payload["train_images"], payload["train_labels"]),
                   Split(payload["test_images"], payload["test_labels"]),
                   [f"stripe_{k}" for k in range(CLASSES)], {"source": str(files[0])})


# --- its one YAML -------------------------------------------------------------------------------------------

YAML = f"""# Throwaway stripes: class k is a bright band at row 3k, in {FILE} under data.root
name: {NAME}
label: "Throwaway stripes"
root: data
download: false
image_size: {SIZE}
in_chans: 3
num_classes: {CLASSES}
val_size: 16
split_seed: 0
order_seed: null
train_size: null
cache_dir: null
on_bad_image: skip
augment:
  crop_padding: 0
  padding_mode: zero
  flip: false
  cutout: 0
"""


def stripes(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(count) % CLASSES
    images = torch.randint(0, 64, (count, 3, SIZE, SIZE), generator=generator, dtype=torch.uint8)
    for index, label in enumerate(labels.tolist()):
        images[index, :, 3 * label:3 * label + 2, :] = 255
    return images, labels


@pytest.fixture
def stripes_root(tmp_path):
    generator = torch.Generator().manual_seed(0)
    (train_images, train_labels), (test_images, test_labels) = stripes(TRAIN, generator), stripes(TEST, generator)
    root = tmp_path / "data"
    root.mkdir()
    torch.save({"train_images": train_images, "train_labels": train_labels, "test_images": test_images,
                "test_labels": test_labels}, root / FILE)
    return root


def test_the_declared_dataset_loads_through_the_shared_pipeline(stripes_root, tmp_path):
    assert registry.known_train_images(NAME) == TRAIN
    first = load_dataset(NAME, root=stripes_root, val_size=16, cache_dir=tmp_path / "cache")
    again = load_dataset(NAME, root=stripes_root, val_size=16, cache_dir=tmp_path / "cache")
    assert (len(first.train.labels), len(first.val.labels), len(first.test.labels)) == (TRAIN - 16, 16, TEST)
    assert first.info["label"] == "Throwaway stripes" and first.num_classes == CLASSES
    assert first.info["cache_hit"] is False and again.info["cache_hit"] is True  # decoded once
    assert torch.equal(first.train.images, again.train.images)


def test_the_declared_dataset_trains_from_its_yaml_alone(stripes_root, tmp_path):
    from hydra import compose, initialize_config_dir

    from archbench.__main__ import CONF_DIR, spec_from_config
    from archbench.run import run

    conf = tmp_path / "conf"
    (conf / "data").mkdir(parents=True)
    (conf / "data" / f"{NAME}.yaml").write_text(YAML)
    overrides = [f"data={NAME}", f"data.root={stripes_root}", f"data.cache_dir={tmp_path / 'cache'}",
                 "model=resnet20", "train=quick", "train.batch_size=16", "train.eval_batch_size=64",
                 "train.budget.steps=1", "train.amp=off", "train.channels_last=false", "device=cpu",
                 "measure.warmup=1", "measure.min_reps=2", "measure.min_time_s=0.01", "measure.batch_size=2",
                 "evaluate.corruptions=[contrast]", "evaluate.severities=[1]", f"results_dir={tmp_path / 'results'}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"hydra.searchpath=[file://{conf}]", *overrides])
    spec = spec_from_config(cfg, overrides)
    assert run(spec)["status"] == "complete"
    record = json.loads((spec.record_dir / "record.json").read_text())
    assert record["status"] == "complete" and record["data"] == NAME
    assert record["dataset"]["label"] == "Throwaway stripes" and record["dataset"]["train_size"] == TRAIN - 16


def test_every_data_config_is_a_registered_dataset_and_every_dataset_has_one():
    configs = {path.stem for path in (Path(__file__).resolve().parents[1] / "conf" / "data").glob("*.yaml")}
    assert configs == set(DATASETS)  # DATASETS: the package's own readers (this module's registers later)
    assert NAME in registry.names() and NAME not in DATASETS
