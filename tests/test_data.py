"""Dataset readers on tiny files written in each official format; splits, statistics, cache, and bad input."""
import gzip
import pickle
import shutil
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from archbench.data import BadImageError, DataError, DataNotFoundError, load_dataset, make_loaders
from archbench.data import fashion_mnist as fashion_mnist_reader
from archbench.data.split import channel_stats, split_indices

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def random_images(count, chans, size, seed):
    return np.random.default_rng(seed).integers(0, 256, (count, chans, size, size), dtype=np.uint8)


def balanced_labels(count, classes, seed):
    return np.random.default_rng(seed).permutation(np.arange(count) % classes)


# --- writers for the official formats ---------------------------------------------------------------

def write_cifar10(root, per_batch=40, test=30):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": (per_batch, i) for i in range(1, 6)} | {"test_batch": (test, 99)}
    written = {}
    for name, (count, seed) in batches.items():
        images = random_images(count, 3, 32, seed)
        labels = balanced_labels(count, 10, seed)
        with open(folder / name, "wb") as f:  # rows of 3072 bytes: R, G, B planes
            pickle.dump({b"data": images.reshape(count, -1), b"labels": labels.tolist()}, f)
        written[name] = (images, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)
    return written


def write_cifar100(root, train=300, test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, count in (("train", train), ("test", test)):
        labels = balanced_labels(count, 100, count)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": random_images(count, 3, 32, count).reshape(count, -1),
                         b"fine_labels": labels.tolist(), b"coarse_labels": (labels // 5).tolist()}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                     b"coarse_label_names": [f"k{i}".encode() for i in range(20)]}, f)


def write_svhn(root, train=120, test=40):
    root.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, count in (("train", train), ("test", test)):
        images = random_images(count, 3, 32, count)  # (N, C, H, W)
        digits = balanced_labels(count, 10, count)
        mat_labels = np.where(digits == 0, 10, digits).reshape(-1, 1)  # the files store digit 0 as 10
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": images.transpose(2, 3, 1, 0), "y": mat_labels})
        written[name] = (images, digits)
    return written


def write_idx(path, array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(root, train=200, test=50):
    root.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", random_images(count, 1, 28, count)[:, 0])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", balanced_labels(count, 10, count))


def write_image_tree(root, classes=("cat", "dog", "eel"), train_per_class=12, test_per_class=4, size=(20, 16),
                     mode="RGB", ext="png"):
    rng = np.random.default_rng(0)
    for part, count in (("train", train_per_class), ("test", test_per_class)):
        for c in classes:
            folder = root / part / c
            folder.mkdir(parents=True)
            for i in range(count):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i:03d}.{ext}")
    return root


def archive(tree, out, fmt, wrap="cifar-jpg"):
    """tree packed as fmt ('tar', 'tar.gz' or 'zip') under a wrapping folder, as archives usually are."""
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    if fmt == "zip":
        with zipfile.ZipFile(out, "w") as z:
            for p in files:
                z.write(p, f"{wrap}/{p.relative_to(tree).as_posix()}")
    else:
        with tarfile.open(out, "w:gz" if fmt == "tar.gz" else "w") as t:
            for p in reversed(files):  # stored order differs from path order: the result must not depend on it
                t.add(p, f"{wrap}/{p.relative_to(tree).as_posix()}")
    return out


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


# --- readers ----------------------------------------------------------------------------------------

def test_cifar10_reads_official_pickles_exactly(tmp_path, cache_dir):
    written = write_cifar10(tmp_path / "data")
    ds = load_dataset("cifar10", root=tmp_path / "data", val_size=0, cache_dir=cache_dir)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    assert ds.train.images.shape == (200, 3, 32, 32) and ds.test.images.shape == (30, 3, 32, 32)
    assert ds.num_classes == 10 and ds.class_names == [f"c{i}" for i in range(10)]
    assert (ds.in_chans, ds.image_size) == (3, 32)
    # with no validation split the training set is the five batches in order, pixels in CHW
    expected = np.concatenate([written[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert torch.equal(ds.train.images, torch.from_numpy(expected))
    assert torch.equal(ds.test.labels, torch.from_numpy(written["test_batch"][1]))
    assert ds.info["selection"] == "last" and len(ds.val) == 0


def test_cifar100_uses_fine_labels(tmp_path, cache_dir):
    write_cifar100(tmp_path)
    ds = load_dataset("cifar100", root=tmp_path, val_size=100, cache_dir=cache_dir)
    assert ds.num_classes == 100 and ds.class_names[7] == "f7"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (200, 100, 100)
    assert int(ds.train.labels.max()) == 99 and int(ds.train.labels.min()) == 0
    assert torch.bincount(ds.val.labels, minlength=100).tolist() == [1] * 100  # stratified: one per class


def test_svhn_maps_ten_to_zero_and_transposes(tmp_path, cache_dir):
    written = write_svhn(tmp_path)
    ds = load_dataset("svhn", root=tmp_path, val_size=0, cache_dir=cache_dir)
    images, digits = written["test"]
    assert torch.equal(ds.test.images, torch.from_numpy(images))
    assert torch.equal(ds.test.labels, torch.from_numpy(digits))
    assert set(ds.train.labels.tolist()) == set(range(10)) and ds.class_names[0] == "0"


def test_svhn_extra_is_required_only_when_asked(tmp_path, cache_dir):
    write_svhn(tmp_path)
    with pytest.raises(DataNotFoundError, match="extra_32x32.mat"):
        load_dataset("svhn", root=tmp_path, extra=True, cache_dir=cache_dir)


def test_fashion_mnist_idx(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    write_fashion_mnist(tmp_path / "fm")
    ds = load_dataset("fashion_mnist", root=tmp_path / "fm", val_size=20, cache_dir=cache_dir)
    assert ds.train.images.shape == (180, 1, 28, 28) and ds.test.images.shape == (50, 1, 28, 28)
    assert (ds.in_chans, ds.image_size, ds.num_classes) == (1, 28, 10)
    assert ds.class_names[9] == "Ankle boot"
    assert torch.bincount(ds.val.labels).tolist() == [2] * 10


def test_fashion_mnist_rejects_a_corrupt_idx_header(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    write_fashion_mnist(tmp_path)
    with gzip.open(tmp_path / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x0d\x01garbage")  # type 0x0d is float, not the unsigned bytes these files hold
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset("fashion_mnist", root=tmp_path, cache_dir=cache_dir)


@pytest.mark.skipif(not (REAL_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist(tmp_path, cache_dir):
    ds = load_dataset("fashion_mnist", root=tmp_path / "nothing-here", cache_dir=cache_dir)
    assert ds.info["source"] == str(REAL_FASHION_MNIST)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (55000, 5000, 10000)
    assert ds.train.images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(torch.cat([ds.train.labels, ds.val.labels]))
    assert counts.tolist() == [6000] * 10
    assert torch.bincount(ds.val.labels).tolist() == [500] * 10
    assert ds.mean[0] == pytest.approx(0.286, abs=0.002) and ds.std[0] == pytest.approx(0.353, abs=0.002)


def test_imagefolder_folder_and_archives_agree(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    by_folder = load_dataset("imagefolder", root=tree, image_size=16, val_size=0, cache_dir=cache_dir)
    assert by_folder.train.images.shape == (36, 3, 16, 16) and by_folder.test.images.shape == (12, 3, 16, 16)
    assert by_folder.class_names == ["cat", "dog", "eel"]
    assert torch.bincount(by_folder.train.labels).tolist() == [12, 12, 12]
    for fmt in ("tar", "tar.gz", "zip"):
        packed = archive(tree, tmp_path / f"tree.{fmt}", fmt)
        ds = load_dataset("imagefolder", root=packed, image_size=16, val_size=0, cache_dir=cache_dir)
        assert torch.equal(ds.train.images, by_folder.train.images), fmt
        assert torch.equal(ds.test.labels, by_folder.test.labels), fmt


def test_imagefolder_resizes_shorter_side_and_center_crops(tmp_path, cache_dir):
    tree = tmp_path / "tree"
    for part in ("train", "val"):  # val/ serves as the test set when there is no test/
        for c in ("a", "b"):
            (tree / part / c).mkdir(parents=True)
            # 40x20: left half black, right half white; a 10x10 result is the middle, half and half
            pixels = np.zeros((20, 40, 3), np.uint8)
            pixels[:, 20:] = 255
            for i in range(3):
                Image.fromarray(pixels).save(tree / part / c / f"{i}.png")
    ds = load_dataset("imagefolder", root=tree, image_size=10, val_size=0, cache_dir=cache_dir)
    assert ds.train.images.shape == (6, 3, 10, 10)
    row = ds.train.images[0, 0, 5]
    assert row[:4].max() < 30 and row[-4:].min() > 225
    assert ds.info["test_folder"] == "val"


def test_imagefolder_grayscale_is_one_channel_and_rgb_on_request(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "gray", mode="L", size=(12, 12))
    gray = load_dataset("imagefolder", root=tree, val_size=0, cache_dir=cache_dir)
    assert gray.in_chans == 1 and gray.image_size == 12 and len(gray.mean) == 1
    with pytest.warns(UserWarning, match=r"every image under .*gray.* is grayscale, and data.in_chans=3 repeats"):
        rgb = load_dataset("imagefolder", root=tree, in_chans=3, val_size=0, cache_dir=cache_dir)
    assert rgb.train.images.shape[1] == 3 and rgb.info["grayscale_images"] == 36 + 12
    assert torch.equal(rgb.train.images[:, 0], gray.train.images[:, 0])
    with pytest.warns(UserWarning, match="is grayscale"):  # said again when the decoded set comes from the cache
        load_dataset("imagefolder", root=tree, in_chans=3, val_size=0, cache_dir=cache_dir)


def test_a_colour_folder_read_as_rgb_gets_no_grayscale_note(tmp_path, cache_dir, recwarn):
    ds = load_dataset("imagefolder", root=write_image_tree(tmp_path / "rgb"), in_chans=3, val_size=0,
                      cache_dir=cache_dir)
    assert ds.info["grayscale_images"] == 0 and not [w for w in recwarn if "grayscale" in str(w.message)]


def test_imagefolder_reads_a_class_folder_that_is_a_symbolic_link(tmp_path, cache_dir):
    elsewhere = write_image_tree(tmp_path / "elsewhere", classes=("eel",))
    tree = write_image_tree(tmp_path / "tree", classes=("cat", "dog"))
    for part in ("train", "test"):
        (tree / part / "eel").symlink_to(elsewhere / part / "eel", target_is_directory=True)
    ds = load_dataset("imagefolder", root=tree, image_size=16, val_size=0, cache_dir=cache_dir)
    assert ds.class_names == ["cat", "dog", "eel"]
    assert torch.bincount(ds.train.labels).tolist() == [12, 12, 12] and len(ds.test.labels) == 12


def test_imagefolder_refuses_a_link_that_loops_back_naming_it(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    loop = tree / "train" / "cat" / "again"
    loop.symlink_to(tree / "train", target_is_directory=True)
    with pytest.raises(DataError, match=rf"{loop} is a symbolic link to {tree / 'train'}, a folder that contains it"):
        load_dataset("imagefolder", root=tree, image_size=16, val_size=0, cache_dir=cache_dir)
    loop.unlink()
    # two class folders linking into each other: neither link points above itself where it is first met
    (tree / "train" / "cat" / "to_dog").symlink_to(tree / "train" / "dog", target_is_directory=True)
    (tree / "train" / "dog" / "to_cat").symlink_to(tree / "train" / "cat", target_is_directory=True)
    with pytest.raises(DataError, match="a folder that contains it, so the tree never ends"):
        load_dataset("imagefolder", root=tree, image_size=16, val_size=0, cache_dir=cache_dir)


def test_synthetic_is_flagged_and_shaped(cache_dir):
    ds = load_dataset("synthetic", image_size=20, in_chans=1, num_classes=4, synthetic_size=200, val_size=0.1)
    assert ds.synthetic and ds.info["selection"] == "val"
    assert ds.train.images.shape == (180, 1, 20, 20) and len(ds.val) == 20 and ds.num_classes == 4
    again = load_dataset("synthetic", image_size=20, in_chans=1, num_classes=4, synthetic_size=200, val_size=0.1)
    assert torch.equal(ds.train.images, again.train.images)


def test_resize_and_channel_conversion_of_fixed_size_sets(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    write_fashion_mnist(tmp_path)
    ds = load_dataset("fashion_mnist", root=tmp_path, image_size=32, in_chans=3, val_size=0, cache_dir=cache_dir)
    assert ds.train.images.shape == (200, 3, 32, 32) and ds.in_chans == 3 and len(ds.mean) == 3
    assert torch.equal(ds.train.images[:, 0], ds.train.images[:, 2])


# --- bad input --------------------------------------------------------------------------------------

def test_missing_cifar_names_the_expected_path_and_the_fix(tmp_path, cache_dir):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path, cache_dir=cache_dir)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message and "data.download=true" in message


def test_missing_fashion_mnist_names_both_ways_to_get_it(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [tmp_path / "not-installed"])
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion_mnist", root=tmp_path / "data", cache_dir=cache_dir)
    message = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in message and "data.download=true" in message
    assert str(tmp_path / "data") in message


def test_imagefolder_missing_root_and_empty_folder(tmp_path, cache_dir):
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "nope")):
        load_dataset("imagefolder", root=tmp_path / "nope", cache_dir=cache_dir)
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DataError, match="no image files"):
        load_dataset("imagefolder", root=tmp_path / "empty", cache_dir=cache_dir)
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="notes.txt"):
        load_dataset("imagefolder", root=tmp_path / "notes.txt", cache_dir=cache_dir)


def test_imagefolder_class_folders_must_match(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    shutil.rmtree(tree / "test" / "eel")
    with pytest.raises(DataError, match=r"only in train: \['eel'\]"):
        load_dataset("imagefolder", root=tree, cache_dir=cache_dir)


def test_imagefolder_needs_a_test_or_val_folder(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    shutil.rmtree(tree / "test")
    with pytest.raises(DataError, match="no test/ or val/"):
        load_dataset("imagefolder", root=tree, cache_dir=cache_dir)


def test_unreadable_image_is_skipped_with_a_count_or_fails(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    (tree / "train" / "dog" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(BadImageError, match="broken.png"):
        load_dataset("imagefolder", root=tree, on_bad_image="error", cache_dir=cache_dir)
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        ds = load_dataset("imagefolder", root=tree, on_bad_image="skip", val_size=0, cache_dir=cache_dir)
    assert ds.info["bad_images"] == 1 and len(ds.train) == 36
    assert ds.info["bad_image_examples"] == ["train/dog/broken.png"]
    # a cache built while skipping must not let a strict run through
    with pytest.raises(BadImageError, match="broken.png"):
        load_dataset("imagefolder", root=tree, on_bad_image="error", cache_dir=cache_dir)


def test_bad_options_are_named(tmp_path, cache_dir):
    with pytest.raises(DataError, match="cifar10"):
        load_dataset("cifar-10", cache_dir=cache_dir)
    with pytest.raises(DataError, match="on_bad_image='ignore'"):
        load_dataset("synthetic", on_bad_image="ignore")
    with pytest.raises(DataError, match="val_size=1000 leaves no training images"):
        load_dataset("synthetic", synthetic_size=100, val_size=1000)
    with pytest.raises(DataError, match="val_size=1.5"):
        load_dataset("synthetic", val_size=1.5)
    with pytest.raises(DataError, match="train_size=5000"):
        load_dataset("synthetic", synthetic_size=100, val_size=10, train_size=5000)
    tree = write_image_tree(tmp_path / "tree")
    with pytest.raises(DataError, match="num_classes=7 but the data has 3 classes"):
        load_dataset("imagefolder", root=tree, num_classes=7, cache_dir=cache_dir)


# --- split protocol ---------------------------------------------------------------------------------

def test_split_is_deterministic_disjoint_and_stratified():
    labels = torch.from_numpy(balanced_labels(1000, 10, 1)).long()
    train, val = split_indices(labels, 100, None, split_seed=3)
    again_train, again_val = split_indices(labels, 100, None, split_seed=3)
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert set(val.tolist()).isdisjoint(train.tolist()) and len(train) + len(val) == 1000
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    _, other_val = split_indices(labels, 100, None, split_seed=4)
    assert not torch.equal(val, other_val)
    subset, same_val = split_indices(labels, 100, 90, split_seed=3)
    assert torch.equal(same_val, val) and set(subset.tolist()) <= set(train.tolist())
    assert torch.bincount(labels[subset]).tolist() == [9] * 10


def test_no_validation_image_appears_in_training(tmp_path, cache_dir):
    write_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, val_size=50, train_size=120, split_seed=7, cache_dir=cache_dir)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (120, 50, 30)
    assert (ds.info["train_size"], ds.info["val_size"], ds.info["test_size"]) == (120, 50, 30)
    assert ds.info["selection"] == "val" and ds.info["split_seed"] == 7
    train_rows = {bytes(img.numpy().tobytes()) for img in ds.train.images}
    assert not any(bytes(img.numpy().tobytes()) in train_rows for img in ds.val.images)
    # the training seed plays no part: a second load gives the same split
    again = load_dataset("cifar10", root=tmp_path, val_size=50, train_size=120, split_seed=7, cache_dir=cache_dir)
    assert torch.equal(again.val.images, ds.val.images)


def test_default_validation_size(tmp_path, cache_dir):
    write_cifar10(tmp_path)  # 200 training images: 10% is less than 5,000
    assert len(load_dataset("cifar10", root=tmp_path, cache_dir=cache_dir).val) == 20
    assert len(load_dataset("synthetic", synthetic_size=300).val) == 30


def test_mean_std_come_from_the_training_split(tmp_path, cache_dir):
    write_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, val_size=50, cache_dir=cache_dir)
    x = ds.train.images.double() / 255
    assert ds.mean == pytest.approx(x.mean((0, 2, 3)).tolist(), abs=1e-5)
    assert ds.std == pytest.approx(x.std((0, 2, 3), unbiased=False).tolist(), abs=1e-5)
    assert channel_stats(ds.train.images) == (ds.mean, ds.std)
    stats_files = list(Path(ds.info["cache_path"]).glob("stats-*.json"))
    assert len(stats_files) == 1


# --- cache ------------------------------------------------------------------------------------------

def test_cache_is_reused_and_invalidated_when_the_source_changes(tmp_path, cache_dir):
    written = write_cifar10(tmp_path)
    first = load_dataset("cifar10", root=tmp_path, val_size=0, cache_dir=cache_dir)
    second = load_dataset("cifar10", root=tmp_path, val_size=0, cache_dir=cache_dir)
    assert not first.info["cache_hit"] and second.info["cache_hit"]
    assert first.info["cache_key"] == second.info["cache_key"]
    assert torch.equal(first.train.images, second.train.images)
    assert not [p for p in cache_dir.rglob("*.tmp")]  # atomic writes leave no partial files
    images, labels = written["test_batch"]
    labels = (labels + 1) % 10  # same size, different content
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({b"data": images.reshape(len(images), -1), b"labels": labels.tolist()}, f)
    third = load_dataset("cifar10", root=tmp_path, val_size=0, cache_dir=cache_dir)
    assert not third.info["cache_hit"] and third.info["cache_key"] != first.info["cache_key"]
    assert torch.equal(third.test.labels, torch.from_numpy(labels))


def test_cache_of_an_image_tree_notices_a_new_file(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree")
    first = load_dataset("imagefolder", root=tree, val_size=0, cache_dir=cache_dir)
    assert load_dataset("imagefolder", root=tree, val_size=0, cache_dir=cache_dir).info["cache_hit"]
    shutil.copy(tree / "train" / "cat" / "000.png", tree / "train" / "cat" / "999.png")
    changed = load_dataset("imagefolder", root=tree, val_size=0, cache_dir=cache_dir)
    assert not changed.info["cache_hit"] and len(changed.train) == len(first.train) + 1


def test_loaders_on_a_real_reader(tmp_path, cache_dir):
    write_svhn(tmp_path)
    ds = load_dataset("svhn", root=tmp_path, val_size=20, cache_dir=cache_dir)
    train, val, test = make_loaders(ds, batch_size=32, eval_batch_size=64,
                                    augment={"crop_padding": 2, "flip": False})
    assert (len(train), len(val), len(test)) == (3, 1, 1)
    x, y = next(iter(train))
    assert x.shape == (32, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sum(len(y) for _, y in test) == 40


# --- Hydra data configs -----------------------------------------------------------------------------

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"
DATA_KEYS = {"name", "label", "root", "download", "image_size", "in_chans", "num_classes", "val_size", "split_seed",
             "order_seed", "train_size", "cache_dir", "on_bad_image", "augment"}


@pytest.mark.parametrize("preset", sorted(path.stem for path in CONF_DATA.glob("*.yaml")))
def test_data_config_has_every_key_and_fits_the_loader(preset):
    import inspect

    from omegaconf import OmegaConf

    from archbench.data import AUGMENT_DEFAULTS, DATASETS
    from archbench.data.augment import check_augment

    path = CONF_DATA / f"{preset}.yaml"
    config = OmegaConf.to_container(OmegaConf.load(path))
    assert DATA_KEYS <= set(config), DATA_KEYS - set(config)
    assert config["name"] == preset and preset in DATASETS
    assert set(config["augment"]) == set(AUGMENT_DEFAULTS) and check_augment(config["augment"])
    parameters = inspect.signature(load_dataset).parameters
    # the entry point passes every other key through (order_seed goes to the loaders, not the reader)
    assert set(config) - {"augment", "order_seed"} <= set(parameters)
    commented = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert all("#" in line for line in commented if not line.rstrip().endswith(":")), "one comment per setting"


def test_cifar10_jpg_preset_reads_the_shared_archive_layout(tmp_path, cache_dir):
    tree = write_image_tree(tmp_path / "tree", size=(32, 32), ext="jpg")
    packed = archive(tree, tmp_path / "cifar10-jpg.tar.gz", "tar.gz")
    ds = load_dataset("cifar10_jpg", root=packed, image_size=32, val_size=6, cache_dir=cache_dir)
    assert ds.name == "cifar10_jpg" and ds.info["format"] == "imagefolder"
    assert ds.train.images.shape == (30, 3, 32, 32) and len(ds.val) == 6


def test_an_identical_copy_shares_the_cache_but_records_its_own_path(tmp_path, cache_dir):
    write_cifar10(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first = load_dataset("cifar10", root=tmp_path / "a", val_size=0, cache_dir=cache_dir)
    copy = load_dataset("cifar10", root=tmp_path / "b", val_size=0, cache_dir=cache_dir)
    assert copy.info["cache_hit"] and copy.info["cache_key"] == first.info["cache_key"]
    assert copy.info["source"] == str(tmp_path / "b" / "cifar-10-batches-py")


def test_asking_for_the_native_shape_reuses_the_plain_cache(tmp_path, cache_dir):
    write_cifar10(tmp_path)
    plain = load_dataset("cifar10", root=tmp_path, val_size=0, cache_dir=cache_dir)
    native = load_dataset("cifar10", root=tmp_path, image_size=32, in_chans=3, val_size=0, cache_dir=cache_dir)
    assert native.info["cache_hit"] and native.info["cache_key"] == plain.info["cache_key"]
    resized = load_dataset("cifar10", root=tmp_path, image_size=24, val_size=0, cache_dir=cache_dir)
    assert not resized.info["cache_hit"] and resized.train.images.shape == (200, 3, 24, 24)


@pytest.mark.parametrize("name, dataset_class", [("cifar10", "CIFAR10"), ("svhn", "SVHN"),
                                                 ("fashion_mnist", "FashionMNIST")])
def test_download_while_offline_names_the_path_and_the_fix(tmp_path, cache_dir, monkeypatch, name, dataset_class):
    import torchvision.datasets

    def offline(*args, **kwargs):  # what torchvision raises with no route to the host
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(torchvision.datasets, dataset_class, offline)
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    with pytest.raises(DataNotFoundError) as err:
        load_dataset(name, root=tmp_path / "data", download=True, cache_dir=cache_dir)
    assert str(tmp_path / "data") in str(err.value) and "name resolution" in str(err.value)
