"""The measures that see what a GAN adds: sharpness ratios against the clean frame, and the naturalness model."""

import json

import numpy as np
import pytest
import torch

from medgan_nb.config.config import Config
from medgan_nb.data.datasets import default_dataset
from medgan_nb.degrade.ops import gaussian_blur
from medgan_nb.naturalness import fit_naturalness, image_features, load_naturalness
from medgan_nb.sharpness import gradient_energy, gradient_energy_ratio, hf_power, hf_power_ratio
from medgan_nb.utils.images import luminance


def _frames(split: str, n: int) -> torch.Tensor:
    """The first n frames of a split of the shipped sample, 256² centre crops in [-1, 1], as evaluations see them."""
    cfg = Config.from_preset("quality", image_size=256, frame_size=256, train_crop="none")
    data = default_dataset(split, cfg)
    return torch.stack([data[i][0] for i in range(min(n, len(data)))])


@pytest.fixture(scope="module")
def clean():
    return _frames("test", 6)


def _blurred(x: torch.Tensor, sigma: float = 1.5) -> torch.Tensor:
    return gaussian_blur(x, torch.full((len(x),), sigma), kernel_size=9)


def _noisy(x: torch.Tensor, std: float = 0.05) -> torch.Tensor:
    return (x + 2 * std * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)


def test_luminance_is_rec601_and_checks_shapes():
    x = torch.zeros(1, 3, 4, 4)
    x[:, 1] = 1.0                                   # pure green at full level, red and blue at mid-grey
    assert np.allclose(luminance(x), 0.299 * 0.5 + 0.587 * 1.0 + 0.114 * 0.5)
    assert luminance(torch.ones(2, 1, 3, 5)).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="expected a batch"):
        luminance(torch.zeros(3, 8, 8))


def test_sharpness_ratios_are_one_for_the_truth_below_for_blur_above_for_noise(clean):
    for ratio in (gradient_energy_ratio, hf_power_ratio):
        assert np.allclose(ratio(clean, clean), 1.0)
        assert (ratio(_blurred(clean), clean) < 0.6).all()
        assert (ratio(_noisy(clean), clean) > 1.5).all()
    more_blur = gradient_energy(_blurred(clean, 2.0))
    assert (more_blur < gradient_energy(_blurred(clean, 1.0))).all()      # monotone in the blur


def test_hf_power_of_a_made_image_sits_where_its_frequency_is():
    xx = np.mgrid[:64, :64][1]
    fine = torch.from_numpy(np.sin(2 * np.pi * 0.4 * xx)).float()[None, None]      # 0.4 cycles/pixel
    coarse = torch.from_numpy(np.sin(2 * np.pi * 0.05 * xx)).float()[None, None]   # 0.05 cycles/pixel
    assert hf_power(fine)[0] > 1000 * hf_power(coarse)[0]
    assert np.isnan(hf_power_ratio(fine, torch.zeros_like(fine)))[0]                # a flat truth: no ratio
    with pytest.raises(ValueError, match="cutoff"):
        hf_power(fine, cutoff=0.6)


def test_the_shipped_naturalness_model_ranks_clean_frames_first(clean):
    model = load_naturalness()
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36) and model.n_patches > 1000
    scores = {name: model.score(x) for name, x in
              (("clean", clean), ("blurred", _blurred(clean)), ("noisy", _noisy(clean)))}
    assert not np.isnan(scores["clean"]).any()
    assert (scores["clean"] < scores["blurred"]).all() and (scores["clean"] < scores["noisy"]).all()


def test_a_model_fitted_on_training_frames_separates_clean_from_degraded_test_frames(clean, tmp_path):
    model = fit_naturalness(_frames("train", 40), fitted_on="sample train")
    assert model.n_images == 40 and model.n_patches >= 72
    path = model.save(tmp_path / "model.json")
    again = load_naturalness(path)
    assert np.array_equal(again.mean, model.mean) and np.array_equal(again.cov, model.cov)
    clean_score = np.mean(again.score(clean))
    assert clean_score < np.mean(again.score(_blurred(clean))) and clean_score < np.mean(again.score(_noisy(clean)))


def test_naturalness_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="sharp patches"):
        fit_naturalness(torch.zeros(2, 3, 64, 64))                    # flat images have no sharp patch
    with pytest.raises(ValueError, match="patch must be even"):
        image_features(np.zeros((16, 16)), 32)
    (tmp_path / "other.json").write_text(json.dumps({"mean": [0] * 36}))
    with pytest.raises(ValueError, match="not a naturalness model"):
        load_naturalness(tmp_path / "other.json")
    flat = load_naturalness().score(torch.zeros(1, 3, 64, 64))
    assert np.isnan(flat).all()                                      # no patch to score: NaN, never a number


def test_gradient_energy_in_a_mask_counts_only_its_pixels():
    x = torch.full((1, 1, 8, 8), -1.0)
    x[..., :, 4:] = torch.tensor([-1.0, 1.0]).repeat(2)      # the right half alternates: all the energy is there
    left, right = np.zeros((8, 8), bool), np.zeros((8, 8), bool)
    left[:, :4], right[:, 5:] = True, True
    assert gradient_energy(x, left)[0] == 0 and gradient_energy(x, right)[0] == pytest.approx(1.0)   # (±1)² across, 0 down
    assert np.isnan(gradient_energy(x, np.eye(8, dtype=bool)))[0]          # no two mask pixels are neighbours
    assert gradient_energy_ratio(x, x, right)[0] == 1.0
