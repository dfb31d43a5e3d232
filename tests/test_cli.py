import json
import subprocess
import sys
import urllib.error

import pytest

from medgan_nb.cli import main, make_run_dir


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


def test_demo_smoke_run_writes_its_outputs(tmp_path, capsys):
    assert main(["demo", "--preset", "tiny", "--set", f"output_dir={tmp_path}"]) == 0
    assert main(["demo", "--preset", "tiny", "--set", f"output_dir={tmp_path}"]) == 0
    runs = sorted((tmp_path / "smoke").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert (run / "overview.png").stat().st_size > 5000
        assert json.loads((run / "config.json").read_text())["preset"] == "tiny"
    out = capsys.readouterr().out
    assert "degraded test images: PSNR" in out and "one step: D loss" in out


def test_data_info_counts_each_split(capsys):
    assert main(["data", "info", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    assert all(s in out for s in ("train", "val", "test"))


def test_download_offline_explains_how_to_place_the_zip(tmp_path, monkeypatch, capsys):
    import medgan_nb.download as dl
    real = dl.download

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(dl, "download", lambda name, to: real(name, to, urlopen=offline, progress=False))
    assert main(["data", "download", "kvasir-seg", "--to", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "kvasir-seg.zip" in err and str(tmp_path) in err and "datasets.simula.no" in err


def test_module_entry_point_and_version():
    out = subprocess.run([sys.executable, "-m", "medgan_nb", "--help"], capture_output=True, text=True, check=True)
    assert "download" in out.stdout and "demo" in out.stdout
    version = subprocess.run([sys.executable, "-c", "import medgan_nb; print(medgan_nb.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.count(".") == 2
