import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from test_data import png16, rgb16

import medgan_nb.inference.files as inference_files
from medgan_nb import __version__
from medgan_nb.config import Config
from medgan_nb.data import ImageLoadError, decode_image
from medgan_nb.inference import enhance, enhance_array
from medgan_nb.models import CheckpointError, UNetGenerator, build_generator, resolve_device, save_checkpoint
from medgan_nb.utils import file_sha256


class Pointwise(torch.nn.Module):
    """A stand-in generator that maps each pixel on its own; it checks and records the shapes it gets."""

    depth = 3
    size_multiple = 2**depth

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        assert x.shape[-2] % 2**self.depth == 0 and x.shape[-1] % 2**self.depth == 0, x.shape
        self.shapes.append(tuple(x.shape[-2:]))
        return torch.tanh(2 * x)


def pointwise_expected(img):
    return (np.tanh(2 * (2 * img - 1)) + 1) / 2


def rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def checkpoint(tmp_path):
    cfg = Config.from_preset("tiny")
    torch.manual_seed(0)
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, path)
    return path


@pytest.fixture
def images(tmp_path):
    """Nested folders; RGB jpg, grayscale png, RGBA png and an odd-sized tif."""
    root = tmp_path / "in"
    (root / "a" / "b").mkdir(parents=True)
    Image.fromarray(rgb(40, 48, 1)).save(root / "a" / "b" / "x.jpg")
    Image.fromarray(rgb(33, 20, 2)[..., 0], mode="L").save(root / "a" / "gray.png")
    Image.fromarray(np.dstack([rgb(24, 24, 3), rgb(24, 24, 4)[..., :1]]), mode="RGBA").save(root / "rgba.png")
    Image.fromarray(rgb(17, 45, 5)).save(root / "odd.tif")
    (root / "notes.txt").write_text("not an image")
    return root


EXPECTED = {"a/b/x.png": (48, 40), "a/gray.png": (20, 33), "rgba.png": (24, 24), "odd.png": (45, 17)}


def read_audit(out):
    return [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines()]


# ------------------------------------------------------------ enhance_array
@pytest.mark.parametrize("h, w", [(17, 45), (300, 260)])
def test_output_has_the_input_size(h, w):
    torch.manual_seed(0)
    g = build_generator(Config.from_preset("tiny"))
    img = rgb(h, w).astype(np.float32) / 255
    out = enhance_array(g, img, tile=64)
    assert out.shape == (h, w, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("h, w, tile, overlap", [(17, 45, 512, 32), (300, 260, 64, 32), (130, 77, 50, 20)])
def test_padding_and_tiling_are_exact_for_a_pointwise_generator(h, w, tile, overlap):
    g = Pointwise().train()
    img = rgb(h, w, 7).astype(np.float32) / 255
    out = enhance_array(g, img, tile=tile, overlap=overlap)
    np.testing.assert_allclose(out, pointwise_expected(img), atol=1e-5)
    m = 2**g.depth
    side = -(-tile // m) * m
    assert all(th <= side and tw <= side for th, tw in g.shapes)
    if max(h, w) > side:
        assert len(g.shapes) > 1                        # really tiled
    assert g.training                                    # train/eval mode restored


def test_a_hd_frame_is_tiled_evenly_with_little_more_work_than_its_pixels():
    g = Pointwise()
    g.size_multiple = 32                                   # the realtime UNet's
    img = rgb(720, 1280, 1).astype(np.float32) / 255
    np.testing.assert_allclose(enhance_array(g, img, tile=512), pointwise_expected(img), atol=1e-5)
    assert g.shapes == [(384, 448)] * 6                    # 2 × 3 tiles of one size, none above 512
    assert sum(h * w for h, w in g.shapes) < 1.15 * 720 * 1280          # tiles of 512 would cost 1.7×


def test_pads_by_reflection():
    g = Pointwise()
    seen = []
    g.register_forward_hook(lambda mod, args, out: seen.append(args[0][0].permute(1, 2, 0).numpy().copy()))
    img = rgb(17, 45, 3).astype(np.float32) / 255
    enhance_array(g, img)
    reference = np.pad(img, ((0, 7), (0, 3), (0, 0)), mode="reflect") * 2 - 1     # 24×48: multiples of 8
    np.testing.assert_allclose(seen[0], reference, atol=1e-6)


def test_tiles_blend_without_seams():
    torch.manual_seed(0)
    g = UNetGenerator(depth=3, base_ch=8, max_ch=32)      # PyTorch's default init: outputs with real contrast
    yy, xx = np.mgrid[0:200, 0:136] / 20.0
    img = np.stack([np.sin(xx) * np.cos(yy), np.cos(xx + yy), np.sin(xx * yy / 5)], axis=2) * 0.4 + 0.5
    img = (img + np.random.default_rng(0).normal(0, 0.05, img.shape)).clip(0, 1).astype(np.float32)
    whole = enhance_array(g, img, tile=1024)
    blended = np.abs(enhance_array(g, img, tile=64, overlap=32) - whole).max()
    hard = np.abs(enhance_array(g, img, tile=64, overlap=0) - whole).max()   # tiles butted together
    assert hard > 0.02                                   # the test can see a seam when there is one
    assert blended < 0.01 and blended < hard / 10


def test_rejects_8_bit_arrays():
    with pytest.raises(ValueError, match="255"):
        enhance_array(Pointwise(), rgb(32, 32), tile=64)


# ------------------------------------------------------------------ enhance
def test_folder_keeps_names_writes_labelled_pngs_and_audit_log(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    written = enhance(images, out, checkpoint, device="cpu", quiet=True)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(EXPECTED)
    ckpt_sha = file_sha256(checkpoint)
    for p in written:
        rel = p.relative_to(out).as_posix()
        with Image.open(p) as im:
            assert im.format == "PNG" and im.mode == ("L" if rel == "a/gray.png" else "RGB")
            assert im.size == EXPECTED[rel]
            meta = im.text
        source = next(s for s in images.rglob("*") if s.relative_to(images).with_suffix(".png").as_posix() == rel)
        assert meta["medgan_nb:ai_enhanced"] == "true"
        assert meta["Software"] == f"medgan_nb {__version__}"
        assert "AI-enhanced" in meta["Description"] and "diagnosis" in meta["Description"]
        assert meta["medgan_nb:checkpoint_sha256"] == ckpt_sha
        assert meta["medgan_nb:source_sha256"] == file_sha256(source)
        assert "medgan_nb:source" not in meta                  # paths may name patients: not by default

    records = read_audit(out)
    assert len(records) == len(written)
    assert sorted(r["output"] for r in records) == sorted(str(p.resolve()) for p in written)
    for r in records:
        assert r["output_sha256"] == file_sha256(r["output"])
        assert r["input_sha256"] == file_sha256(r["input"])
        assert r["checkpoint_sha256"] == ckpt_sha and r["checkpoint"] == str(checkpoint.resolve())
        assert r["source_name_in_png"] is False and (r["channels"], r["bits"]) == \
            ((1, 8) if r["input"].endswith("gray.png") else (3, 8))
        assert r["medgan_nb_version"] == __version__ and r["device"] == "cpu" and r["label"] is False
        assert r["time"].endswith("+00:00")
        with Image.open(r["output"]) as im:
            assert im.size == (r["width"], r["height"])


def test_second_run_refuses_to_overwrite_then_appends(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    first = enhance(images, out, checkpoint, device="cpu", quiet=True)
    before = (out / "audit.jsonl").read_text()
    with pytest.raises(FileExistsError, match=r"\.png"):
        enhance(images, out, checkpoint, device="cpu", quiet=True)
    assert (out / "audit.jsonl").read_text() == before     # nothing done
    second = enhance(images, out, checkpoint, device="cpu", quiet=True, overwrite=True)
    assert sorted(second) == sorted(first)
    text = (out / "audit.jsonl").read_text()
    assert text.startswith(before) and len(read_audit(out)) == 2 * len(first)


def test_single_file_and_output_folder_inside_input(images, checkpoint):
    out = images / "enhanced"
    assert enhance(images / "a" / "b" / "x.jpg", out, checkpoint, device="auto", quiet=True) == [out / "x.png"]
    assert read_audit(out)[0]["device"] == str(resolve_device("auto"))
    written = enhance(images, out, checkpoint, device="cpu", quiet=True)   # its own outputs are not inputs
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(EXPECTED)


def test_label_marks_a_corner_not_the_centre(tmp_path, checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb(64, 80)).save(src / "x.png")
    Image.fromarray(rgb(32, 32, 1)).save(src / "small.png")
    plain = enhance(src, tmp_path / "plain", checkpoint, device="cpu", quiet=True)
    marked = enhance(src, tmp_path / "marked", checkpoint, device="cpu", quiet=True, label=True)
    a, b = (np.asarray(Image.open(p[0]), dtype=np.int16) for p in (plain, marked))
    assert np.abs(a[:6, :20] - b[:6, :20]).max() > 50          # the top-left corner is marked
    assert np.array_equal(a[24:40, 30:50], b[24:40, 30:50])    # the centre is untouched
    assert b[1, 1].max() < 40                                 # dark box behind the text
    a, b = (np.asarray(Image.open(p[1]), dtype=np.int16) for p in (plain, marked))   # 32×32 works too
    assert not np.array_equal(a, b) and np.array_equal(a[16:, 16:], b[16:, 16:])
    assert all(r["label"] for r in read_audit(tmp_path / "marked"))


@pytest.mark.parametrize("content", [
    None,                                                      # a PyTorch file holding a plain tensor dict
    b"%PDF-1.4\n",
    b"this is a text file, not a checkpoint\n",
    b"hello, not a checkpoint",
    b"GIF89a",
], ids=["tensor-dict", "pdf", "text", "hello", "gif"])
def test_foreign_checkpoints_are_refused(images, tmp_path, content):
    path = tmp_path / "foreign.pt"
    if content is None:
        torch.save({"weight": torch.zeros(3, 3), "bias": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a medgan_nb checkpoint"):
        enhance(images, tmp_path / "out", path, device="cpu", quiet=True)
    assert not (tmp_path / "out" / "audit.jsonl").exists()


def test_bad_image_raises_or_is_skipped_and_counted(images, checkpoint, tmp_path, caplog):
    (images / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ImageLoadError, match="broken.png"):
        enhance(images, tmp_path / "out1", checkpoint, device="cpu", quiet=True)
    with caplog.at_level(logging.WARNING, logger="medgan_nb.inference"):
        written = enhance(images, tmp_path / "out2", checkpoint, device="cpu", quiet=True, on_error="skip")
    assert sorted(p.relative_to(tmp_path / "out2").as_posix() for p in written) == sorted(EXPECTED)
    assert not (tmp_path / "out2" / "a" / "broken.png").exists()
    assert "skipped 1 of 5" in caplog.text and "broken.png" in caplog.text
    assert len(read_audit(tmp_path / "out2")) == len(EXPECTED)


def test_bad_on_error_value(images, checkpoint, tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        enhance(images, tmp_path / "out", checkpoint, on_error="ignore")


def test_backends_agree_and_the_audit_log_names_the_one_used(images, checkpoint, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install onnxscript)")
    a = enhance(images, tmp_path / "torch", checkpoint, backend="torch", quiet=True)
    b = enhance(images, tmp_path / "ort", checkpoint, backend="onnxruntime", quiet=True)
    assert [p.relative_to(tmp_path / "torch") for p in a] == [p.relative_to(tmp_path / "ort") for p in b]
    for x, y in zip(a, b):
        diff = np.abs(np.asarray(Image.open(x), dtype=int) - np.asarray(Image.open(y), dtype=int))
        assert diff.max() <= 1                                    # float rounding may flip the last 8-bit step
    assert {r["backend"] for r in read_audit(tmp_path / "torch")} == {"torch"}
    assert {r["backend"] for r in read_audit(tmp_path / "ort")} == {"onnxruntime"}
    auto = enhance(images, tmp_path / "auto", checkpoint, quiet=True)   # 4 small images: below AUTO_MIN_PIXELS
    assert len(auto) == 4 and {r["backend"] for r in read_audit(tmp_path / "auto")} == {"torch"}


def test_the_source_name_goes_into_the_png_only_on_request(images, checkpoint, tmp_path):
    written = enhance(images, tmp_path / "out", checkpoint, device="cpu", quiet=True, record_source_name=True)
    for p in written:
        rel = p.relative_to(tmp_path / "out").as_posix()
        source = next(s for s in images.rglob("*") if s.relative_to(images).with_suffix(".png").as_posix() == rel)
        assert Image.open(p).text["medgan_nb:source"] == source.relative_to(images).as_posix()
    assert all(r["source_name_in_png"] for r in read_audit(tmp_path / "out"))


def test_provenance_names_the_checkpoint_bytes_that_were_loaded(images, checkpoint, tmp_path, monkeypatch):
    loaded = file_sha256(checkpoint)
    real_load = inference_files.load_generator

    def load_then_training_replaces_the_file(path, device):
        result = real_load(path, device)
        cfg = Config.from_preset("tiny")
        torch.manual_seed(1)
        save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict(), "epoch": 2}, path)
        return result

    monkeypatch.setattr(inference_files, "load_generator", load_then_training_replaces_the_file)
    written = enhance(images, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    assert file_sha256(checkpoint) != loaded                     # the file now holds other weights
    assert {r["checkpoint_sha256"] for r in read_audit(tmp_path / "out")} == {loaded}
    assert {Image.open(p).text["medgan_nb:checkpoint_sha256"] for p in written} == {loaded}


def test_a_loaded_generator_or_a_shipped_model_instead_of_a_checkpoint(images, checkpoint, tmp_path, monkeypatch):
    import medgan_nb.models.zoo as models_zoo
    from medgan_nb.models import load_generator
    generator, cfg = load_generator(checkpoint)
    weights = models_zoo.save_model(generator, cfg, "m", {"summary": "s", "default": True}, tmp_path / "w")
    monkeypatch.setattr(models_zoo, "WEIGHTS_DIR", tmp_path / "w")
    outputs = {source: enhance(images, tmp_path / source, device="cpu", quiet=True, **kwargs)
               for source, kwargs in [("checkpoint", {"checkpoint": checkpoint}), ("generator", {"generator": generator}),
                                      ("model", {"model": "m"}), ("default", {})]}
    pixels = {source: [np.asarray(Image.open(p)) for p in sorted(files)] for source, files in outputs.items()}
    assert all(np.array_equal(a, b) for other in pixels.values() for a, b in zip(pixels["checkpoint"], other))
    logged = {source: {(r["checkpoint"], r["model"], r["checkpoint_sha256"]) for r in read_audit(tmp_path / source)}
              for source in outputs}
    assert logged["generator"] == {(None, None, file_sha256(checkpoint))}
    assert logged["model"] == logged["default"] == {(None, "m", file_sha256(weights))}
    assert {Image.open(p).text["medgan_nb:model"] for p in outputs["model"]} == {"m"}
    assert all("medgan_nb:model" not in Image.open(p).text for p in outputs["checkpoint"])


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "m"}, "give one of checkpoint, model and generator, not checkpoint and model"),
    ({"checkpoint": None, "generator": Pointwise()}, "the generator has no checkpoint_sha256"),
])
def test_weights_come_from_exactly_one_named_source(images, checkpoint, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        enhance(images, tmp_path / "out", **{"checkpoint": checkpoint, **kwargs}, device="cpu", quiet=True)
    assert not (tmp_path / "out").exists()


class Identity(torch.nn.Module):
    """A stand-in generator that returns its input: what comes out must be what went in."""

    size_multiple = 8
    backend = "identity"
    checkpoint_sha256 = "0" * 64

    def forward(self, x):
        return x


@pytest.fixture
def identity(monkeypatch):
    monkeypatch.setattr(inference_files, "load_generator", lambda path, device: (Identity(), None))
    monkeypatch.setattr(inference_files, "fast_generator", lambda generator, backend: generator)


def test_outputs_keep_the_inputs_channels_and_bit_depth(tmp_path, checkpoint, identity):
    src = tmp_path / "in"
    src.mkdir()
    g8 = rgb(20, 28)[..., 0]
    g16 = rgb16(20, 28)[..., 0]
    c16 = rgb16(20, 28)
    Image.fromarray(g8).save(src / "g8.png")
    Image.fromarray(g16).save(src / "g16.png")
    (src / "c16.png").write_bytes(png16(c16))
    tifffile.imwrite(src / "t16.tif", c16, photometric="rgb")
    tifffile.imwrite(src / "f.tif", np.full((20, 28), 0.25, np.float32))
    Image.fromarray(rgb(20, 28)).save(src / "c8.png")
    out = tmp_path / "out"
    enhance(src, out, checkpoint, device="cpu", quiet=True)
    modes = {p.name: Image.open(p).mode for p in out.glob("*.png")}
    assert modes == {"g8.png": "L", "g16.png": "I;16", "c16.png": "RGB", "t16.png": "RGB", "f.png": "I;16",
                     "c8.png": "RGB"}                            # Pillow shows 16-bit colour as RGB
    np.testing.assert_array_equal(np.asarray(Image.open(out / "g8.png")), g8)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "g16.png")), g16)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "f.png")), 16384)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "c8.png")), rgb(20, 28))
    for name in ("c16.png", "t16.png"):                          # 16-bit RGB, 1000 and 1001 still apart
        back = decode_image(out / name)
        assert back.bits == 16 and not back.grayscale, name
        np.testing.assert_array_equal(np.round(back.pixels * 65535).astype(np.uint16), c16)
        assert Image.open(out / name).text["medgan_nb:ai_enhanced"] == "true"
    bits = {Path(r["output"]).name: (r["channels"], r["bits"]) for r in read_audit(out)}
    assert bits == {"g8.png": (1, 8), "g16.png": (1, 16), "c16.png": (3, 16), "t16.png": (3, 16),
                    "f.png": (1, 16), "c8.png": (3, 8)}


def test_label_on_grayscale_and_16_bit_outputs(tmp_path, checkpoint, identity):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.full((48, 64), 30000, np.uint16)).save(src / "g16.png")
    (src / "c16.png").write_bytes(png16(np.full((48, 64, 3), 30000, np.uint16)))
    enhance(src, tmp_path / "out", checkpoint, device="cpu", quiet=True, label=True)
    for name in ("g16.png", "c16.png"):
        a = np.round(decode_image(tmp_path / "out" / name).pixels * 65535)
        assert a[1, 1].max() < 2000 and a[:6, :24].max() > 40000         # light text on a dark box
        assert (a[30:, 40:] == 30000).all()                            # the rest untouched


@pytest.mark.parametrize("record", [False, True])
def test_file_names_that_are_not_utf8_are_enhanced_and_logged_as_valid_json(tmp_path, checkpoint, record):
    src = tmp_path / "in"
    src.mkdir()
    name = os.fsdecode(b"bad\xff.png")
    Image.fromarray(rgb(24, 24)).save(src / name)
    (src / os.fsdecode(b"broken\xfe.png")).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    kwargs = {"record_source_name": True} if record else {}
    written = enhance(src, out, checkpoint, device="cpu", quiet=True, on_error="skip", **kwargs)
    assert written == [out / name]                                  # the same bytes, under out/
    record_ = json.loads((out / "audit.jsonl").read_bytes().decode("utf-8"))     # strict UTF-8, valid JSON
    assert record_["input"] == str((src / "bad").resolve()) + "\\xff.png"
    assert record_["output"] == str((out / "bad").resolve()) + "\\xff.png"
    meta = Image.open(written[0]).text
    assert meta.get("medgan_nb:source") == ("bad\\xff.png" if record else None)
    assert meta["medgan_nb:source_sha256"] == record_["input_sha256"] == file_sha256(src / name)
