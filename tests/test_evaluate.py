import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, Subset

import medgan_nb.evaluation.conditions as evaluation_conditions
import medgan_nb.evaluation.core as evaluation_core
import medgan_nb.evaluation.grid as evaluation_grid
import medgan_nb.evaluation.scoring as evaluation_scoring
import medgan_nb.utils.hardware as utils_hardware
from medgan_nb.config import DEGRADATION_SETS, Config
from medgan_nb.data import dataset_keys, default_dataset
from medgan_nb.degrade import Degradation
from medgan_nb.evaluation import (
    BASELINES,
    CSV_COLUMNS,
    EVAL_SEED,
    FAST_BASELINES,
    estimate_noise_std,
    evaluate,
    evaluation_config,
    summarize,
)
from medgan_nb.metrics import PSNR_CAP, psnr, psnr_masked
from medgan_nb.models import build_generator, save_checkpoint
from medgan_nb.sharpness import gradient_energy_ratio, hf_power_ratio
from medgan_nb.utils import file_sha256, to_numpy_images

N = 6            # images per run: enough for best/median/worst, fast on 2 cores
STAT_KEYS = {"psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "grad_ratio_mean", "hf_ratio_mean", "naturalness_mean",
             "ms_per_image", "n"}


@pytest.fixture(scope="module")
def cfg():
    return Config.from_preset("tiny")


def make_checkpoint(cfg, path, seed=0):
    """A checkpoint of an untrained generator: enough to evaluate, in milliseconds."""
    torch.manual_seed(seed)
    return save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, path)


@pytest.fixture(scope="module")
def checkpoint(cfg, tmp_path_factory):
    return make_checkpoint(cfg, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def run(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "run"
    metrics = evaluate(checkpoint, out, max_images=N, device="cpu", quiet=True)
    return out, metrics


def read_rows(out):
    with open(out / "per_image.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_writes_metrics_csv_report_and_figures(run, checkpoint, cfg):
    out, metrics = run
    for name in ("metrics.json", "per_image.csv", "report.md", "psnr_ssim_bars.png", "cases.png", "error_maps.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    conditions = ["all", "blur", "noise", "salt_pepper", "color_jitter"]   # + the original's jitter, alone
    methods = ["gan", *FAST_BASELINES]
    assert list(metrics["results"]) == conditions
    for cond in conditions:
        assert list(metrics["results"][cond]) == methods
        for stats in metrics["results"][cond].values():
            assert set(stats) == STAT_KEYS and stats["n"] == N
            assert stats.pop("naturalness_mean") is None         # 32² images hold too few 32² patches to score
            assert all(np.isfinite(v) for v in stats.values())
            assert 5 < stats["psnr_mean"] <= 100 and -1 <= stats["ssim_mean"] <= 1 and stats["ms_per_image"] >= 0
    meta = metrics["metadata"]
    assert meta["checkpoint_sha256"] == file_sha256(checkpoint) and len(meta["inputs_sha256"]) == 64
    assert meta["split"] == "test" and meta["n_images"] == N and meta["device"] == "cpu"
    assert meta["config"] == evaluation_config(cfg).to_dict() and meta["medgan_nb_version"]
    assert meta["config"]["seed"] == EVAL_SEED and meta["trained_degradations"] == list(cfg.degradations)
    rows = read_rows(out)
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == len(conditions) * len(methods) * N
    report = (out / "report.md").read_text()
    for needle in ("| method | PSNR (dB) | SSIM | gradient energy (clean = 1) | HF power (clean = 1) | "
                   "naturalness (lower: more natural) | ms/image |", "(psnr_ssim_bars.png)", "(cases.png)",
                   "(error_maps.png)", "not as pass/fail", "'test' split", str(checkpoint),
                   "Gaussian window (σ = 1.5", "99th percentile", meta["inputs_sha256"]):
        assert needle in report, needle
    for line in summarize(metrics):
        assert line in report


def test_identity_psnr_is_the_psnr_of_the_degraded_image(run, cfg):
    out, _ = run
    task = evaluation_config(cfg)
    clean, key = default_dataset("test", task)[0]
    degraded = Degradation(task)(clean[None], keys=[key]).image
    row = next(r for r in read_rows(out) if (r["condition"], r["method"], r["key"]) == ("all", "identity", key))
    assert float(row["psnr"]) == pytest.approx(float(psnr(degraded, clean[None])[0]), abs=1e-4)


def test_uses_the_test_split_by_default(run, cfg):
    out, _ = run
    keys = {r["key"] for r in read_rows(out)}
    test_keys = set(all_keys(default_dataset("test", evaluation_config(cfg))))
    train_keys = set(all_keys(default_dataset("train", cfg.replace(max_images=0))))   # every training image
    assert len(keys) == N and keys <= test_keys and train_keys and not keys & train_keys


def all_keys(dataset):
    """Keys of a dataset from medgan_nb.data, through Subset and ConcatDataset, without decoding images."""
    if isinstance(dataset, Subset):
        keys = all_keys(dataset.dataset)
        return [keys[i] for i in dataset.indices]
    if isinstance(dataset, ConcatDataset):
        return [k for part in dataset.datasets for k in all_keys(part)]
    return list(dataset.keys)


def test_evaluation_is_reproducible(run, checkpoint, tmp_path):
    out, _ = run                     # a second run, with fewer baselines to stay fast, scores identically
    evaluate(checkpoint, tmp_path / "again", baselines=("identity", "nlm"), max_images=N, device="cpu", quiet=True)
    values = lambda rows: [(r["condition"], r["method"], r["key"], r["psnr"], r["ssim"]) for r in rows  # noqa: E731
                           if r["method"] in ("gan", "identity", "nlm")]
    again = values(read_rows(tmp_path / "again"))
    assert len(again) == 5 * 3 * N and again == values(read_rows(out))


def test_data_dir_mode_scores_every_image_of_the_folder(tmp_path, cfg):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(folder / name)
    metrics = evaluate(None, tmp_path / "out", cfg=cfg, data_dir=folder, baselines=("identity", "median"),
                       breakdown=False, quiet=True)
    assert metrics["metadata"]["n_images"] == 3 and metrics["metadata"]["split"] is None
    assert {r["key"] for r in read_rows(tmp_path / "out")} == {"a.png", "b.png", "c.png"}
    assert list(metrics["results"]) == ["all"]


def test_baselines_only_without_a_checkpoint(tmp_path, cfg):
    metrics = evaluate(None, tmp_path / "out", cfg=cfg, max_images=3, quiet=True)
    assert metrics["metadata"]["checkpoint"] is None and metrics["metadata"]["trained_degradations"] is None
    assert all(list(m) == list(FAST_BASELINES) for m in metrics["results"].values())
    assert (tmp_path / "out" / "cases.png").is_file()
    report = (tmp_path / "out" / "report.md").read_text()
    assert "classical baselines only" in report and "training degradations" not in report   # no model, no training


def test_baselines_only_without_a_config_uses_the_seed_presets_task(tmp_path):
    metrics = evaluate(None, tmp_path / "out", baselines=("identity",), breakdown=False, max_images=2, quiet=True)
    meta = metrics["metadata"]
    seed = Config.from_preset("original")
    assert meta["image_size"] == seed.image_size and meta["degradations"] == list(DEGRADATION_SETS["original"])
    assert meta["n_images"] == 2 and meta["config"]["seed"] == EVAL_SEED and meta["trained_degradations"] is None
    assert (tmp_path / "out" / "report.md").is_file()


def test_metadata_names_the_checkpoint_bytes_that_were_loaded(cfg, tmp_path, monkeypatch):
    path = make_checkpoint(cfg, tmp_path / "last.pt", seed=1)
    loaded = file_sha256(path)
    real_load = evaluation_core.load_generator

    def load_then_replace(*args, **kwargs):          # a training run writes last.pt again mid-evaluation
        result = real_load(*args, **kwargs)
        make_checkpoint(cfg, path, seed=2)
        return result

    monkeypatch.setattr(evaluation_core, "load_generator", load_then_replace)
    metrics = evaluate(path, tmp_path / "out", baselines=("identity",), breakdown=False, max_images=2,
                       device="cpu", quiet=True)
    assert file_sha256(path) != loaded
    assert metrics["metadata"]["checkpoint_sha256"] == loaded
    assert f"sha256 `{loaded}`" in (tmp_path / "out" / "report.md").read_text()


def test_inputs_do_not_depend_on_the_models_training_settings(cfg, tmp_path):
    """Two models trained with other seeds, subsets, synthetic frame counts and caching score the same inputs."""
    cfg = cfg.replace(data_dir="synthetic")          # patches + synthetic frames: the frames depend on seeds
    a = make_checkpoint(cfg.replace(seed=1, max_images=48, synthetic_frames=40), tmp_path / "a.pt")
    b = make_checkpoint(cfg.replace(seed=7, max_images=10, synthetic_frames=200, cache_images=True), tmp_path / "b.pt")
    runs = [evaluate(c, tmp_path / name, baselines=("identity",), max_images=N, device="cpu", quiet=True)
            for c, name in ((a, "a"), (b, "b"))]
    assert runs[0]["metadata"]["inputs_sha256"] == runs[1]["metadata"]["inputs_sha256"]
    identity = lambda out: [(r["condition"], r["key"], r["psnr"], r["ssim"])  # noqa: E731
                            for r in read_rows(out) if r["method"] == "identity"]
    assert identity(tmp_path / "a") == identity(tmp_path / "b") and len(identity(tmp_path / "a")) == 5 * N
    keys = [k for c, k, _, _ in identity(tmp_path / "a") if c == "all"]
    test_keys = dataset_keys(default_dataset("test", evaluation_config(cfg)))
    assert keys == [test_keys[i] for i in np.linspace(0, len(test_keys) - 1, N).round().astype(int)]  # evenly spread
    assert any(k.startswith("synthetic/") for k in keys) and not all(k.startswith("synthetic/") for k in keys)
    other = evaluate(None, tmp_path / "c", cfg=cfg.replace(noise_std=0.05), baselines=("identity",),
                     breakdown=False, max_images=N, quiet=True)        # another task: other inputs, other fingerprint
    assert other["metadata"]["inputs_sha256"] != runs[0]["metadata"]["inputs_sha256"]


def test_warns_when_a_models_training_frames_are_evaluation_frames(cfg, tmp_path, caplog):
    # 800 training frames from seed 1 999 600 cover the evaluation's test frames, synthetic/2000000 to 2000099
    leaky = cfg.replace(data_dir="synthetic", seed=2_000_000 - 400, synthetic_frames=1000)
    path = make_checkpoint(leaky, tmp_path / "leaky.pt")
    evaluate(path, tmp_path / "out", baselines=("identity",), breakdown=False, max_images=N, device="cpu", quiet=True)
    assert "among the training or validation frames of this model" in caplog.text


def test_trained_degradations_come_from_the_checkpoint_not_the_override(checkpoint, cfg, tmp_path):
    metrics = evaluate(checkpoint, tmp_path / "out", cfg=cfg.replace(degradations=("noise",)),
                       baselines=("identity",), max_images=2, device="cpu", quiet=True)
    lines = {line.split(",")[0].split(" (")[0]: line for line in summarize(metrics)}
    assert "not part of" not in lines["On blur alone"] and "not part of" not in lines["On salt_pepper alone"]
    assert "not part of this model's training degradations" in lines["On color_jitter alone"]
    assert metrics["metadata"]["degradations"] == ["noise"]
    assert metrics["metadata"]["trained_degradations"] == ["blur", "noise", "salt_pepper"]


def test_existing_non_empty_out_dir_is_refused_and_left_alone(tmp_path, cfg):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("earlier results")
    with pytest.raises(FileExistsError, match="choose another|Choose another"):
        evaluate(None, tmp_path / "out", cfg=cfg, max_images=2, quiet=True)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["old.txt"]


def test_unknown_baseline_is_an_error(tmp_path, cfg):
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate(None, tmp_path / "out", cfg=cfg, baselines=("wiener",), quiet=True)


@pytest.mark.parametrize("name", FAST_BASELINES)     # CBM3D: tests/test_baselines.py
def test_each_baseline_denoises_a_noisy_constant_image(name):
    rng = np.random.default_rng(0)
    clean = np.full((32, 32, 3), 0.5, np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    out = BASELINES[name](noisy, 0.1)
    assert out.shape == noisy.shape and out.min() >= 0 and out.max() <= 1
    error = lambda x: float(np.mean((x - clean) ** 2))  # noqa: E731
    if name == "identity":
        np.testing.assert_array_equal(out, noisy)
    else:
        assert error(out) < 0.5 * error(noisy)       # at least 3 dB better than the input


def test_noise_estimate_is_close_to_the_true_std():
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:64, 0:64] / 64
    smooth = np.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * yy, 0.4 + 0.0 * xx], axis=-1)
    for std in (0.02, 0.05, 0.1):
        assert estimate_noise_std(smooth + rng.normal(0, std, smooth.shape)) == pytest.approx(std, rel=0.15)
    assert estimate_noise_std(smooth) < 0.005


# ----------------------------------------------------- summary, on hand-made numbers
def stats(p, s=0.8):
    return {"psnr_mean": p, "psnr_std": 1.0, "ssim_mean": s, "ssim_std": 0.05, "ms_per_image": 1.0, "n": 10}


def test_summary_reports_a_gan_win_with_exact_margins():
    metrics = {"conditions": {"all": ["blur", "noise"]},
               "results": {"all": {"gan": stats(28.5, 0.9), "identity": stats(22.0, 0.5),
                                   "nlm": stats(26.25, 0.85), "median": stats(24.0, 0.7)}}}
    (line,) = summarize(metrics)
    assert line.startswith("On all degradations together (blur + noise), the model reaches 28.50 dB")
    assert "6.50 dB above the degraded input (22.00 dB)" in line
    assert "it beats the best baseline, NLM (26.25 dB), by 2.25 dB" in line
    assert "worse" not in line and "By SSIM" not in line


def test_summary_says_plainly_when_a_baseline_wins():
    metrics = {"conditions": {"all": ["blur", "noise"], "blur": ["blur"], "noise": ["noise"]},
               "results": {"all": {"gan": stats(27.0), "identity": stats(22.0), "nlm": stats(26.0)},
                           "blur": {"gan": stats(24.9), "identity": stats(25.3, 0.9), "nlm": stats(26.1, 0.7)},
                           "noise": {"gan": stats(20.0), "identity": stats(21.5), "tv": stats(25.0)}}}
    lines = summarize(metrics)
    assert "beats the best baseline, NLM (26.00 dB), by 1.00 dB" in lines[0]
    assert lines[1].startswith("On blur alone")
    assert "NLM beats the model by 1.20 dB (26.10 vs 24.90 dB)" in lines[1]
    assert "0.40 dB below the degraded input (25.30 dB): it makes the images worse" in lines[1]
    assert "By SSIM, identity is best there (0.900 vs 0.700 for NLM)" in lines[1]
    assert "TV beats the model by 5.00 dB" in lines[2] and "1.50 dB below" in lines[2]
    assert not any("olour jitter" in line for line in lines)


def test_summary_explains_colour_jitter_with_the_identity_psnr():
    metrics = {"conditions": {"all": ["noise", "color_jitter"], "color_jitter": ["color_jitter"]},
               "results": {"all": {"identity": stats(15.0), "nlm": stats(16.0)},
                           "color_jitter": {"identity": stats(18.37), "nlm": stats(18.2)}}}
    lines = summarize(metrics)
    assert "the best baseline is NLM at 16.00 dB, 1.00 dB above the degraded input (15.00 dB)" in lines[0]
    assert "0.17 dB below the degraded input (18.37 dB)" in lines[1]
    assert "Colour jitter" in lines[-1] and "18.37 dB" in lines[-1]


def test_conditions_add_the_originals_degradations_left_out_of_training():
    from medgan_nb.evaluation import conditions_of
    seed = conditions_of(Config.from_preset("original"))
    assert list(seed) == ["all", "noise", "salt_pepper", "blur", "color_jitter"]
    tiny = conditions_of(Config.from_preset("tiny", degradations=("noise",)))
    assert tiny == {"all": ("noise",), "salt_pepper": ("salt_pepper",), "blur": ("blur",),
                    "color_jitter": ("color_jitter",)}
    assert conditions_of(Config.from_preset("tiny"), breakdown=False) == {"all": ("blur", "noise", "salt_pepper")}


# ----------------------------------------------------- goal conditions, machine, true noise level
def test_goal_conditions_are_the_issues_three():
    goals = evaluation_conditions.GOAL_CONDITIONS
    assert list(goals) == ["blur_noise", "original", "light"]
    assert goals["blur_noise"] == dict(degradations=("blur", "noise"), degradation_order="physical",
                                       blur_sigma=(0.5, 1.5), blur_kernel=9, noise_std=0.075, noise_std_range=0.0,
                                       degradation_p=1.0)
    assert goals["original"] == dict(degradations=("noise", "salt_pepper", "blur"), degradation_order="original",
                                 noise_std=0.15, noise_std_range=0.05, blur_kernel=5, blur_sigma=(0.1, 2.0),
                                 sp_amount=0.01, sp_amount_range=0.0, sp_salt_ratio=0.5, degradation_p=1.0)
    assert goals["light"] == dict(degradations=("blur", "noise"), degradation_order="physical",
                                  blur_sigma=(0.3, 0.8), blur_kernel=5, noise_std=0.02, noise_std_range=0.0,
                                  degradation_p=1.0)
    assert evaluation_conditions.GOAL_BASELINES[-2:] == ("cbm3d", "median_cbm3d")


def test_goals_score_each_condition_and_give_the_classics_the_true_noise_std(checkpoint, tmp_path, monkeypatch):
    seen = []                                  # (image, sigma) as NLM receives them

    def recording_nlm(img, noise_std=None):
        seen.append((img.copy(), noise_std))
        return img.copy()

    monkeypatch.setitem(BASELINES, "nlm", recording_nlm)
    metrics = evaluation_core.evaluate_goals(checkpoint, tmp_path / "out", baselines=("identity", "nlm"),
                                             max_images=2, device="cpu", quiet=True)
    assert list(metrics["results"]) == ["blur_noise", "original", "light"]
    assert metrics["conditions"] == {"blur_noise": ["blur", "noise"], "original": ["noise", "salt_pepper", "blur"],
                                     "light": ["blur", "noise"]}
    task = evaluation_config(Config.from_preset("tiny"))
    clean, key = default_dataset("test", task)[0]
    for cond, overrides in evaluation_conditions.GOAL_CONDITIONS.items():
        d = Degradation(task.replace(**overrides))(clean[None], keys=[key])
        img = to_numpy_images(d.image)[0]
        sigma = next(s for x, s in seen if np.array_equal(x, img))
        assert sigma == pytest.approx(float(d.params["noise_std"][0]))     # the std drawn for this very image
    assert {round(s, 6) for _, s in seen} >= {0.075, 0.02}
    meta = metrics["metadata"]
    assert meta["torch_threads"] == torch.get_num_threads() and meta["cpu"] == utils_hardware.cpu_model()
    assert meta["cpu"] and meta["cpu"] != "unknown"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "**Condition blur_noise:** degradations=('blur', 'noise')" in report and "noise_std=0.075" in report
    assert f"{torch.get_num_threads()} torch CPU thread(s) on {meta['cpu']}" in report
    assert "On original (noise + salt_pepper + blur)" in report and "### light (blur + noise)" in report
    assert "On blur_noise (blur + noise), the model reaches" in report and "not part of" not in report


def test_a_condition_may_not_change_the_evaluation_images(cfg):
    with pytest.raises(ValueError, match="choose the evaluation images"):
        evaluation_conditions.build_degraders(cfg, {"big": {"image_size": 64}})
    with pytest.raises(KeyError, match="unknown config key"):
        evaluation_conditions.build_degraders(cfg, {"typo": {"noise_sd": 0.1}})
    with pytest.raises(ValueError, match="no conditions"):
        evaluation_conditions.build_degraders(cfg, {})


# ----------------------------------------------------- lesion masks
def square_masks(dataset, i):
    """A stand-in for medgan_nb.data.mask_of: a 12×12 square lesion in even images, none in odd ones."""
    if i % 2:
        return None
    h, w = dataset[i][0].shape[-2:]
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[8:20, 10:22] = True
    return mask


def test_lesion_regions_are_scored_inside_and_outside_the_masks(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation_core, "mask_of", square_masks)
    metrics = evaluate(None, tmp_path / "out", cfg=cfg, baselines=("identity", "median"), breakdown=False,
                       max_images=4, quiet=True)
    with open(tmp_path / "out" / "lesions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [r["key"] for r in read_rows(tmp_path / "out") if r["method"] == "identity"]
    assert tuple(rows[0]) == evaluation_core.LESION_COLUMNS
    assert [(r["method"], r["key"]) for r in rows] == [(m, keys[i]) for m in ("identity", "median") for i in (0, 2)]
    task = evaluation_config(cfg)
    dataset = evaluation_core.evaluation_data(task, max_images=4)[0]
    clean = dataset[0][0][None]
    degraded = Degradation(task)(clean, keys=[keys[0]]).image
    mask = square_masks(dataset, 0)
    row = rows[0]
    assert float(row["psnr_in"]) == pytest.approx(float(psnr_masked(degraded, clean, mask)[0]), abs=1e-4)
    assert float(row["psnr_out"]) == pytest.approx(float(psnr_masked(degraded, clean, ~mask)[0]), abs=1e-4)
    grad_in = float(gradient_energy_ratio(degraded, clean, mask)[0])
    assert float(row["grad_ratio_in"]) == pytest.approx(grad_in, rel=1e-4)
    t, b, le, ri = evaluation_scoring.lesion_box(mask)
    box = np.s_[:, :, t:b, le:ri]
    assert float(row["hf_ratio_box"]) == pytest.approx(float(hf_power_ratio(degraded[box], clean[box])[0]), rel=1e-4)
    assert float(row["hf_ratio_box"]) > 1.5           # the degraded input is noisy: more fine detail than the truth
    lesions = metrics["lesions"]["all"]
    assert lesions["identity"]["n_in"] == 2 and lesions["median"]["n_out"] == 2
    assert lesions["identity"]["psnr_in_mean"] == pytest.approx(np.mean([float(r["psnr_in"]) for r in rows
                                                                         if r["method"] == "identity"]))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Inside and outside the lesion masks" in report and "(lesions.png)" in report
    assert "Inside the lesion masks (all), the best baseline there is" in report
    assert (tmp_path / "out" / "lesions.png").stat().st_size > 0


def test_without_masks_there_is_no_lesion_table(cfg, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation_core, "mask_of", lambda dataset, i: None)
    metrics = evaluate(None, tmp_path / "out", cfg=cfg, baselines=("identity",), breakdown=False, max_images=2,
                       quiet=True)
    assert metrics["lesions"] is None
    assert not (tmp_path / "out" / "lesions.csv").exists() and not (tmp_path / "out" / "lesions.png").exists()
    assert "lesion" not in (tmp_path / "out" / "report.md").read_text()


def test_lesion_box_is_the_padded_bounding_box_inside_the_image():
    mask = torch.zeros(40, 50, dtype=torch.bool)
    mask[10:20, 24:44] = True                          # 10 × 20 pixels
    assert evaluation_scoring.lesion_box(mask) == (6, 24, 19, 49)   # padded by max(4 pixels, 25 %): 4 rows, 5 columns
    mask[10:20, 30:48] = True
    assert evaluation_scoring.lesion_box(mask)[3] == 50            # kept inside the image
    with pytest.raises(ValueError, match="empty"):
        evaluation_scoring.lesion_box(torch.zeros(8, 8, dtype=torch.bool))


# ----------------------------------------------------- degradation grid
class StandIn(torch.nn.Module):
    """A generator stand-in: identity (does nothing) or harmful (darkens every image)."""

    def __init__(self, harmful: bool = False):
        super().__init__()
        self.harmful = harmful
        self.checkpoint_sha256 = "0" * 64

    def forward(self, x):
        return (x - 0.5).clamp(-1, 1) if self.harmful else x


@pytest.fixture
def stand_in(monkeypatch, cfg):
    def use(generator):
        monkeypatch.setattr(evaluation_core, "load_generator", lambda checkpoint, device: (generator, cfg))
    return use


def test_grid_of_an_identity_model_is_exactly_zero_against_identity(checkpoint, stand_in, tmp_path):
    stand_in(StandIn())
    grid = evaluation_grid.evaluate_grid(checkpoint, tmp_path / "grid", max_images=2, device="cpu", quiet=True)
    assert grid["noise_stds"] == [0, 0.02, 0.05, 0.075, 0.1, 0.15, 0.2]
    assert grid["blur_sigmas"] == [0, 0.5, 1.0, 1.5, 2.0]
    assert grid["model_minus_identity"] == [[0.0] * 5] * 7
    assert grid["does_no_harm"] and grid["harmful_cells"] == 0
    assert all(name in ("nlm", "tv", "bilateral", "median") for row in grid["best_classic"] for name in row)
    clean = grid["results"]["noise 0, blur 0"]            # no degradation: the input is the clean image
    assert clean["identity"]["psnr_mean"] == PSNR_CAP and clean["gan"]["psnr_mean"] == 100
    assert grid["model_minus_best_classic"][0][0] > 0      # every classic changes a clean image
    strong = grid["results"]["noise 0.2, blur 0"]
    assert strong["nlm"]["psnr_mean"] > strong["identity"]["psnr_mean"]    # NLM got the true std and denoised
    assert all(s["ms_per_image"] >= 0 for s in strong.values()) and grid["metadata"]["torch_threads"] >= 1
    assert json.loads((tmp_path / "grid" / "grid.json").read_text()) == json.loads(json.dumps(grid))
    assert (tmp_path / "grid" / "grid.png").stat().st_size > 0
    assert len(read_rows(tmp_path / "grid")) == 35 * 6 * 2


def test_grid_shows_a_harmful_model_as_negative_cells(checkpoint, stand_in, tmp_path):
    stand_in(StandIn(harmful=True))
    grid = evaluation_grid.evaluate_grid(checkpoint, tmp_path / "grid", baselines=("median", "tv"),
                                         noise_stds=(0, 0.1), blur_sigmas=(0, 1.0, 2.0), max_images=2,
                                         device="cpu", quiet=True)
    gains = np.array(grid["model_minus_identity"])
    assert gains.shape == (2, 3) and (gains < -1).all()
    assert not grid["does_no_harm"] and grid["harmful_cells"] == 6
    assert grid["worst_cell"]["model_minus_identity"] == gains.min()
    assert (np.array(grid["model_minus_best_classic"]) < 0).all()
    assert {name for row in grid["best_classic"] for name in row} <= {"median", "tv"}


def test_grid_refuses_bad_input(checkpoint, tmp_path):
    with pytest.raises(ValueError, match="give a checkpoint"):
        evaluation_grid.evaluate_grid(None, tmp_path / "a")
    with pytest.raises(ValueError, match="noise_stds must be distinct values >= 0"):
        evaluation_grid.evaluate_grid(checkpoint, tmp_path / "b", noise_stds=(0.1, -0.1))
    with pytest.raises(ValueError, match="blur_sigmas must be"):
        evaluation_grid.evaluate_grid(checkpoint, tmp_path / "c", blur_sigmas=())
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "grid.json").write_text("{}")
    with pytest.raises(FileExistsError):
        evaluation_grid.evaluate_grid(checkpoint, tmp_path / "d")
    assert (tmp_path / "d" / "grid.json").read_text() == "{}"
