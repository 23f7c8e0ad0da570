"""Every pixel mode the image-folder reader can meet is converted to 8 bits correctly, or refused by name.

Each mode is saved in a format that keeps it (PNG, else TIFF), decoded by the reader, and compared with a
conversion written here in numpy from the pixel values themselves: 16-bit by bit depth (65535 -> 255),
32-bit integer by the depth its values fit in, float as 0..1 or 0..255, alpha dropped, palettes looked up.
"""
import io

import numpy as np
import pytest
from PIL import Image

from archbench.data import load_dataset
from archbench.data.imagefolder import UnsupportedModeError, decode

SIZE = 8
RNG = np.random.default_rng(0)


def encoded(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, "PNG")
    except (OSError, KeyError, ValueError):  # PNG cannot hold PA, CMYK, I, F: TIFF keeps them
        buffer = io.BytesIO()
        image.save(buffer, "TIFF")
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as back:
        assert back.mode == image.mode or (image.mode == "I;16B" and back.mode == "I;16"), back.mode
    return data


def gray(array_rgb):
    """ITU-R 601 luma with Pillow's rounding (what RGB -> L is everywhere in archbench)."""
    r, g, b = (array_rgb[..., i].astype(np.int64) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)


def check(image, reference_l=None, reference_rgb=None, tolerance=0):
    data = encoded(image)
    if reference_l is not None:
        got = decode(data, "L", SIZE)[0].astype(int)
        assert np.abs(got - reference_l.astype(int)).max() <= tolerance, (image.mode, got, reference_l)
    if reference_rgb is not None:
        got = decode(data, "RGB", SIZE).transpose(1, 2, 0).astype(int)
        assert np.abs(got - reference_rgb.astype(int)).max() <= tolerance, (image.mode, got, reference_rgb)


def rgb_of(l):
    return np.repeat(l[..., None], 3, axis=2)


def test_eight_bit_modes_match_a_numpy_reference():
    bits = RNG.integers(0, 2, (SIZE, SIZE)).astype(bool)
    check(Image.fromarray(bits), bits * 255, rgb_of(bits * 255))  # mode 1
    l = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    a = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    check(Image.fromarray(l), l, rgb_of(l))
    check(Image.fromarray(np.stack([l, a], 2)), l, rgb_of(l))  # LA: alpha dropped
    rgb = RNG.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    check(Image.fromarray(rgb), gray(rgb), rgb)
    check(Image.fromarray(np.concatenate([rgb, a[..., None]], 2)), gray(rgb), rgb)  # RGBA: alpha dropped


def test_palette_modes_are_looked_up():
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    index = RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    p = Image.fromarray(index).convert("P")
    p.putpalette(palette.flatten().tolist())
    check(p, gray(palette[index]), palette[index])
    pa = p.convert("PA")
    pa.putalpha(Image.fromarray(RNG.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)))
    check(pa, gray(palette[index]), palette[index])


def test_cmyk_is_converted_by_the_usual_formula():
    cmyk = RNG.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
    rgb = np.rint((255 - c) * (255 - k) / 255)
    check(Image.frombytes("CMYK", (SIZE, SIZE), cmyk.tobytes()),
          reference_rgb=rgb, tolerance=1)


def sixteen_bit(values, mode):
    image = Image.frombytes(mode, (SIZE, SIZE), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
    return image


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_is_scaled_by_its_bit_depth_not_clipped(mode):
    # the case: values 6 to 65457 became mean 254 with 5 distinct values
    values = np.linspace(6, 65457, SIZE * SIZE).reshape(SIZE, SIZE).round().astype(np.uint16)
    reference = np.rint(values / 257.0).astype(np.uint8)
    check(sixteen_bit(values, mode), reference, rgb_of(reference))
    got = decode(encoded(sixteen_bit(values, mode)), "L", SIZE)
    assert len(np.unique(got)) > 50 and abs(got.mean() - values.mean() / 257) < 1


def test_32_bit_integer_by_the_depth_its_values_fit_in():
    deep = RNG.integers(0, 65536, (SIZE, SIZE)).astype(np.int32)
    deep[0, 0] = 65535
    check(Image.fromarray(deep), np.rint(deep / 257.0))
    shallow = RNG.integers(0, 256, (SIZE, SIZE)).astype(np.int32)
    check(Image.fromarray(shallow), shallow, rgb_of(shallow))
    with pytest.raises(UnsupportedModeError, match=r"'I' with values -3 to"):
        decode(encoded(Image.fromarray(shallow - 3)), "L", SIZE)


def test_float_as_unit_range_or_as_bytes():
    unit = RNG.random((SIZE, SIZE)).astype(np.float32)
    check(Image.fromarray(unit), np.rint(unit * 255), tolerance=0)
    byte_range = (RNG.random((SIZE, SIZE)) * 255).astype(np.float32)
    check(Image.fromarray(byte_range), np.rint(byte_range))
    with pytest.raises(UnsupportedModeError, match=r"'F' with values .* no known scale"):
        decode(encoded(Image.fromarray(byte_range * 4)), "L", SIZE)


def test_a_folder_of_16_bit_pngs_is_not_white_and_a_refused_mode_names_the_file(tmp_path):
    values = np.linspace(6, 65457, SIZE * SIZE).reshape(SIZE, SIZE).round().astype(np.uint16)
    for part, count in (("train", 6), ("test", 2)):
        for c in ("a", "b"):
            (tmp_path / "png16" / part / c).mkdir(parents=True)
            for i in range(count):
                sixteen_bit(np.roll(values, i), "I;16").save(tmp_path / "png16" / part / c / f"{i}.png")
    ds = load_dataset("imagefolder", root=tmp_path / "png16", cache_dir=tmp_path / "cache", val_size=2)
    assert ds.in_chans == 1 and abs(ds.test.images.float().mean().item() - values.mean() / 257) < 1
    bad = tmp_path / "png16" / "train" / "a" / "9.tif"
    Image.fromarray(values.astype(np.float32) * 100).save(bad)
    with pytest.raises(UnsupportedModeError) as err:
        load_dataset("imagefolder", root=tmp_path / "png16", cache_dir=tmp_path / "cache", on_bad_image="skip")
    assert "9.tif" in str(err.value) and "'F'" in str(err.value) and "convert the images" in str(err.value)
