"""Results first (medgan_nb.figures.showcase): shipped models beside a classic on shipped test frames."""
import numpy as np
import pytest
import torch
from PIL import Image
from test_pretrained import tiny_generator

import medgan_nb.models.zoo as models_zoo
from medgan_nb.config import Config
from medgan_nb.evaluation import NO_HARM_DB, run_gan
from medgan_nb.figures import compare, hero_figure
from medgan_nb.metrics import psnr
from medgan_nb.models import load_model, save_model

GRID = {"noise_stds": [0.0, 0.1], "blur_sigmas": [0.0, 1.0], "no_harm_db": NO_HARM_DB,
        "model_minus_identity": [[0.0, -0.5], [3.0, 2.0]], "images": 2}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    save_model(tiny_generator(0), Config.from_preset("tiny"), "tiny-a",
               {"summary": "a test model", "default": True, "scores": {"grid": GRID}}, folder)
    monkeypatch.setattr(models_zoo, "WEIGHTS_DIR", folder)
    return folder


def test_compare_restores_shipped_test_frames_and_scores_every_column(folder):
    result = compare("tiny-a", n=2, size=64, classic="median")
    assert list(result.images) == ["degraded", "median", "tiny-a", "clean"] and len(result.keys) == 2
    assert all(v.shape == (2, 3, 64, 64) for v in result.images.values())
    clean = result.images["clean"]
    for name, values in result.psnr.items():
        np.testing.assert_allclose(values, psnr(result.images[name], clean))
    expected, _ = run_gan(load_model("tiny-a")[0], result.images["degraded"], "cpu")
    assert torch.equal(result.images["tiny-a"], expected)
    again = compare("tiny-a", n=2, size=64, classic="median")          # per-image seeds: the same inputs
    assert torch.equal(again.images["degraded"], result.images["degraded"])
    assert (result.psnr["degraded"] < 40).all()                         # really degraded


def test_hero_figure_writes_a_png_with_the_cards_grid(folder, tmp_path):
    path = hero_figure(tmp_path / "docs" / "hero.png", model="tiny-a", n=1)
    assert path.is_file() and Image.open(path).size[0] > 1000
