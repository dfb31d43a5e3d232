import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize
from torchvision.transforms.functional import gaussian_blur

from benchmarks import seed_reference as ref
from medgan_nb.config import Config
from medgan_nb.models import (
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
    count_parameters,
    init_weights,
    noise_levels,
    receptive_field,
    summary,
)


def copy_by_position(src: nn.Module, dst: nn.Module) -> None:
    """Load src's parameters and buffers into dst in registration order (shapes must agree)."""
    s, d = list(src.state_dict().values()), dst.state_dict()
    assert len(s) == len(d)
    dst.load_state_dict({k: v for k, v in zip(d, s)})


def test_seed_generator_reproduces_the_original_exactly():
    torch.manual_seed(0)
    ours = build_generator(Config.from_preset("original"))
    seed = ref.UnetGenerator()                   # the original's class, transcribed in benchmarks/seed_reference.py
    copy_by_position(ours, seed)
    ours.eval(), seed.eval()
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ours(x), seed(x), atol=1e-6, rtol=0)
    assert count_parameters(ours) == count_parameters(seed) == 54_413_955
    assert sum(isinstance(m, nn.Dropout) for m in ours.modules()) == 8


def test_seed_discriminator_reproduces_the_original_exactly():
    ours = build_discriminator(Config.from_preset("original"))
    seed = ref.Discriminator()
    copy_by_position(ours, seed)
    ours.eval(), seed.eval()
    a, b = torch.randn(2, 3, 256, 256), torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        out = ours(a, b)
        torch.testing.assert_close(out, seed(a, b), atol=1e-6, rtol=0)
    assert out.shape == (2, 1, 30, 30)
    assert count_parameters(ours) == 2_768_640 and receptive_field(ours) == 70


@pytest.mark.parametrize("size, depth, base", [(32, 3, 8), (64, 5, 16), (96, 5, 8), (128, 6, 16), (64, 6, 8)])
def test_generator_shapes_for_several_sizes_and_depths(size, depth, base):
    g = UNetGenerator(depth=depth, base_ch=base, max_ch=64).eval()
    x = torch.rand(2, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1


@pytest.mark.parametrize("size, patches", [(32, 2), (64, 6), (128, 14), (256, 30)])
def test_discriminator_output_follows_the_input_size(size, patches):
    d = PatchDiscriminator(base_ch=8)
    assert d(torch.zeros(1, 3, size, size), torch.zeros(1, 3, size, size)).shape == (1, 1, patches, patches)


def test_wrong_size_for_depth_is_a_clear_error():
    with pytest.raises(ValueError, match="not divisible by 2\\*\\*depth = 16"):
        UNetGenerator(depth=4, base_ch=4)(torch.zeros(1, 3, 40, 40))


def test_init_and_determinism_under_a_fixed_seed():
    cfg = Config.from_preset("tiny")
    torch.manual_seed(3)
    a = build_generator(cfg)
    torch.manual_seed(3)
    b = build_generator(cfg)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    big = init_weights(nn.Sequential(nn.Conv2d(64, 64, 4), nn.BatchNorm2d(4096)))
    assert abs(big[0].weight.std().item() - 0.02) < 0.001
    assert abs(big[1].weight.mean().item() - 1) < 0.002 and big[1].bias.abs().sum() == 0
    assert summary(build_generator(Config.from_preset("original"))) == "UNetGenerator: 54.41 M parameters"


# ------------------------------------------------------------------ lite preset
def test_lite_preset_is_a_small_unet_for_256_frames():
    cfg = Config.from_preset("lite")
    g = build_generator(cfg).eval()
    assert (cfg.image_size, cfg.cache_images, g.size_multiple) == (256, True, 32)
    assert count_parameters(g) == 1_043_619                         # 1/52 of the seed UNet's 54.4 M
    assert max(m.out_channels for m in g.modules() if isinstance(m, nn.Conv2d)) == 128
    assert not [m for m in g.modules() if isinstance(m, nn.Dropout)]
    with torch.no_grad():
        for h, w in [(256, 256), (64, 96)]:
            y = g(torch.rand(2, 3, h, w) * 2 - 1)
            assert y.shape == (2, 3, h, w) and y.abs().max() <= 1
    with pytest.raises(ValueError, match="multiple of 32"):
        g(torch.zeros(1, 3, 48, 64))


# ------------------------------------------------------------------ NAFNet-style and residual generators
from medgan_nb.models import LayerNorm2d, NAFBlock, NAFNetGenerator  # noqa: E402


@pytest.mark.parametrize("stem,depth,size", [(1, 2, 16), (2, 3, 32), (4, 3, 64), (4, 2, 48)])
def test_nafnet_keeps_the_shape_for_multiples_of_stem_times_2_to_the_depth(stem, depth, size):
    g = NAFNetGenerator(width=8, depth=depth, stem=stem).eval()
    assert g.size_multiple == stem * 2**depth
    x = torch.rand(2, 3, size, size + g.size_multiple) * 2 - 1
    assert g(x).shape == x.shape


def test_nafnet_refuses_a_size_it_cannot_halve():
    with pytest.raises(ValueError, match="not divisible by 32"):
        NAFNetGenerator(width=8, depth=3, stem=4)(torch.zeros(1, 3, 40, 64))


def test_a_new_residual_nafnet_returns_its_input_and_stays_in_range():
    g = NAFNetGenerator(width=8, depth=2, stem=2).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert torch.equal(g(x), x)                            # zero head: starts as the identity (does no harm)
    with torch.no_grad():
        g.head[0].bias.fill_(5.0)
    assert g(x).max() == 1.0 and g(x).min() >= -1          # residual output is clamped to the image range


def test_nafblock_starts_as_identity_and_layernorm_normalises_each_pixel():
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(NAFBlock(8)(x), x)                  # beta = gamma = 0
    y = LayerNorm2d(8)(x * 7 + 3)
    assert torch.allclose(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5)
    assert torch.allclose(y.var(1, unbiased=False), torch.ones(2, 5, 5), atol=1e-3)


def test_build_generator_follows_the_config():
    from medgan_nb.config import Config
    from medgan_nb.models import build_generator, count_parameters
    g = build_generator(Config.from_preset("quality"))
    assert isinstance(g, NAFNetGenerator) and g.size_multiple == 16 and g.residual
    assert 0.8e6 < count_parameters(g) < 1.0e6
    unet = build_generator(Config.from_preset("tiny", residual=True)).eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert unet(x).shape == x.shape and unet(x).abs().max() <= 1
    with pytest.raises(ValueError, match="stem"):
        Config.from_preset("tiny", stem=2)                  # only the nafnet generator has a stem
    with pytest.raises(ValueError, match="generator must be"):
        Config.from_preset("tiny", generator="resnet")


def test_every_registered_generator_builds_from_a_config_and_unknown_names_fail():
    from medgan_nb.models import GENERATORS
    assert set(GENERATORS) == {"unet", "nafnet"}
    for name in GENERATORS:
        cfg = Config.from_preset("tiny", generator=name)
        g = build_generator(cfg)
        x = torch.zeros(1, cfg.channels, cfg.size_multiple * 2, cfg.size_multiple * 2)
        assert g(x).shape == x.shape and g.modality == cfg.modality
    with pytest.raises(ValueError, match="generator"):
        Config.from_preset("tiny", generator="resnet")


def test_a_detail_discriminator_without_batchnorm_sees_only_fine_detail():
    cfg = Config.from_preset("tiny", d_input="detail", d_norm="none")
    D = build_discriminator(cfg)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    degraded = torch.rand(2, 3, 32, 32) * 2 - 1
    flat = torch.full((2, 3, 32, 32), 0.3)
    assert torch.allclose(D(degraded, flat), D(degraded, flat - 0.5), atol=1e-6)   # a constant carries no detail
    candidate = torch.zeros(2, 3, 32, 32, requires_grad=True)
    D(degraded, candidate).sum().backward()
    assert candidate.grad.abs().sum() > 0                  # G's gradient flows through the high-pass filter
    with pytest.raises(ValueError, match="d_norm must be"):
        Config.from_preset("tiny", d_norm="instance")


def test_a_spectrally_normalised_discriminator_has_inner_layers_of_unit_norm_and_reloads_exactly():
    cfg = Config.from_preset("tiny", d_norm="spectral")
    D = build_discriminator(cfg).train()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    for _ in range(200):                    # each training-mode forward runs one power iteration
        D(x, x)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d) and parametrize.is_parametrized(m)]
    assert len(convs) == cfg.d_layers                     # the inner ones; the first and the last stay plain
    with torch.no_grad():
        sigmas = [torch.linalg.matrix_norm(m.eval().weight.flatten(1), 2).item() for m in convs]
    assert sigmas == pytest.approx([1.0] * len(convs), abs=0.02)
    again = build_discriminator(cfg)        # a checkpoint keeps the power iteration's vectors
    again.load_state_dict(D.state_dict())
    assert torch.equal(again.eval()(x, x), D.eval()(x, x))


def test_a_noise_map_unet_is_told_the_noise_it_reads_from_its_input(monkeypatch):
    import medgan_nb.models.unet as unet
    cfg = Config.from_preset("tiny", noise_map=True)
    g = build_generator(cfg).eval()
    assert g.downs[0][0].in_channels == 4 and build_generator(Config.from_preset("tiny")).downs[0][0].in_channels == 3
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    seen = []
    monkeypatch.setattr(unet, "noise_levels", lambda v, s: seen.append((v.shape, s)) or torch.tensor([[0.0], [0.1]]))
    y = g(x)
    assert seen == [((2, 3, 32, 32), (1,))] and y.shape == x.shape
    monkeypatch.setattr(unet, "noise_levels", lambda v, s: torch.tensor([[0.0], [0.0]]))
    z = g(x)
    assert torch.equal(y[0], z[0]) and not torch.equal(y[1], z[1])     # only the image whose estimate changed


def test_a_noise_map_at_three_scales_adds_three_channels_and_sees_noise_blurred_after_it_was_added():
    cfg = Config.from_preset("tiny", noise_map=True, noise_map_scales=(1, 2, 4))
    assert build_generator(cfg).downs[0][0].in_channels == 6
    g = torch.Generator().manual_seed(0)
    flat = torch.zeros(4, 3, 128, 128)
    white = flat + 2 * 0.1 * torch.randn(flat.shape, generator=g)            # std 0.1 in [0, 1] units
    assert torch.allclose(noise_levels(white, (1, 2, 4)), torch.tensor(0.1), atol=0.01)
    blurred = gaussian_blur(white, [5, 5], [1.5, 1.5])                      # the original's order: noise, then blur
    levels = noise_levels(blurred, (1, 2, 4))
    assert (levels[:, 0] < 0.01).all() and (levels[:, 2] > 3 * levels[:, 0]).all()
    for wrong in [(), (0,), (1, 1), (1.5,)]:
        with pytest.raises(ValueError, match="noise_map_scales"):
            Config.from_preset("tiny", noise_map=True, noise_map_scales=wrong)


def test_only_the_unet_takes_a_noise_map():
    with pytest.raises(ValueError, match="noise_map"):
        Config.from_preset("quality", noise_map=True)
