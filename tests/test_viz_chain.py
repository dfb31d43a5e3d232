"""The figures and the no-ipywidgets fallback that notebooks 01 and 02 show (issue 11)."""
import sys

import matplotlib.pyplot as plt
import pytest
import torch
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from medgan_nb.config import DEGRADATION_ORDERS, KNOWN_DEGRADATIONS, Config
from medgan_nb.figures import (
    IMAGING_CHAIN,
    NO_IPYWIDGETS,
    STATIC_SETTINGS,
    degradation_explorer,
    degradation_strengths_figure,
    explorer_degrade,
    imaging_chain_figure,
    logit_footprint,
    receptive_field_figure,
    show_degradation_explorer,
)
from medgan_nb.models import build_discriminator, receptive_field


@pytest.fixture
def clean():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 8, 8, generator=g)
    return (torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear") * 1.2 - 0.6)[0]


def test_imaging_chain_has_five_stages_with_arrows_and_every_degradation_once():
    fig = imaging_chain_figure()
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert [b.get_gid() for b in boxes] == [f"stage:{s}" for s in ("scene", "optics", "sensor", "processing", "codec")]
    assert len(arrows) == len(boxes) - 1
    texts = [t.get_text() for t in ax.texts]
    for stage in ("scene", "optics", "sensor", "processing", "codec"):
        assert stage in texts
    named = [t.get_gid().split(":", 1)[1] for t in ax.texts if (t.get_gid() or "").startswith("degradation:")]
    assert sorted(named) == sorted(KNOWN_DEGRADATIONS)          # every degradation of the package, exactly once
    physical = list(DEGRADATION_ORDERS["physical"])
    for name in KNOWN_DEGRADATIONS:                             # labelled with its step in the physical order
        assert f"{physical.index(name) + 1}. {name}" in texts
    stage_of = {name: stage for stage, _, ds in IMAGING_CHAIN for name, _ in ds}
    assert stage_of["noise"] == "sensor" and stage_of["jpeg"] == "codec" and stage_of["blur"] == "optics"
    assert stage_of["color_jitter"] == "processing" and stage_of["glare"] == "scene"
    # boxes run left to right, each arrow between neighbours
    xs = [b.get_x() for b in boxes]
    assert xs == sorted(xs)
    plt.close(fig)


def test_explorer_degrade_is_what_the_explorer_scores(clean):
    from medgan_nb.metrics import psnr
    for setting in STATIC_SETTINGS:
        fig, s = degradation_explorer(clean, **setting)
        plt.close(fig)
        y = explorer_degrade(clean, **setting)
        assert y.shape == (1, *clean.shape)
        assert float(psnr(y, clean[None])[0]) == pytest.approx(s["psnr"], abs=1e-9)


def test_strengths_figure_has_one_titled_panel_per_setting(clean):
    fig, scores = degradation_strengths_figure(clean, columns=3)
    assert len(scores) == len(STATIC_SETTINGS)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == len(STATIC_SETTINGS)
    assert "noise_std 0.15" in shown[1].get_title() and "jpeg_quality 15" in shown[-1].get_title()
    noise = [s["psnr"] for s in scores[:3]]
    assert noise == sorted(noise, reverse=True)
    plt.close(fig)


def test_without_ipywidgets_one_line_and_a_static_figure(clean, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)           # import ipywidgets -> ImportError
    fig = show_degradation_explorer(clean)
    out = capsys.readouterr().out
    assert out == NO_IPYWIDGETS + "\n" and "pip install ipywidgets" in out
    assert isinstance(fig, plt.Figure) and sum(1 for ax in fig.axes if ax.images) == len(STATIC_SETTINGS)
    plt.close("all")


def test_with_ipywidgets_the_sliders(clean, capsys):
    pytest.importorskip("ipywidgets")
    widget = show_degradation_explorer(clean)
    assert hasattr(widget, "children") and NO_IPYWIDGETS not in capsys.readouterr().out
    plt.close("all")


@pytest.mark.parametrize("preset,size,grid", [("notebook", 64, 6), ("original", 256, 30)])
def test_logit_footprint_matches_the_receptive_field(preset, size, grid):
    d = build_discriminator(Config.from_preset(preset))
    rf = receptive_field(d)
    assert rf == 70
    top, bottom, left, right = logit_footprint(d, size, grid // 2, grid // 2)
    side = bottom - top + 1
    assert side == right - left + 1 == min(rf, size - top)
    if size >= 2 * rf:
        assert side == rf                         # 256²: a true patch, well inside the image
    else:
        assert side > 0.9 * size                  # 64²: the centre logit sees (almost) the whole image
    assert d.training                             # the measurement leaves the mode as it found it


def test_receptive_field_figure_one_panel_per_size():
    d = build_discriminator(Config.from_preset("tiny"))
    fig = receptive_field_figure(d, sizes=(32, 64))
    assert len(fig.axes) == 2
    assert all(len([p for p in ax.patches if isinstance(p, Rectangle)]) == 3 for ax in fig.axes)
    assert fig.axes[0].get_title().startswith("32x32 input") and d.training
    plt.close(fig)
