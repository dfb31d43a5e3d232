import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from medgan_nb.config import Config
from medgan_nb.degrade import (Degradation, color_jitter, gaussian_blur, gaussian_noise, jpeg_compression, low_light,
                               motion_blur, salt_and_pepper, seed_for, specular_glare, vignetting)
from medgan_nb.metrics import psnr


def batch(n=4, size=32, seed=0):
    """Smooth random images in [-1, 1] (away from the clipping limits)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear") * 1.2 - 0.6


def test_gaussian_noise_has_the_requested_std_in_unit_range():
    x = torch.zeros(2, 3, 64, 64)
    out = gaussian_noise(x, torch.tensor([0.05, 0.1]), torch.Generator().manual_seed(0))
    residual_std = (out - x).std(dim=(1, 2, 3))          # [-1, 1] is twice the [0, 1] range
    torch.testing.assert_close(residual_std, torch.tensor([0.1, 0.2]), atol=0.005, rtol=0)
    assert out.abs().max() <= 1


def test_salt_and_pepper_hits_whole_pixels_at_the_requested_rate():
    x = torch.zeros(4, 3, 128, 128)
    out = salt_and_pepper(x, 0.05, salt_ratio=0.25, generator=torch.Generator().manual_seed(0))
    hit = (out != 0).any(dim=1)                          # (N, H, W)
    assert abs(hit.float().mean().item() - 0.05) < 0.005
    ch = out.permute(0, 2, 3, 1)[hit]                    # every hit pixel: all 3 channels equal, +1 or -1
    assert (ch == ch[:, :1]).all() and set(ch[:, 0].unique().tolist()) == {-1.0, 1.0}
    assert abs((ch[:, 0] == 1).float().mean().item() - 0.25) < 0.05


def test_blur_matches_torchvision_per_image():
    x = batch(3, 32)
    sigma = torch.tensor([0.5, 1.0, 2.0])
    out = gaussian_blur(x, sigma, 5)
    for i in range(3):
        expected = TF.gaussian_blur(x[i], [5, 5], [sigma[i].item()] * 2)
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=0)


def test_motion_blur_smears_along_its_direction_only():
    stripes = torch.zeros(1, 3, 32, 32)
    stripes[..., ::4, :] = 1.0                          # horizontal lines
    along = motion_blur(stripes, torch.tensor([7.0]), torch.tensor([0.0]))           # horizontal motion
    across = motion_blur(stripes, torch.tensor([7.0]), torch.tensor([math.pi / 2]))  # vertical motion
    torch.testing.assert_close(along, stripes, atol=1e-5, rtol=0)
    assert (across - stripes).abs().max() > 0.3
    torch.testing.assert_close(across.mean(), stripes.mean(), atol=0.02, rtol=0)


def test_color_jitter_matches_torchvision_per_image():
    x = batch(3, 32)
    factors = [torch.tensor(v) for v in ([0.8, 1.0, 1.2], [1.2, 0.8, 1.0], [0.9, 1.2, 0.8], [0.05, -0.03, 0.0])]
    out = color_jitter(x, *factors)
    for i in range(3):
        b, c, s, h = (f[i].item() for f in factors)
        img = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness((x[i] + 1) / 2, b), c), s), h)
        torch.testing.assert_close((out[i] + 1) / 2, img, atol=1e-5, rtol=0)


def test_color_jitter_identity_and_brightness():
    x = batch(2)
    one, zero = torch.ones(2), torch.zeros(2)
    torch.testing.assert_close(color_jitter(x, one, one, one, zero), x, atol=1e-5, rtol=0)
    darker = color_jitter(x, torch.tensor([0.5, 1.0]), one, one, zero)
    torch.testing.assert_close(((darker[0] + 1) / 2), ((x[0] + 1) / 2) * 0.5, atol=1e-5, rtol=0)


def test_low_light_vignetting_glare_and_jpeg():
    x = torch.full((2, 3, 64, 64), 0.6)                 # 0.8 in [0, 1]
    dark = low_light(x, torch.tensor([0.5, 1.0]), torch.tensor([1.0, 1.0]))
    torch.testing.assert_close((dark[0] + 1) / 2, torch.full((3, 64, 64), 0.4))
    v = vignetting(x, torch.tensor([0.5, 0.5]))
    assert v[0, :, 32, 32].mean() > v[0, :, 0, 0].mean() + 0.3
    spots = specular_glare(x, torch.tensor([[[0.5, 0.25]]] * 2), torch.tensor([[0.05]] * 2), torch.tensor([[1.0], [0.0]]))
    assert spots[0, :, 32, 16].min() > 0.99 and torch.equal(spots[1], x[1])
    detail = batch(2, 64)
    q10, q90 = jpeg_compression(detail, torch.tensor([10, 90])), jpeg_compression(detail, torch.tensor([90, 10]))
    assert psnr(q10[:1], detail[:1]) < psnr(q90[:1], detail[:1])


def test_seed_order_blurs_the_salt_and_pepper_physical_order_does_not():
    cfg = Config.preset("tiny", degradations=("noise", "salt_pepper", "blur"), sp_amount=0.05, noise_std=0.0,
                        noise_std_range=0.0, blur_sigma=(1.5, 1.5))
    x = torch.zeros(2, 3, 64, 64)
    seed = Degradation(cfg.replace(degradation_order="seed"))
    physical = Degradation(cfg.replace(degradation_order="physical"))
    assert seed.steps == ("noise", "salt_pepper", "blur") and physical.steps == ("blur", "noise", "salt_pepper")
    g = torch.Generator().manual_seed(0)
    assert (seed(x, g).image.abs() == 1).float().mean() < 0.001         # specks smeared into blobs
    assert (physical(x, g).image.abs() == 1).float().mean() > 0.04      # specks stay sharp, as on a sensor


def test_pipeline_returns_per_image_params_and_keeps_shape_and_range():
    for name in ("seed", "endoscopy"):
        cfg = Config.preset("tiny", degradations=name, degradation_order="physical")
        out = Degradation(cfg)(batch(3))
        assert out.image.shape == (3, 3, 32, 32) and out.image.abs().max() <= 1
        assert all(v.shape[0] == 3 for v in out.params.values())
    out = Degradation(Config.preset("seed"))(batch(3))
    assert set(out.params) == {"noise_std", "sp_amount", "blur_sigma", "brightness", "contrast", "saturation", "hue"}
    assert ((out.params["noise_std"] >= 0.1) & (out.params["noise_std"] <= 0.2)).all()
    assert ((out.params["blur_sigma"] >= 0.1) & (out.params["blur_sigma"] <= 2.0)).all()


def test_generator_makes_batches_reproducible():
    d, x = Degradation(Config.preset("seed")), batch(4)
    a = d(x, torch.Generator().manual_seed(1))
    b = d(x, torch.Generator().manual_seed(1))
    c = d(x, torch.Generator().manual_seed(2))
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)


def test_keys_give_each_image_the_same_degradation_in_any_batch():
    d, x = Degradation(Config.preset("seed")), batch(4)
    keys = ["a.png", "b.png", "c.png", "d.png"]
    whole = d(x, keys=keys)
    torch.manual_seed(123)                                   # global RNG state must not matter
    part = d(x[[2, 0]], keys=[keys[2], keys[0]])
    torch.testing.assert_close(part.image, whole.image[[2, 0]], atol=0, rtol=0)
    assert torch.equal(part.params["blur_sigma"], whole.params["blur_sigma"][[2, 0]])
    assert seed_for("a.png", 42) != seed_for("a.png", 43) != seed_for("b.png", 43)
    with pytest.raises(ValueError, match="2 keys for 4 images"):
        d(x, keys=keys[:2])


def test_switches_and_errors():
    cfg = Config.preset("seed")
    assert Degradation(cfg, names=("blur",)).steps == ("blur",)
    assert torch.equal(Degradation(cfg, names=())(batch(1)).image, batch(1))
    with pytest.raises(ValueError, match="physical"):
        Degradation(cfg.replace(degradations="endoscopy"))           # jpeg has no place in the seed order
    with pytest.raises(ValueError, match="N, 3, H, W"):
        Degradation(cfg)(torch.zeros(3, 32, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_keyed_degradations_are_identical_on_gpu():
    d, x = Degradation(Config.preset("seed")), batch(2)
    cpu = d(x, keys=["a", "b"]).image
    gpu = d(x.cuda(), keys=["a", "b"]).image
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ probabilistic and mixed-order degradation
def test_degradation_p_leaves_some_images_clean_and_reports_the_true_noise():
    cfg = Config.preset("tiny", degradations=("noise",), degradation_p=0.5, noise_std=0.1, noise_std_range=0.0)
    x = torch.zeros(200, 3, 8, 8)
    out = Degradation(cfg)(x, generator=torch.Generator().manual_seed(0))
    hit = out.params["noise_applied"].bool()
    assert 70 < hit.sum() < 130                                        # about half
    assert torch.equal(out.image[~hit], x[~hit])                       # the others untouched
    assert (out.image[hit] != 0).any(dim=(1, 2, 3)).all()
    assert torch.equal(out.params["noise_std"], torch.where(hit, 0.1, 0.0))


def test_degradation_p_one_draws_nothing_extra_so_the_seed_streams_stay():
    cfg = Config.preset("tiny")
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a = Degradation(cfg)(x, keys=list("abcd"))
    b = Degradation(cfg.replace(degradation_p=1.0))(x, keys=list("abcd"))
    assert torch.equal(a.image, b.image) and "noise_applied" not in a.params


def test_salt_and_pepper_amount_range():
    cfg = Config.preset("tiny", degradations=("salt_pepper",), sp_amount=0.02, sp_amount_range=0.01)
    amounts = Degradation(cfg)(torch.zeros(100, 3, 4, 4), generator=torch.Generator().manual_seed(1)).params["sp_amount"]
    assert 0.01 <= amounts.min() < 0.013 and 0.027 < amounts.max() <= 0.03
    with pytest.raises(ValueError, match="sp_amount_range"):
        Config.preset("tiny", sp_amount=0.01, sp_amount_range=0.02)


def test_mixed_order_blurs_the_noise_for_some_images_and_noises_the_blur_for_others():
    cfg = Config.preset("tiny", degradations=("noise", "blur"), degradation_order="mixed", blur_sigma=(2.0, 2.0),
                        blur_kernel=9, noise_std=0.1, noise_std_range=0.0)
    x = torch.zeros(64, 3, 32, 32)
    out = Degradation(cfg)(x, generator=torch.Generator().manual_seed(0))
    physical = out.params["physical_order"].bool()
    assert 16 < physical.sum() < 48
    # blurred noise (seed order) has far less pixel-to-pixel variation than noise added after the blur
    step = (out.image[..., 1:] - out.image[..., :-1]).std(dim=(1, 2, 3))
    assert step[physical].min() > 2 * step[~physical].max()
    per_image = Degradation(cfg)(x[:6], keys=list("abcdef")).params["physical_order"]   # one image per call
    assert per_image.shape == (6,) and set(per_image.tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="no place"):
        Config.preset("tiny", degradations=("glare",), degradation_order="mixed")
