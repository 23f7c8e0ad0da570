"""scripts/make_cifar10_jpg.py: the cifar10_jpg archive rebuilt from the official CIFAR-10 python version."""
import importlib.util
import io
import os
import pickle
import shutil
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from archbench.data import load_dataset

from helpers import REPO

spec = importlib.util.spec_from_file_location("make_cifar10_jpg", REPO / "scripts/make_cifar10_jpg.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

# Where data=cifar10_jpg looks from the repository root; ARCHBENCH_TEST_CIFAR10_JPG points elsewhere (or at
# nothing) to check what a checkout without it does.
REFERENCE = os.environ.get("ARCHBENCH_TEST_CIFAR10_JPG") or str(REPO.parent / "shared/data/cifar10-jpg.tar.gz")
CLASSES = [f"c{i}" for i in range(10)]


def write_official(root, train_per_batch=20, test=20):
    """cifar-10-batches-py/ with flat-coloured images (JPEG keeps a flat colour to a level or two), so each
    image's place in the archive can be checked by its colour: image i of a batch is (i, 2 * i, 255 - i)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    official = {}
    for name, count, seed in [*((f"data_batch_{b}", train_per_batch, b) for b in range(1, 6)), ("test_batch", test, 9)]:
        colours = np.stack([np.arange(count), 2 * np.arange(count), 255 - np.arange(count)], 1).astype(np.uint8)
        images = np.repeat(colours[:, :, None], 32 * 32, axis=2)  # (N, 3, 1024): the official row layout
        labels = np.random.default_rng(seed).permutation(np.arange(count) % 10).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": images.reshape(count, -1), b"labels": labels}, f)
        official[name] = (colours, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f)
    md5s = {path.name: make.md5(path) for path in folder.iterdir()}
    return official, md5s


def test_the_archive_keeps_the_official_order_within_each_class_and_reads_as_an_image_folder(tmp_path):
    official, md5s = write_official(tmp_path / "official")
    root = make.official_root(tmp_path / "official" / "cifar-10-batches-py", tmp_path / "scratch", md5s)
    from archbench.data.cifar import read, source_files

    out = tmp_path / "cifar10-jpg.tar.gz"
    tar_sha, gz_sha = make.build(read("cifar10", source_files("cifar10", root)), out, threads=2)
    assert (tar_sha, gz_sha) == make.build(read("cifar10", source_files("cifar10", root)), tmp_path / "again.tar.gz",
                                           threads=2)  # no time or owner of this build in it
    with tarfile.open(out) as tar:
        names = tar.getnames()
        # the test batch's second image of class c3, by its colour
        colours, labels = official["test_batch"]
        second = [i for i, label in enumerate(labels) if label == 3][1]
        pixels = np.asarray(Image.open(io.BytesIO(tar.extractfile("test/c3/0001.jpg").read())))
    assert names[:3] == ["train", "train/c0", "train/c0/0000.jpg"] and names.index("test") == 1 + 10 + 100
    assert np.abs(pixels.astype(int) - colours[second].astype(int)).max() <= 3
    ds = load_dataset("imagefolder", root=out, val_size=0, cache_dir=tmp_path / "cache")
    assert ds.class_names == CLASSES and ds.image_size == 32 and ds.in_chans == 3
    assert torch.bincount(ds.train.labels).tolist() == [10] * 10 and len(ds.test.labels) == 20


def test_a_source_that_is_not_the_official_set_is_refused_by_its_checksum(tmp_path):
    _, md5s = write_official(tmp_path / "official")
    with open(tmp_path / "official/cifar-10-batches-py/data_batch_2", "ab") as f:
        f.write(b"!")
    with pytest.raises(SystemExit, match=r"data_batch_2: md5 \w+ differs from the official"):
        make.official_root(tmp_path / "official", tmp_path / "scratch", md5s)
    not_official = tmp_path / "cifar-10-python.tar.gz"
    not_official.write_bytes(b"not the archive")
    with pytest.raises(SystemExit, match="is not that of the official cifar-10-python.tar.gz"):
        make.official_root(not_official, tmp_path / "scratch", {**md5s, make.OFFICIAL_ARCHIVE: "0" * 32})


@pytest.mark.skipif(not os.path.isfile(REFERENCE), reason=f"no reference archive at {REFERENCE}")
def test_the_tar_and_gzip_steps_rebuild_the_reference_archive_byte_for_byte(tmp_path):
    # The reference's own JPEG files through the script's tar and gzip steps: everything but the encoding of
    # the official pixels, which needs the official set (not on this machine), is checked against its checksums.
    with tarfile.open(REFERENCE) as tar:
        entries = [(m.name, None if m.isdir() else tar.extractfile(m).read()) for m in tar]
    assert make.write_tar(entries, tmp_path / "cifar10-jpg.tar") == make.TAR_SHA256
    if shutil.which("gzip"):
        assert make.compress(tmp_path / "cifar10-jpg.tar", tmp_path / "cifar10-jpg.tar.gz") == make.TAR_GZ_SHA256
    assert make.sha256(REFERENCE) == make.TAR_GZ_SHA256


def test_the_encoder_settings_are_the_reference_archive_s(tmp_path):
    # Pillow's default JPEG (quality 75, 4:2:0, standard tables) writes the same headers, up to the scan
    # data, as every file of the reference archive.
    if not os.path.isfile(REFERENCE):
        pytest.skip(f"no reference archive at {REFERENCE}")
    with tarfile.open(REFERENCE) as tar:
        first = next(m for m in tar if m.isfile())  # train/airplane/0000.jpg, near the start: no full read
        reference = tar.extractfile(first).read()
    ours = make.encode(np.zeros((3, 32, 32), np.uint8))
    assert ours[:ours.index(b"\xff\xda")] == reference[:reference.index(b"\xff\xda")]
