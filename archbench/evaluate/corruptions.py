"""Corrupted copies of test images: generated deterministically, or read from official CIFAR-10-C / -100-C files.

Generated sets use imagecorruptions-imaug (a maintained fork of Hendrycks & Dietterich's ImageNet-C code)
with ImageNet-C's parameters, applied at the dataset's own resolution. CIFAR-10-C and CIFAR-100-C were made
with different, smaller-image parameters, so accuracies on generated sets are comparable between models of
this suite but NOT with published CIFAR-10-C, CIFAR-100-C or ImageNet-C results; the report names the
benchmark of the run's dataset. With the official files (``corruptions_root``) they are.

Each image gets its own seed drawn from (seed, corruption, severity, position), so the bytes depend on
nothing else: not on the order of calls, not on other code's use of NumPy's global generator (saved and
restored around the generation), and a later parallel version can split the work without changing them.
Generated sets are cached as uint8 .npy under <cache_dir>/corruptions/, written atomically.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from archbench.data.cache import resolve_cache_dir
from archbench.base.files import atomic_write

# The 15 corruptions of the ImageNet-C / CIFAR-10-C benchmark, in the paper's order (noise, blur, weather,
# digital): "all" means these, so a mean over "all" is the benchmark's mean.
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
# The paper's 4 held-out validation corruptions: allowed by name, never part of "all".
EXTRA_CORRUPTIONS = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)
PER_CHANNEL_NOISE = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
# Bump when the generation recipe changes, so old cached sets are regenerated rather than reused.
GENERATION_VERSION = 1
LIBRARY = "imagecorruptions-imaug"


def library_version() -> str:
    try:
        return importlib.metadata.version(LIBRARY)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def describe_generated(image_size: int) -> str:
    return (f"generated with {LIBRARY} {library_version()}: ImageNet-C parameters applied at "
            f"{image_size}x{image_size}; "
            f"comparable between models here, NOT with published CIFAR-10-C, CIFAR-100-C or ImageNet-C results")


def check_corruption(name: str) -> None:
    if name not in CORRUPTIONS + EXTRA_CORRUPTIONS:
        import difflib
        close = difflib.get_close_matches(str(name), CORRUPTIONS + EXTRA_CORRUPTIONS, n=3)
        raise ValueError(f"unknown corruption {name!r}" + (f"; did you mean {close}?" if close else "")
                         + f" Known: {list(CORRUPTIONS + EXTRA_CORRUPTIONS)}")


def _check_severity(severity: int) -> None:
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} must be one of {list(SEVERITIES)}")


def _load_library():
    try:
        from imagecorruptions import corruption_dict
    except ImportError as exc:
        raise ImportError(f"package {LIBRARY} is not installed ({exc}); generating corrupted images needs it: "
                          f"pip install -c constraints.txt {LIBRARY} (or set corruptions_root to the official "
                          f".npy files)") from exc
    return corruption_dict


def image_seed(seed: int, corruption: str, severity: int, position: int) -> int:
    """A 32-bit seed for one image (what np.random.seed and numba accept), independent of every other image."""
    entropy = [int(seed), zlib.crc32(corruption.encode()), int(severity), int(position)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def corrupt_images(images, corruption: str, severity: int, seed: int = 0) -> np.ndarray:
    """uint8 (N, C, H, W) with C = 1 or 3 -> the corrupted uint8 (N, C, H, W); same seed, same bytes.

    Grayscale images go through the RGB code as three equal channels. The noise corruptions draw each
    channel independently, so they come back as one channel (one draw per pixel at ImageNet-C's strength;
    the luma of three draws would cut the noise variance by more than half). The rest come back as ITU-R
    601 luma (PIL's "L" conversion): equal to every channel where the result stays gray, and the gray a
    monochrome sensor would record where it does not (frost, spatter, saturate tint the image).
    """
    check_corruption(corruption)
    _check_severity(severity)
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be uint8 (N, C, H, W) with C = 1 or 3, got {images.dtype} {images.shape}")
    function = _load_library()[corruption]
    # imagecorruptions draws from NumPy's global generator except in these two, which take the seed themselves.
    takes_seed = corruption in ("glass_blur", "impulse_noise")
    gray = images.shape[1] == 1
    per_channel_noise = corruption in PER_CHANNEL_NOISE
    out = np.empty_like(images)
    saved = np.random.get_state()
    try:
        for i, chw in enumerate(images):
            hwc = np.repeat(chw, 3, axis=0).transpose(1, 2, 0) if gray else chw.transpose(1, 2, 0)
            s = image_seed(seed, corruption, severity, i)
            np.random.seed(s)
            # The functions themselves, not imagecorruptions.corrupt(): corrupt() refuses images under 32 px
            # (Fashion-MNIST is 28), which every function here handles; np.uint8 truncation as corrupt() does.
            kwargs = {"seed": s} if takes_seed else {}
            result = function(Image.fromarray(np.ascontiguousarray(hwc)), severity, **kwargs)
            result = np.uint8(result)
            if gray:
                out[i, 0] = result[..., 0] if per_channel_noise else np.asarray(Image.fromarray(result).convert("L"))
            else:
                out[i] = result.transpose(2, 0, 1)
    finally:
        np.random.set_state(saved)
    return out


def images_digest(images: np.ndarray) -> str:
    """Content hash of the clean images: the cache key names exactly the pixels that were corrupted."""
    h = hashlib.sha256()
    h.update(repr((images.dtype.str, images.shape)).encode())
    h.update(np.ascontiguousarray(images).data)
    return h.hexdigest()


def cache_path(cache_dir: str | Path | None, source: str, digest: str, corruption: str, severity: int,
               seed: int) -> Path:
    version = f"v{GENERATION_VERSION}-{library_version()}"
    return (resolve_cache_dir(cache_dir) / "corruptions" / f"{source}-{digest[:16]}"
            / f"{corruption}-s{severity}-seed{seed}-{version}.npy")


def cached_corrupt_images(images, corruption: str, severity: int, seed: int, cache_dir: str | Path | None,
                          source: str = "images") -> tuple[np.ndarray, bool]:
    """corrupt_images through the cache: (images, True) on a hit, (images, False) after generating them.

    Keyed by source name, a hash of the clean pixels, corruption, severity, seed and library version.
    Two processes missing at once both generate the same bytes and the second rename wins, harmlessly.
    """
    images = np.asarray(images)
    check_corruption(corruption)
    _check_severity(severity)
    path = cache_path(cache_dir, source, images_digest(images), corruption, severity, seed)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
        except (ValueError, OSError):  # foreign or damaged file: regenerate over it
            cached = None
        if cached is not None and cached.shape == images.shape and cached.dtype == np.uint8:
            return cached, True
    corrupted = corrupt_images(images, corruption, severity, seed)
    atomic_write(path, lambda f: np.save(f, corrupted, allow_pickle=False))
    return corrupted, False


# ------------------------------------------------------------------------------------ official files

def check_official_root(root: str | Path, corruptions) -> Path:
    """The official folder, after checking it holds labels.npy and every requested <corruption>.npy."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise FileNotFoundError(f"corruptions_root={str(root)!r} is not a folder ({path}); point it at the "
                                f"unpacked CIFAR-10-C / CIFAR-100-C files or set it to null to generate corruptions")
    missing = [f"{name}.npy" for name in ("labels", *corruptions) if not (path / f"{name}.npy").is_file()]
    if missing:
        raise FileNotFoundError(f"corruptions_root {path} lacks {missing}; mixing official and generated sets "
                                f"would make the mean meaningless, so add the files, drop those corruptions, "
                                f"or set corruptions_root to null to generate all of them")
    return path


def load_official(root: str | Path, corruption: str, severity: int, indices: np.ndarray,
                  test_shape: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, C, H, W), labels int64 (n,)) of one official set at the given test-set positions.

    The file holds 5 severities x the test set, NHWC; it is memory-mapped so only the rows asked for are read.
    test_shape (N, C, H, W) of the clean test split guards against pointing a dataset at another's files.
    """
    check_corruption(corruption)
    _check_severity(severity)
    path = check_official_root(root, [corruption])
    data = np.load(path / f"{corruption}.npy", mmap_mode="r", allow_pickle=False)
    labels = np.load(path / "labels.npy", mmap_mode="r", allow_pickle=False)
    n, chans, height, width = test_shape
    expected = (len(SEVERITIES) * n, height, width, chans)
    if data.shape != expected or data.dtype != np.uint8 or labels.shape != (expected[0],):
        raise ValueError(f"{path / (corruption + '.npy')} is {data.dtype} {data.shape} with {labels.shape[0]} labels; "
                         f"expected uint8 {expected} (5 severities x this dataset's {n} test images, NHWC) and as "
                         f"many labels: is corruptions_root the right dataset's folder?")
    rows = (severity - 1) * n + np.asarray(indices)
    return (np.ascontiguousarray(data[rows].transpose(0, 3, 1, 2)),
            np.asarray(labels[rows]).astype(np.int64))
