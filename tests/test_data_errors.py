"""The dataset registry, display labels, and the data errors a new user meets: each case through load_dataset."""
import os
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from archbench.data import DATASETS, DataError, DataNotFoundError, RawData, Split, load_dataset, registry
from archbench.data import fashion_mnist as fashion_mnist_reader
from test_data import archive, write_cifar10, write_image_tree

CONF_DATA = Path(__file__).resolve().parents[1] / "conf" / "data"


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made by a test vanish with it."""
    monkeypatch.setattr(registry, "_READERS", dict(registry._READERS))


# --- registry ---------------------------------------------------------------------------------------

def test_unknown_name_lists_the_registered_names():
    with pytest.raises(DataError) as err:
        load_dataset("cifar11")
    message = str(err.value)
    assert "'cifar11'" in message and "did you mean cifar10" in message
    assert all(name in message for name in registry.names())


def test_a_registered_reader_goes_through_the_shared_pipeline(scratch_registry, tmp_path):
    seen = {}

    @registry.register("toy", label="Toy set", default_root="toy-root")
    def read_toy(request, files):
        seen["root"], seen["files"] = request.root, files
        images = torch.arange(40 * 3 * 4 * 4, dtype=torch.int64).remainder(256).to(torch.uint8).view(40, 3, 4, 4)
        labels = torch.arange(40) % 4
        return RawData(Split(images, labels), Split(images[:8], labels[:8]), ["a", "b", "c", "d"])

    ds = load_dataset("toy", val_size=8)
    assert seen == {"root": Path("toy-root").resolve(), "files": []}  # the default root, resolved; uncached
    assert (len(ds.train), len(ds.val), len(ds.test)) == (32, 8, 8)
    assert ds.info["label"] == "Toy set" and ds.info["format"] == "toy" and ds.info["cache_key"] is None
    assert "toy" in registry.names() and "toy" not in DATASETS  # DATASETS is the import-time snapshot


def test_a_duplicate_name_is_refused(scratch_registry):
    with pytest.raises(ValueError, match="'cifar10' is already registered"):
        registry.register("cifar10", label="again")(lambda request, files: None)
    with pytest.raises(ValueError, match="'cifar10_jpg' is already registered"):
        registry.register_preset("cifar10_jpg", of="imagefolder", root="elsewhere", label="again")


def test_a_preset_is_its_format_with_a_default_root_and_label():
    preset, base = registry.get("cifar10_jpg"), registry.get("imagefolder")
    assert preset.format == "imagefolder" and preset.read is base.read and preset.sources is base.sources
    assert preset.default_root == "../shared/data/cifar10-jpg.tar.gz" and base.default_root is None


# --- display labels ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(CONF_DATA.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_data_config_labels_its_dataset_as_the_registry_does(path):
    config = OmegaConf.to_container(OmegaConf.load(path))
    assert "label" in config
    assert config["label"] == registry.get(config["name"]).label  # null only where the source names itself


def test_labels_resolve_from_the_argument_the_registry_or_the_source(tmp_path, cache_dir):
    write_cifar10(tmp_path / "c")
    assert load_dataset("cifar10", root=tmp_path / "c", val_size=0, cache_dir=cache_dir).info["label"] == "CIFAR-10"
    mine = load_dataset("cifar10", root=tmp_path / "c", val_size=0, cache_dir=cache_dir, label="My CIFAR")
    assert mine.info["label"] == "My CIFAR"
    tree = write_image_tree(tmp_path / "my-pets")
    assert load_dataset("imagefolder", root=tree, cache_dir=cache_dir).info["label"] == "my-pets"
    packed = archive(tree, tmp_path / "pets-2024.tar.gz", "tar.gz")
    assert load_dataset("imagefolder", root=packed, cache_dir=cache_dir).info["label"] == "pets-2024"
    preset = load_dataset("cifar10_jpg", root=packed, cache_dir=cache_dir)
    assert preset.info["label"] == "CIFAR-10 (JPEG image folder)"


@pytest.mark.parametrize("label", ["", "  ", 3])
def test_a_blank_or_non_string_label_is_refused(label):
    with pytest.raises(DataError, match=r"data\.label="):
        load_dataset("synthetic", label=label)


# --- data=imagefolder: the root is required -------------------------------------------------------

def test_imagefolder_without_a_root_says_how_to_set_it(cache_dir):
    assert OmegaConf.load(CONF_DATA / "imagefolder.yaml").root is None  # no default that could point anywhere
    for root in (None, ""):
        with pytest.raises(DataError) as err:
            load_dataset("imagefolder", root=root, cache_dir=cache_dir)
        assert "needs data.root" in str(err.value) and "data.root=/path/to/folder" in str(err.value)


def test_an_empty_image_folder_names_data_root_and_the_fix(tmp_path, cache_dir):
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as err:
        load_dataset("imagefolder", root=tmp_path / "data", cache_dir=cache_dir)
    message = str(err.value)
    assert f"data.root={tmp_path / 'data'} holds no image files" in message
    assert "data.root=/path/to/folder" in message and "train/<class>/" in message


# --- a failed download leaves nothing behind ------------------------------------------------------

DOWNLOADS = {"cifar10": "CIFAR10", "svhn": "SVHN", "fashion_mnist": "FashionMNIST"}


def failing_download(written):
    """A torchvision dataset class that writes a partial archive and a folder, then loses the network."""
    def download(root, **kwargs):
        root = Path(root)
        (root / "partial.tar.gz.part").write_bytes(b"half an archive")
        (root / "FashionMNIST" / "raw").mkdir(parents=True, exist_ok=True)
        (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"")
        written.append(root)
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    return download


@pytest.mark.parametrize("name", sorted(DOWNLOADS))
def test_a_failed_download_removes_the_folders_it_created(tmp_path, cache_dir, monkeypatch, name):
    import torchvision.datasets

    written = []
    monkeypatch.setattr(torchvision.datasets, DOWNLOADS[name], failing_download(written))
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    root = tmp_path / "new" / "data"
    with pytest.raises(DataNotFoundError, match="name resolution"):
        load_dataset(name, root=root, download=True, cache_dir=cache_dir)
    assert written == [root]  # the download did run and write there...
    assert not (tmp_path / "new").exists()  # ...and every folder it made is gone, parents included


@pytest.mark.parametrize("name", sorted(DOWNLOADS))
def test_a_failed_download_keeps_what_was_there_before(tmp_path, cache_dir, monkeypatch, name):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, DOWNLOADS[name], failing_download([]))
    monkeypatch.setattr(fashion_mnist_reader, "SYSTEM_DIRS", [])
    root = tmp_path / "data"
    (root / "other-set").mkdir(parents=True)
    (root / "other-set" / "keep.bin").write_bytes(b"x")
    (root / "notes.txt").write_text("mine")
    with pytest.raises(DataNotFoundError):
        load_dataset(name, root=root, download=True, cache_dir=cache_dir)
    left = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    assert left == ["notes.txt", "other-set", "other-set/keep.bin"]


# --- the missing-CIFAR message ----------------------------------------------------------------------

@pytest.fixture
def launch_dir(tmp_path, monkeypatch):
    """A repository-like launch folder; the JPEG archive's default root is relative to it."""
    work = tmp_path / "repo"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def shared_archive(launch: Path) -> Path:
    path = launch / registry.get("cifar10_jpg").default_root
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")  # only its presence is checked
    return path.resolve()


def test_a_missing_relative_root_says_it_is_relative_to_the_launch_folder_and_how_to_get_the_archive(
        cache_dir, launch_dir):
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10_jpg", cache_dir=cache_dir)
    message = str(err.value)
    assert f"taken from the folder the command is launched in (here {launch_dir})" in message
    assert "archbench does not download it" in message and "../shared/data/cifar10-jpg.tar.gz" in message
    # where the archive comes from, and how to tell a rebuilt one is the same
    assert "python scripts/make_cifar10_jpg.py" in message and "sha256 is d877bdec11f54282" in message


def test_missing_cifar_is_a_few_short_lines_with_both_ways_to_get_it(tmp_path, cache_dir, launch_dir):
    root = tmp_path / "data"
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=root, cache_dir=cache_dir)
    lines = str(err.value).splitlines()
    assert 3 <= len(lines) <= 6, lines
    assert all(len(line) <= 110 + len(str(root)) for line in lines), lines  # no line carries a list of paths
    message = str(err.value)
    assert f"{root / 'cifar-10-batches-py'}/" in message
    assert "data.download=true" in message and "https://www.cs.toronto.edu/~kriz/cifar.html" in message
    assert "data_batch_1" not in message  # all seven are missing: the folder says it, not seven paths
    assert "cifar10_jpg" not in message  # no archive beside this launch folder: not offered


def test_missing_cifar_offers_the_jpeg_preset_where_the_archive_is(tmp_path, cache_dir, launch_dir):
    archive_path = shared_archive(launch_dir)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path / "data", cache_dir=cache_dir)
    assert f"data=cifar10_jpg reads CIFAR-10 as JPEGs from {archive_path}" in str(err.value)
    with pytest.raises(DataNotFoundError) as err:  # another set: the CIFAR-10 JPEGs are no substitute
        load_dataset("cifar100", root=tmp_path / "data", cache_dir=cache_dir)
    assert "cifar10_jpg" not in str(err.value)


def test_a_partly_present_cifar_names_only_the_missing_files(tmp_path, cache_dir, launch_dir):
    write_cifar10(tmp_path / "data")
    os.remove(tmp_path / "data" / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path / "data", cache_dir=cache_dir)
    assert "lacks data_batch_3." in str(err.value) and "data_batch_2" not in str(err.value)


def test_a_failed_cifar_download_also_offers_the_jpeg_preset(tmp_path, cache_dir, launch_dir, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", failing_download([]))
    archive_path = shared_archive(launch_dir)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path / "data", download=True, cache_dir=cache_dir)
    assert "name resolution" in str(err.value) and f"JPEGs from {archive_path}" in str(err.value)
    assert isinstance(err.value.__cause__, OSError)  # the network error stays attached for the traceback
