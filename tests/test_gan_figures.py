"""The figures of what a GAN adds: the perception-distortion plane and the lesion crops."""
import numpy as np
import torch

from medgan_nb.figures.gan import lesion_comparison_figure, perception_distortion_figure


def test_perception_distortion_puts_more_natural_up_and_joins_the_curve():
    points = {"input": {"psnr_mean": 22.0, "naturalness_mean": 19.0}, "l1": {"psnr_mean": 32.0, "naturalness_mean": 4.0},
              "gan": {"psnr_mean": 31.0, "naturalness_mean": 2.5}}
    fig = perception_distortion_figure(points, ["l1", "gan"], clean_naturalness=2.0)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low > high                                      # inverted: the lowest (most natural) score is on top
    joined = [line for line in ax.get_lines() if len(line.get_xdata()) == 2 and line.get_linestyle() == "-"]
    assert [list(line.get_xdata()) for line in joined] == [[32.0, 31.0]]
    assert {t.get_text() for t in ax.texts} >= {"input", "l1", "gan", "clean frames"}
    zoom = fig.axes[1]                                     # the curve alone, where its points can be told apart
    assert {t.get_text() for t in zoom.texts} == {"l1", "gan"} and zoom.get_xlim()[0] > 30
    assert len(perception_distortion_figure(points).axes) == 1


def test_lesion_comparison_has_a_row_per_image_and_a_column_per_output_plus_clean():
    clean = torch.rand(2, 3, 32, 32) * 2 - 1
    masks = [np.zeros((32, 32), bool) for _ in range(2)]
    for m in masks:
        m[8:20, 10:22] = True
    fig = lesion_comparison_figure(clean, {"l1": clean * 0.5, "gan": clean}, masks, ["a.jpg", "b.jpg"])
    assert len(fig.axes) == 2 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[1] == "gan: inf dB, detail 1.00"          # identical to the clean frame
    assert titles[2] == "clean (detail 1.00)" and titles[0].startswith("l1: ")


def test_gan_weight_figure_shows_each_weight_with_its_scores(tmp_path):
    from medgan_nb.config import Config
    from medgan_nb.figures.gan import gan_weight_figure
    from medgan_nb.models import build_generator, save_model

    cfg = Config.from_preset("tiny")
    for seed, name, fields in ((0, "l1", {"summary": "parent"}), (1, "gan", {"summary": "gan", "l1_parent": "l1"})):
        torch.manual_seed(seed)
        save_model(build_generator(cfg), cfg, name, fields, tmp_path)
    clean = torch.rand(1, 3, 64, 64) * 2 - 1
    degraded = (clean + 0.2 * torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    fig = gan_weight_figure(clean, degraded, "gan", (0.0, 1.0), zoom=32, folder=tmp_path)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "degraded input" and titles[-1] == "clean" and len(titles) == 4
    assert titles[1].startswith("gan weight 0:\n") and " dB, detail " in titles[1] and "natural. " in titles[1]
    assert titles[1] != titles[2]                         # the two weights are two different networks
