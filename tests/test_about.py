"""The notebooks' set-up cell (medgan_nb.config.notebook)."""
import medgan_nb.config.notebook as config_notebook


def test_setup_lists_versions_device_preset_and_how_to_install_missing_extras(monkeypatch, capsys):
    monkeypatch.setenv("MEDGAN_TINY", "1")
    monkeypatch.setattr(config_notebook, "version_of", lambda p: None if p == "tensorboard" else "9.9")
    cfg = config_notebook.print_setup(epochs=2)
    out = capsys.readouterr().out
    assert cfg.preset == "tiny" and cfg.epochs == 2
    assert "torch 9.9" in out and "device: " in out and "preset 'tiny'" in out
    assert "tensorboard: not installed (TensorBoard logs of training runs: pip install tensorboard)" in out
    assert "ipywidgets: 9.9\n" in out + "\n"
