"""Image folders: train/<class>/... beside test/<class>/... (or val/<class>/...), as a folder or a .tar/.tar.gz/.zip.

Everything is decoded once into uint8 tensors of one size and channel count: each image is resized so its
shorter side is image_size, then center-cropped square. Images are ordered by path, so the same tree gives
the same tensors (and the same split) whether it comes as a folder or as any archive.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import tarfile
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image

from . import registry
from .base import DataError, DataNotFoundError, RawData, Split
from .cache import source_fingerprint

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp", ".gif")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".zip")
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ONE_CHANNEL_MODES = ("1", "L", "LA", "La", "I", "F", *SIXTEEN_BIT_MODES)
# Modes Pillow's own convert() turns into 8-bit L or RGB correctly (alpha is dropped, as torchvision's loader
# does); the deeper one-channel modes are scaled here first, and any other mode is refused by name.
EIGHT_BIT_MODES = ("1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr")
TEST_FOLDERS = ("test", "val")  # test/ wins when both exist: our validation split is carved from train/
LAYOUT_HINT = "Expected <root>/train/<class>/<image> beside <root>/test/<class>/<image> (or val/)."
# The archive the committed cifar10_jpg records were made from; scripts/make_cifar10_jpg.py rebuilds it from the
# official CIFAR-10 and checks its result against this.
CIFAR10_JPG_SHA256 = "d877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a"
# How to get the files a preset's default root names: archbench downloads none of them.
GET_ARCHIVE = {"cifar10_jpg": "cifar10_jpg reads CIFAR-10 as JPEG files: a .tar.gz of train/<class>/*.jpg beside "
                              "test/<class>/*.jpg (archbench does not download it). Build it from the official "
                              "CIFAR-10 with `python scripts/make_cifar10_jpg.py` (torchvision downloads the set, or "
                              "--source cifar-10-python.tar.gz offline; the result's sha256 is "
                              f"{CIFAR10_JPG_SHA256}), or copy or link a copy to the default place, "
                              "../shared/data/cifar10-jpg.tar.gz from the launch folder, or point data.root to it."}
SET_ROOT = "Set data.root=/path/to/folder (a folder like that, or a .tar, .tar.gz or .zip archive of one)."
MAX_DECODED_BYTES = 8 << 30  # beyond this the decoded set will not sit comfortably in memory: stream it instead
DECODE_CHUNK = 2048  # images handed to the decoding threads at a time; bounds the undecoded bytes held


class BadImageError(DataError):
    """An image file that cannot be decoded, with data.on_bad_image=error."""


class UnsupportedModeError(DataError):
    """An image that decodes, but in a pixel format with no faithful 8-bit conversion: refused, never guessed."""


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def tree_names(root: Path, reader: str = "imagefolder") -> list[str]:
    """Every file under a folder as a root-relative POSIX path, through symbolic links.

    A class folder that is a link (a class kept elsewhere, or shared between sets) is read like any other:
    not following links would train without that class and say nothing. A link back to a folder that
    contains it would list the same images forever, so it is refused by name.
    """
    names = []
    for folder, subfolders, files in os.walk(root, followlinks=True):
        parts = Path(folder).relative_to(root).parts
        # where this folder and each folder above it really are: two links into each other loop too
        chain = [(root / Path(*parts[:i])).resolve() for i in range(len(parts) + 1)]
        for sub in subfolders:
            link = Path(folder, sub)
            if link.is_symlink() and any(c.is_relative_to(link.resolve()) for c in chain):
                raise DataError(f"{reader}: {link} is a symbolic link to {link.resolve()}, a folder that contains it, "
                                f"so the tree never ends; remove the link or point it at a folder outside {root}")
        names.extend(Path(folder, f).relative_to(root).as_posix() for f in files)
    return names


def find_sources(root: Path, name: str = "imagefolder") -> tuple[list[Path], Path | None]:
    """(files to fingerprint, tree root or None): an archive is hashed by content, a folder by its listing."""
    if not root.exists():
        where = (f"A relative data.root is taken from the folder the command is launched in (here {Path.cwd()}), "
                 f"so launch from the repository root or give an absolute path.")
        raise DataNotFoundError(f"{name}: data.root={root} does not exist.\n{where}\n"
                                f"{GET_ARCHIVE.get(name, LAYOUT_HINT)}\n{SET_ROOT}")
    if root.is_file():
        if not is_archive(root):
            raise DataError(f"imagefolder: data.root={root} is a file but not a .tar, .tar.gz, .tgz or .zip archive."
                            f"\n{SET_ROOT}")
        return [root], None
    files = [root / n for n in tree_names(root, name) if is_image(n)]
    if not files:
        raise DataError(f"imagefolder: data.root={root} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).\n"
                        f"{LAYOUT_HINT}\n{SET_ROOT}")
    return files, root


def source_label(root: Path) -> str:
    """An image folder's display name: the folder's own, or the archive's without its suffix."""
    suffix = next((s for s in ARCHIVE_SUFFIXES if root.name.lower().endswith(s)), "")
    return root.name[:len(root.name) - len(suffix)] or root.name


def content_fingerprint(root: str) -> str:
    """A short hash of an image folder's contents, as its decode cache sees them: a folder by its image
    files' relative paths, sizes and modification times (cheap: no image is read), an archive by content."""
    path = Path(root).expanduser().resolve()
    if path.is_file():
        stat = path.stat()
        return _archive_fingerprint(str(path), stat.st_size, stat.st_mtime_ns)
    return _tree_fingerprint(path)  # a listing is cheap, and must be fresh: never cached


@functools.lru_cache(maxsize=16)
def _archive_fingerprint(path: str, size: int, mtime_ns: int) -> str:
    """Hashed once per process (per sweep), again only when the archive changes on disk."""
    return _tree_fingerprint(Path(path))


def _tree_fingerprint(path: Path) -> str:
    sources, tree_root = find_sources(path)
    return hashlib.sha256(json.dumps(source_fingerprint(sources, tree_root)).encode()).hexdigest()[:16]


@dataclass
class Entry:
    part: str  # "train" or "test"
    class_name: str
    path: str  # inside the tree, for ordering and for messages


def layout_prefix(names: list[str], where: Path) -> PurePosixPath:
    """The folder inside the tree that holds train/: the root itself or a single wrapping folder."""
    candidates = set()
    for name in names:
        parts = PurePosixPath(name).parts
        for i, part in enumerate(parts[:-2]):  # train/<class>/<file> needs two more parts after train
            if part == "train":
                candidates.add(PurePosixPath(*parts[:i]))
                break
    if not candidates:
        raise DataError(f"imagefolder: no train/<class>/<image> found in {where}; expected train/ and test/ (or val/) "
                        f"folders of class folders, e.g. {where}/train/cat/0001.jpg")
    return min(candidates, key=lambda p: (len(p.parts), str(p)))


def index_entries(names: list[str], where: Path) -> tuple[list[tuple[str, Entry]], list[str], str]:
    """[(name, Entry)] for the train and test images, the class names, and which test folder was used."""
    names = [n for n in names if is_image(n)]
    prefix = layout_prefix(names, where)
    by_part: dict[str, list[tuple[str, Entry]]] = {}
    for name in names:
        if not PurePosixPath(name).is_relative_to(prefix):
            continue  # another tree elsewhere in the same root: only the shallowest layout is read
        rel = PurePosixPath(name).relative_to(prefix)
        parts = rel.parts
        if len(parts) >= 3 and parts[0] in ("train", *TEST_FOLDERS):
            by_part.setdefault(parts[0], []).append((name, Entry(parts[0], parts[1], rel.as_posix())))
    test_folder = next((f for f in TEST_FOLDERS if f in by_part), None)
    if test_folder is None:
        raise DataError(f"imagefolder: {where} has train/ but no test/ or val/ folder of class folders beside it "
                        f"(looked in {where / str(prefix)}); add one, the test set is reported from it")
    train_classes = sorted({e.class_name for _, e in by_part["train"]})
    test_classes = sorted({e.class_name for _, e in by_part[test_folder]})
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        raise DataError(f"imagefolder: class folders differ between {where}/{prefix / 'train'} and "
                        f"{where}/{prefix / test_folder}: only in train: {only_train}, only in {test_folder}: "
                        f"{only_test}; every class needs images in both")
    entries = by_part["train"] + [(n, Entry("test", e.class_name, e.path)) for n, e in by_part[test_folder]]
    return entries, train_classes, test_folder


def iter_bytes(root: Path, wanted: dict[str, Entry]):
    """(name, bytes) for each wanted image, in the order that reads the source fastest."""
    if root.is_dir():
        for name in sorted(wanted):
            yield name, (root / name).read_bytes()
    elif root.name.lower().endswith(".zip"):
        with zipfile.ZipFile(root) as archive:
            for name in sorted(wanted):
                yield name, archive.read(name)
    else:
        # a compressed tar can only be read front to back, so take members in stored order
        with tarfile.open(root, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name in wanted:
                    yield member.name, archive.extractfile(member).read()


def list_names(root: Path) -> list[str]:
    try:
        if root.is_dir():
            return tree_names(root)
        if root.name.lower().endswith(".zip"):
            with zipfile.ZipFile(root) as archive:
                return [n for n in archive.namelist() if not n.endswith("/")]
        with tarfile.open(root, "r:*") as archive:
            return [m.name for m in archive.getmembers() if m.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"imagefolder: cannot read archive {root} ({exc}); re-create or re-download it") from exc


def decode(data: bytes, mode: str, size: int) -> np.ndarray:
    """One image as (C, size, size) uint8: shorter side resized to size, then center-cropped."""
    return decode_noting_gray(data, mode, size)[0]


def decode_noting_gray(data: bytes, mode: str, size: int) -> tuple[np.ndarray, bool]:
    """decode(), and whether the file itself had one channel (decoded as RGB, it repeats it three times)."""
    with Image.open(io.BytesIO(data)) as image:
        one_channel = image.mode in ONE_CHANNEL_MODES
        image.draft(mode, (size, size))  # JPEG: let the decoder downscale by a power of two first, much faster
        image = to_eight_bit(image).convert(mode)
    width, height = image.size
    if (width, height) != (size, size):
        scale = size / min(width, height)
        new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
        image = image.resize((new_w, new_h), Image.BILINEAR)
        left, top = (new_w - size) // 2, (new_h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.uint8)
    return (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)), one_channel


def to_eight_bit(image: Image.Image) -> Image.Image:
    """An image Pillow's convert() can take to 8-bit L or RGB without losing its range.

    Pillow clips deeper grayscale to 255 (a 16-bit PNG turns white), so it is scaled here instead:
    16-bit modes (I;16*) by their bit depth, 65535 -> 255; 32-bit integer (I) by the depth its values
    fit in (0..255 as is, 0..65535 as 16-bit: older Pillow opens 16-bit PNGs as I); float (F) as the
    0..1 convention when it lies in [0, 1], else as 0..255 when it lies there. The rule depends only on
    the bit depth or the convention, never on one image's own min and max, so brightness stays
    comparable across images. Values outside those ranges have no known scale and are refused.
    """
    mode = image.mode
    if mode in EIGHT_BIT_MODES:
        return image
    if mode not in (*SIXTEEN_BIT_MODES, "I", "F"):
        raise UnsupportedModeError(f"pixel mode {mode!r} has no 8-bit conversion here (supported: "
                                   f"{', '.join((*EIGHT_BIT_MODES, *SIXTEEN_BIT_MODES, 'I', 'F'))})")
    values = np.asarray(image).astype(np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode in SIXTEEN_BIT_MODES or (mode == "I" and low >= 0 and high > 255 and high <= 65535):
        scale = 255 / 65535
    elif low >= 0 and high <= 1 and mode == "F":
        scale = 255.0
    elif low >= 0 and high <= 255:
        scale = 1.0
    else:
        raise UnsupportedModeError(f"pixel mode {mode!r} with values {low:g} to {high:g} has no known scale "
                                   f"({'0..65535' if mode == 'I' else '0..1 or 0..255'} expected)")
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8))  # uint8 2-D: mode L


def probe(data: bytes, image_size: int | None, in_chans: int | None) -> tuple[str, int]:
    """Fill in an unset image size (shorter side) and channel count from one image."""
    with Image.open(io.BytesIO(data)) as image:
        mode = "L" if (in_chans == 1 or (in_chans is None and image.mode in ONE_CHANNEL_MODES)) else "RGB"
        return mode, image_size or min(image.size)


def first_good_probe(chunk, image_size, in_chans):
    """probe() on the first decodable image read: the others are made to match it."""
    for _, data in chunk:
        try:
            return probe(data, image_size, in_chans)
        except Exception:  # a bad first image must not decide the format; decode() reports it later
            continue
    return ("L" if in_chans == 1 else "RGB"), image_size or 32


def read(root: Path, image_size: int | None, in_chans: int | None, on_bad_image: str,
         threads: int | None = None) -> RawData:
    if in_chans not in (None, 1, 3):
        raise DataError(f"imagefolder: in_chans={in_chans} is not supported; use 1 (grayscale) or 3 (RGB)")
    entries, class_names, test_folder = index_entries(list_names(root), root)
    wanted = dict(entries)
    class_index = {c: i for i, c in enumerate(class_names)}
    decoded: dict[str, np.ndarray] = {}
    bad: list[str] = []
    grayscale = 0  # files with one channel, whatever they are decoded as
    mode = size = None
    decoded_bytes = 0

    def decode_or_none(item):
        name, data = item
        try:
            return name, decode_noting_gray(data, mode, size)
        except Exception as exc:  # PIL raises many types for corrupt files; all mean "cannot use this image"
            return name, exc

    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:  # PIL releases the GIL while decoding
        chunk = []
        stream = iter_bytes(root, wanted)
        while True:
            item = next(stream, None)
            if item is not None:
                chunk.append(item)
            if chunk and (item is None or len(chunk) == DECODE_CHUNK):
                if mode is None:
                    mode, size = first_good_probe(chunk, image_size, in_chans)
                for name, result in pool.map(decode_or_none, chunk):
                    if isinstance(result, UnsupportedModeError):  # not a broken file: skipping would hide it
                        raise UnsupportedModeError(
                            f"imagefolder: {root}/{name}: {result}; convert the images to 8-bit RGB or grayscale "
                            f"(e.g. PNG or JPEG) and run again") from result
                    if isinstance(result, Exception):
                        if on_bad_image == "error":
                            raise BadImageError(
                                f"imagefolder: cannot decode {root}/{name} ({result}); remove or replace it, "
                                f"or set data.on_bad_image=skip to leave it out") from result
                        bad.append(name)
                    else:
                        decoded[name], gray = result
                        grayscale += gray
                        decoded_bytes += decoded[name].nbytes
                if decoded_bytes > MAX_DECODED_BYTES:
                    raise DataError(f"imagefolder: {root} decodes to more than {MAX_DECODED_BYTES >> 30} GiB at "
                                    f"image_size={size}; use a smaller data.image_size or data=imagenet (streaming)")
                chunk = []
            if item is None:
                break
    if bad:
        warnings.warn(f"imagefolder: skipped {len(bad)} unreadable image(s) under {root}, e.g. {bad[:3]} "
                      f"(data.on_bad_image=skip)", stacklevel=2)

    def stack(part):
        names = sorted((wanted[n].path, n) for n in decoded if wanted[n].part == part)
        if not names:
            raise DataError(f"imagefolder: no readable {part} images in {root}")
        images = torch.from_numpy(np.stack([decoded[n] for _, n in names]))
        labels = torch.tensor([class_index[wanted[n].class_name] for _, n in names], dtype=torch.int64)
        return Split(images, labels)

    extra = {"test_folder": test_folder, "bad_images": len(bad), "bad_image_examples": sorted(bad)[:10],
             "grayscale_images": grayscale}
    return RawData(stack("train"), stack("test"), class_names, extra)



@registry.register("imagefolder", label=None, default_root=None,  # your own data: no default place to look
                   decoder_version=2,  # 2: 16-bit, 32-bit and float images scaled, not clipped to white
                   sources=lambda request: find_sources(request.root, request.name))
def read_folder(request: registry.Request, files: list[Path]) -> RawData:
    return read(request.root, request.image_size, request.in_chans, request.on_bad_image)


registry.register_preset("cifar10_jpg", of="imagefolder", root="../shared/data/cifar10-jpg.tar.gz",
                         label="CIFAR-10 (JPEG image folder)", train_images=50_000)
