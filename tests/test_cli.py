import json
import subprocess
import sys
import urllib.error

import pytest
import torch

import medgan_nb.training.logs as training_logs
import medgan_nb.training.loop as training_loop
import medgan_nb.training.trainer as training_trainer
from medgan_nb.cli import main
from medgan_nb.models import load_generator, make_run_dir


def test_config_command_applies_overrides(capsys):
    assert main(["config", "--preset", "tiny", "--set", "epochs=3", "--set", "blur_sigma=[0.5, 1]"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["epochs"] == 3 and out["blur_sigma"] == [0.5, 1.0] and out["preset"] == "tiny"


@pytest.mark.parametrize("arg, message", [("nope=1", "unknown config key.*nope"), ("epochs=ten", "epochs: expected int"),
                                          ("epochs", "key=value")])
def test_bad_overrides_exit_with_a_message(arg, message):
    with pytest.raises(SystemExit, match=message):
        main(["config", "--preset", "tiny", "--set", arg])


def test_config_file_is_read(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("preset: tiny\nseed: 7\n")
    main(["config", "--config", str(tmp_path / "c.yaml")])
    assert json.loads(capsys.readouterr().out)["seed"] == 7


def test_run_dirs_are_never_reused(tmp_path):
    a = make_run_dir(tmp_path, "run")
    (a / "keep.txt").write_text("earlier results")
    b = make_run_dir(tmp_path, "run")
    c = make_run_dir(tmp_path, "run")
    assert (a.name, b.name, c.name) == ("run", "run-1", "run-2")
    assert (a / "keep.txt").read_text() == "earlier results"


def test_demo_trains_evaluates_and_reports(tmp_path, capsys):
    assert main(["demo", "--preset", "tiny", "--quiet", "--set", f"output_dir={tmp_path}"]) == 0
    run = tmp_path / "runs" / "demo-tiny"
    assert (run / "checkpoints" / "best.pt").exists()
    report = (run / "eval" / "report.md").read_text()
    assert "| gan |" in report and "| nlm |" in report
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["metadata"]["split"] == "test" and "kvasir-sample" in metrics["metadata"]["data"]
    assert set(metrics["results"]) == {"blur_noise", "original", "light"}                 # the goal conditions
    # trained for seconds on 48 real frames at 32² (residual output: it starts as the identity), it already
    # improves the original's heavy degradations and does no harm on blur + noise (measured +0.43 / +0.05 dB)
    gain = {c: r["gan"]["psnr_mean"] - r["identity"]["psnr_mean"] for c, r in metrics["results"].items()}
    assert gain["original"] > 0.2 and gain["blur_noise"] > -0.2
    assert metrics["lesions"]                                                          # Kvasir-SEG's polyp masks
    table = (run / "eval" / "models.md").read_text()
    assert table.startswith("| method | blur_noise | original | light |") and "| this run (demo) |" in table
    out = capsys.readouterr().out
    assert "held-out images" in out and str(run / "eval" / "report.md") in out and "this run (demo)" in out
    assert "trained in" in out and "min: 3 of 3 epochs, 36 steps" in out and "WARNING" not in out + report


def test_demo_reports_weights_that_learned(tmp_path):
    """make demo's own recipe (the demo preset: L1 with an EMA of G), shrunk to seconds: the weights it scores
    (best.pt's EMA) have moved from the initial ones and beat the degraded input."""
    sets = ["image_size=32", "frame_size=64", "max_images=48", "crops_per_frame=2", "batch_size=8", "epochs=10",
            "lr_decay_start=5", f"output_dir={tmp_path}"]
    assert main(["demo", "--preset", "demo", "--quiet", *(a for s in sets for a in ("--set", s))]) == 0
    run = tmp_path / "runs" / "demo-demo"
    generator, cfg = load_generator(run / "checkpoints" / "best.pt")
    assert generator.checkpoint_weights == "generator_ema" and cfg.ema_decay > 0
    torch.manual_seed(cfg.seed)                              # as train does before it builds the models
    initial = training_trainer.make_trainer(cfg).G.state_dict()
    moved = [not torch.equal(v, initial[k]) for k, v in generator.state_dict().items() if v.is_floating_point()]
    assert all(moved)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    gain = {c: r["gan"]["psnr_mean"] - r["identity"]["psnr_mean"] for c, r in metrics["results"].items()}
    assert gain["blur_noise"] > 0.05 and gain["original"] > 0.1          # measured +0.12 / +0.21 dB after 120 steps
    assert not training_logs.training_summary(run).cut_short


def test_a_demo_cut_short_by_its_safety_stop_says_so_first(tmp_path, monkeypatch, capsys):
    clock = iter([0.0])                 # a fake clock: the deadline is set at 0 s, every later reading is 1 h on
    monkeypatch.setattr(training_loop.time, "monotonic", lambda: next(clock, 3600.0))
    assert main(["demo", "--preset", "tiny", "--quiet", "--set", "max_minutes=1", "--set", f"output_dir={tmp_path}"]) == 0
    evaluation = tmp_path / "runs" / "demo-tiny" / "eval"
    for name in ("report.md", "models.md"):
        first = (evaluation / name).read_text().splitlines()[0]
        assert first.startswith("WARNING: this run was cut short: 1 of 3 epochs, 1 step") and "max_minutes=1" in first
    assert "| gan |" in (evaluation / "report.md").read_text()          # the report itself follows
    out = capsys.readouterr().out
    assert out.count("WARNING: this run was cut short") == 2             # after training, and above the summary


def test_evaluate_and_enhance_commands(tmp_path, capsys):
    from PIL import Image
    assert main(["train", "--preset", "tiny", "--quiet", "--set", f"output_dir={tmp_path}", "--set", "epochs=1",
                 "--name", "r"]) == 0
    run = tmp_path / "runs" / "r"
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.new("RGB", (40, 36), (180, 90 + 20 * i, 70)).save(frames / f"f{i}.jpg")
    assert main(["evaluate", str(run), "--data", str(frames), "--no-breakdown", "--quiet"]) == 0
    assert main(["evaluate", str(run), "--data", str(frames), "--no-breakdown", "--quiet"]) == 0
    assert (run / "eval" / "report.md").exists() and (run / "eval-1" / "report.md").exists()
    assert json.loads((run / "eval" / "metrics.json").read_text())["metadata"]["n_images"] == 2
    out = tmp_path / "enhanced"
    assert main(["enhance", str(frames), "--checkpoint", str(run), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["audit.jsonl", "f0.png", "f1.png"]
    assert main(["enhance", str(frames), "--checkpoint", str(run), "--out", str(out), "--quiet"]) == 1
    assert "already exist" in capsys.readouterr().err
    assert main(["evaluate", str(frames / "f0.jpg"), "--quiet"]) == 1


def test_data_info_counts_each_split(capsys):
    assert main(["data", "info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("train", "val", "test"))


def test_download_offline_explains_how_to_place_the_zip(tmp_path, monkeypatch, capsys):
    import medgan_nb.data.fetch as data_fetch
    real = data_fetch.download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data_fetch, "download", lambda name, to: real(name, to, urlopen=offline, progress=False))
    assert main(["data", "download", "kvasir-seg", "--to", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "kvasir-seg.zip" in err and str(tmp_path) in err and "datasets.simula.no" in err


def test_module_entry_point_and_version():
    out = subprocess.run([sys.executable, "-m", "medgan_nb", "--help"], capture_output=True, text=True, check=True)
    assert "download" in out.stdout and "demo" in out.stdout
    version = subprocess.run([sys.executable, "-c", "import medgan_nb; print(medgan_nb.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.count(".") == 2


def test_evaluate_goals_and_grid_from_the_command_line(tmp_path, capsys):
    assert main(["train", "--preset", "tiny", "--quiet", "--set", f"output_dir={tmp_path}", "--set", "epochs=1",
                 "--name", "r"]) == 0
    run = tmp_path / "runs" / "r"
    assert main(["evaluate", str(run), "--goals", "--max-images", "2", "--out", str(tmp_path / "g"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "g" / "metrics.json").read_text())
    assert set(metrics["results"]) == {"blur_noise", "original", "light"} and metrics["metadata"]["n_images"] == 2
    assert main(["evaluate", str(run), "--grid", "--max-images", "1", "--out", str(tmp_path / "grid"), "--quiet"]) == 0
    grid = json.loads((tmp_path / "grid" / "grid.json").read_text())
    assert len(grid["model_minus_identity"]) == 7 and len(grid["model_minus_identity"][0]) == 5
    assert (tmp_path / "grid" / "grid.png").exists() and "worst cell" in capsys.readouterr().out
