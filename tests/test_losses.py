import math
import urllib.error

import pytest
import torch

from medgan_nb import losses
from medgan_nb.config import Config
from medgan_nb.losses import GANLoss, GeneratorLoss, MissingWeightsError, VGGPerceptualLoss, discriminator_loss


def test_gan_loss_values_and_any_shape():
    for shape in [(2, 1, 30, 30), (1, 1, 6, 6)]:
        zeros = torch.zeros(shape)
        assert GANLoss("vanilla")(zeros, True).item() == pytest.approx(math.log(2))
        assert GANLoss("lsgan")(torch.ones(shape), True).item() == 0
        assert GANLoss("lsgan")(torch.ones(shape), False).item() == 1
    assert discriminator_loss(GANLoss(), torch.full((1, 1, 2, 2), 20.0), torch.full((1, 1, 2, 2), -20.0)) < 1e-6
    with pytest.raises(ValueError, match="wgan"):
        GANLoss("wgan")


def test_perceptual_loss_shapes_gradients_and_frozen_vgg():
    loss = VGGPerceptualLoss(weights=None)
    a = torch.rand(2, 3, 32, 32, requires_grad=True)
    b = torch.rand(2, 3, 32, 32)
    value = loss(a * 2 - 1, b * 2 - 1)
    assert value.ndim == 0 and value > 0
    value.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())
    assert loss(b, b).item() == 0
    loss.train()
    assert not loss.features.training
    assert len(loss.features) == 21 and isinstance(loss.features[-1], torch.nn.ReLU)


def test_missing_vgg_weights_offline_give_an_actionable_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(MissingWeightsError) as e:
        VGGPerceptualLoss()
    message = str(e.value)
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    assert "python -m medgan_nb data download vgg19" in message and "lambda_perceptual=0" in message
    with pytest.raises(MissingWeightsError):
        GeneratorLoss(Config.from_preset("original"))
    assert GeneratorLoss(Config.from_preset("original", lambda_perceptual=0.0)).perceptual is None


def test_cached_vgg_weights_are_loaded_from_disk(tmp_path, monkeypatch):
    from torchvision.models.vgg import cfgs, make_layers
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    path = losses.vgg19_weights_path()
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    reference = make_layers(cfgs["E"])           # a stand-in with the real file's key layout
    state = {f"features.{k}": v for k, v in reference.state_dict().items()}
    torch.save({**state, "classifier.0.weight": torch.zeros(1)}, path)
    loaded = losses.load_vgg19_features()
    assert torch.equal(loaded[0].weight, reference[0].weight)
    assert torch.equal(loaded[19].weight, reference[19].weight)


def test_generator_loss_parts_are_weighted_and_sum_to_the_total():
    cfg = Config.from_preset("tiny", lambda_l1=70.0, lambda_perceptual=10.0, lambda_adv=2.0)
    loss = GeneratorLoss(cfg, perceptual=VGGPerceptualLoss(weights=None))
    fake, real = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    logits = torch.zeros(2, 1, 2, 2)
    parts = loss(logits, fake, real)
    assert parts.l1.item() == pytest.approx(70 * (fake - real).abs().mean().item(), rel=1e-5)
    assert parts.adv.item() == pytest.approx(2 * math.log(2), rel=1e-5)
    assert parts.perceptual > 0
    assert parts.total.item() == pytest.approx(parts.adv.item() + parts.l1.item() + parts.perceptual.item(), rel=1e-6)
    assert set(parts.as_floats()) == {"total", "adv", "l1", "perceptual"}
    no_vgg = GeneratorLoss(cfg.replace(lambda_perceptual=0.0))(logits, fake, real)
    assert no_vgg.perceptual.item() == 0


def test_log_l1_weighs_each_image_by_its_relative_error():
    from medgan_nb.losses import LOG_L1_EPS, log_l1_loss
    real = torch.zeros(2, 3, 8, 8)
    fake = torch.cat([torch.full((1, 3, 8, 8), 0.01), torch.full((1, 3, 8, 8), 0.3)]).requires_grad_()
    loss = log_l1_loss(fake, real)
    assert loss.item() == pytest.approx((math.log(0.01 + LOG_L1_EPS) + math.log(0.3 + LOG_L1_EPS)) / 2, rel=1e-6)
    loss.backward()
    g = fake.grad.abs().flatten(1).sum(1)          # plain L1 would give both images the same gradient
    assert (g[0] / g[1]).item() == pytest.approx((0.3 + LOG_L1_EPS) / (0.01 + LOG_L1_EPS), rel=1e-4)


def test_pixel_loss_is_chosen_by_the_config_and_checked():

    fake, real = torch.full((2, 3, 4, 4), 0.5), torch.zeros(2, 3, 4, 4)
    l1 = GeneratorLoss(Config.from_preset("tiny", lambda_l1=2.0))(None, fake, real).l1
    log_l1 = GeneratorLoss(Config.from_preset("tiny", lambda_l1=2.0, pixel_loss="log_l1"))(None, fake, real).l1
    assert l1.item() == pytest.approx(1.0) and log_l1.item() == pytest.approx(2 * math.log(0.5 + 1e-3))
    with pytest.raises(ValueError, match="pixel_loss must be one of"):
        Config(pixel_loss="l2")


def test_term_grad_norms_measure_each_term_at_the_output_and_touch_no_grad():
    cfg = Config.from_preset("tiny", lambda_l1=70.0, lambda_perceptual=2.0)
    loss = GeneratorLoss(cfg, perceptual=VGGPerceptualLoss(weights=None))
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_()
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    logits = (fake * torch.linspace(0.5, 1.5, 32)).mean(dim=1, keepdim=True)      # a stand-in for D(x, fake)
    parts = loss(logits, fake, real)
    norms = losses.term_grad_norms(parts, fake)
    assert fake.grad is None                                           # nothing accumulated anywhere
    assert set(norms) == set(losses.GRAD_TERMS) and all(v > 0 for v in norms.values())
    assert norms["l1"].item() == pytest.approx(70.0 / fake.numel() ** 0.5, rel=1e-6)   # lambda sign(d) / N
    for name in losses.GRAD_TERMS:
        (grad,) = torch.autograd.grad(getattr(parts, name), fake, retain_graph=True)
        assert norms[name].item() == pytest.approx(grad.double().norm().item(), rel=1e-9)
    assert losses.term_grad_norms(parts, fake, scale=1024.0)["adv"].item() == pytest.approx(norms["adv"].item(),
                                                                                          rel=1e-5)
    off = GeneratorLoss(Config.from_preset("tiny"))(None, fake, real)      # no adversarial, no perceptual term
    norms = losses.term_grad_norms(off, fake)
    assert norms["adv"] == 0 and norms["perceptual"] == 0 and norms["l1"] > 0


def test_halving_the_discriminator_loss_does_not_change_adams_step():
    """The docstring's claim: Adam's step m / (sqrt(v) + eps) is invariant to scaling the loss (exactly with
    eps = 0, to within eps with the default 1e-8); halving the learning rate halves it."""
    from medgan_nb.models import build_discriminator
    cfg = Config.from_preset("tiny")
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    start = build_discriminator(cfg).state_dict()

    def adam_step(factor, lr=1e-3, eps=1e-8):
        d = build_discriminator(cfg)
        d.load_state_dict(start)
        opt = torch.optim.Adam(d.parameters(), lr, betas=(0.5, 0.999), eps=eps)
        (factor * discriminator_loss(GANLoss(), d(x, y), d(x, x))).backward()
        opt.step()
        return torch.cat([(p.detach() - start[n]).flatten() for n, p in d.named_parameters()])

    assert torch.equal(adam_step(1.0, eps=0.0), adam_step(0.5, eps=0.0))          # bit for bit
    assert torch.allclose(adam_step(1.0), adam_step(0.5), rtol=0, atol=1e-4)      # steps are ~1e-3 each
    assert torch.allclose(adam_step(1.0, lr=5e-4), 0.5 * adam_step(1.0), rtol=1e-3, atol=1e-9)
