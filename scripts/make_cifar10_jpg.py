#!/usr/bin/env python3
"""Build data=cifar10_jpg's archive, cifar10-jpg.tar.gz, from the official CIFAR-10 (python version).

    python scripts/make_cifar10_jpg.py                          # fetches it through torchvision (needs network)
    python scripts/make_cifar10_jpg.py --source cifar-10-python.tar.gz   # the official archive, or the
                                                                # cifar-10-batches-py/ folder unpacked from it
    python scripts/make_cifar10_jpg.py --out /data/cifar10-jpg.tar.gz   # then run with data.root=/data/...

The official set comes from https://www.cs.toronto.edu/~kriz/cifar.html (cifar-10-python.tar.gz, md5
c58f30108f718f92721af3b95e74349a, checked here). The archive holds train/<class>/NNNN.jpg (5,000 a class)
and test/<class>/NNNN.jpg (1,000 a class), classes in the official label order, images numbered in the
official order within their class, each its 32x32 pixels as Pillow's JPEG encoder writes them by default
(quality 75, 4:2:0 chroma), in a GNU tar with fixed times and owners, compressed by GNU gzip -n -6. That is
the archive the committed records were made from, byte for byte:

    cifar10-jpg.tar     sha256 a408d35d926b651be423fe7f720aaf772d6ee1deab6dd930ac88a49faf0bf767
    cifar10-jpg.tar.gz  sha256 d877bdec11f54282b92da36e9f045bd305d663b1223e3822baff39ca9ff6690a

The script says whether its result matches. Another JPEG library build can encode other bytes (records of a
preset do not hash its content, so runs on such an archive would pool with the committed ones): then it
exits 3 and says so, and the archive is kept for your own comparisons. Without GNU gzip the .tar.gz differs
only in its compression: the .tar checksum still decides.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from a checkout, without installing archbench

TAR_SHA256 = "a408d35d926b651be423fe7f720aaf772d6ee1deab6dd930ac88a49faf0bf767"
from archbench.data.imagefolder import CIFAR10_JPG_SHA256 as TAR_GZ_SHA256  # noqa: E402 - after the path above
OFFICIAL_ARCHIVE = "cifar-10-python.tar.gz"
FIXED_MTIME = 1577836800  # 2020-01-01 UTC: the archive's members carry no build time, so rebuilds are identical
EXIT_DIFFERENT = 3


def default_out() -> Path:
    """Where data=cifar10_jpg looks when launched from the repository root."""
    from archbench.data import registry
    import archbench.data.imagefolder  # noqa: F401 - registers the preset

    return (REPO / registry.get("cifar10_jpg").default_root).resolve()


def official_md5s() -> dict[str, str]:
    """file name -> md5 of the official archive and its batch files, as torchvision publishes them."""
    from torchvision.datasets import CIFAR10

    return {OFFICIAL_ARCHIVE: CIFAR10.tgz_md5, **dict(CIFAR10.train_list), **dict(CIFAR10.test_list),
            CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}


def digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def md5(path: Path) -> str:
    return digest(path, "md5")


def sha256(path: Path) -> str:
    return digest(path, "sha256")


def official_root(source: Path | None, scratch: Path, expected: dict[str, str]) -> Path:
    """The folder that holds cifar-10-batches-py/, every file checked against its official md5."""
    from archbench.data.cifar import find_sources

    if source is None:  # torchvision fetches and checks it (archbench.data's own download path)
        from archbench.data import DataNotFoundError
        try:
            find_sources("cifar10", scratch, download=True)
        except DataNotFoundError as err:
            raise SystemExit(f"could not download the official CIFAR-10 ({err.__cause__ or err}).\nOn a machine "
                             f"with network, get {OFFICIAL_ARCHIVE} from https://www.cs.toronto.edu/~kriz/cifar.html, "
                             f"copy it here and run again with --source /path/to/{OFFICIAL_ARCHIVE}") from err
        root = scratch
    elif source.is_file():
        if md5(source) != expected[OFFICIAL_ARCHIVE]:
            raise SystemExit(f"{source}: md5 {md5(source)} is not that of the official {OFFICIAL_ARCHIVE} "
                             f"({expected[OFFICIAL_ARCHIVE]}); download it again from "
                             f"https://www.cs.toronto.edu/~kriz/cifar.html")
        with tarfile.open(source) as archive:
            # the official archive is checked above; the data filter (where Python has it) refuses odd members
            archive.extractall(scratch, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        root = scratch
    elif (source / "cifar-10-batches-py").is_dir():
        root = source
    elif source.name == "cifar-10-batches-py" and source.is_dir():
        root = source.parent
    else:
        raise SystemExit(f"--source {source}: give the official {OFFICIAL_ARCHIVE}, or the cifar-10-batches-py/ "
                         f"folder unpacked from it (or the folder that holds it)")
    for path in find_sources("cifar10", root, download=False):
        if md5(path) != expected.get(path.name):
            raise SystemExit(f"{path}: md5 {md5(path)} differs from the official {expected.get(path.name)}; "
                             f"unpack {OFFICIAL_ARCHIVE} again")
    return root


def encode(pixels) -> bytes:
    """One (3, 32, 32) uint8 image as Pillow's default JPEG: the encoder settings the reference archive used."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels.transpose(1, 2, 0)).save(out, "JPEG")
    return out.getvalue()


def members(data) -> list[tuple[str, object]]:
    """(name, None for a folder or the image's pixels) in the reference archive's order."""
    listed = []
    for part, split in (("train", data.train), ("test", data.test)):
        listed.append((part, None))
        images, labels = split.images.numpy(), split.labels.numpy()
        for index, name in enumerate(data.class_names):
            listed.append((f"{part}/{name}", None))
            chosen = (labels == index).nonzero()[0]  # the official order within the class
            listed += [(f"{part}/{name}/{k:04d}.jpg", images[i]) for k, i in enumerate(chosen)]
    return listed


def write_tar(entries, path: Path) -> str:
    """A GNU tar of (name, bytes or None for a folder) with fixed times, owners and modes; its sha256."""
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
            if payload is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o775
                tar.addfile(info)
            else:
                info.size, info.mode = len(payload), 0o664
                tar.addfile(info, io.BytesIO(payload))
    return sha256(path)


def compress(tar_path: Path, out: Path) -> str:
    """tar_path gzipped to out, atomically (never a half-written archive where runs look for it): GNU gzip
    -n -6 where it exists (what the reference used), else Python's gzip. Returns out's sha256."""
    from archbench.base.files import atomic_write

    gnu = shutil.which("gzip")
    gnu = gnu if gnu and b"GNU" in subprocess.run([gnu, "--version"], capture_output=True).stdout[:200] else None

    def write(dst):
        with open(tar_path, "rb") as src:
            if gnu:
                dst.flush()
                subprocess.run([gnu, "-n", "-6", "-c"], stdin=src, stdout=dst, check=True)
            else:
                import gzip
                with gzip.GzipFile(fileobj=dst, mode="wb", compresslevel=6, mtime=0) as packed:
                    shutil.copyfileobj(src, packed)

    atomic_write(out, write)
    return sha256(out)


def build(data, out: Path, threads: int | None = None) -> tuple[str, str]:
    """Write the archive of `data` (train/test Splits of uint8 images, class_names) to out; (tar, tar.gz) sha256."""
    listed = members(data)
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:  # Pillow releases the GIL while encoding
        encoded = pool.map(lambda item: (item[0], None if item[1] is None else encode(item[1])), listed)
        entries = list(encoded)
    with tempfile.TemporaryDirectory(prefix="cifar10-jpg-") as scratch:
        tar_sha = write_tar(entries, Path(scratch) / "cifar10-jpg.tar")
        gz_sha = compress(Path(scratch) / "cifar10-jpg.tar", out)
    return tar_sha, gz_sha


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help=f"the official {OFFICIAL_ARCHIVE} or its unpacked "
                        "cifar-10-batches-py/; without it torchvision downloads the set")
    parser.add_argument("--out", type=Path, help="where to write the archive (default: where data=cifar10_jpg "
                        "looks, ../shared/data/cifar10-jpg.tar.gz beside the repository)")
    args = parser.parse_args(argv)
    out = (args.out or default_out()).resolve()
    from archbench.data.cifar import read, source_files

    with tempfile.TemporaryDirectory(prefix="cifar10-python-") as scratch:
        root = official_root(args.source, Path(scratch), official_md5s())
        data = read("cifar10", source_files("cifar10", root))
        print(f"encoding {len(data.train.labels):,} training and {len(data.test.labels):,} test images as JPEG")
        tar_sha, gz_sha = build(data, out)
    print(f"wrote {out}\n  tar     sha256 {tar_sha}\n  tar.gz  sha256 {gz_sha}")
    if tar_sha != TAR_SHA256:
        print(f"warning: the images differ from the reference archive's (tar sha256 {TAR_SHA256}): this Pillow's "
              f"JPEG encoder wrote other bytes. Runs on it are not the committed records' data; keep their results "
              f"apart (another study name).", file=sys.stderr)
        return EXIT_DIFFERENT
    if gz_sha != TAR_GZ_SHA256:
        print(f"note: same images and tar as the reference; only the gzip compression differs (no GNU gzip here)")
    else:
        print("identical to the reference archive the committed records were made from")
    return 0


if __name__ == "__main__":
    sys.exit(main())
