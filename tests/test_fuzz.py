"""Damaged and foreign files through the data layer, evaluation and enhancement (seeded, bounded, no sleeps).

From 14 small valid PNG, JPEG, TIFF and BMP files made here, about 740
files are derived: truncated, with flipped bytes, with changed header bytes,
with decompression-bomb dimensions in their headers, plus empty files and
non-images named like images. Each must end as a decoded image or as an
`ImageLoadError` naming it (a counted skip in datasets and `enhance`): never
another exception type, a hang, or a blank image made from garbage. A JPEG
with flipped bytes in its scan data legitimately decodes to a damaged picture;
a truncated file may decode only if nothing of its picture was cut.
Run with ``pytest -s`` to see the outcomes per kind of damage.
"""
import io
import json
import logging
import struct
import warnings
import zlib
from collections import Counter, defaultdict

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageFile
from test_data import png16, rgb16

from medgan_nb.config import Config
from medgan_nb.data import ImageFolderDataset, ImageLoadError, load_image
from medgan_nb.inference import enhance
from medgan_nb.models import build_generator, save_checkpoint

SEED = 9
EXTENSIONS = (".png", ".jpg", ".tif", ".bmp", ".jpeg", ".tiff")


def rgb(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def saved(image, fmt, **options):
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def tiff(array, **options):
    buf = io.BytesIO()
    tifffile.imwrite(buf, array, **options)
    return buf.getvalue()


def camera_exif():
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotated: the loader turns it upright
    exif[0x010F], exif[0x0110] = "Maker", "Model"
    exif.get_ifd(0x8769)[0x9003] = "2024:01:01 10:00:00"
    return exif.tobytes()


def originals():
    """name -> (extension, bytes): valid files of every format, layout and depth the loader handles."""
    smooth = np.clip(np.cumsum(rgb(32, 40, 1).astype(int) - 127, axis=1) // 8 + 128, 0, 255).astype(np.uint8)
    camera = Image.fromarray(smooth)
    return {
        "png-rgb": (".png", saved(Image.fromarray(rgb(32, 40, 2)), "PNG")),
        "png-palette": (".png", saved(Image.fromarray(rgb(24, 30, 3)).convert("P"), "PNG")),
        "png-gray16": (".png", saved(Image.fromarray(rgb16(28, 36, 4)[..., 0]), "PNG")),
        "png-rgb16": (".png", png16(rgb16(24, 32, 5))),
        "jpeg-rgb": (".jpg", saved(Image.fromarray(smooth), "JPEG", quality=90)),
        "jpeg-gray": (".jpg", saved(Image.fromarray(smooth[..., 0]), "JPEG", quality=90)),
        "jpeg-progressive": (".jpeg", saved(Image.fromarray(smooth), "JPEG", quality=85, progressive=True)),
        "jpeg-exif": (".jpg", saved(camera, "JPEG", quality=90, exif=camera_exif())),
        "mpo-exif": (".jpg", saved(camera, "MPO", save_all=True, append_images=[camera], exif=camera_exif())),
        "tiff-rgb-lzw": (".tif", saved(Image.fromarray(rgb(30, 26, 6)), "TIFF", compression="tiff_lzw")),
        "tiff-rgb16": (".tiff", tiff(rgb16(26, 34, 7), photometric="rgb", compression="zlib")),
        "tiff-float": (".tif", tiff(np.random.default_rng(8).random((24, 24), np.float32))),
        "bmp-rgb": (".bmp", saved(Image.fromarray(rgb(20, 36, 9)), "BMP")),
        "bmp-palette": (".bmp", saved(Image.fromarray(rgb(32, 32, 10)).convert("P"), "BMP")),
    }


# ----------------------------------------------------------------- mutations
def truncations(data, rng, n=12):
    return [data[:k] for k in sorted(set(rng.integers(1, len(data), n).tolist()))]


def flips(data, rng, n=20):
    out = []
    for _ in range(n):
        b = bytearray(data)
        for i in rng.integers(0, len(b), rng.integers(1, 9)):
            b[i] ^= int(rng.integers(1, 256))
        out.append(bytes(b))
    return out


def header_changes(data, rng, n=10):
    out = []
    for _ in range(n):
        b = bytearray(data)
        i = int(rng.integers(0, min(160, len(b))))          # headers, and EXIF where there is some
        b[i:i + 4] = rng.integers(0, 256, 4, dtype=np.uint8).tobytes()
        out.append(bytes(b[:len(data)]))
    return out


def sizes(data, ext, dimensions):
    """The file with each (width, height) of `dimensions` written into its header."""
    return [d for d in (_with_size(data, ext, w, h) for w, h in dimensions) if d is not None]


BOMBS = ((100_000, 100_000), (30_000, 30_000), (10_000, 10_000))   # the last: between 1x and 2x Pillow's limit
LARGE = ((1_000, 1_000), (60_000, 2))                               # under the limit, far more than the data holds


def _with_size(data, ext, w, h):
    b = bytearray(data)
    if ext == ".png":                                  # IHDR: width, height; then its CRC again
        b[16:24] = struct.pack(">II", w, h)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    elif ext in (".jpg", ".jpeg"):                     # the first start-of-frame marker: height, width
        i = next(i for i in range(2, len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC1, 0xC2))
        b[i + 5:i + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))
    elif ext == ".bmp":                                # BITMAPINFOHEADER: width, height
        b[18:26] = struct.pack("<ii", w, h)
    else:                                              # TIFF (little-endian): ImageWidth, ImageLength as LONG
        if b[:2] != b"II":
            return None
        ifd = struct.unpack_from("<I", b, 4)[0]
        for k in range(struct.unpack_from("<H", b, ifd)[0]):
            entry = ifd + 2 + 12 * k
            tag = struct.unpack_from("<H", b, entry)[0]
            if tag in (256, 257):
                struct.pack_into("<HHII", b, entry, tag, 4, 1, w if tag == 256 else h)
    return bytes(b)


FOREIGN = {
    "text": b"hello, I am a text file\n" * 3,
    "html": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
    "pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n",
    "zip": b"PK\x03\x04" + bytes(40),
    "gzip": b"\x1f\x8b\x08\x00" + bytes(30),
    "random": np.random.default_rng(11).integers(0, 256, 300, dtype=np.uint8).tobytes(),
    "png-signature-only": b"\x89PNG\r\n\x1a\n",
    "jpeg-soi-only": b"\xff\xd8\xff",
    "tiff-header-only": b"II*\x00\x08\x00\x00\x00",
    "bmp-header-only": b"BM" + bytes(12),
}


def fuzz_files(root):
    """Write every damaged or foreign file under `root`; returns {file name: (kind of damage, original)}."""
    rng = np.random.default_rng(SEED)
    files = {}

    def put(kind, stem, ext, data):
        name = f"{kind}-{stem}-{len(files):04d}{ext}"
        (root / name).write_bytes(data)
        files[name] = (kind, stem)

    for stem, (ext, data) in originals().items():
        put("original", stem, ext, data)
        for kind, variants in (("truncated", truncations(data, rng)), ("flipped", flips(data, rng)),
                               ("header", header_changes(data, rng)), ("bomb-dims", sizes(data, ext, BOMBS)),
                               ("large-dims", sizes(data, ext, LARGE))):
            for variant in variants:
                put(kind, stem, ext, variant)
    for ext in EXTENSIONS:
        put("empty", "zero", ext, b"")
        for stem, data in FOREIGN.items():
            put("not-an-image", stem, ext, data)
    return files


# ------------------------------------------------------------------ the fuzz
@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    """The files, and how `load_image` ended for each, with warnings turned into errors."""
    assert not ImageFile.LOAD_TRUNCATED_IMAGES
    root = tmp_path_factory.mktemp("fuzz")
    files = fuzz_files(root)
    decoded, errors, foreign = {}, {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in files:
            try:
                decoded[name] = load_image(root / name)
            except ImageLoadError as e:
                errors[name] = str(e)
            except BaseException as e:                 # anything else is the bug this test is for
                foreign.append(f"{name}: {type(e).__name__}: {e}")
    counts = defaultdict(Counter)
    for name, (kind, _) in files.items():
        counts[kind]["decoded" if name in decoded else "ImageLoadError" if name in errors else "other"] += 1
    print(f"\nload_image on {len(files)} files:")
    for kind, c in counts.items():
        print(f"  {kind:13s} decoded {c['decoded']:4d}   ImageLoadError {c['ImageLoadError']:4d}   other {c['other']}")
    return root, files, decoded, errors, foreign


def test_every_file_decodes_or_is_an_image_load_error_naming_it(fuzz):
    root, files, decoded, errors, foreign = fuzz
    assert len(files) >= 500
    assert not foreign, "\n".join(foreign)
    assert all(name in message for name, message in errors.items())
    assert {n for n, (kind, _) in files.items() if kind == "original"} <= set(decoded)
    for kind in ("empty", "not-an-image", "bomb-dims"):
        assert not [n for n, (k, _) in files.items() if k == kind and n in decoded], kind


def test_nothing_decoded_from_garbage_is_blank_partial_or_out_of_range(fuzz):
    root, files, decoded, errors, foreign = fuzz
    original = {stem: decoded[n] for n, (kind, stem) in files.items() if kind == "original"}
    for name, img in decoded.items():
        assert img.dtype == np.float32 and img.ndim == 3 and img.shape[2] == 3, name
        assert np.isfinite(img).all() and 0 <= img.min() and img.max() <= 1, name
        assert img.max() > img.min(), f"{name} decoded to a constant image"
        kind, stem = files[name]
        if kind == "truncated":                        # only what follows the picture may have been cut
            assert np.array_equal(img, original[stem]), f"{name} decoded partially"


def test_folder_dataset_skips_and_counts_exactly_the_bad_files(fuzz, caplog):
    root, files, decoded, errors, foreign = fuzz
    with caplog.at_level(logging.WARNING, logger="medgan_nb.data"):
        ds = ImageFolderDataset(root, 16, on_error="skip")
    assert set(ds.keys) == set(decoded)
    assert {p.name for p, _ in ds.skipped} == set(errors)
    assert all(p.name in reason for p, reason in ds.skipped)
    assert f"skipped {len(errors)} of {len(files)}" in caplog.text
    print(f"\nImageFolderDataset(on_error='skip'): {len(ds)} images, {len(ds.skipped)} skipped")
    for i in range(len(ds)):                           # JPEGs at reduced scale here (at_least=16)
        x, key = ds[i]
        assert x.shape == (3, 16, 16) and torch.isfinite(x).all() and x.max() > x.min(), key


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = Config.from_preset("tiny")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    return save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, path)


def test_enhance_writes_exactly_the_decodable_files_and_counts_the_rest(fuzz, checkpoint, tmp_path, caplog):
    root, files, decoded, errors, foreign = fuzz
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="medgan_nb.inference"):
        written = enhance(root, out, checkpoint, device="cpu", on_error="skip", backend="torch", quiet=True)
    expected = {n.rsplit(".", 1)[0] + ".png" for n in decoded}
    print(f"\nenhance(on_error='skip'): {len(written)} written, {len(files) - len(written)} skipped")
    assert {p.name for p in written} == expected
    assert f"skipped {len(errors)} of {len(files)}" in caplog.text
    assert len((out / "audit.jsonl").read_text().splitlines()) == len(written)
    for p in written:
        a = np.asarray(Image.open(p))
        assert a.max() > a.min(), f"{p.name}: blank output"
    records = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]
    assert all(r["output"].endswith(".png") for r in records)


def test_evaluate_scores_the_decodable_files_and_names_a_bad_one(fuzz, tmp_path):
    from medgan_nb.evaluation import evaluate  # imported here: evaluate.py is being reworked
    root, files, decoded, errors, foreign = fuzz
    good, mixed = tmp_path / "good", tmp_path / "mixed"
    good.mkdir()
    mixed.mkdir()
    for name in sorted(decoded)[::6]:
        (good / name).write_bytes((root / name).read_bytes())
    for name in sorted(errors)[::60]:
        (mixed / name).write_bytes((root / name).read_bytes())
    metrics = evaluate(None, tmp_path / "eval", data_dir=good, max_images=len(list(good.iterdir())),
                       baselines=("identity",), breakdown=False, quiet=True)
    stats = metrics["results"]["all"]["identity"]
    print(f"\nevaluate: {stats['n']} images scored; a folder of {len(list(mixed.iterdir()))} bad ones raises")
    assert stats["n"] == len(list(good.iterdir())) and np.isfinite(stats["psnr_mean"])
    with pytest.raises(ImageLoadError) as e:
        evaluate(None, tmp_path / "eval2", data_dir=mixed, max_images=4, baselines=("identity",),
                 breakdown=False, quiet=True)
    assert any(name in str(e.value) for name in errors)
