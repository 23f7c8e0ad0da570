"""An image folder's contents are part of a run's identity: a changed folder is a new variant, never a stale skip.

The built-in datasets and the cifar10_jpg preset keep the identity their committed records were made with.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from archbench.settings import DataSettings, MeasureSettings, ModelSettings, Recipe, fingerprint, run_identity

from helpers import REPO, archbench

REFERENCE = REPO / "results" / "reference" / "runs"


def write_folder(root: Path, classes=("a", "b", "c"), train=6, test=2, size=8):
    rng = np.random.default_rng(len(classes))
    for part, count in (("train", train), ("test", test)):
        for c in classes:
            (root / part / c).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / part / c / f"{i}.png")
    return root


def data_identity(root):
    return DataSettings.from_config({"name": "imagefolder", "root": str(root)}).identity()


def test_adding_removing_or_rewriting_an_image_changes_the_data_identity_and_moving_the_folder_does_not(tmp_path):
    root = write_folder(tmp_path / "pets")
    first = data_identity(root)
    assert first == data_identity(root) and len(first["content"]) == 16
    write_folder(root, classes=("d",))
    added = data_identity(root)
    assert added["content"] != first["content"]
    (root / "train" / "d" / "0.png").unlink()
    removed = data_identity(root)
    assert removed["content"] not in (first["content"], added["content"])
    path = root / "train" / "a" / "1.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    touched = data_identity(root)
    assert touched["content"] != removed["content"]
    (tmp_path / "other").mkdir()
    root.rename(tmp_path / "other" / "pets")  # same name, same files, another place: the same data
    assert data_identity(tmp_path / "other" / "pets") == touched


def test_an_archive_is_fingerprinted_by_content(tmp_path):
    import tarfile

    write_folder(tmp_path / "tree")
    with tarfile.open(tmp_path / "pets.tar", "w") as tar:
        tar.add(tmp_path / "tree", "pets")
    first = data_identity(tmp_path / "pets.tar")["content"]
    write_folder(tmp_path / "tree", classes=("d",))
    with tarfile.open(tmp_path / "pets.tar", "w") as tar:
        tar.add(tmp_path / "tree", "pets")
    assert data_identity(tmp_path / "pets.tar")["content"] != first


def test_builtin_datasets_and_the_cifar_jpeg_preset_keep_their_committed_identity():
    checked = 0
    for data in ("cifar10_jpg", "fashion_mnist", "imagenet"):
        records = sorted((REFERENCE).glob(f"*/{data}/*/*/seed*/record.json"))[:2]
        for path in records:
            record = json.loads(path.read_text())
            settings = record["identity"]["settings"]
            assert "content" not in settings["data"]
            load = {k: v for k, v in settings["data"].items() if k not in ("augment", "order_seed")}
            config = record["config"]["data"]
            rebuilt = DataSettings.from_config({**load, "root": config.get("root"), "cache_dir": config.get("cache_dir"),
                                                "augment": settings["data"]["augment"],
                                                "order_seed": settings["data"]["order_seed"]})
            assert rebuilt.identity() == settings["data"], path
            identity = {**settings, "data": rebuilt.identity()}
            assert fingerprint(identity) == record["identity"]["fingerprint"], path
            checked += 1
    assert checked >= 2


TINY = ["data=imagefolder", "data.image_size=8", "data.val_size=3", "model=resnet20", "train.batch_size=4",
        "train.eval_batch_size=16", "train.budget.steps=1", "measure.warmup=1", "measure.min_reps=1",
        "measure.min_time_s=0.01", "measure.batch_size=2", "evaluate.after_train=false", "device=cpu"]


@pytest.mark.slow  # three real runs: about 2 minutes on a shared 2-core machine
def test_a_folder_changed_between_two_runs_is_a_new_run_not_a_skip(tmp_path):
    root = write_folder(tmp_path / "pets")
    args = [*TINY, f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}"]
    first = archbench(args, tmp_path / "results")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    again = archbench(args, tmp_path / "results")
    assert "record is complete" in again.stdout + again.stderr  # unchanged: skipped
    write_folder(root, classes=("d",))  # a fourth class
    changed = archbench(args, tmp_path / "results")
    out = changed.stdout + changed.stderr
    assert changed.returncode == 0, out[-3000:]
    assert "record is complete" not in out and "the data changed since the record" in out, out[-3000:]
    records = sorted((tmp_path / "results").rglob("record.json"))
    assert len(records) == 2
    classes = sorted(json.loads(p.read_text())["dataset"]["num_classes"] for p in records)
    assert classes == [3, 4]
