import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import medgan_nb.training.logs as training_logs
import medgan_nb.training.loop as training_loop
import medgan_nb.training.setup as training_setup
import medgan_nb.training as mg_training
import medgan_nb.training.trainer as training_trainer
from medgan_nb.config import Config
from medgan_nb.data import ImageLoadError
from medgan_nb.models import CheckpointError, build_generator, load_checkpoint, load_generator, save_checkpoint
from medgan_nb.training import TrainingDiverged, lr_factor, train
from medgan_nb.utils import file_sha256

ROOT = Path(__file__).resolve().parents[1]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_short_run_writes_everything_a_user_looks_at(tmp_path):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=2, save_every=1, sample_every=5)
    run = train(cfg, name="r", quiet=True)
    assert run == tmp_path / "runs" / "r"
    assert Config.load(run / "config.json") == cfg
    m = rows(run / "metrics.csv")
    assert [int(r["step"]) for r in m] == list(range(1, 25))            # 2 epochs × 12 batches, log_every 1
    assert set(m[0]) == set(training_logs.METRIC_FIELDS)
    assert all(float(r["images_per_s"]) > 0 and float(r["l1"]) > 0 for r in m)
    v = rows(run / "val.csv")
    assert [r["epoch"] for r in v] == ["1", "2"]
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"last.pt", "best.pt", "epoch_001.pt", "epoch_002.pt"}
    assert (run / "samples" / "step_000005.png").exists() and (run / "samples" / "final.png").exists()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["epoch"] == 2 and state["step"] == 24 and state["version"]
    for key in training_setup.TRAINING_STATE:
        assert key in state
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["val"]["psnr"] == best["best_psnr"] == pytest.approx(max(float(r["psnr"]) for r in v), abs=1e-4)
    generator, loaded_cfg = load_generator(run)
    assert loaded_cfg == cfg and not generator.training


def test_callbacks_see_every_step_in_order_and_can_stop_a_run(tmp_path):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=2, log_every=5)
    seen, order = [], []
    run = train(cfg, name="watched", quiet=True,
                callbacks=[lambda e: seen.append(e), lambda e: order.append(("second", e.step))])
    assert [e.step for e in seen] == list(range(1, 25)) and [e.epoch for e in seen] == [1] * 12 + [2] * 12
    assert [s for _, s in order] == [e.step for e in seen] and all(e.run == run for e in seen)
    logged = [e for e in seen if e.logged is not None]
    assert [e.step for e in logged] == [1, 5, 10, 15, 20]                # the rows of metrics.csv
    assert [int(r["step"]) for r in rows(run / "metrics.csv")] == [1, 5, 10, 15, 20]
    assert logged[1].logged["l1"] == pytest.approx(float(rows(run / "metrics.csv")[1]["l1"]), rel=1e-5)

    class Stop(Exception):
        pass

    def stop_in_epoch_2(event):
        if event.step == 15:
            raise Stop
    with pytest.raises(Stop):
        train(cfg, name="stopped", quiet=True, callbacks=[stop_in_epoch_2])
    assert load_checkpoint(tmp_path / "runs" / "stopped" / "checkpoints" / "last.pt")["epoch"] == 1


def test_runs_are_never_overwritten(tmp_path):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=1)
    first = train(cfg, name="same", quiet=True)
    digest = file_sha256(first / "checkpoints" / "last.pt")
    second = train(cfg, name="same", quiet=True)
    assert second.name == "same-1" and file_sha256(first / "checkpoints" / "last.pt") == digest


def test_learning_rate_schedule_is_the_originals():
    cfg = Config.from_preset("original")
    assert [lr_factor(e, cfg) for e in (0, 29, 30, 40, 49)] == [1.0, 1.0, 1.0, 0.5, pytest.approx(0.05)]


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = training_trainer.discriminator_loss
    calls = {"n": 0}

    def poisoned(*args):
        calls["n"] += 1
        loss = real(*args)
        return loss * float("nan") if calls["n"] == 15 else loss    # step 15: in epoch 2

    monkeypatch.setattr(training_trainer, "discriminator_loss", poisoned)
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=3)
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


# The same settings as test_resume_after_sigkill_gives_the_same_weights's CLI runs, through the Python API, with a
# callback that kills the process right after step 61 (in epoch 2: 40 steps per epoch).
KILL_AT_STEP_61 = """
import os, signal, sys
from medgan_nb import Config, train

def crash_after_step_61(event):
    if event.step == 61:
        os.kill(os.getpid(), signal.SIGKILL)

cfg = Config.from_preset("tiny", epochs=3, max_images=160, sample_every=0, log_every=5, output_dir=sys.argv[1],
                    data_dir="synthetic", synthetic_frames=200)
train(cfg, name="killed", quiet=True, callbacks=[crash_after_step_61])
"""


def _python(code, *args):
    """Run `python -c code args` to the end, as `_cli` runs the command line; (exit code, output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=1800)
    return out.returncode, out.stdout


def _cli(*args, env=None):
    """Run `python -m medgan_nb train --quiet ...` to the end; (exit code, output)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    out = subprocess.run([sys.executable, "-m", "medgan_nb", "train", "--quiet", *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800)
    return out.returncode, out.stdout


def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    """A real training process is killed with SIGKILL in the middle of epoch 2, at a chosen step (a training
    callback kills it there: no race with the machine's speed); resuming gives exactly the uninterrupted run's
    weights."""
    settings = ["--preset", "tiny", "--set", "epochs=3", "--set", "max_images=160", "--set", "sample_every=0",
                "--set", "log_every=5", "--set", f"output_dir={tmp_path}",
                "--set", "data_dir=synthetic", "--set", "synthetic_frames=200"]      # 40 steps per epoch
    code, output = _cli(*settings, "--name", "whole")
    assert code == 0, output

    code, output = _python(KILL_AT_STEP_61, str(tmp_path))
    assert code == -signal.SIGKILL, output
    killed = tmp_path / "runs" / "killed"
    last = killed / "checkpoints" / "last.pt"
    assert load_checkpoint(last)["epoch"] == 1                                        # epoch 2 was under way
    assert int(rows(killed / "metrics.csv")[-1]["step"]) == 60                         # logged up to the kill

    code, output = _cli("--resume", str(killed))
    assert code == 0, output
    a = load_checkpoint(tmp_path / "runs" / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(last)
    assert a["step"] == b["step"] == 120
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    assert rows(killed / "metrics.csv") == [{**r, "images_per_s": r2["images_per_s"]} for r, r2 in
                                            zip(rows(tmp_path / "runs" / "whole" / "metrics.csv"),
                                                rows(killed / "metrics.csv"))]
    assert [r["psnr"] for r in rows(killed / "val.csv")] == [r["psnr"] for r in rows(tmp_path / "runs" / "whole" / "val.csv")]
    assert sorted(p.name for p in tmp_path.joinpath("runs").iterdir()) == ["killed", "whole"]   # resumed in place


def tiny_run(tmp_path, name="r", **changes):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), sample_every=0, **changes)
    return train(cfg, name=name, quiet=True)


def test_resuming_from_an_older_checkpoint_forks_a_new_run_and_loses_nothing(tmp_path):
    """Issue 9: resuming from best.pt / epoch_N.pt restored an older best_psnr (best.pt later overwritten by a
    worse model) and deleted metrics rows; now the original run is untouched and a new folder names its parent."""
    run = tiny_run(tmp_path, epochs=3)
    before = {p.name: file_sha256(p) for p in [*(run / "checkpoints").iterdir(), run / "metrics.csv", run / "val.csv"]}
    forked = train(resume=run / "checkpoints" / "epoch_001.pt", quiet=True)
    assert forked == tmp_path / "runs" / "r-from-epoch_001"
    assert {p.name: file_sha256(p) for p in [*(run / "checkpoints").iterdir(), run / "metrics.csv",
                                              run / "val.csv"]} == before
    parent = json.loads((forked / "parent.json").read_text())
    assert parent["checkpoint"] == str((run / "checkpoints" / "epoch_001.pt").resolve())
    assert parent["sha256"] == before["epoch_001.pt"] and parent["epoch"] == 1 and parent["step"] == 12
    assert [r["step"] for r in rows(forked / "val.csv")] == ["12", "24", "36"]         # parent's epoch 1, then its own
    assert [r["psnr"] for r in rows(forked / "val.csv")][0] == rows(run / "val.csv")[0]["psnr"]
    assert load_checkpoint(forked)["epoch"] == 3


def test_resuming_a_loose_checkpoint_writes_under_output_dir_not_next_to_it(tmp_path):
    """Issue 9: a loose model.pt made the run write checkpoints/, metrics.csv, samples/ into its parent's parent."""
    run = tiny_run(tmp_path / "out", epochs=1)
    loose = tmp_path / "shared" / "model.pt"
    loose.parent.mkdir()
    loose.write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    state = load_checkpoint(loose)
    state["config"]["epochs"] = 2
    save_checkpoint({k: v for k, v in state.items() if k not in ("format", "version")}, loose)
    forked = train(resume=loose, quiet=True)
    assert forked.parent == tmp_path / "out" / "runs" and forked.name == "shared-from-model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "shared"]
    assert sorted(p.name for p in loose.parent.iterdir()) == ["model.pt"]
    assert json.loads((forked / "parent.json").read_text())["run"] is None
    assert load_checkpoint(forked)["epoch"] == 2


def test_weights_alone_cannot_be_resumed(tmp_path):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path))
    save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}, tmp_path / "g.pt")
    with pytest.raises(CheckpointError, match="no training state"):
        train(resume=tmp_path / "g.pt", quiet=True)


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    run = tiny_run(tmp_path, epochs=1)
    before = {p: file_sha256(p) for p in run.rglob("*") if p.is_file()}
    assert train(resume=run, quiet=True) == run
    assert {p: file_sha256(p) for p in run.rglob("*") if p.is_file()} == before


def test_each_epoch_writes_its_state_once(tmp_path, monkeypatch):
    """Issue 9: last, epoch_N and best were each written in full (about 650 MB apiece at the seed preset)."""
    writes = []
    real = training_loop.save_checkpoint
    monkeypatch.setattr(training_loop, "save_checkpoint", lambda state, path: writes.append(Path(path).name) or
                        real(state, path))
    run = tiny_run(tmp_path, epochs=2, save_every=1)
    assert writes == ["last.pt", "last.pt"]
    folder = run / "checkpoints"
    assert {p.name for p in folder.iterdir()} == {"last.pt", "best.pt", "epoch_001.pt", "epoch_002.pt"}
    assert file_sha256(folder / "epoch_002.pt") == file_sha256(folder / "last.pt")
    assert load_checkpoint(folder / "epoch_001.pt")["epoch"] == 1                 # not changed by epoch 2's write
    best = load_checkpoint(folder / "best.pt")
    assert best["val"]["psnr"] == best["best_psnr"]


def test_training_can_skip_unreadable_files_and_lists_them(tmp_path):
    """Issue 9: training died on the first unreadable file of data_dir."""
    from PIL import Image
    folder = tmp_path / "images"
    folder.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(40):
        Image.fromarray((torch.rand(40, 40, 3, generator=g) * 255).byte().numpy()).save(folder / f"{i:02d}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "empty.jpg").write_bytes(b"")
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path / "out"), data_dir=str(folder), sample_every=0,
                        epochs=1, max_images=0, split_ratios=(0.6, 0.2, 0.2))
    with pytest.raises(ImageLoadError, match="broken.png|empty.jpg"):
        train(cfg, name="strict", quiet=True)
    run = train(cfg.replace(bad_images="skip"), name="lenient", quiet=True)
    skipped = rows(run / "skipped_images.csv")
    assert sorted(Path(r["file"]).name for r in skipped) == ["broken.png", "empty.jpg"]
    assert all(r["reason"] for r in skipped)
    assert load_checkpoint(run)["epoch"] == 1


def test_process_group_backend_follows_the_configured_device(monkeypatch):
    """Issue 9: the backend followed torch.cuda.is_available(), so device=cpu on a GPU host got NCCL."""
    calls = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(training_loop.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(training_loop.dist, "init_process_group", lambda backend: calls.append(backend))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_loop._start_processes(torch.device("cpu")) == (1, 2, True)
    assert training_loop._start_processes(torch.device("cuda", 0)) == (1, 2, True)
    assert calls == ["gloo", "nccl"]


def test_process_group_is_destroyed_at_the_end(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(training_loop, "_start_processes", lambda device: (0, 1, True))
    monkeypatch.setattr(training_loop.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(training_loop.dist, "destroy_process_group", lambda: calls.append("destroy"))
    tiny_run(tmp_path, epochs=1)
    assert calls == ["barrier", "destroy"]                # every rank waits for the others, then leaves


def test_sync_batchnorm_on_the_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="sync_batchnorm=True needs CUDA"):
        tiny_run(tmp_path, device="cpu", sync_batchnorm=True)


def test_torchrun_two_cpu_processes_keep_identical_weights(tmp_path):
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "medgan_nb", "train", "--quiet",
                          "--preset", "tiny", "--set", "sample_every=0", "--set", "epochs=1", "--set", f"output_dir={tmp_path}",
                          "--name", "ddp"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "weights identical on all 2 processes" in out.stdout
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]     # rank 0 alone wrote a run folder
    state = load_checkpoint(tmp_path / "runs" / "ddp" / "checkpoints" / "last.pt")
    assert state["step"] == 6                                             # 48 images / (batch 4 × 2 ranks)


def test_max_minutes_ends_the_run_early_with_a_usable_checkpoint(tmp_path, monkeypatch):
    clock = iter([0.0])                 # a fake clock: the deadline is set at 0 s, every later reading is 1 h on
    monkeypatch.setattr(training_loop.time, "monotonic", lambda: next(clock, 3600.0))
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=3, max_minutes=1.0)
    run = train(cfg, name="short", quiet=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["step"] == 1 and state["epoch"] == 1               # one step, then the epoch ends and is saved
    assert [r["epoch"] for r in rows(run / "val.csv")] == ["1"]
    assert (run / "samples" / "final.png").exists()
    summary = training_logs.training_summary(run)
    assert summary.cut_short and summary.capped_epochs == [1] and summary.max_minutes == 1.0
    assert str(summary).startswith("1 of 3 epochs, 1 step (1 G and 1 D updates)")
    assert "CUT SHORT by the max_minutes=1 safety stop in epoch 1" in str(summary)
    train(resume=run, quiet=True)          # the clock no longer runs out: the remaining epochs are trained in full
    summary = training_logs.training_summary(run)
    assert (summary.epochs, summary.steps, summary.capped_epochs) == (3, 25, [1])     # 1 + 2 × 12; still cut short


def test_training_summary_counts_updates_and_cpu_time(tmp_path):
    run = train(Config.from_preset("tiny", output_dir=str(tmp_path), epochs=2, g_steps=2, save_every=1), name="gan",
                quiet=True)
    summary = training_logs.training_summary(run)
    assert (summary.epochs, summary.epochs_planned, summary.steps) == (2, 2, 24)
    assert (summary.g_updates, summary.d_updates, summary.cut_short) == (48, 24, False)
    cpu = [float(r["cpu_s"]) for r in rows(run / "val.csv")]
    assert 0 < cpu[0] < cpu[1] and summary.cpu_minutes == pytest.approx(cpu[1] / 60, rel=1e-5)
    assert "CUT SHORT" not in str(summary) and str(summary).startswith("2 of 2 epochs, 24 steps (48 G and 24 D")
    forked = train(resume=run / "checkpoints" / "epoch_001.pt", quiet=True)   # CPU time carries over a resume
    cpu_forked = [float(r["cpu_s"]) for r in rows(forked / "val.csv")]
    assert cpu_forked[0] == cpu[0] and cpu_forked[1] > cpu[0]
    l1 = train(Config.from_preset("tiny", output_dir=str(tmp_path), epochs=1, lambda_adv=0.0), name="l1", quiet=True)
    assert (training_logs.training_summary(l1).g_updates, training_logs.training_summary(l1).d_updates) == (12, 0)


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
    cfg = Config.from_preset("tiny", g_steps=3, lambda_perceptual=1.0)
    vgg = CountingVGG()
    step = training_trainer.make_trainer(cfg, "cpu", perceptual=vgg)
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


# ------------------------------------------------------------------ L1 pre-training, EMA, GAN fine-tuning
def test_l1_pretraining_leaves_d_alone_and_the_ema_is_what_is_validated(tmp_path):
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=2, lambda_adv=0.0, ema_decay=0.9,
                        generator="nafnet", residual=True, base_channels=8, depth=2, stem=2)
    torch.manual_seed(cfg.seed)
    d_before = training_trainer.make_trainer(cfg).D.state_dict()
    run = train(cfg, name="l1", quiet=True)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert all(torch.equal(v, d_before[k]) for k, v in state["discriminator"].items())   # D never updated
    assert all(float(r["loss_d"]) == 0 and float(r["adv"]) == 0 for r in rows(run / "metrics.csv"))
    ema, g = state["generator_ema"], state["generator"]
    assert ema is not None and any(not torch.equal(ema[k], g[k]) for k in g)
    generator, _ = load_generator(run / "checkpoints" / "last.pt")
    assert all(torch.equal(v, ema[k]) for k, v in generator.state_dict().items())        # the EMA ships
    step = training_trainer.make_trainer(cfg)
    step.ema.load_state_dict(ema)
    data = training_setup._load_data(cfg, torch.device("cpu"), 0, 1)
    val = training_trainer._scores(mg_training.restore(step.ema, data.val_degraded, torch.device("cpu")), data.val_clean)
    assert abs(val["psnr"] - state["val"]["psnr"]) < 1e-6


def test_ema_decay_warms_up_then_averages():
    cfg = Config.from_preset("tiny", ema_decay=0.5, lambda_adv=0.0)
    step = training_trainer.make_trainer(cfg)
    with torch.no_grad():
        for p in step.G.parameters():
            p.fill_(1.0)
    step._update_ema()                                   # first update: d = min(0.5, 1/10) = 0.1
    p0 = next(step.ema.parameters())
    assert step.ema_updates == 1
    with torch.no_grad():
        for p in step.ema.parameters():
            p.zero_()
    for _ in range(20):                                  # later: d = 0.5, so ema -> 1 - 0.5**k
        step._update_ema()
    assert torch.allclose(p0, torch.ones_like(p0), atol=1e-3)


def test_gan_fine_tuning_starts_from_the_pretrained_ema(tmp_path):
    base = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=1, lambda_adv=0.0, ema_decay=0.9)
    pretrained = train(base, name="l1", quiet=True) / "checkpoints" / "last.pt"
    ema = load_checkpoint(pretrained)["generator_ema"]
    cfg = base.replace(lambda_adv=0.01, init_generator=str(pretrained), epochs=1)
    seen = {}
    original = training_setup._init_generator

    def spy(trainer, path):
        original(trainer, path)
        seen["G"] = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    training_setup._init_generator = spy
    try:
        run = train(cfg, name="gan", quiet=True)
    finally:
        training_setup._init_generator = original
    assert all(torch.equal(seen["G"][k], v) for k, v in ema.items())
    assert any(float(r["adv"]) > 0 for r in rows(run / "metrics.csv"))                  # now adversarial
    with pytest.raises(CheckpointError, match="does not fit"):
        train(base.replace(init_generator=str(pretrained), base_channels=16), name="bad", quiet=True)


def test_a_noise_map_unet_starts_from_one_without_and_computes_what_it_did(tmp_path, monkeypatch):
    import medgan_nb.models.zoo as zoo
    cfg = Config.from_preset("tiny", residual=True)
    torch.manual_seed(4)
    source = build_generator(cfg).eval()
    zoo.save_model(source, cfg, "tiny-plain", {"summary": "a UNet without a noise map"}, tmp_path)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    trainer = training_trainer.make_trainer(cfg.replace(noise_map=True, noise_map_scales=(1, 4), ema_decay=0.9))
    training_setup._init_generator(trainer, "tiny-plain")
    first = trainer.G.downs[0][0].weight
    assert first.shape[1] == 5 and torch.equal(first[:, 3:], torch.zeros_like(first[:, 3:]))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(trainer.G.eval()(x), source(x), atol=1e-6)            # the map is read, weighted 0
        assert torch.equal(trainer.ema.downs[0][0].weight, first)
    with pytest.raises(CheckpointError, match="does not fit"):                     # other differences still refused
        training_setup._init_generator(training_trainer.make_trainer(cfg.replace(base_channels=4, noise_map=True)),
                                       "tiny-plain")


# ------------------------------------------------------------------ per-term gradient norms, TensorBoard
GRAD_COLUMNS = [f"grad_{t}" for t in training_logs.GRAD_TERMS]


def test_logging_gradient_norms_changes_no_weight(tmp_path):
    """Issue 11: the per-term gradient norms are measured on logging steps only; the weights after training
    must be bit-identical whether every step is logged or (almost) none."""
    every = tiny_run(tmp_path, name="every", epochs=2, log_every=1)
    rare = tiny_run(tmp_path, name="rare", epochs=2, log_every=1000)
    a, b = load_checkpoint(every / "checkpoints" / "last.pt"), load_checkpoint(rare / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 24
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs with log_every=1"
    m = rows(every / "metrics.csv")
    assert len(m) == 24 and [r["step"] for r in rows(rare / "metrics.csv")] == ["1"]
    for r in m:                                  # the tiny preset: adversarial and L1 on, no perceptual term
        assert float(r["grad_adv"]) > 0 and float(r["grad_l1"]) > 0 and float(r["grad_perceptual"]) == 0
    assert m[0] == {**rows(rare / "metrics.csv")[0], "images_per_s": m[0]["images_per_s"]}   # same first step


def test_train_step_with_gradient_norms_updates_exactly_as_without():
    """The same at the level of one Trainer, with several G updates per batch and a perceptual term."""
    cfg = Config.from_preset("tiny", g_steps=2, lambda_perceptual=1.0)
    steps = []
    for measure in (True, False):
        torch.manual_seed(0)
        step = training_trainer.make_trainer(cfg, "cpu", perceptual=CountingVGG())
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            clean = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
            step(clean, (clean + 0.2 * torch.randn(clean.shape, generator=g)).clamp(-1, 1), grad_norms=measure)
        steps.append(step)
    assert all(v > 0 for v in steps[0].grad_norms.values()) and steps[1].grad_norms is None
    for model in ("G", "D"):
        for (name, p), q in zip(getattr(steps[0], model).state_dict().items(),
                                getattr(steps[1], model).state_dict().values()):
            assert torch.equal(p, q), f"{model}.{name} differs"


def test_gradient_norms_match_a_hand_computation():
    """One iteration (g_steps=1): the norms the step reports are those of d(term)/d(G's output), computed here
    by hand on an identical copy: L1 in closed form (lambda * sign(fake - clean) / N), the adversarial term by
    autograd through the updated D."""
    cfg = Config.from_preset("tiny", lambda_l1=70.0)
    torch.manual_seed(0)
    a = training_trainer.make_trainer(cfg, "cpu")
    torch.manual_seed(0)
    b = training_trainer.make_trainer(cfg, "cpu")
    g = torch.Generator().manual_seed(3)
    clean = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    degraded = (clean + 0.2 * torch.randn(clean.shape, generator=g)).clamp(-1, 1)
    torch.manual_seed(5)
    a(clean, degraded, grad_norms=True)

    torch.manual_seed(5)                                  # same dropout masks
    fake = b.G(degraded)
    b._update_d(clean, degraded, fake)
    b.D.requires_grad_(False)
    adv = cfg.lambda_adv * torch.nn.functional.binary_cross_entropy_with_logits(
        logits := b.D(degraded, fake), torch.ones_like(logits))
    (grad_adv,) = torch.autograd.grad(adv, fake)
    diff = (fake - clean).detach()
    grad_l1 = cfg.lambda_l1 * diff.sign() / diff.numel()
    norms = {k: v.item() for k, v in a.grad_norms.items()}
    assert norms["adv"] == pytest.approx(grad_adv.double().norm().item(), rel=1e-5) and norms["adv"] > 0
    assert norms["l1"] == pytest.approx(grad_l1.double().norm().item(), rel=1e-6)
    assert norms["l1"] == pytest.approx(cfg.lambda_l1 / diff.numel() ** 0.5, rel=1e-3)   # no pixel exactly right
    assert norms["perceptual"] == 0


def test_tensorboard_without_the_package_is_a_clear_error_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)       # `import` now raises ImportError
    with pytest.raises(ImportError, match="pip install tensorboard") as info:
        tiny_run(tmp_path, epochs=1, tensorboard=True)
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no chained traceback
    assert not (tmp_path / "runs").exists()


def test_tensorboard_logs_losses_gradient_norms_rates_psnr_and_samples(tmp_path):
    pytest.importorskip("torch.utils.tensorboard", reason="tensorboard is not installed (optional)")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    cfg = Config.from_preset("tiny", output_dir=str(tmp_path), epochs=1, tensorboard=True, sample_every=5, log_every=2)
    run = train(cfg, name="tb", quiet=True)
    files = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert files
    events = event_accumulator.EventAccumulator(str(run / "tensorboard")).Reload()
    scalars = set(events.Tags()["scalars"])
    assert set(training_logs.TB_TAGS.values()) | {"val/psnr", "val/ssim"} <= scalars
    m = rows(run / "metrics.csv")                                       # CSV stays the primary log
    assert [e.step for e in events.Scalars("grad_norm/adv")] == [int(r["step"]) for r in m]
    assert [e.value for e in events.Scalars("grad_norm/l1")] == pytest.approx([float(r["grad_l1"]) for r in m],
                                                                               rel=1e-5)
    assert [e.step for e in events.Images("samples/degraded_restored_clean")] == [5, 10, 12]   # and the final grid


def test_a_metrics_file_from_an_older_version_keeps_its_columns(tmp_path):
    from medgan_nb.training.logs import _CsvLog
    path = tmp_path / "metrics.csv"
    path.write_text("step,epoch,loss_d\n1,1,0.5\n")
    _CsvLog(path, ["step", "epoch", "loss_d", "grad_adv"], True).write({"step": 2, "epoch": 1, "loss_d": 0.25,
                                                                       "grad_adv": 3.0})
    assert path.read_text().splitlines() == ["step,epoch,loss_d", "1,1,0.5", "2,1,0.25"]


def test_init_generator_takes_a_shipped_models_name(tmp_path, monkeypatch):
    import medgan_nb.models.zoo as zoo
    cfg = Config.from_preset("tiny")
    torch.manual_seed(3)
    source = build_generator(cfg)
    zoo.save_model(source, cfg, "tiny-l1", {"summary": "an L1 model to fine-tune"}, tmp_path)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    trainer = training_trainer.make_trainer(cfg.replace(ema_decay=0.9))
    training_setup._init_generator(trainer, "tiny-l1")
    for model in (trainer.G, trainer.ema):
        assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        training_setup._init_generator(trainer, "no-such-model")
