"""The noise guard (medgan_nb.models.guard): its noise estimate, its blend, and where enhance/evaluate/load_model use it."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_pretrained import REPO, tiny_generator

import medgan_nb.models.zoo as models_zoo
from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.degrade import gaussian_noise
from medgan_nb.evaluation import run_gan
from medgan_nb.inference import enhance_array
from medgan_nb.models import Guard, load_model, noise_level, save_model
from medgan_nb.utils import from_numpy_images

SAMPLE = REPO / "data" / "kvasir-sample" / "images"
FRAMES = ("cju14pxbaoksp0835qzorx6g6.jpg", sorted(p.name for p in SAMPLE.glob("*.jpg"))[0])


def shipped_frames() -> list[np.ndarray]:
    """Two shipped Kvasir-SEG frames (edges, vessels, specular highlights, black borders), 256², uint8."""
    return [np.asarray(Image.open(SAMPLE / name).convert("RGB").resize((256, 256))) for name in FRAMES]


@pytest.fixture(scope="module")
def photos():
    """The shipped frames as a batch (2, 3, 256, 256) in [-1, 1]."""
    return torch.stack([from_numpy_images(f.astype(np.float32) / 255) for f in shipped_frames()])


@pytest.mark.parametrize("std", [0.01, 0.02, 0.05, 0.1])
def test_noise_level_reads_the_added_noise_through_edges_and_texture(photos, std):
    noisy = gaussian_noise(photos, std, torch.Generator().manual_seed(0))
    assert noise_level(noisy).tolist() == pytest.approx([std, std], rel=0.15)


def test_noise_level_is_low_on_clean_endoscopy_frames_and_zero_without_texture(photos):
    assert (noise_level(photos) < 0.005).all()
    flat = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)       # a ramp: no noise at all
    assert noise_level(flat).item() == pytest.approx(0, abs=1e-6)
    with pytest.raises(ValueError, match="H, W >= 3"):
        noise_level(torch.zeros(3, 8, 8))


def test_guard_returns_clean_inputs_unchanged_and_noisy_ones_restored(photos):
    guard = Guard()
    noisy = gaussian_noise(photos[:1], 0.05, torch.Generator().manual_seed(1))
    batch = torch.cat([photos[:1], noisy])
    restored = batch + 0.01                                   # a small correction: 0.005 RMS in [0, 1] units
    out = guard(batch, restored)
    assert guard.strength(batch, restored).tolist() == [0.0, 1.0]
    assert torch.equal(out[0], batch[0]) and torch.equal(out[1], restored[1])


def test_a_large_correction_is_applied_even_without_visible_noise(photos):
    """Noise blurred after it was added reads as a low noise level; the correction's size lets it through."""
    guard = Guard()
    m = guard.measure(photos, photos + 2 * 0.03)              # 0.03 RMS: more than clean frames ever get
    assert (m["noise_level"] < guard.below).all() and m["change"].tolist() == pytest.approx([0.03, 0.03])
    assert m["strength"].tolist() == [1.0, 1.0]
    half = guard.change_below + (guard.change_full - guard.change_below) / 2
    assert guard.strength(photos, photos + 2 * half).tolist() == pytest.approx([0.5, 0.5], abs=1e-4)


def test_a_sparse_correction_does_not_count_but_a_spread_one_does(photos):
    """A clean frame's correction sits on a few sharp spots (text, highlights): large by RMS, nil by its median."""
    guard = Guard()
    spots = torch.zeros_like(photos)
    spots[..., :8, :] = 0.5                                   # 3 % of the rows changed by 0.25 in [0, 1] units
    m = guard.measure(photos, photos + spots)
    assert m["change"].tolist() == [0.0, 0.0] and m["strength"].tolist() == [0.0, 0.0]
    rms = Guard(change_below=0.023, change_full=0.027, change_stat="rms")
    assert rms.strength(photos, photos + spots).tolist() == [1.0, 1.0]       # the RMS (0.044) would apply it
    spread = torch.full_like(photos, 2 * 0.02)                # every pixel by 0.02: blurred noise being removed
    assert guard.measure(photos, photos + spread)["change"].tolist() == pytest.approx([0.02, 0.02])
    with pytest.raises(ValueError, match="change_stat must be one of"):
        Guard(change_stat="mean")
    assert Guard.from_card({"below": 0.01, "full": 0.02}).change_stat == "rms"
    assert Guard.from_card(Guard().to_dict()) == Guard()


def test_guard_ramps_linearly_between_its_thresholds(photos):
    guard = Guard(below=0.01, full=0.03)
    x = torch.zeros(6, 3, 16, 16)
    sigma = torch.tensor([0.0, 0.01, 0.015, 0.02, 0.03, 0.5])
    noisy = x + torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 * sigma.view(-1, 1, 1, 1)
    expected = ((noise_level(noisy) - 0.01) / 0.02).clamp(0, 1)
    assert guard.strength(noisy, noisy).tolist() == pytest.approx(expected.tolist())   # no change: noise decides
    for kwargs in (dict(below=0.02, full=0.01), dict(below=-0.1), dict(change_below=0.03, change_full=0.03)):
        with pytest.raises(ValueError, match="need 0 <="):
            Guard(**kwargs)


class Halve(torch.nn.Module):
    size_multiple = 4

    def forward(self, x):
        return x / 2


def test_enhance_array_applies_the_guard_to_the_whole_image():
    img = np.random.default_rng(0).random((20, 24, 3), dtype=np.float32)
    full = enhance_array(Halve(), img)
    np.testing.assert_allclose(full, (img * 2 - 1) / 2 / 2 + 0.5, atol=1e-6)         # x/2 in [-1, 1] units
    guard = Guard(below=10.0, full=20.0, change_below=10.0, change_full=20.0)        # never applies the model
    np.testing.assert_allclose(enhance_array(Halve(), img, guard=guard), img, atol=1e-6)
    assert np.array_equal(enhance_array(Halve(), img, guard=Guard(0, 1e-9, 0, 1e-9)), full)   # always


@pytest.fixture
def guarded_folder(tmp_path, monkeypatch):
    """A weights folder with one guarded model (the default) and one without a guard."""
    folder = tmp_path / "weights"
    cfg = Config.from_preset("tiny")
    save_model(tiny_generator(0), cfg, "guarded", {"summary": "with a guard", "default": True,
                                                   "guard": {"below": 0.008, "full": 0.014, "change_below": 10.0,
                                                             "change_full": 20.0}}, folder)
    save_model(tiny_generator(0), cfg, "plain", {"summary": "without"}, folder)
    monkeypatch.setattr(models_zoo, "WEIGHTS_DIR", folder)
    return folder


def test_load_model_carries_the_cards_guard_and_run_gan_applies_it(guarded_folder, photos):
    generator, _, _ = load_model("guarded")
    # a card without "change_stat" was written when the guard measured the RMS of the correction
    assert generator.guard == Guard(0.008, 0.014, 10.0, 20.0, "rms") and load_model("plain")[0].guard is None
    out, _ = run_gan(generator, photos, "cpu")
    assert torch.equal(out, photos)                       # clean photographs: returned unchanged
    generator.guard = None
    assert not torch.equal(run_gan(generator, photos, "cpu")[0], photos)


@pytest.mark.parametrize("flags, unchanged", [([], True), (["--no-guard"], False)])
def test_enhance_writes_clean_images_unchanged_and_logs_the_guard(guarded_folder, tmp_path, flags, unchanged):
    src = tmp_path / "in" / "photo.png"
    src.parent.mkdir()
    pixels = shipped_frames()[0]
    Image.fromarray(pixels).save(src)
    out = tmp_path / "out"
    assert main(["enhance", str(src), "--out", str(out), "--quiet", *flags]) == 0
    assert np.array_equal(np.asarray(Image.open(out / "photo.png")), pixels) == unchanged
    record = json.loads((out / "audit.jsonl").read_text())
    if unchanged:
        assert record["guard"]["strength"] == 0.0 and record["guard"]["noise_level"] < 0.008
        assert record["guard"]["below"] == 0.008 and record["guard"]["change"] > 0
    else:
        assert record["guard"] is None


@pytest.mark.parametrize("guard", [{"below": 0.02, "full": 0.01}, {"low": 0.0}, [0.1, 0.2]])
def test_bad_guards_are_refused_before_writing(tmp_path, guard):
    with pytest.raises(models_zoo.PretrainedError, match='"guard" must be'):
        save_model(tiny_generator(0), Config.from_preset("tiny"), "x", {"summary": "s", "guard": guard}, tmp_path)
    assert not list(tmp_path.iterdir())


def test_evaluate_records_the_guard_and_can_leave_it_out(guarded_folder, tmp_path):
    from medgan_nb.evaluation import evaluate
    common = dict(cfg=Config.from_preset("tiny", max_images=0), model="guarded", baselines=("identity",),
                  breakdown=False, max_images=2, quiet=True)
    with_guard = evaluate(None, tmp_path / "a", **common)
    without = evaluate(None, tmp_path / "b", guard=False, **common)
    assert with_guard["metadata"]["guard"] == {"below": 0.008, "full": 0.014, "change_below": 10.0,
                                               "change_full": 20.0, "change_stat": "rms"}
    assert without["metadata"]["guard"] is None
    other = Guard(0.5, 0.6, 0.5, 0.6)                        # never applies the model on these inputs
    given = evaluate(None, tmp_path / "c", guard=other, **common)
    assert given["metadata"]["guard"] == other.to_dict()
    assert given["results"]["all"]["gan"]["psnr_mean"] == given["results"]["all"]["identity"]["psnr_mean"]
