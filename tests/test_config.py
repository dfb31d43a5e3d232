import json

import pytest

from medgan_nb.config import DEGRADATION_SETS, PRESETS, Config, notebook_config


def test_original_preset_is_the_original_recipe():
    c = Config.from_preset("original")
    assert (c.image_size, c.batch_size, c.epochs) == (256, 4, 50)
    assert (c.lr_g, c.lr_d, c.beta1) == (2e-4, 1e-4, 0.5)
    assert (c.lambda_l1, c.lambda_perceptual, c.g_steps) == (70.0, 10.0, 3)
    assert (c.noise_std, c.noise_std_range, c.sp_amount) == (0.15, 0.05, 0.01)
    assert (c.blur_kernel, c.blur_sigma) == (5, (0.1, 2.0))
    assert (c.brightness, c.contrast, c.saturation, c.hue) == (0.2, 0.2, 0.2, 0.05)
    assert (c.lr_decay_start, c.save_every, c.log_every) == (30, 5, 10)
    assert (c.depth, c.base_channels, c.max_channels, c.dropout) == (8, 64, 512, 0.5)
    assert c.degradations == ("noise", "salt_pepper", "blur", "color_jitter")
    assert c.degradation_order == "original" and c.resize == "squash" and c.gan_mode == "vanilla"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_consistent(name):
    c = Config.from_preset(name)
    assert c.preset == name
    assert c.image_size % 2**c.depth == 0


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_load_round_trip(tmp_path, suffix):
    c = Config.from_preset("demo", epochs=3, blur_sigma=(0.5, 1.5), data_dir="x/y")
    path = c.save(tmp_path / f"cfg{suffix}")
    back = Config.load(path)
    assert back == c
    assert isinstance(back.blur_sigma, tuple) and back.blur_sigma == (0.5, 1.5)


def test_unknown_key_is_an_error_naming_it(tmp_path):
    with pytest.raises(KeyError, match="learning_rate"):
        Config.from_dict({"learning_rate": 1.0})
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"preset": "tiny", "epocs": 3}))
    with pytest.raises(KeyError, match="epocs"):
        Config.load(path)


def test_a_partial_file_takes_the_rest_from_its_preset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("preset: tiny\nepochs: 7\n")
    c = Config.load(path)
    assert c.epochs == 7 and c.image_size == Config.from_preset("tiny").image_size


@pytest.mark.parametrize("changes, message", [
    (dict(image_size=100), "not divisible by 8 .the generator halves it 3 times"),
    (dict(epochs="ten"), "epochs: expected int"),
    (dict(lr_g="fast"), "lr_g: expected float"),
    (dict(blur_sigma=[1.0]), "blur_sigma: expected 2 values"),
    (dict(split_ratios=(0.5, 0.5, 0.5)), "split_ratios"),
    (dict(degradations=("noise", "rain")), "rain"),
    (dict(degradations="fog"), "fog"),
    (dict(blur_kernel=4), "odd"),
    (dict(gan_mode="wgan"), "gan_mode"),
    (dict(resize="stretch"), "resize"),
])
def test_bad_values_are_rejected_with_a_message(changes, message):
    with pytest.raises(ValueError, match=message):
        Config.from_preset("tiny", **changes)


def test_named_degradation_set_and_replace():
    c = Config.from_preset("tiny").replace(degradations="endoscopy")
    assert c.degradations == DEGRADATION_SETS["endoscopy"]
    assert c.replace(lr_g=1).lr_g == 1.0 and isinstance(c.replace(lr_g=1).lr_g, float)
    with pytest.raises(ValueError, match="unknown preset"):
        Config.from_preset("huge")


def test_config_without_a_preset_is_the_original_preset():
    """`Config()` is the original preset, and the field `preset` says which preset a config started from."""
    assert Config() == Config.from_preset("original")
    assert Config().preset == "original"
    assert Config.from_dict({"epochs": 3}).epochs == 3 and Config.from_dict({"epochs": 3}).preset == "original"


@pytest.mark.parametrize("changes, message", [
    (dict(blur_sigma=(2.0, 1.0)), "blur_sigma"),                      # low > high
    (dict(blur_sigma=(-1.0, 1.0)), "blur_sigma"),
    (dict(split_ratios=(1.0, 0.0, 0.0)), "split_ratios"),             # passed, then crashed on an empty val split
    (dict(jpeg_quality=(0, 500)), "jpeg_quality"),                    # was accepted
    (dict(degradation_order="original", degradations=("noise", "jpeg")), "no place in the 'original' order"),
    (dict(noise_std=0.05, noise_std_range=0.1), "noise_std_range"),
    (dict(bad_images="ignore"), "bad_images"),
])
def test_values_that_would_fail_later_are_rejected_now(changes, message):
    with pytest.raises(ValueError, match=message):
        Config.from_preset("tiny", **changes)


def test_zero_blur_sigma_is_valid_and_means_no_blur():
    """Issue 9: blur_sigma=[0, 0] gave NaN kernels."""
    import torch

    from medgan_nb.degrade import Degradation
    cfg = Config.from_preset("tiny", degradations=("blur",), blur_sigma=(0.0, 0.0))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(Degradation(cfg)(x).image, x)


def test_output_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDGAN_OUTPUT", str(tmp_path))
    assert Config.from_preset("tiny").output_dir == str(tmp_path)
    assert notebook_config().output_dir == str(tmp_path)
    monkeypatch.delenv("MEDGAN_OUTPUT")
    assert Config.from_preset("tiny").output_dir == "output"


def test_configs_saved_with_the_old_seed_names_load_as_original(tmp_path):
    """The preset and the degradation order once called "seed" are "original"; old configs and checkpoints load."""
    old = {**Config.from_preset("original").to_dict(), "preset": "seed", "degradation_order": "seed"}
    assert Config.from_dict(old) == Config.from_preset("original")
    (tmp_path / "old.json").write_text(json.dumps({"preset": "seed", "epochs": 3}))
    assert Config.load(tmp_path / "old.json") == Config.from_preset("original", epochs=3)
    assert Config.from_preset("seed") == Config.from_preset("original")
    assert Config().replace(degradations="seed", degradation_order="seed") == Config()
    assert Config.from_dict({"seed": 7}).seed == 7                      # the RNG seed is not a renamed value
