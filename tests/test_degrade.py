import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

import medgan_nb.degrade.pipeline as degrade_pipeline
from medgan_nb.config import Config
from medgan_nb.degrade import (
    Degradation,
    color_jitter,
    gaussian_blur,
    gaussian_kernels,
    gaussian_noise,
    jpeg_compression,
    low_light,
    motion_blur,
    salt_and_pepper,
    shift_hue,
    specular_glare,
    vignetting,
)
from medgan_nb.metrics import psnr
from medgan_nb.utils import seed_for


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
    cfg = Config.from_preset("tiny", degradations=("noise", "salt_pepper", "blur"), sp_amount=0.05, noise_std=0.0,
                        noise_std_range=0.0, blur_sigma=(1.5, 1.5))
    x = torch.zeros(2, 3, 64, 64)
    seed = Degradation(cfg.replace(degradation_order="original"))
    physical = Degradation(cfg.replace(degradation_order="physical"))
    assert seed.steps == ("noise", "salt_pepper", "blur") and physical.steps == ("blur", "noise", "salt_pepper")
    g = torch.Generator().manual_seed(0)
    assert (seed(x, g).image.abs() == 1).float().mean() < 0.001         # specks smeared into blobs
    assert (physical(x, g).image.abs() == 1).float().mean() > 0.04      # specks stay sharp, as on a sensor


def test_pipeline_returns_per_image_params_and_keeps_shape_and_range():
    for name in ("original", "endoscopy"):
        cfg = Config.from_preset("tiny", degradations=name, degradation_order="physical")
        out = Degradation(cfg)(batch(3))
        assert out.image.shape == (3, 3, 32, 32) and out.image.abs().max() <= 1
        assert all(v.shape[0] == 3 for v in out.params.values())
    out = Degradation(Config.from_preset("original"))(batch(3))
    assert set(out.params) == {"noise_std", "sp_amount", "blur_sigma", "brightness", "contrast", "saturation", "hue"}
    assert ((out.params["noise_std"] >= 0.1) & (out.params["noise_std"] <= 0.2)).all()
    assert ((out.params["blur_sigma"] >= 0.1) & (out.params["blur_sigma"] <= 2.0)).all()


def test_generator_makes_batches_reproducible():
    d, x = Degradation(Config.from_preset("original")), batch(4)
    a = d(x, torch.Generator().manual_seed(1))
    b = d(x, torch.Generator().manual_seed(1))
    c = d(x, torch.Generator().manual_seed(2))
    assert torch.equal(a.image, b.image) and not torch.equal(a.image, c.image)


def test_keys_give_each_image_the_same_degradation_in_any_batch():
    d, x = Degradation(Config.from_preset("original")), batch(4)
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
    cfg = Config.from_preset("original")
    assert Degradation(cfg, names=("blur",)).steps == ("blur",)
    assert torch.equal(Degradation(cfg, names=())(batch(1)).image, batch(1))
    with pytest.raises(ValueError, match="physical"):
        Degradation(cfg.replace(degradations="endoscopy"))           # jpeg has no place in the seed order
    with pytest.raises(ValueError, match="N, 3, H, W"):
        Degradation(cfg)(torch.zeros(3, 32, 32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_keyed_degradations_are_identical_on_gpu():
    d, x = Degradation(Config.from_preset("original")), batch(2)
    cpu = d(x, keys=["a", "b"]).image
    gpu = d(x.cuda(), keys=["a", "b"]).image
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ probabilistic and mixed-order degradation
def test_degradation_p_leaves_some_images_clean_and_reports_the_true_noise():
    cfg = Config.from_preset("tiny", degradations=("noise",), degradation_p=0.5, noise_std=0.1, noise_std_range=0.0)
    x = torch.zeros(200, 3, 8, 8)
    out = Degradation(cfg)(x, generator=torch.Generator().manual_seed(0))
    hit = out.params["noise_applied"].bool()
    assert 70 < hit.sum() < 130                                        # about half
    assert torch.equal(out.image[~hit], x[~hit])                       # the others untouched
    assert (out.image[hit] != 0).any(dim=(1, 2, 3)).all()
    assert torch.equal(out.params["noise_std"], torch.where(hit, 0.1, 0.0))


def test_degradation_p_one_draws_nothing_extra_so_the_seed_streams_stay():
    cfg = Config.from_preset("tiny")
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    a = Degradation(cfg)(x, keys=list("abcd"))
    b = Degradation(cfg.replace(degradation_p=1.0))(x, keys=list("abcd"))
    assert torch.equal(a.image, b.image) and "noise_applied" not in a.params


def test_salt_and_pepper_amount_range():
    cfg = Config.from_preset("tiny", degradations=("salt_pepper",), sp_amount=0.02, sp_amount_range=0.01)
    amounts = Degradation(cfg)(torch.zeros(100, 3, 4, 4), generator=torch.Generator().manual_seed(1)).params["sp_amount"]
    assert 0.01 <= amounts.min() < 0.013 and 0.027 < amounts.max() <= 0.03
    with pytest.raises(ValueError, match="sp_amount_range"):
        Config.from_preset("tiny", sp_amount=0.01, sp_amount_range=0.02)


def test_mixed_order_blurs_the_noise_for_some_images_and_noises_the_blur_for_others():
    cfg = Config.from_preset("tiny", degradations=("noise", "blur"), degradation_order="mixed", blur_sigma=(2.0, 2.0),
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
        Config.from_preset("tiny", degradations=("glare",), degradation_order="mixed")


# ------------------------------------------------------------------ issue 13: the fast pipeline equals the old formulas
def full_2d_blur(x, sigma, k):
    """gaussian_blur before issue 13: one k×k grouped convolution of each image with its 2-D kernel, reflect padding."""
    n, c, h, w = x.shape
    weight = gaussian_kernels(sigma, k).repeat_interleave(c, dim=0).unsqueeze(1)
    padded = torch.nn.functional.pad(x.reshape(1, n * c, h, w), (k // 2,) * 4, mode="reflect")
    return torch.nn.functional.conv2d(padded, weight, groups=n * c).reshape(n, c, h, w)


def hsv_hue_shift(u, shift):
    """shift_hue before issue 13: HSV hue through torch.where and two remainders, [0, 1] images."""
    r, g, b = u.unbind(1)
    v = torch.maximum(torch.maximum(r, g), b)
    chroma = v - torch.minimum(torch.minimum(r, g), b)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    rc, gc, bc = (v - r) / safe, (v - g) / safe, (v - b) / safe
    h = torch.where(v == r, bc - gc, torch.where(v == g, 2 + rc - bc, 4 + gc - rc))
    h = (h / 6 + shift.view(-1, 1, 1)) % 1.0
    k = (torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1) + 6 * h[:, None]) % 6
    return v[:, None] - chroma[:, None] * torch.minimum(k, 4 - k).clamp(0, 1)


def old_color_jitter(x, b, c, s, h):
    """color_jitter before issue 13: in [0, 1] units, torchvision's grey levels, the HSV hue shift."""
    b, c, s = (v.view(-1, 1, 1, 1) for v in (b, c, s))
    u = ((x + 1) / 2 * b).clamp(0, 1)
    mean = TF.rgb_to_grayscale(u).mean(dim=(-3, -2, -1), keepdim=True)
    u = (c * u + (1 - c) * mean).clamp(0, 1)
    u = (s * u + (1 - s) * TF.rgb_to_grayscale(u)).clamp(0, 1)
    return hsv_hue_shift(u, h).clamp(0, 1) * 2 - 1


def hue_test_images(n=8, size=24, seed=0):
    """Random [0, 1] images with grey pixels, ties between channels, primaries, black and white."""
    u = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))
    u[:, :, :3] = u[:, :1, :3]                                 # grey
    u[:, 1, 3:6] = u[:, 0, 3:6]                                # red == green
    u[:, 2, 6:9] = u[:, 0, 6:9]                                # red == blue
    u[:, 2, 9:12] = u[:, 1, 9:12]                              # green == blue
    u[:, :, 12:15] = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    u[:, :, 15:18] = torch.tensor([0.0, 1.0, 1.0]).view(1, 3, 1, 1)
    u[:, :, 18:21] = 0.0
    u[:, :, 21:] = 1.0
    return u


@pytest.mark.parametrize("k, size", [(3, (16, 16)), (5, (32, 32)), (5, (3, 3)), (9, (5, 7)), (15, (40, 24)), (7, (4, 64))])
def test_separable_blur_equals_the_full_2d_convolution(k, size):
    x = torch.rand(5, 3, *size, generator=torch.Generator().manual_seed(k)) * 2 - 1     # sizes down to below the kernel
    sigma = torch.tensor([0.0, 0.3, 1.0, 2.0, 6.0])
    torch.testing.assert_close(gaussian_blur(x, sigma, k), full_2d_blur(x, sigma, k), atol=1e-5, rtol=0)


def test_hue_shift_equals_the_hsv_formula_on_both_ranges():
    u = hue_test_images()
    shift = torch.tensor([-0.5, -0.3, -0.05, 0.0, 0.05, 1 / 6, 0.3, 0.5])
    expected = hsv_hue_shift(u, shift)
    torch.testing.assert_close(shift_hue(u, shift), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(shift_hue(u * 2 - 1, shift), expected * 2 - 1, atol=2e-5, rtol=0)


def test_color_jitter_equals_the_old_formula_also_where_it_clips():
    x = hue_test_images(seed=1) * 2 - 1
    g = torch.Generator().manual_seed(2)
    factors = [0.2 + 2.3 * torch.rand(8, generator=g) for _ in range(3)] + [torch.rand(8, generator=g) - 0.5]
    torch.testing.assert_close(color_jitter(x, *factors), old_color_jitter(x, *factors), atol=1e-5, rtol=0)


def test_noise_and_salt_and_pepper_equal_the_old_formulas_draw_for_draw():
    x, std = batch(3, 32), torch.tensor([0.05, 0.1, 0.2])
    old_noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).mul_(2 * std.view(-1, 1, 1, 1))
    torch.testing.assert_close(gaussian_noise(x, std, torch.Generator().manual_seed(3)), old_noise.add_(x).clamp_(-1, 1),
                               atol=1e-6, rtol=0)
    u = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(4))
    old_sp = torch.where(u < 0.2, torch.where(u < 0.2 * 0.3, 1.0, -1.0), x)
    assert torch.equal(salt_and_pepper(x, 0.2, 0.3, torch.Generator().manual_seed(4)), old_sp)


def step_by_step(d, x, g):
    """Degradation before issue 13: each step samples its parameters, then runs on the whole batch drawing its own
    pixels; in the "mixed" order each order runs on its own images (until 2026-12-07 both ran on every image)."""
    cfg = d.cfg

    def step(name, x, p):
        if name == "noise":
            return gaussian_noise(x, p["noise_std"], g)
        if name == "salt_pepper":
            return salt_and_pepper(x, p["sp_amount"], cfg.sp_salt_ratio, g)
        if name == "blur":
            return gaussian_blur(x, p["blur_sigma"], cfg.blur_kernel)
        if name == "color_jitter":
            return color_jitter(x, p["brightness"], p["contrast"], p["saturation"], p["hue"])
        if name == "motion_blur":
            return motion_blur(x, p["motion_length"], p["motion_angle"])
        if name == "low_light":
            return low_light(x, p["light_gain"], p["light_gamma"])
        if name == "vignetting":
            return vignetting(x, p["vignetting"])
        if name == "jpeg":
            return jpeg_compression(x, p["jpeg_quality"])
        active = (torch.arange(p["glare_centres"].shape[1])[None, :] < p["glare_count"][:, None]).float()
        return specular_glare(x, p["glare_centres"], p["glare_radii"], active)

    def chain(x, names):
        params = {}
        for name in names:
            p = degrade_pipeline._sample(name, cfg, x, g)
            out = step(name, x, p)
            if cfg.degradation_p < 1:
                hit = torch.rand(x.shape[0], generator=g) < cfg.degradation_p
                out = torch.where(hit.view(-1, 1, 1, 1), out, x)
                p = {**degrade_pipeline._without(name, p, hit), f"{name}_applied": hit.float()}
            x = out
            params.update(p)
        return x, params

    if d.other_steps is None:
        return chain(x, d.steps)
    physical = torch.rand(x.shape[0], generator=g) < 0.5
    image, params = torch.empty_like(x), {}
    for pick, names in ((physical, d.other_steps), (~physical, d.steps)):
        if pick.any():
            image[pick], p = chain(x[pick], names)
            for k, v in p.items():
                params.setdefault(k, torch.zeros(x.shape[0], *v.shape[1:]))[pick] = v
    return image, {**params, "physical_order": physical.float()}


PIPELINES = {"original": Config.from_preset("original"), "realtime": Config.from_preset("realtime"),
             "endoscopy": Config.from_preset("original", degradations="endoscopy", degradation_order="physical"),
             "physical_p": Config.from_preset("original", degradation_order="physical", degradation_p=0.5, blur_kernel=7,
                                         degradations=("glare", "blur", "motion_blur", "vignetting", "color_jitter",
                                                       "low_light", "noise", "salt_pepper"))}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_draws_the_same_numbers_as_step_by_step(name):
    d = Degradation(PIPELINES[name])
    for x in (batch(12, 32, seed=1), batch(3, 256, seed=2)):          # 256²: several cache-sized groups
        for seed in (0, 1):
            image, params = step_by_step(d, x, torch.Generator().manual_seed(seed))
            out = d(x, generator=torch.Generator().manual_seed(seed))
            torch.testing.assert_close(out.image, image, atol=1e-5, rtol=0)
            assert out.params.keys() == params.keys() and all(torch.equal(out.params[k], params[k]) for k in params)
        keys = [f"frame_{i}.png" for i in range(x.shape[0])]
        per_key = [step_by_step(d, x[i:i + 1], torch.Generator().manual_seed(seed_for(k, d.cfg.seed)))
                   for i, k in enumerate(keys)]
        out = d(x, keys=keys)
        torch.testing.assert_close(out.image, torch.cat([im for im, _ in per_key]), atol=1e-5, rtol=0)
        assert all(torch.equal(out.params[k], torch.cat([p[k] for _, p in per_key])) for k in out.params)


def test_pipeline_result_does_not_depend_on_the_cache_sized_groups(monkeypatch):
    x = batch(6, 64)
    for cfg in (PIPELINES["original"], PIPELINES["physical_p"]):
        monkeypatch.setattr(degrade_pipeline, "_CHUNK_BYTES", 1)                 # one image at a time
        one = Degradation(cfg)(x, generator=torch.Generator().manual_seed(5)).image
        monkeypatch.setattr(degrade_pipeline, "_CHUNK_BYTES", 2 ** 40)           # the whole batch at once
        whole = Degradation(cfg)(x, generator=torch.Generator().manual_seed(5)).image
        torch.testing.assert_close(one, whole, atol=1e-5, rtol=0)


def test_pipeline_leaves_its_input_alone_and_returns_new_memory():
    x = batch(4, 64)
    before = x.clone()
    for cfg in PIPELINES.values():
        out = Degradation(cfg)(x, generator=torch.Generator().manual_seed(0)).image
        assert torch.equal(x, before) and out.data_ptr() != x.data_ptr() and not torch.equal(out, x)


# ------------------------------------------------------------------ noise_reuse: the NoiseBank
def test_noise_bank_lends_standard_normals_and_draws_one_value_per_reuse_lent():
    bank = degrade_pipeline.NoiseBank(reuse=8)
    g = torch.Generator().manual_seed(0)
    like = torch.empty(0)
    first = bank.take((4, 3, 64, 64), g, like).clone()                    # a view, until the next take
    n = first.numel()
    assert first.shape == (4, 3, 64, 64) and bank.size == 2 * n
    assert abs(first.mean().item()) < 0.02 and abs(first.std().item() - 1) < 0.02
    before = bank.values.clone()
    bank.take((4, 3, 64, 64), g, like)
    changed = (bank.values != before).nonzero().squeeze(1)
    assert torch.equal(changed, torch.cat([torch.arange(n // 8), 2 * n + torch.arange(n // 8)]))  # and their copies
    for _ in range(15):                                                   # the ring wraps around the bank's end
        bank.take((4, 3, 64, 64), g, like)
    assert bank.ring == (16 * (n // 8)) % (2 * n)
    again = bank.take((4, 3, 64, 64), torch.Generator().manual_seed(0), like)
    assert bank.ring == 0 and torch.equal(again, first)                   # another generator: drawn again from it
    assert bank.take((9, 3, 64, 64), g, like).shape == (9, 3, 64, 64) and bank.size == 18 * 3 * 64 * 64
    assert torch.equal(bank.values[bank.size:], bank.values[:bank.size // 2])      # the first half, again


def test_noise_reuse_keeps_the_noise_and_salt_and_pepper_statistics():
    cfg = Config.from_preset("original", degradations=("noise", "salt_pepper"), noise_std=0.1, noise_std_range=0.0,
                        sp_amount=0.05, sp_salt_ratio=0.25)
    d = Degradation(cfg.replace(noise_reuse=8))
    assert d.bank is not None and Degradation(cfg).bank is None
    x = torch.zeros(8, 3, 128, 128)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):                                                    # later batches come from reused values
        out = d(x, generator=g).image
        hit = (out.abs() == 1).all(dim=1)                                 # (N, H, W): whole pixels at +-1
        assert abs(hit.float().mean().item() - 0.05) < 0.005
        assert abs((out.permute(0, 2, 3, 1)[hit][:, 0] == 1).float().mean().item() - 0.25) < 0.05
        residual_std = out.permute(0, 2, 3, 1)[~hit].std(dim=0)            # per channel, in [-1, 1] units
        torch.testing.assert_close(residual_std, torch.full((3,), 0.2), atol=0.005, rtol=0)


def test_noise_reuse_is_reproducible_never_lends_its_memory_and_leaves_keyed_draws_alone():
    cfg = Config.from_preset("realtime", noise_reuse=4)                   # mixed order, degradation_p < 1
    x = batch(6, 64)

    def run(d):
        g = torch.Generator().manual_seed(3)
        return [d(x, generator=g).image for _ in range(3)]
    a, b = run(Degradation(cfg)), run(Degradation(cfg))
    assert all(torch.equal(u, v) for u, v in zip(a, b))                  # same generator, same batches
    kept = [t.clone() for t in a]
    d = Degradation(cfg)
    run(d), run(d)
    assert all(torch.equal(u, v) for u, v in zip(a, kept))                # later calls do not write into results
    keys = [f"frame_{i}.png" for i in range(6)]
    assert torch.equal(d(x, keys=keys).image, Degradation(cfg.replace(noise_reuse=1))(x, keys=keys).image)


def test_noise_reuse_must_be_positive():
    with pytest.raises(ValueError, match="noise_reuse"):
        Config.from_preset("original", noise_reuse=0)


def test_noise_bank_lends_every_value_equally_often_wrapping_around_its_end():
    bank = degrade_pipeline.NoiseBank(reuse=10 ** 9)                               # one new value per take: a still bank
    g, n = torch.Generator().manual_seed(0), 100
    bank.take((n,), g, torch.empty(0))
    lent = torch.zeros(2 * n)
    for _ in range(400):
        window = bank.take((n,), g, torch.empty(0))
        start = int((bank.values[:2 * n] == window[0]).nonzero()[0])
        index = (start + torch.arange(n)) % (2 * n)
        assert torch.equal(window, bank.values[index])                     # a window runs on over the end
        assert window.data_ptr() == bank.values[start:].data_ptr()         # a view, not a copy
        lent[index] += 1
    assert 120 < lent.min() and lent.max() < 280                          # 200 expected for every value
