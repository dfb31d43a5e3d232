import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from medgan_nb.config import Config
from medgan_nb.data import (CachedDataset, EmbeddedPatchDataset, ImageFolderDataset, ImageLoadError,
                            SyntheticEndoscopyDataset, dataset_keys, default_dataset, load_image, split_of, to_tensor)

from conftest import SHARED_SAMPLES


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
    cfg = Config.preset("tiny", max_images=0)
    ds = default_dataset("train", cfg)
    kinds = {ds[i][1].split("/")[0] for i in range(len(ds))}
    assert kinds == {"retina", "ihc", "synthetic"}
    n_synth = sum(ds[i][1].startswith("synthetic") for i in range(len(ds)))
    assert n_synth == round(cfg.synthetic_frames * 0.8)


def test_max_images_takes_an_evenly_spread_subset():
    cfg = Config.preset("tiny", max_images=0)
    full = default_dataset("train", cfg)
    part = default_dataset("train", cfg.replace(max_images=10))
    keys = [part[i][1] for i in range(len(part))]
    assert len(part) == 10 and len(set(keys)) == 10
    assert keys[0] == full[0][1] and keys[-1] == full[len(full) - 1][1]
    assert {k.split("/")[0] for k in keys} == {"retina", "ihc", "synthetic"}


def test_default_dataset_uses_the_configured_folder(folder):
    cfg = Config.preset("tiny", data_dir=str(folder), split_ratios=(1.0, 0.0, 0.0))
    ds = default_dataset("train", cfg)
    assert isinstance(ds, ImageFolderDataset) and len(ds) == 5


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
    ds = default_dataset("val", Config.preset("tiny", max_images=12))
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
    cfg = Config.preset("tiny", cache_images=True)
    data = default_dataset("val", cfg)
    assert isinstance(data, CachedDataset) and dataset_keys(data) == dataset_keys(default_dataset("val", cfg.replace(cache_images=False)))
