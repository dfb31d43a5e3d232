"""scripts/publish_model.py: score_gan's scores.json becomes readable card tables and figures."""
import sys

from medgan_nb.models.cards import card_markdown

from test_split_scores import SCRIPTS, load_script


def test_gan_scores_become_one_table_per_set_of_frames_and_the_figures_images():
    sys.path.insert(0, str(SCRIPTS))                  # publish_model imports its neighbour time_models
    try:
        publish = load_script("publish_model")
    finally:
        sys.path.remove(str(SCRIPTS))
    measures = {"psnr_mean": 31.8234, "ssim_mean": 0.861, "grad_ratio_mean": 0.4712, "hf_ratio_mean": 0.19,
                "naturalness_mean": 4.0123}
    scored = {"n_images": 36, "inputs_sha256": "ab", "methods": {"quality": measures, "sharp (gan weight 1)": measures},
              "skipped": [], "clean_naturalness": 2.1411}
    gan = {"condition": "blur_noise", "model": "sharp", "l1_parent": "quality", "kvasir_test": scored,
           "lesions": {"n_images": 36, "inside_minus_outside_ci95": [-0.0251, 0.0463]},
           "centres": {"C1": {**scored, "n_images": 16}}}
    scores = publish.gan_card_scores(gan)
    assert list(scores) == ["gan", "gan_kvasir_test", "gan_centre_C1", "gan_lesions", "figures"]
    assert scores["gan_kvasir_test"][1] == {"method": "sharp (gan weight 1)", "PSNR (dB)": 31.8234, "SSIM": 0.861,
                                            "gradient energy ratio": 0.4712, "HF power ratio": 0.19,
                                            "naturalness": 4.0123}
    assert scores["gan"]["C1_report_half_frames"] == 16
    text = card_markdown({"name": "sharp", "config": {}, "parameters": 1, "weights_sha256": "x", "scores": scores})
    assert "| method | PSNR (dB) | SSIM | gradient energy ratio | HF power ratio | naturalness |" in text
    assert "| quality | 31.8 | 0.86 | 0.47 | 0.19 | 4.01 |" in text
    assert "| the clean frames themselves |  |  |  |  | 2.14 |" in text
    assert "![lesions: parent | GAN | clean](../../docs/gan-lesions.png)" in text
    assert "inside_minus_outside_ci95: [-0.03, 0.05]" in text
