"""GPU-style input: the whole epoch augmented in one pass, then each training step is a slice."""
import torch

from archbench.data import make_loaders  # noqa: F401  (the public entry point builds TensorLoader)
from archbench.data.base import Split
from archbench.data.loaders import TensorLoader

AUGMENT = {"crop_padding": 4, "padding_mode": "reflect", "flip": True, "cutout": 8}


def split(n=300):
    g = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g),
                 torch.randint(0, 10, (n,), generator=g))


def loader(epoch_pass):
    return TensorLoader(split(), 32, "cpu", (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), augment=AUGMENT, shuffle=True,
                        drop_last=True, seed=3, epoch_pass=epoch_pass)


def test_the_epoch_pass_yields_exactly_the_per_batch_bytes():
    for epoch in (0, 1):
        a, b = loader(True), loader(False)
        a.set_epoch(epoch), b.set_epoch(epoch)
        batches = list(zip(a, b))
        assert len(batches) == len(a) == 300 // 32
        for (xa, ya), (xb, yb) in batches:
            assert torch.equal(xa, xb) and torch.equal(ya, yb) and xa.dtype == torch.float32


def ops_per_step(epoch_pass: bool) -> int:
    """aten ops the loader runs per training batch after the first (the profiler on CPU)."""
    iterator = iter(loader(epoch_pass))
    next(iterator)  # the epoch pass itself runs here, once
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(4):
            next(iterator)
    return sum(1 for e in prof.events() if e.name.startswith("aten::")) // 4


def test_each_step_is_a_slice_not_an_augmentation():
    assert ops_per_step(True) <= 4  # two slices (images, labels), each a view
    assert ops_per_step(False) > 3 * ops_per_step(True)
