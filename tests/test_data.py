import io
import logging
import os
import shutil
import struct
import zlib

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageOps

from conftest import SHARED_SAMPLES
from medgan_nb.config import Config
from medgan_nb.data import (
    CachedDataset,
    EmbeddedPatchDataset,
    ImageFolderDataset,
    ImageLoadError,
    SyntheticEndoscopyDataset,
    dataset_keys,
    decode_image,
    default_dataset,
    load_image,
    split_of,
    to_tensor,
)
from medgan_nb.utils import file_sha256


def rgb(h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def folder(tmp_path):
    """A folder of good images in nested sub-folders, every supported format."""
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.fromarray(rgb(seed=1)).save(tmp_path / "a" / "one.jpg")
    Image.fromarray(rgb(seed=2)).save(tmp_path / "a" / "b" / "two.png")
    Image.fromarray(rgb(seed=3)).save(tmp_path / "three.bmp")
    Image.fromarray(rgb(seed=4)).save(tmp_path / "four.tif")
    Image.fromarray(rgb(seed=5)).save(tmp_path / "FIVE.JPEG")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


# ------------------------------------------------------------- decoding
def test_rgb_jpeg_png_values(tmp_path):
    a = rgb()
    Image.fromarray(a).save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png")
    assert out.dtype == np.float32 and out.shape == (40, 48, 3)
    np.testing.assert_allclose(out, a / 255, atol=1e-6)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    g = rgb()[..., 0]
    Image.fromarray(g, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (40, 48, 3)
    np.testing.assert_allclose(out[..., 0], g / 255, atol=1e-6)
    assert np.array_equal(out[..., 0], out[..., 2])


def test_16_bit_png_keeps_its_precision(tmp_path):
    values = np.array([[0, 1000, 1001, 65535]] * 16, dtype=np.uint16).repeat(4, axis=1)
    Image.fromarray(values).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out.shape == (16, 16, 3)
    np.testing.assert_allclose(out[0, [0, 4, 8, 12], 0], np.array([0, 1000, 1001, 65535]) / 65535, rtol=1e-6)
    assert out[0, 4, 0] != out[0, 8, 0]          # 8-bit quantisation would merge 1000 and 1001


def test_rgba_is_composited_on_black(tmp_path):
    a = np.zeros((20, 20, 4), np.uint8)
    a[..., :3] = 200
    a[:, :10, 3] = 255          # left half opaque, right half transparent
    Image.fromarray(a, mode="RGBA").save(tmp_path / "t.png")
    out = load_image(tmp_path / "t.png")
    assert out.shape == (20, 20, 3)
    np.testing.assert_allclose(out[:, :10], 200 / 255, atol=1e-6)
    np.testing.assert_allclose(out[:, 10:], 0.0)


def test_palette_image(tmp_path):
    Image.fromarray(rgb()).convert("P").save(tmp_path / "p.png")
    out = load_image(tmp_path / "p.png")
    assert out.shape == (40, 48, 3) and 0 <= out.min() and out.max() <= 1 and out.std() > 0.05


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0garbage" * 10), "cannot decode|not an image"),
    (lambda p: p.write_text("hello, I am text"), "not an image"),
    (lambda p: Image.new("RGB", (1, 1)).save(p.with_suffix(".png")) or p.with_suffix(".png").rename(p), "too small"),
])
def test_bad_files_raise_naming_the_file(tmp_path, make, message):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageLoadError, match=message) as e:
        load_image(path)
    assert "bad.jpg" in str(e.value)


def test_truncated_jpeg_is_an_error_not_a_grey_image(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(rgb(200, 200)).save(buf, format="JPEG", quality=95)
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="cut.jpg.*(truncated|decode)"):
        load_image(tmp_path / "cut.jpg")


@pytest.mark.parametrize("limit", [1000, 3000])     # 3000: Pillow only warns (between 1x and 2x the limit)
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, limit):
    Image.fromarray(rgb(64, 64)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageLoadError, match="too many pixels"):
        load_image(tmp_path / "big.png")


# ------------------------------------------- bit depth, colour modes, orientation, frames
def png16(samples, exif=None):
    """A 16-bit PNG made by hand (Pillow writes colour at 8 bits only); its rows use the five PNG filters in turn."""
    a = samples if samples.ndim == 3 else samples[..., None]
    h, w, c = a.shape
    data = a.astype(">u2").view(np.uint8).reshape(h, w * c * 2).astype(np.int32)
    bpp, zero = 2 * c, np.zeros(2 * c, np.int32)
    rows = []
    for y in range(h):
        x, up = data[y], data[y - 1] if y else np.zeros_like(data[y])
        left, upleft = np.concatenate([zero, x[:-bpp]]), np.concatenate([zero, up[:-bpp]])
        p = left + up - upleft
        pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
        paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
        kind = y % 5
        prediction = [0, left, up, (left + up) // 2, paeth][kind]
        rows.append(bytes([kind]) + ((x - prediction) % 256).astype(np.uint8).tobytes())
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0))]
    chunks += [(b"eXIf", exif)] if exif else []
    chunks += [(b"IDAT", zlib.compress(b"".join(rows))), (b"IEND", b"")]
    return b"\x89PNG\r\n\x1a\n" + b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
                                          for t, d in chunks)


def rgb16(h=20, w=24, seed=0):
    """16-bit colour whose neighbouring values 1000 and 1001 an 8-bit decode would merge."""
    a = np.random.default_rng(seed).integers(0, 65536, (h, w, 3)).astype(np.uint16)
    a[0, :2] = [[1000, 1000, 1000], [1001, 1001, 1001]]
    return a


@pytest.mark.parametrize("name, save", [
    ("png", lambda p, a: p.write_bytes(png16(a))),
    ("tif", lambda p, a: tifffile.imwrite(p, a, photometric="rgb")),
    ("tif", lambda p, a: tifffile.imwrite(p, np.moveaxis(a, -1, 0), photometric="rgb", compression="zlib",
                                          planarconfig="separate")),
], ids=["png", "tiff", "tiff-planar-deflate"])
def test_16_bit_colour_keeps_its_precision(tmp_path, name, save):
    a = rgb16()
    save(tmp_path / f"c.{name}", a)
    out = decode_image(tmp_path / f"c.{name}")
    assert out.bits == 16 and not out.grayscale and out.pixels.dtype == np.float32
    np.testing.assert_allclose(out.pixels, a / 65535, rtol=1e-6)
    assert out.pixels[0, 0, 0] != out.pixels[0, 1, 0]             # 8 bits would merge 1000 and 1001
    np.testing.assert_array_equal(load_image(tmp_path / f"c.{name}"), out.pixels)


def test_16_bit_colour_tiff_that_tifffile_cannot_decompress_is_read_by_pillow_with_a_warning(
        tmp_path, monkeypatch, caplog):
    a = rgb16()
    tifffile.imwrite(tmp_path / "c.tif", a, photometric="rgb", compression="zlib")
    monkeypatch.setattr(tifffile.TIFF, "DECOMPRESSORS", {})       # as LZW without the imagecodecs package
    with caplog.at_level(logging.WARNING, logger="medgan_nb.data"):
        out = decode_image(tmp_path / "c.tif")
    assert out.bits == 8 and "c.tif" in caplog.text and "imagecodecs" in caplog.text
    np.testing.assert_allclose(out.pixels, (a >> 8) / 255, atol=1e-6)

@pytest.mark.parametrize("name", ["png", "tif"])
def test_16_bit_rgba_is_composited_on_black_at_full_precision(tmp_path, name):
    a = np.dstack([rgb16(), np.full((20, 24), 65535, np.uint16)])
    a[:, 12:, 3] = 0                                             # right half transparent
    path = tmp_path / f"t.{name}"
    path.write_bytes(png16(a)) if name == "png" else tifffile.imwrite(path, a, photometric="rgb", extrasamples=[2])
    out = decode_image(path)
    assert out.bits == 16 and out.pixels.shape == (20, 24, 3)
    np.testing.assert_allclose(out.pixels[:, :12], a[:, :12, :3] / 65535, rtol=1e-6)
    assert out.pixels[:, 12:].max() == 0


@pytest.mark.parametrize("make, bits", [
    (lambda p, g: Image.fromarray(g).save(p.with_suffix(".png")), 8),
    (lambda p, g: Image.fromarray(g).save(p.with_suffix(".jpg"), quality=95), 8),
    (lambda p, g: Image.fromarray(g.astype(np.uint16) * 257).save(p.with_suffix(".png")), 16),
    (lambda p, g: p.with_suffix(".png").write_bytes(png16(g.astype(np.uint16) * 257)), 16),
    (lambda p, g: tifffile.imwrite(p.with_suffix(".tif"), g.astype(np.uint16) * 257), 16),
], ids=["png-8", "jpeg-8", "png-16-pillow", "png-16-by-hand", "tiff-16"])
def test_grayscale_stays_grayscale_for_callers_that_need_it(tmp_path, make, bits):
    g = rgb()[..., 0]
    make(tmp_path / "g", g)
    path = next(tmp_path.glob("g.*"))
    out = decode_image(path)
    assert out.grayscale and out.pixels.shape == (40, 48, 1) and out.bits == bits
    np.testing.assert_allclose(out.pixels[..., 0], g / 255, atol=0.03 if path.suffix == ".jpg" else 1e-6)
    three = load_image(path)                                     # the training path still gets (H, W, 3)
    assert three.shape == (40, 48, 3) and np.array_equal(three[..., 0], three[..., 2])


@pytest.mark.parametrize("make", [
    lambda p: Image.fromarray(np.full((20, 24), 200, np.uint8)).save(p / "x.png"),
    lambda p: Image.fromarray(np.full((20, 24), 200, np.uint8)).save(p / "x.tif"),
    lambda p: tifffile.imwrite(p / "x.tif", np.full((20, 24), 200, np.uint16)),
    lambda p: p.joinpath("x.png").write_bytes(png16(np.full((20, 24, 3), 200, np.uint16))),
], ids=["png-8", "tiff-8", "tiff-16", "png-16-rgb"])
def test_integers_are_scaled_by_their_dtype_not_by_their_values(tmp_path, make):
    make(tmp_path)
    path = next(tmp_path.glob("x.*"))
    out = decode_image(path)
    expected = 200 / (255 if out.bits == 8 else 65535)          # 200 is 200/65535 in a 16-bit file, whatever its max
    np.testing.assert_allclose(out.pixels, expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])
def test_floats_are_taken_as_unit_range_and_clipped(tmp_path, caplog, dtype, channels):
    values = np.array([-0.5, 0.0, 0.25, 1.0, 3.0])
    a = np.resize(values, (20, 25)).astype(dtype)
    a = np.repeat(a[..., None], 3, axis=2) if channels == 3 else a
    tifffile.imwrite(tmp_path / "f.tif", a, photometric="rgb" if channels == 3 else "minisblack")
    with caplog.at_level(logging.WARNING, logger="medgan_nb.data"):
        out = decode_image(tmp_path / "f.tif")
    assert out.pixels.shape == (20, 25, channels) and out.bits == np.dtype(dtype).itemsize * 8
    np.testing.assert_allclose(out.pixels[0, :5, 0], [0, 0, 0.25, 1, 1])   # not divided by the max, never negative
    assert "f.tif" in caplog.text and "clipped" in caplog.text


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_are_an_error(tmp_path, bad):
    a = np.full((20, 20), 0.5, np.float32)
    a[3, 4] = bad
    tifffile.imwrite(tmp_path / "f.tif", a)
    with pytest.raises(ImageLoadError, match="f.tif.*(NaN|infinite)"):
        load_image(tmp_path / "f.tif")


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint32])
def test_integers_without_a_standard_white_level_are_refused(tmp_path, dtype):
    tifffile.imwrite(tmp_path / "i.tif", np.full((20, 20), 300, dtype))      # Pillow's mode "I"
    with pytest.raises(ImageLoadError, match="i.tif.*white level"):
        load_image(tmp_path / "i.tif")


def exif_with(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_every_path(tmp_path, orientation):
    a8 = rgb(20, 32)
    buf = io.BytesIO()
    Image.fromarray(a8).save(buf, format="PNG", exif=exif_with(orientation))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(buf))) / 255          # Pillow's reading
    assert expected.shape[:2] == ((32, 20) if orientation >= 5 else (20, 32))
    (tmp_path / "p8.png").write_bytes(buf.getvalue())
    (tmp_path / "p16.png").write_bytes(png16(a8.astype(np.uint16) * 257, exif=exif_with(orientation)[6:]))
    tifffile.imwrite(tmp_path / "t16.tif", a8.astype(np.uint16) * 257, photometric="rgb",
                     extratags=[(0x0112, "H", 1, orientation, True)])
    Image.fromarray(a8).save(tmp_path / "j.jpg", quality=100, subsampling=0, exif=exif_with(orientation))
    for name in ("p8.png", "p16.png", "t16.tif"):
        np.testing.assert_allclose(decode_image(tmp_path / name).pixels, expected, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(decode_image(tmp_path / "j.jpg").pixels, expected, atol=0.05)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(tmp_path, fmt):
    cmyk = np.zeros((16, 32, 4), np.uint8)
    cmyk[:, :8] = [255, 0, 0, 0]                                # cyan
    cmyk[:, 8:16] = [0, 0, 0, 128]                              # half black: grey
    cmyk[:, 16:24] = [0, 255, 255, 0]                           # magenta + yellow: red
    path = tmp_path / ("c.jpg" if fmt == "JPEG" else "c.tif")   # cmyk[:, 24:] stays white paper
    Image.fromarray(cmyk, mode="CMYK").save(path, format=fmt, quality=100)
    out = decode_image(path).pixels
    assert out.shape == (16, 32, 3)
    for cols, expected in [(slice(0, 8), (0, 1, 1)), (slice(8, 16), (127 / 255,) * 3), (slice(16, 24), (1, 0, 0)),
                           (slice(24, 32), (1, 1, 1))]:
        np.testing.assert_allclose(out[4:12, cols].mean(axis=(0, 1)), expected, atol=0.03, err_msg=str(cols))


@pytest.mark.parametrize("fmt", ["TIFF", "PNG"])
def test_multi_frame_files_give_their_first_frame_and_say_so(tmp_path, caplog, fmt):
    frames = [Image.fromarray(rgb(seed=i)) for i in range(3)]
    path = tmp_path / ("m.tif" if fmt == "TIFF" else "m.png")
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:])
    with caplog.at_level(logging.INFO, logger="medgan_nb.data"):
        out = load_image(path)
    np.testing.assert_allclose(out, rgb(seed=0) / 255, atol=1e-6)
    assert "m." in caplog.text and "3 frames" in caplog.text and "first" in caplog.text


def test_decoded_image_names_the_bytes_it_decoded(tmp_path):
    Image.fromarray(rgb()).save(tmp_path / "x.png")
    assert decode_image(tmp_path / "x.png").sha256 == file_sha256(tmp_path / "x.png")


def test_file_names_that_are_not_utf8_load_and_split(tmp_path):
    name = os.fsdecode(b"bad\xff.png")
    Image.fromarray(rgb()).save(tmp_path / name)
    Image.fromarray(rgb(seed=1)).save(tmp_path / "good.png")
    split = split_of(name)
    ds = ImageFolderDataset(tmp_path, 32, split=split, on_error="skip")
    assert name in ds.keys and ds[ds.keys.index(name)][0].shape == (3, 32, 32)
    assert split_of("good.png") == split_of("good.png".encode().decode())   # valid names keep their split


def test_to_tensor_range_shape_and_resize_modes():
    a = np.zeros((60, 120, 3), np.float32)
    a[:, :20] = 1.0                                   # white band at the left edge
    crop = to_tensor(a, 32, "crop")
    squash = to_tensor(a, 32, "squash")
    assert crop.shape == squash.shape == (3, 32, 32)
    assert crop.min() >= -1 and crop.max() <= 1
    assert crop.max() == -1                           # the centre crop does not reach the band
    assert squash[:, :, :4].mean() > 0.9              # squashed, the band is still there


# -------------------------------------------------------------- folders
def test_folder_lists_supported_images_recursively_sorted(folder):
    ds = ImageFolderDataset(folder, 32)
    assert ds.keys == ["FIVE.JPEG", "a/b/two.png", "a/one.jpg", "four.tif", "three.bmp"]
    x, key = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and key == "FIVE.JPEG"
    assert -1 <= x.min() and x.max() <= 1


def test_bad_file_raises_by_default_and_is_skipped_and_counted_on_request(folder, caplog):
    (folder / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    (folder / "tiny.png").write_bytes(b"")
    ds = ImageFolderDataset(folder, 32)
    bad = ds.keys.index("a/broken.png")
    with pytest.raises(ImageLoadError, match="broken.png"):
        ds[bad]
    with caplog.at_level(logging.WARNING):
        ds = ImageFolderDataset(folder, 32, on_error="skip")
    assert len(ds) == 5 and len(ds.skipped) == 2
    assert {p.name for p, _ in ds.skipped} == {"broken.png", "tiny.png"}
    assert "skipped 2 of 7" in caplog.text
    assert all(ds[i][0].abs().sum() > 0 for i in range(len(ds)))   # no blank stand-ins


def test_missing_and_empty_folders_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*data download kvasir-seg"):
        ImageFolderDataset(tmp_path / "nope", 32)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images.*data download kvasir-seg"):
        ImageFolderDataset(tmp_path / "empty", 32)


def test_split_is_disjoint_complete_and_stable(folder):
    parts = {s: set(ImageFolderDataset(folder, 32, s, ratios=(0.34, 0.33, 0.33)).keys)
             for s in ("train", "val", "test")
             if any(split_of(k, (0.34, 0.33, 0.33)) == s for k in ImageFolderDataset(folder, 32).keys)}
    all_keys = set(ImageFolderDataset(folder, 32).keys)
    assert set.union(*parts.values()) == all_keys
    assert sum(len(p) for p in parts.values()) == len(all_keys)
    for s, keys in parts.items():                          # adding files moves nobody
        Image.fromarray(rgb(seed=9)).save(folder / f"new-{s}.png")
    for s, keys in parts.items():
        assert keys <= set(ImageFolderDataset(folder, 32, s, ratios=(0.34, 0.33, 0.33)).keys)


def test_split_ratios_hold_on_many_keys():
    keys = [f"img_{i:05d}.jpg" for i in range(5000)]
    counts = {s: sum(split_of(k) == s for k in keys) for s in ("train", "val", "test")}
    assert abs(counts["train"] / 5000 - 0.8) < 0.03
    assert abs(counts["val"] / 5000 - 0.1) < 0.02 and abs(counts["test"] / 5000 - 0.1) < 0.02


def test_an_empty_split_is_an_error(folder):
    with pytest.raises(ValueError, match="'test' split"):
        ImageFolderDataset(folder, 32, "test", ratios=(1.0, 0.0, 0.0))


# ------------------------------------------------------------- embedded
def test_embedded_patches_are_split_by_position_without_overlap():
    splits = {s: EmbeddedPatchDataset(64, s) for s in ("train", "val", "test")}
    keys = {s: set(ds.keys) for s, ds in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    assert {k.split("/")[0] for k in keys["train"]} == {"retina", "ihc"}
    x, key = splits["test"][0]
    assert x.shape == (3, 64, 64) and key in keys["test"]
    # fundus patches that are mostly the black border are left out
    assert all((splits["train"][i][0].max(0).values > -0.84).float().mean() >= 0.5 for i in range(len(splits["train"])))


def test_synthetic_frames_differ_between_splits_and_repeat_exactly():
    train, test = SyntheticEndoscopyDataset(3, 32, "train"), SyntheticEndoscopyDataset(3, 32, "test")
    assert not set(train.keys) & set(test.keys)
    a, key = train[1]
    assert torch.equal(a, SyntheticEndoscopyDataset(3, 32, "train")[1][0]) and key == train.keys[1]
    assert a.shape == (3, 32, 32) and -1 <= a.min() and a.max() <= 1
    with pytest.raises(IndexError):
        train[3]


def test_default_dataset_mixes_real_patches_and_synthetic_frames():
    cfg = Config.from_preset("tiny", max_images=0, data_dir="synthetic")
    ds = default_dataset("train", cfg)
    kinds = {ds[i][1].split("/")[0] for i in range(len(ds))}
    assert kinds == {"retina", "ihc", "synthetic"}
    n_synth = sum(ds[i][1].startswith("synthetic") for i in range(len(ds)))
    assert n_synth == round(cfg.synthetic_frames * 0.8)


def test_max_images_takes_an_evenly_spread_subset():
    cfg = Config.from_preset("tiny", max_images=0, data_dir="synthetic")
    full = default_dataset("train", cfg)
    part = default_dataset("train", cfg.replace(max_images=10))
    keys = [part[i][1] for i in range(len(part))]
    assert len(part) == 10 and len(set(keys)) == 10
    assert keys[0] == full[0][1] and keys[-1] == full[len(full) - 1][1]
    assert {k.split("/")[0] for k in keys} == {"retina", "ihc", "synthetic"}


def test_default_dataset_uses_the_configured_folder(folder):
    ratios = (0.98, 0.01, 0.01)                         # Config wants every split non-empty
    cfg = Config.from_preset("tiny", data_dir=str(folder), split_ratios=ratios)
    ds = default_dataset("train", cfg)
    expected = [k for k in ImageFolderDataset(folder, 32).keys if split_of(k, ratios) == "train"]
    assert isinstance(ds, ImageFolderDataset) and ds.keys == expected and len(ds) == 5


@pytest.mark.skipif(not SHARED_SAMPLES.is_dir(), reason="real sample frames not present")
def test_real_endoscopy_frames_load():
    ds = ImageFolderDataset(SHARED_SAMPLES, 128)
    assert len(ds) == 4
    x, _ = ds[0]
    assert x.shape == (3, 128, 128)
    r, g, b = ((x + 1) / 2).mean(dim=(1, 2))
    assert r > g > 0 and r > b                       # reddish mucosa


def test_dataset_keys_match_the_items_without_decoding():
    from medgan_nb.data import dataset_keys
    ds = default_dataset("val", Config.from_preset("tiny", max_images=12))
    assert dataset_keys(ds) == [ds[i][1] for i in range(len(ds))]


def test_jpeg_decoding_at_reduced_scale_keeps_enough_pixels_and_the_picture(tmp_path):
    arr = (np.clip(rgb(530, 622) / 255 * 0.6 + 0.2, 0, 1) * 255).astype(np.uint8)
    small = Image.fromarray(arr).resize((24, 20), Image.BICUBIC).resize((622, 530), Image.BICUBIC)
    small.save(tmp_path / "frame.jpg", quality=95)
    full = load_image(tmp_path / "frame.jpg")
    fast = load_image(tmp_path / "frame.jpg", at_least=256)
    assert full.shape == (530, 622, 3) and fast.shape == (265, 311, 3)          # 1/2 scale: both sides >= 256
    a, b = to_tensor(full, 256, "squash"), to_tensor(fast, 256, "squash")
    assert (a - b).abs().mean() < 0.01                                         # the same picture at 256²
    assert ImageFolderDataset(tmp_path, 256, resize="squash")[0][0].allclose(b)


def test_cached_dataset_loads_each_image_once():
    class Counting(torch.utils.data.Dataset):
        def __init__(self):
            self.calls = 0

        def __len__(self):
            return 3

        def __getitem__(self, i):
            self.calls += 1
            return torch.full((3, 4, 4), 0.1 * i + 0.01), f"k{i}"

    inner = Counting()
    cached = CachedDataset(inner)
    first = [cached[i] for i in range(3)] + [cached[i] for i in range(3)]
    assert inner.calls == 3 and len(cached) == 3
    assert first[4][1] == "k1" and first[4][0].dtype == torch.float32
    assert (first[4][0] - 0.11).abs().max() < 1e-3 and torch.equal(first[1][0], first[4][0])
    cfg = Config.from_preset("tiny", cache_images=True)
    data = default_dataset("val", cfg)
    assert isinstance(data, CachedDataset) and dataset_keys(data) == dataset_keys(default_dataset("val", cfg.replace(cache_images=False)))


# ------------------------------------------------------------- Kvasir-SEG layout, scenes, crops, shipped frames
from medgan_nb.data import (  # noqa: E402
    SHIPPED_DATA,
    data_source,
    duplicate_groups,
    find_layout,
    mask_of,
    random_crop,
    thumbnail_signature,
)


def scene(seed, h=90, w=120):
    """A smooth random 'scene' (so that small changes keep it recognisable), uint8 RGB."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))


@pytest.fixture
def kvasir(tmp_path):
    """A Kvasir-SEG-like folder: images/ + masks/ (a white square on black), 12 scenes."""
    root = tmp_path / "kv"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(12):
        Image.fromarray(scene(i)).save(root / "images" / f"f{i:02d}.jpg", quality=95)
        mask = np.zeros((90, 120), np.uint8)
        mask[30:60, 40 + i:80 + i] = 255
        Image.fromarray(mask).save(root / "masks" / f"f{i:02d}.jpg")
    return root


def test_kvasir_layout_is_found_from_any_of_its_three_entry_points(kvasir, folder, tmp_path):
    assert find_layout(kvasir) == (kvasir / "images", kvasir / "masks")
    assert find_layout(kvasir / "images") == (kvasir / "images", kvasir / "masks")
    unzipped = shutil.copytree(kvasir, tmp_path / "zip" / "Kvasir-SEG")              # the official zip: one folder in
    assert find_layout(tmp_path / "zip") == (unzipped / "images", unzipped / "masks")
    assert find_layout(folder) == (folder, None)
    ds = ImageFolderDataset(kvasir, 32)
    assert len(ds) == 12 and ds.keys[0] == "f00.jpg"                              # masks are not images


def test_masks_follow_the_image_geometry(kvasir):
    ds = ImageFolderDataset(kvasir, 32, frame_size=48)
    m = ds.mask(0)
    assert m.dtype == torch.bool and m.shape == (32, 32)
    # the 120×90 frame scales by 48/90 to 64×48, whose centre 32² crop starts at x = 16, y = 8
    expected = np.zeros((90, 120), bool)
    expected[30:60, 40:80] = True
    big = to_tensor(expected[..., None].astype(np.float32), 32, "crop", 48)[0] > 0
    assert torch.equal(m, big) and 0.2 < m.float().mean() < 0.6
    assert mask_of(torch.utils.data.Subset(ds, [3, 0]), 1) is not None and torch.equal(mask_of(ds, 0), m)
    assert ImageFolderDataset(kvasir, 32, random_crop=True).mask(0) is None        # random crops: no fixed mask
    crops = ImageFolderDataset(kvasir, 32, random_crop=True, crops_per_frame=3)     # 36 items, 12 frames
    assert crops.mask_file(12 + 5) == crops.mask_file(5) == kvasir / "masks" / "f05.jpg"
    with pytest.raises(IndexError):
        crops.mask_file(36)


def test_near_duplicate_frames_are_one_scene_and_never_straddle_splits(tmp_path):
    root = tmp_path / "frames"
    root.mkdir()
    for i in range(30):
        base = scene(i)
        Image.fromarray(base).save(root / f"s{i:02d}_a.png")
        twin = np.clip(base.astype(int) + np.random.default_rng(i).integers(-6, 7, base.shape), 0, 255)
        Image.fromarray(np.roll(twin, 2, axis=1).astype(np.uint8)).save(root / f"s{i:02d}_b.png")   # next frame
    ds = ImageFolderDataset(root, 32)
    assert ds.groups == [f"s{i // 2:02d}_a.png" for i in range(60)]                # each pair, nothing else
    splits = {s: set(ImageFolderDataset(root, 32, s, ratios=(0.5, 0.25, 0.25)).keys) for s in ("train", "val", "test")}
    for i in range(30):
        pair = {f"s{i:02d}_a.png", f"s{i:02d}_b.png"}
        assert sum(pair <= keys for keys in splits.values()) == 1                 # both in one split
    assert sum(map(len, splits.values())) == 60


def test_duplicate_groups_link_chains_and_keep_unrelated_frames_apart(tmp_path):
    sig = np.eye(4, dtype=np.float32)
    sig[1] = sig[0] * 0.96 + sig[1] * 0.28                                         # 0 ~ 1
    sig[2] = sig[1] * 0.96 + sig[2] * 0.28                                         # 1 ~ 2, so 0 ~ 2 by the chain
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    assert duplicate_groups(sig, ["c", "a", "d", "b"]) == ["a", "a", "a", "b"]
    Image.fromarray(scene(1)).save(tmp_path / "s.png")
    signature = thumbnail_signature(tmp_path / "s.png")
    assert signature.shape == (144,) and abs(float(np.linalg.norm(signature)) - 1) < 1e-5


def test_random_crops_differ_stay_in_range_and_respect_the_scale():
    frame = scene(3, 200, 300).astype(np.float32) / 255
    g = torch.Generator().manual_seed(0)
    crops = [random_crop(frame, 64, 128, g) for _ in range(8)]
    assert all(c.shape == (3, 64, 64) and c.min() >= -1 and c.max() <= 1 for c in crops)
    assert len({c.sum().item() for c in crops}) == 8
    # a constant-gradient frame shows the scale: a crop spans 64 / scale stored pixels, scale in [128/200, 1]
    ramp = np.repeat(np.linspace(0, 1, 300, dtype=np.float32)[None, :, None], 200, 0).repeat(3, 2)
    for _ in range(20):
        c = (random_crop(ramp, 64, 128, g) + 1) / 2
        span = float(c.max() - c.min()) * 299                                      # stored pixels covered
        assert 64 - 3 <= span <= 100 + 3


def test_a_uint8_frame_crops_and_resizes_as_its_float_copy():
    """Cached frames stay uint8 and are converted after cropping: the crops are those of the float frame, bit for bit."""
    frame = scene(5, 200, 300)
    for size, frame_size in ((64, 128), (64, 200), (96, 100)):
        a = [random_crop(frame, size, frame_size, torch.Generator().manual_seed(s)) for s in range(6)]
        b = [random_crop(frame.astype(np.float32) / 255, size, frame_size, torch.Generator().manual_seed(s))
             for s in range(6)]
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(to_tensor(frame, 64, frame_size=80), to_tensor(frame.astype(np.float32) / 255, 64, frame_size=80))


def test_random_crop_training_split_and_its_cache(kvasir):
    cfg = Config.from_preset("tiny", data_dir=str(kvasir), train_crop="random", frame_size=48, cache_images=True,
                        split_ratios=(0.8, 0.1, 0.1), max_images=0)
    train = default_dataset("train", cfg)
    assert isinstance(train, ImageFolderDataset) and train.random_crop and train.cache
    a, b = train[0][0], train[0][0]
    assert not torch.equal(a, b) and len(train._frames) == 1                       # new crop each read, one decode
    assert min(train._frames[0].shape[:2]) == 90 and train._frames[0].dtype == np.uint8
    test = default_dataset("test", cfg)
    assert not getattr(test, "random_crop", False) and torch.equal(test[0][0], test[0][0])


def test_the_repository_ships_real_frames_with_attribution_and_uses_them_by_default():
    images = sorted((SHIPPED_DATA / "images").glob("*.jpg"))
    masks = sorted((SHIPPED_DATA / "masks").glob("*.png"))
    assert 50 <= len(images) <= 150 and [m.stem for m in masks] == [i.stem for i in images]
    assert sum(p.stat().st_size for p in [*images, *masks]) < 8e6
    notice = (SHIPPED_DATA / "NOTICE.md").read_text()
    assert "CC BY 4.0" in notice and "Kvasir-SEG" in notice and "HyperKvasir" in notice
    cfg = Config.from_preset("tiny", max_images=0)
    assert data_source(cfg) == str(SHIPPED_DATA)
    sizes = {s: len(default_dataset(s, cfg)) for s in ("train", "val", "test")}
    assert sizes["train"] > 5 * sizes["test"] > 0 and sum(sizes.values()) == len(images)
    assert data_source(cfg.replace(data_dir="synthetic")) == "synthetic"


def test_random_crop_scale_sets_how_much_of_the_frame_a_crop_holds():
    from medgan_nb.data.transforms import random_crop
    ramp = np.tile(np.linspace(0, 1, 512, dtype=np.float32), (512, 1))[..., None].repeat(3, -1)   # value = column
    def span(scale):
        g = torch.Generator().manual_seed(3)
        crop = (random_crop(ramp, 64, 256, g, scale=scale) + 1) / 2
        return float(crop.max() - crop.min())
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_crop(ramp, 64, 256, g1), random_crop(ramp, 64, 256, g2, scale=(1.0, 2.0)))
    # 256 is half of 512: at scale 1 a 64² crop holds 128 stored pixels, at 0.5 all 256, at 2 only 64
    assert span((1.0, 1.0)) == pytest.approx(127 / 511, abs=0.01)
    assert span((0.5, 0.5)) == pytest.approx(255 / 511, abs=0.01)
    assert span((2.0, 2.0)) == pytest.approx(63 / 511, abs=0.01)


def test_a_soft_crop_keeps_its_place_and_loses_its_fine_detail():
    from medgan_nb.data.transforms import random_crop
    frame = np.random.default_rng(0).random((300, 300, 3)).astype(np.float32)
    def crop(soft_p):
        return random_crop(frame, 64, 300, torch.Generator().manual_seed(5), scale=(1.0, 1.0), soft_p=soft_p,
                           soft_factor=(3.0, 3.0))
    sharp, soft = crop(0.0), crop(1.0)
    def detail(x):
        return float((x[:, 1:] - x[:, :-1]).abs().mean())
    assert detail(soft) < 0.5 * detail(sharp)
    assert abs(float(soft.mean() - sharp.mean())) < 0.02               # the same place, only softer
    assert soft.min() >= -1 and soft.max() <= 1


def test_white_balance_scales_each_channel_of_the_crop_within_its_range():
    from medgan_nb.data.transforms import random_crop
    frame = np.full((300, 300, 3), 0.5, np.float32)
    def crop(w, seed):
        return (random_crop(frame, 32, 300, torch.Generator().manual_seed(seed), white_balance=w) + 1) / 2
    assert torch.allclose(crop(0.0, 1), torch.tensor(0.5))                     # off: the frame as it was
    gains = torch.stack([crop(0.3, seed).mean((1, 2)) / 0.5 for seed in range(20)])   # (20, 3)
    assert (gains >= 0.7 - 1e-6).all() and (gains <= 1.3 + 1e-6).all() and gains.std() > 0.1
    assert torch.equal(crop(0.3, 4), crop(0.3, 4))                              # one draw per seed
    assert (crop(0.3, 4).flatten(1).std(1) < 1e-6).all()                       # one gain per channel


@pytest.mark.parametrize("field, value", [("soft_p", 1.5), ("train_scale", (0.05, 1.0)), ("soft_factor", (0.5, 2.0)),
                                          ("train_scale", (2.0, 1.0)), ("white_balance", 1.0)])
def test_crop_settings_out_of_range_are_refused(field, value):
    with pytest.raises(ValueError, match=field):
        Config(**{field: value})
