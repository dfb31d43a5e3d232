import matplotlib.pyplot as plt
import pytest
import torch

from medgan_nb.config import Config, notebook_config
from medgan_nb.figures import degradation_explorer, degradation_widget, plot_training
from medgan_nb.models import build_discriminator, build_generator, layer_table


@pytest.fixture
def clean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=g)
    return (torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear") * 1.2 - 0.6)[0]


def test_explorer_psnr_falls_as_noise_grows(clean):
    scores = []
    for std in (0.02, 0.05, 0.1, 0.2):
        fig, s = degradation_explorer(clean, noise_std=std)
        plt.close(fig)
        scores.append(s)
    psnrs = [s["psnr"] for s in scores]
    assert psnrs == sorted(psnrs, reverse=True) and psnrs[0] - psnrs[-1] > 15
    assert 33 < psnrs[0] < 35                         # 20 log10(1 / 0.02) = 34 dB for unclipped noise
    assert [s["ssim"] for s in scores] == sorted((s["ssim"] for s in scores), reverse=True)


def test_explorer_each_setting_changes_the_image(clean):
    fig, base = degradation_explorer(clean, noise_std=0.0)
    plt.close(fig)
    assert base["psnr"] == float("inf") and base["ssim"] == pytest.approx(1.0)
    for setting in (dict(sp_amount=0.05), dict(blur_sigma=1.5), dict(brightness=0.7), dict(contrast=1.4),
                    dict(saturation=0.5), dict(hue=0.08), dict(jpeg_quality=10)):
        fig, s = degradation_explorer(clean, noise_std=0.0, **setting)
        plt.close(fig)
        assert s["psnr"] < 60, setting
    fig, a = degradation_explorer(clean, noise_std=0.1, seed=1)
    fig, b = degradation_explorer(clean, noise_std=0.1, seed=1)
    plt.close("all")
    assert a == b


def test_widget_has_a_slider_per_setting(clean):
    widget = degradation_widget(clean)
    names = {c.description for c in widget.children if hasattr(c, "min")}
    assert {"noise std", "salt & pepper", "blur sigma", "JPEG quality", "hue"} <= names
    plt.close("all")


def test_layer_table_shapes():
    cfg = Config.from_preset("original")
    rows = layer_table(build_discriminator(cfg), torch.zeros(1, 3, 256, 256), torch.zeros(1, 3, 256, 256))
    convs = [r for r in rows if r[1] == "Conv2d"]
    assert [r[2] for r in convs] == [(1, 64, 128, 128), (1, 128, 64, 64), (1, 256, 32, 32), (1, 512, 31, 31),
                                     (1, 1, 30, 30)]
    g = build_generator(Config.from_preset("tiny"))
    rows = layer_table(g, torch.zeros(1, 3, 32, 32))
    assert rows[-1][2] == (1, 3, 32, 32) and sum(r[3] for r in rows) == sum(p.numel() for p in g.parameters())
    assert g.training


def test_notebook_config_follows_medgan_tiny(monkeypatch):
    monkeypatch.setenv("MEDGAN_TINY", "1")
    assert notebook_config(epochs=2).preset == "tiny" and notebook_config(epochs=2).epochs == 2
    monkeypatch.setenv("MEDGAN_TINY", "0")
    assert notebook_config().preset == "notebook"


def test_plot_training_reads_a_run(tmp_path):
    from medgan_nb.training import train
    run = train(Config.from_preset("tiny", output_dir=str(tmp_path), sample_every=0, epochs=1), quiet=True)
    fig = plot_training(run)
    assert [len(ax.lines) for ax in fig.axes] == [2, 1, 2]
    plt.close(fig)


def test_explorer_blurs_exactly_as_training_does(clean):
    """Issue 9: the slider used a (2·⌈3σ⌉+1)² kernel while training uses the configured 5×5 one."""
    import matplotlib.pyplot as plt

    from medgan_nb.degrade import Degradation
    from medgan_nb.metrics import psnr
    cfg = Config.from_preset("tiny", degradations=("blur",), blur_sigma=(2.0, 2.0))
    trained = Degradation(cfg)(clean[None]).image
    fig, s = degradation_explorer(clean, noise_std=0.0, blur_sigma=2.0)
    plt.close(fig)
    assert s["psnr"] == pytest.approx(float(psnr(trained, clean[None])[0]), abs=1e-6)
