"""Ordinary mistakes at the command line end in one line naming the cause and the fix, never a traceback.

Each test runs `medgan_nb.cli.app.main` in-process and checks the exit status, the message on stderr and
that no Python traceback reached the user; none of them trains more than one tiny epoch.
"""
import errno
import shutil
import sys

import pytest
import torch

import medgan_nb.cli.models as cli_models
from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.models import build_generator, save_checkpoint


def run(args, capsys, status=1):
    """main(args): its exit status (returned or raised), stdout and stderr, checked for a traceback."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert code == status, (code, out, err)
    return out, err


def tiny(tmp_path, *sets):
    """train arguments of a tiny run writing under tmp_path/output."""
    args = ["train", "--preset", "tiny", "--quiet", "--set", f"output_dir={tmp_path / 'output'}"]
    for s in sets:
        args += ["--set", s]
    return args


def runs_of(tmp_path):
    runs = tmp_path / "output" / "runs"
    return sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []


# ------------------------------------------------------------------ 1. config values
@pytest.mark.parametrize("setting, message", [
    ("save_every=0", "save_every must be an integer >= 1"),
    ("log_every=0", "log_every must be an integer >= 1"),
    ("base_channels=0", "base_channels must be an integer >= 1"),
    ("d_layers=-1", "d_layers must be an integer >= 1"),
    ("sample_every=-1", "sample_every must be an integer >= 0"),
    ("lambda_perceptual=NaN", "lambda_perceptual must be a finite number >= 0"),
    ("lr_g=Infinity", "lr_g must be a finite number >= 0"),
    ("seed=99999999999999999999", "seed must be between 0 and 4294967295"),
    ("seed=-1", "seed must be between 0 and 4294967295"),
    ("output_dir=", "output_dir must name a folder"),
])
def test_config_values_that_cannot_work_are_refused(setting, message, capsys):
    _, err = run(["config", "--preset", "tiny", "--set", setting], capsys)
    assert f"error: {message}" in err


def test_nan_in_a_config_file_is_refused(tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"preset": "tiny", "lambda_perceptual": NaN}')
    _, err = run(["config", "--config", tmp_path / "c.json"], capsys)
    assert "lambda_perceptual must be a finite number >= 0" in err and "c.json" in err


# ------------------------------------------------------------------ 2. train set-up
def test_missing_config_file(tmp_path, capsys):
    _, err = run(["train", "--config", tmp_path / "nope.json"], capsys)
    assert "error: config file" in err and "nope.json" in err and "--preset" in err


def test_unreadable_config_file(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("epochs: [1\n")
    _, err = run(["config", "--config", tmp_path / "c.yaml"], capsys)
    assert "c.yaml" in err and err.startswith("error: ")


def test_missing_data_dir_leaves_no_run_folder(tmp_path, capsys):
    _, err = run(tiny(tmp_path, f"data_dir={tmp_path / 'nowhere'}"), capsys)
    assert "image folder" in err and "nowhere" in err and "does not exist" in err
    assert runs_of(tmp_path) == []


def test_data_info_on_a_missing_folder(tmp_path, capsys):
    _, err = run(["data", "info", "--preset", "tiny", "--set", f"data_dir={tmp_path / 'nope'}"], capsys)
    assert err.startswith("error: the train split: image folder") and "nope" in err


def test_cuda_without_a_gpu(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, err = run(tiny(tmp_path, "device=cuda"), capsys)
    assert "CUDA is not available" in err and "available here: auto, cpu" in err
    assert runs_of(tmp_path) == []


def test_nonsense_device(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, err = run(tiny(tmp_path, "device=banana"), capsys)
    assert "device 'banana'" in err and "available here: auto, cpu" in err


def test_demo_with_a_device_this_machine_lacks(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _, err = run(["demo", "--preset", "tiny", "--quiet", "--set", f"output_dir={tmp_path / 'output'}",
                  "--set", "device=cuda:1"], capsys)
    assert "device 'cuda:1'" in err and "available here: auto, cpu" in err
    assert runs_of(tmp_path) == []


def test_tensorboard_without_the_package(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # import fails as if not installed
    _, err = run(tiny(tmp_path, "tensorboard=true"), capsys)
    assert "pip install tensorboard" in err and "tensorboard=False" in err
    assert runs_of(tmp_path) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_output_disk_read_only_or_full_when_the_run_folder_is_made(tmp_path, capsys, monkeypatch, code):
    def fail(self, path):
        raise OSError(code, "simulated", str(path))
    monkeypatch.setattr(Config, "save", fail)
    _, err = run(tiny(tmp_path), capsys)
    assert err.count("\n") == 1 and "config.json" in err and "error: " in err
    assert runs_of(tmp_path) == []                # the folder made by this call, still empty, is gone


def test_output_disk_full_when_a_checkpoint_is_written(tmp_path, capsys, monkeypatch):
    import medgan_nb.training.loop as training_loop

    def full(state, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))
    monkeypatch.setattr(training_loop, "save_checkpoint", full)
    _, err = run(tiny(tmp_path, "epochs=1", "max_images=8"), capsys)
    assert "error: No space left on device" in err and "last.pt" in err and "free some space" in err


# ------------------------------------------------------------------ 3. checkpoints
def _checkpoint(path, config=..., weights=None):
    cfg = Config.from_preset("tiny")
    state = {"config": cfg.to_dict() if config is ... else config,
             "generator": weights if weights is not None else build_generator(cfg).state_dict()}
    if config is None:
        del state["config"]
    return save_checkpoint(state, path)


@pytest.mark.parametrize("config, message", [
    (None, "holds no config"),
    ([1, 2], "config is not a mapping"),
    ({"image_size": "big"}, "image_size: expected int"),
    ({"base_channels": 16}, "weights do not fit"),                 # the state dict of another architecture
])
def test_checkpoints_with_a_bad_config(tmp_path, capsys, config, message):
    path = _checkpoint(tmp_path / "bad.pt", Config.from_preset("tiny").to_dict() | config
                       if isinstance(config, dict) else config)
    for command in (["evaluate", path, "--out", tmp_path / "ev", "--quiet", "--max-images", "1"],
                    ["export", path, "--format", "torchscript", "--out", tmp_path / "g.pt"],
                    ["export", path, "--format", "pretrained", "--name", "x", "--out", tmp_path / "zoo"]):
        _, err = run(command, capsys)
        assert "bad.pt" in err and message in err, (command, err)
    assert not (tmp_path / "ev").exists() and not (tmp_path / "g.pt").exists() and not (tmp_path / "zoo").exists()


class Thing:
    """A Python object in a checkpoint: loading it would unpickle (run) code."""


def test_a_checkpoint_with_python_objects_never_suggests_weights_only_false(tmp_path, capsys):
    torch.save({"format": "medgan_nb-checkpoint", "thing": Thing()}, tmp_path / "obj.pt")
    _, err = run(["evaluate", tmp_path / "obj.pt", "--out", tmp_path / "ev", "--quiet"], capsys)
    assert "obj.pt" in err and "weights_only" not in err and "can still be loaded" not in err
    assert "Python objects" in err
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint" * 10)
    _, err = run(["evaluate", tmp_path / "garbage.pt", "--out", tmp_path / "ev", "--quiet"], capsys)
    assert "garbage.pt" in err and "unreadable pickle data" in err and "weights_only" not in err


def test_evaluate_a_shipped_model_with_tampered_weights(tmp_path, capsys, monkeypatch):
    import medgan_nb.models.zoo as zoo
    folder = tmp_path / "weights"
    shutil.copytree(zoo.WEIGHTS_DIR, folder, ignore=shutil.ignore_patterns("naturalness"))
    data = bytearray((folder / "realtime.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "realtime.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", folder)
    _, err = run(["evaluate", "--model", "realtime", "--out", tmp_path / "ev", "--quiet", "--max-images", "1"],
                 capsys)
    assert "realtime.safetensors does not match its card" in err


def test_evaluate_on_a_folder_of_corrupt_images(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"b{i}.png").write_bytes(b"not a png")
    _, err = run(["evaluate", "--model", "realtime", "--data", bad, "--out", tmp_path / "ev", "--quiet"], capsys)
    assert "none of the 3 image files under" in err and "b0.png" in err


# ------------------------------------------------------------------ 4. run names
@pytest.mark.parametrize("name", ["../../x", "/tmp/abs-run", "a/b", "..", ""])
def test_run_names_must_be_one_plain_folder_name(tmp_path, capsys, name):
    _, err = run([*tiny(tmp_path), "--name", name], capsys)
    assert "--name" in err and "a single folder name" in err
    assert runs_of(tmp_path) == [] and not (tmp_path / "x").exists()


# ------------------------------------------------------------------ 5. evaluate's default data
def test_evaluate_a_shipped_model_on_a_fresh_clone(tmp_path, capsys, monkeypatch):
    """The shipped cards name the developers' data folder; without it, evaluate reads the shipped sample."""
    import medgan_nb.cli.evaluate as cli_evaluate
    from medgan_nb.data.datasets import SHIPPED_DATA, data_source
    from medgan_nb.evaluation.conditions import evaluation_config
    from medgan_nb.evaluation.core import evaluation_data
    chosen = []
    monkeypatch.setattr(cli_evaluate, "_evaluate", lambda checkpoint, model, cfg, out, args: chosen.append(cfg) or 0)
    monkeypatch.chdir(tmp_path)                         # no ../shared here, no data/Kvasir-SEG
    out, _ = run(["evaluate", "--model", "realtime", "--max-images", "2", "--quiet", "--out", tmp_path / "ev"],
                 capsys, status=0)
    assert "not here; evaluating on the shipped sample" in out and "kvasir-sample" in out
    assert data_source(chosen[0]) == str(SHIPPED_DATA)
    assert len(evaluation_data(evaluation_config(chosen[0]), max_images=2)[0]) == 2


# ------------------------------------------------------------------ 6. DICOMDIR among scans
def test_dicomdir_and_broken_slices_are_skipped_and_counted(tmp_path):
    from pydicom.data import get_testdata_file
    from medgan_nb.data.scans import folder_slices
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(get_testdata_file("DICOMDIR"), folder / "DICOMDIR")
    shutil.copy(get_testdata_file("CT_small.dcm"), folder / "ct.dcm")
    broken = folder / "broken.dcm"
    broken.write_bytes((folder / "ct.dcm").read_bytes()[:2000])          # a CT header without its pixels
    skipped = []
    slices = folder_slices(folder, "ct", "train", 64, (1.0 - 2e-9, 1e-9, 1e-9), on_error="skip", skipped=skipped)
    assert len(slices) == 1
    assert sorted(p.name for p, _ in skipped) == ["DICOMDIR", "broken.dcm"]
    with pytest.raises(Exception, match="broken.dcm"):
        folder_slices(folder, "ct", "train", 64, (1.0 - 2e-9, 1e-9, 1e-9))


def test_a_scan_presets_training_data_lists_what_it_left_out(tmp_path):
    """With bad_images=skip, the training set of a scan preset carries the files left out, which `train` writes to
    the run's skipped_images.csv."""
    from pydicom.data import get_testdata_file
    from medgan_nb.data.datasets import default_dataset
    from medgan_nb.training.setup import _skipped_files
    shutil.copy(get_testdata_file("DICOMDIR"), tmp_path / "DICOMDIR")
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    (tmp_path / "broken.dcm").write_bytes((tmp_path / "ct.dcm").read_bytes()[:2000])
    cfg = Config.from_preset("ct", data_dir=str(tmp_path), image_size=32, scan_size=64, scan_realisations=1,
                             split_ratios=(0.999998, 1e-6, 1e-6), bad_images="skip")
    dataset = default_dataset("train", cfg, on_error="skip")
    assert len(dataset) > 0
    assert sorted(p.name for p, _ in _skipped_files(dataset)) == ["DICOMDIR", "broken.dcm"]


# ------------------------------------------------------------------ 7. the catch-all
@pytest.mark.parametrize("error, status, message", [
    (PermissionError(errno.EACCES, "Permission denied", "/x/y"), 1, "error: Permission denied (/x/y)"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "y" * 300), 1, "use a shorter name"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/z"), 1,
     "error: No such file or directory (/x/z)"),
    (KeyboardInterrupt(), 130, "interrupted"),
])
def test_ordinary_os_errors_reach_the_user_as_one_line(capsys, monkeypatch, error, status, message):
    def fail(args):
        raise error
    monkeypatch.setattr(cli_models, "cmd_models", fail)
    _, err = run(["models"], capsys, status=status)
    assert message in err and err.count("\n") == 1


def test_programming_errors_keep_their_traceback(monkeypatch):
    def fail(args):
        raise ZeroDivisionError("a bug")
    monkeypatch.setattr(cli_models, "cmd_models", fail)
    with pytest.raises(ZeroDivisionError):
        main(["models"])
