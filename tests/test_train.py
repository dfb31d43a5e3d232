import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medgan_nb import train as train_module
from medgan_nb.checkpoint import CheckpointError, file_sha256, load_checkpoint, load_generator
from medgan_nb.config import Config
from medgan_nb.train import TrainingDiverged, lr_factor, train

ROOT = Path(__file__).resolve().parents[1]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_short_run_writes_everything_a_user_looks_at(tmp_path):
    cfg = Config.preset("tiny", output_dir=str(tmp_path), epochs=2, save_every=1, sample_every=5)
    run = train(cfg, name="r", quiet=True)
    assert run == tmp_path / "runs" / "r"
    assert Config.load(run / "config.json") == cfg
    m = rows(run / "metrics.csv")
    assert [int(r["step"]) for r in m] == list(range(1, 25))            # 2 epochs × 12 batches, log_every 1
    assert set(m[0]) == set(train_module.METRIC_FIELDS)
    assert all(float(r["images_per_s"]) > 0 and float(r["l1"]) > 0 for r in m)
    v = rows(run / "val.csv")
    assert [r["epoch"] for r in v] == ["1", "2"]
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.pt", "best.pt", "epoch_001.pt", "epoch_002.pt"}
    assert (run / "samples" / "step_000005.png").exists() and (run / "samples" / "final.png").exists()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 24 and state["version"]
    for key in ("generator", "discriminator", "opt_g", "opt_d", "sched_g", "sched_d", "scaler_g", "scaler_d", "rng"):
        assert key in state
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["val"]["psnr"] == best["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in v), abs=1e-4)
    generator, loaded_cfg = load_generator(run)
    assert loaded_cfg == cfg and not generator.training


def test_runs_are_never_overwritten(tmp_path):
    cfg = Config.preset("tiny", output_dir=str(tmp_path), epochs=1)
    first = train(cfg, name="same", quiet=True)
    digest = file_sha256(first / "checkpoints" / "last.pt")
    second = train(cfg, name="same", quiet=True)
    assert second.name == "same-1" and file_sha256(first / "checkpoints" / "last.pt") == digest


def test_learning_rate_schedule_is_the_originals():
    cfg = Config.preset("seed")
    assert [lr_factor(e, cfg) for e in (0, 29, 30, 40, 49)] == [1.0, 1.0, 1.0, 0.5, pytest.approx(0.05)]


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = train_module.discriminator_loss
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] == 15 else loss    # step 15: in epoch 2

    monkeypatch.setattr(train_module, "discriminator_loss", poisoned)
    cfg = Config.preset("tiny", output_dir=str(tmp_path), epochs=3)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 15.*last\.pt"):
        train(cfg, name="nan", quiet=True)
    state = load_checkpoint(tmp_path / "runs" / "nan" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["generator"].values())


def test_foreign_files_are_not_loaded(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    for name in ("other.pt", "notes.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            load_generator(tmp_path / name)


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "medgan_nb", "train", "--quiet", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    settings = ["--preset", "tiny", "--set", "epochs=3", "--set", "max_images=160", "--set", "sample_every=0",
                "--set", "log_every=5", "--set", f"output_dir={tmp_path}"]
    whole = _cli(*settings, "--name", "whole")
    assert whole.wait(timeout=300) == 0, whole.stdout.read()

    killed = _cli(*settings, "--name", "killed")
    last = tmp_path / "runs" / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.5)                                                       # well into epoch 2
    assert killed.poll() is None, "the run finished before it could be killed; give it more work"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert load_checkpoint(last)["epoch"] == 1

    resumed = _cli("--resume", str(tmp_path / "runs" / "killed"))
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()
    a = load_checkpoint(tmp_path / "runs" / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"] == 120
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    assert [r["step"] for r in rows(tmp_path / "runs" / "killed" / "metrics.csv")] == \
           [r["step"] for r in rows(tmp_path / "runs" / "whole" / "metrics.csv")]


def test_torchrun_two_cpu_processes_keep_identical_weights(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "medgan_nb", "train", "--quiet",
                          "--preset", "tiny", "--set", "sample_every=0", "--set", "epochs=1", "--set", f"output_dir={tmp_path}",
                          "--name", "ddp"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "weights identical on all 2 processes" in out.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]     # rank 0 alone wrote a run folder
    state = load_checkpoint(tmp_path / "runs" / "ddp" / "checkpoints" / "last.pt")
    assert state["step"] == 6                                             # 48 images / (batch 4 × 2 ranks)


def test_max_minutes_ends_the_run_early_with_a_usable_checkpoint(tmp_path):
    cfg = Config.preset("tiny", output_dir=str(tmp_path), epochs=3, max_minutes=1e-6)
    run = train(cfg, name="short", quiet=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 1 and state["epoch"] == 1               # one step, then the epoch ends and is saved
    assert [r["epoch"] for r in rows(run / "val.csv")] == ["1"]
    assert (run / "samples" / "final.png").exists()


class CountingVGG(torch.nn.Module):
    """Stands in for the VGG loss: counts how often it embeds the clean and the restored batches."""

    def __init__(self):
        super().__init__()
        self.targets = self.embeds = 0

    def target(self, real):
        self.targets += 1
        return real.detach()

    def forward(self, fake, real=None, target=None):
        self.embeds += 1
        return (fake - (self.target(real) if target is None else target)).abs().mean()


def test_train_step_does_no_redundant_work():
    cfg = Config.preset("tiny", g_steps=3, lambda_perceptual=1.0)
    vgg = CountingVGG()
    step = train_module.make_step(cfg, "cpu", perceptual=vgg)
    forwards = []
    step.G.register_forward_hook(lambda *_: forwards.append("G"))
    d_grads = []
    for p in step.D.parameters():
        p.register_hook(lambda g: d_grads.append(1))
    clean = torch.rand(4, 3, 32, 32) * 2 - 1
    before = [p.detach().clone() for p in step.G.parameters()]
    loss_d, parts = step(clean, (clean + 0.2 * torch.randn_like(clean)).clamp(-1, 1))
    assert forwards == ["G"] * 3                                   # 1 D + 3 G updates, 3 generator forwards
    assert vgg.targets == 1 and vgg.embeds == 3                    # clean features once, restored once per G update
    assert len(d_grads) == len(list(step.D.parameters()))          # D's weights get gradients in D's update only
    assert torch.isfinite(loss_d) and parts.perceptual > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, step.G.parameters()))
