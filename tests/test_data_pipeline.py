"""Batched augmentation against a plain pad-and-slice oracle; loaders: order, sharding, resume, streaming."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from archbench.data import AUGMENT_DEFAULTS, DataError, Dataset, Split, augment_batch, load_dataset, make_loaders
from archbench.data.augment import apply_augment, sample_params
from archbench.data.split import seeded_generator


def random_batch(batch=16, chans=3, height=12, width=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, chans, height, width), dtype=torch.uint8, generator=generator)


def oracle(images, params, padding, mode):
    """One sample at a time: F.pad, slice the crop window, then torch.flip."""
    pad_mode = "reflect" if mode == "reflect" else "constant"
    padded = F.pad(images.float(), (padding,) * 4, mode=pad_mode)
    height, width = images.shape[2:]
    out = []
    for i in range(len(images)):
        y, x = int(params.crop_y[i]), int(params.crop_x[i])
        crop = padded[i, :, y:y + height, x:x + width]
        out.append(crop.flip(-1) if params.flip[i] else crop)
    return torch.stack(out).to(torch.uint8)


@pytest.mark.parametrize("mode", ["reflect", "zero"])
def test_crop_is_a_shifted_padded_copy_and_flip_an_exact_mirror(mode):
    images = random_batch()
    params = sample_params(len(images), 12, 10, seeded_generator(1), crop_padding=3, flip=True)
    assert params.flip.any() and not params.flip.all()
    out = apply_augment(images, params, crop_padding=3, padding_mode=mode)
    assert out.dtype == torch.uint8
    assert torch.equal(out, oracle(images, params, 3, mode))


def test_zero_offset_no_flip_is_identity_and_flip_alone_mirrors():
    images = random_batch()
    params = sample_params(len(images), 12, 10, seeded_generator(2), crop_padding=0, flip=True)
    out = apply_augment(images, params)
    flipped = params.flip
    assert torch.equal(out[~flipped], images[~flipped])
    assert torch.equal(out[flipped], images[flipped].flip(-1))


def test_offsets_differ_across_a_batch():
    same = random_batch(batch=1).expand(64, -1, -1, -1).contiguous()  # one image, 64 copies
    out = augment_batch(same, seeded_generator(3), crop_padding=4, flip=True)
    distinct = {out[i].numpy().tobytes() for i in range(len(out))}
    assert len(distinct) > 20  # per-sample crops and flips, not one per batch


def test_cutout_fills_a_square_with_the_mean():
    images = torch.full((32, 3, 16, 16), 200, dtype=torch.uint8)
    out = augment_batch(images, seeded_generator(4), crop_padding=0, flip=False, cutout=6,
                        mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert out.dtype == torch.float32
    untouched = (200 / 255 - 0.5) / 0.25
    zeros = out[:, 0] == 0
    assert torch.allclose(out[~zeros.unsqueeze(1).expand_as(out)], torch.tensor(untouched))
    per_sample = zeros.sum((1, 2))
    assert per_sample.max() == 36 and per_sample.min() >= 9  # squares clipped at the border lose area
    assert per_sample.float().std() > 0  # the centre is drawn per sample
    assert torch.equal(zeros, out[:, 2] == 0)  # all channels at once


def test_augment_settings_are_checked():
    with pytest.raises(DataError, match="padding_mode='edge'"):
        augment_batch(random_batch(), seeded_generator(0), padding_mode="edge")
    with pytest.raises(DataError, match="crop_padding=12"):
        augment_batch(random_batch(), seeded_generator(0), crop_padding=12, padding_mode="reflect")
    with pytest.raises(DataError, match="float32"):
        augment_batch(random_batch().float(), seeded_generator(0))
    with pytest.raises(DataError, match="unknown augment keys"):
        make_loaders(load_dataset("synthetic"), 32, augment={"mixup": 0.2})
    assert set(AUGMENT_DEFAULTS) == {"crop_padding", "padding_mode", "flip", "cutout"}


def tensor_dataset(train=103, val=17, test=29, classes=5, size=8):
    def split(count, seed):
        images = random_batch(count, 3, size, size, seed)
        labels = torch.arange(count) % classes
        images[:, 0, 0, 0] = torch.arange(count, dtype=torch.uint8)  # pixel tag: which image this is
        return Split(images, labels)

    return Dataset("toy", split(train, 1), split(val, 2), split(test, 3), classes, [str(i) for i in range(classes)],
                   3, size, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def tags(x, mean=0.5, std=0.25):
    """Recover the pixel tags from normalized, unaugmented batches."""
    return ((x[:, 0, 0, 0] * std + mean) * 255).round().long()


def test_loader_shapes_lengths_and_normalization():
    ds = tensor_dataset()
    train, val, test = make_loaders(ds, batch_size=16, eval_batch_size=10)
    assert (len(train), train.num_samples) == (6, 103)  # drop_last on training only
    assert (len(val), val.num_samples, len(test), test.num_samples) == (2, 17, 3, 29)
    batches = list(train)
    assert len(batches) == 6 and all(x.shape == (16, 3, 8, 8) for x, _ in batches)
    x, y = batches[0]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.device.type == "cpu"
    # evaluation: every image once, in order, unaugmented, normalized with the dataset statistics
    xs = torch.cat([x for x, _ in test])
    assert torch.allclose(xs, (ds.test.images.float() / 255 - 0.5) / 0.25, atol=1e-5)
    assert torch.equal(torch.cat([y for _, y in test]), ds.test.labels)


def test_training_order_is_a_function_of_seed_and_epoch():
    ds = tensor_dataset()
    no_aug = {"crop_padding": 0, "flip": False}

    def epoch_tags(seed, epoch):
        loader = make_loaders(ds, batch_size=16, augment=no_aug, seed=seed)[0]
        loader.set_epoch(epoch)
        return torch.cat([tags(x) for x, _ in loader])

    first = epoch_tags(0, 0)
    assert len(set(first.tolist())) == 96  # no image twice in an epoch
    assert torch.equal(first, epoch_tags(0, 0))  # a fresh (resumed) loader replays the epoch
    assert not torch.equal(first, epoch_tags(0, 1))
    assert not torch.equal(first, epoch_tags(1, 0))
    assert not torch.equal(first.sort().values, torch.arange(96))  # shuffled, not the first 96 in order


def test_augmentation_is_replayed_on_resume():
    ds = tensor_dataset()
    a, b = make_loaders(ds, 16, seed=5)[0], make_loaders(ds, 16, seed=5)[0]
    a.set_epoch(3), b.set_epoch(3)
    for (xa, _), (xb, _) in zip(a, b):
        assert torch.equal(xa, xb)


def test_order_seed_alone_decides_order_and_augmentation():
    ds = tensor_dataset()
    augment = {"crop_padding": 2, "flip": True, "cutout": 3}

    def epoch(seed, order_seed):
        loader = make_loaders(ds, 16, augment=augment, seed=seed, order_seed=order_seed)[0]
        loader.set_epoch(2)
        return torch.cat([x for x, _ in loader]), torch.cat([y for _, y in loader])

    same_order = epoch(seed=0, order_seed=7)
    for a, b in zip(same_order, epoch(seed=1, order_seed=7)):  # another run seed: the same batches
        assert torch.equal(a, b)
    assert not torch.equal(same_order[0], epoch(seed=0, order_seed=8)[0])
    for a, b in zip(epoch(seed=3, order_seed=None), epoch(seed=0, order_seed=3)):  # null follows seed
        assert torch.equal(a, b)


@pytest.mark.parametrize("order_seed", [1.5, "1", True])
def test_order_seed_must_be_an_integer(order_seed):
    with pytest.raises(DataError, match=r"data\.order_seed="):
        make_loaders(tensor_dataset(), 16, order_seed=order_seed)


def test_ranks_get_disjoint_equal_shards():
    ds = tensor_dataset()
    no_aug = {"crop_padding": 0, "flip": False}
    seen = []
    for rank in range(3):
        loader = make_loaders(ds, batch_size=8, augment=no_aug, rank=rank, world_size=3)[0]
        loader.set_epoch(2)
        assert loader.num_samples == 34 and len(loader) == 4
        seen.append(torch.cat([tags(x) for x, _ in loader]).tolist())
    assert all(len(s) == 32 for s in seen)
    assert len(set(seen[0]) | set(seen[1]) | set(seen[2])) == 96
    with pytest.raises(DataError, match="rank=3"):
        make_loaders(ds, 8, rank=3, world_size=3)


def test_no_validation_split_gives_no_val_loader():
    ds = load_dataset("synthetic", synthetic_size=100, val_size=0)
    train, val, test = make_loaders(ds, batch_size=10)
    assert val is None and ds.info["selection"] == "last" and len(train) == 10


def test_batch_larger_than_the_training_split_is_refused():
    with pytest.raises(DataError, match="fewer than one batch of 512"):
        make_loaders(load_dataset("synthetic", synthetic_size=100), batch_size=512)


def test_synthetic_classes_are_learnable_from_the_pattern():
    # nearest class mean on the test split must beat chance by far, or training smoke tests see nothing
    ds = load_dataset("synthetic", synthetic_size=500, num_classes=5, image_size=16)
    train = ds.train.images.float().flatten(1)
    centroids = torch.stack([train[ds.train.labels == c].mean(0) for c in range(5)])
    predicted = torch.cdist(ds.test.images.float().flatten(1), centroids).argmin(1)
    assert (predicted == ds.test.labels).float().mean() > 0.9


def write_jpeg_tree(root, classes=("n01", "n02"), per_class=(6, 3), size=(48, 36)):
    rng = np.random.default_rng(0)
    for part, count in zip(("train", "val"), per_class):
        for c in classes:
            (root / part / c).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / part / c / f"{c}_{i}.JPEG", quality=90)
    return root


def test_imagenet_streams_file_lists_with_standard_transforms(tmp_path):
    root = write_jpeg_tree(tmp_path / "imagenet")
    ds = load_dataset("imagenet", root=root, image_size=24, val_size=2)
    assert ds.streaming and len(ds.train.files) == 10 and len(ds.val) == 2 and len(ds.test) == 6
    assert ds.mean == (0.485, 0.456, 0.406) and ds.num_classes == 2 and ds.class_names == ["n01", "n02"]
    assert set(ds.train.files).isdisjoint(ds.val.files)
    train, val, test = make_loaders(ds, batch_size=4, augment={"flip": True}, num_workers=0)
    assert (len(train), len(val), len(test)) == (2, 1, 2)
    x, y = next(iter(train))
    assert x.shape == (4, 3, 24, 24) and x.dtype == torch.float32 and y.dtype == torch.int64
    # evaluation is the resize / center-crop of every image, identical on every pass
    first, second = torch.cat([x for x, _ in test]), torch.cat([x for x, _ in test])
    assert first.shape == (6, 3, 24, 24) and torch.equal(first, second)
    # training crops are random but replayed for the same (seed, epoch)
    train.set_epoch(1)
    epoch1 = torch.cat([x for x, _ in train])
    again = make_loaders(ds, batch_size=4, augment={"flip": True}, num_workers=0)[0]
    again.set_epoch(1)
    assert torch.equal(epoch1, torch.cat([x for x, _ in again]))
    train.set_epoch(2)
    assert not torch.equal(epoch1, torch.cat([x for x, _ in train]))


def test_imagenet_crops_do_not_depend_on_worker_count(tmp_path):
    ds = load_dataset("imagenet", root=write_jpeg_tree(tmp_path / "imagenet"), image_size=16, val_size=0)
    batches = []
    for workers in (0, 2):
        loader = make_loaders(ds, batch_size=4, num_workers=workers)[0]
        loader.set_epoch(4)
        batches.append(torch.cat([x for x, _ in loader]))
    assert torch.equal(batches[0], batches[1])


def test_imagenet_archive_or_missing_root_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match="valprep"):
        load_dataset("imagenet", root=tmp_path / "ILSVRC")
    (tmp_path / "imagenet.tar").write_bytes(b"")
    with pytest.raises(DataError, match="extract it first"):
        load_dataset("imagenet", root=tmp_path / "imagenet.tar")


def test_cpu_batches_leave_the_callers_thread_count_alone():
    ds = tensor_dataset()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for _ in make_loaders(ds, batch_size=16)[0]:
            assert torch.get_num_threads() == 2  # the training step between batches keeps its threads
    finally:
        torch.set_num_threads(before)
