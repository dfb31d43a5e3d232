import os
import stat

import pytest
import torch

import medgan_nb.models.checkpoint as models_checkpoint
import medgan_nb.utils.files as utils_files
from medgan_nb.config import Config
from medgan_nb.models import build_generator


def small_state(seed=0):
    torch.manual_seed(seed)
    cfg = Config.from_preset("tiny")
    return {"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()}


def test_the_reported_hash_is_of_the_bytes_that_were_loaded(tmp_path, monkeypatch):
    """Issue 9: hashing the file after loading it could name a checkpoint that training had replaced meanwhile."""
    path = models_checkpoint.save_checkpoint(small_state(0), tmp_path / "last.pt")
    loaded_bytes = path.read_bytes()
    real_load = torch.load

    def load_then_replace(f, **kwargs):           # training writes a new last.pt while we deserialise
        state = real_load(f, **kwargs)
        models_checkpoint.save_checkpoint(small_state(1), path)
        return state

    monkeypatch.setattr(models_checkpoint.torch, "load", load_then_replace)
    generator, _ = models_checkpoint.load_generator(path)
    import hashlib
    assert generator.checkpoint_sha256 == hashlib.sha256(loaded_bytes).hexdigest() != utils_files.file_sha256(path)


def test_a_file_replaced_between_hashing_and_loading_gives_the_first_files_weights_and_hash(tmp_path, monkeypatch):
    """The hash and the weights come from one open file: a replacement in between changes neither."""
    path = models_checkpoint.save_checkpoint(small_state(0), tmp_path / "last.pt")
    first_bytes, first = path.read_bytes(), small_state(0)["generator"]
    real_sha = models_checkpoint._sha256_of

    def hash_then_replace(f):
        digest = real_sha(f)
        models_checkpoint.save_checkpoint(small_state(1), path)         # a training run writes a new last.pt meanwhile
        return digest

    monkeypatch.setattr(models_checkpoint, "_sha256_of", hash_then_replace)
    generator, _ = models_checkpoint.load_generator(path)
    import hashlib
    assert generator.checkpoint_sha256 == hashlib.sha256(first_bytes).hexdigest() != utils_files.file_sha256(path)
    loaded = generator.state_dict()
    assert loaded.keys() == first.keys()
    assert all(torch.equal(loaded[k], first[k]) for k in first)
    assert not torch.equal(loaded["final.0.weight"], small_state(1)["generator"]["final.0.weight"])


def test_the_loaded_generator_holds_real_weights_it_may_change(tmp_path):
    """Built on the meta device and given the loaded tensors: none left on meta; changing them leaves the file."""
    path = models_checkpoint.save_checkpoint(small_state(0), tmp_path / "last.pt")
    before = path.read_bytes()
    generator, _ = models_checkpoint.load_generator(path)
    tensors = list(generator.parameters()) + list(generator.buffers())
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    with torch.no_grad():
        for t in generator.parameters():
            t.mul_(2)                                     # BN folding, fine-tuning: in place
    assert path.read_bytes() == before
    again, _ = models_checkpoint.load_generator(path)
    w = "final.0.weight"
    assert torch.equal(again.state_dict()[w] * 2, generator.state_dict()[w])


def test_the_hash_is_not_stored_back(tmp_path):
    state = models_checkpoint.load_checkpoint(models_checkpoint.save_checkpoint(small_state(), tmp_path / "a.pt"))
    models_checkpoint.save_checkpoint(state, tmp_path / "b.pt")
    assert "sha256" not in torch.load(tmp_path / "b.pt", weights_only=True)


def test_run_folder_of(tmp_path):
    run = tmp_path / "runs" / "x"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    assert models_checkpoint.run_folder_of(run) == run
    assert models_checkpoint.run_folder_of(run / "checkpoints" / "best.pt") == run
    assert models_checkpoint.run_folder_of(tmp_path / "model.pt") is None                  # a loose file belongs to no run
    assert models_checkpoint.run_folder_of(tmp_path / "runs") is None


def test_copy_checkpoint_keeps_the_copy_when_the_source_is_rewritten(tmp_path):
    last = models_checkpoint.save_checkpoint(small_state(0), tmp_path / "last.pt")
    first = utils_files.file_sha256(last)
    models_checkpoint.copy_checkpoint(last, tmp_path / "epoch_001.pt")
    models_checkpoint.save_checkpoint(small_state(1), last)                                 # the next epoch
    assert utils_files.file_sha256(tmp_path / "epoch_001.pt") == first != utils_files.file_sha256(last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_001.pt", "last.pt"]   # no temp files left


def test_copy_checkpoint_copies_where_links_fail(tmp_path, monkeypatch):
    last = models_checkpoint.save_checkpoint(small_state(0), tmp_path / "last.pt")
    monkeypatch.setattr(models_checkpoint.os, "link", lambda *a: (_ for _ in ()).throw(OSError("no links here")))
    models_checkpoint.copy_checkpoint(last, tmp_path / "best.pt")
    assert utils_files.file_sha256(tmp_path / "best.pt") == utils_files.file_sha256(last)
    assert os.stat(tmp_path / "best.pt").st_ino != os.stat(last).st_ino


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    """mkstemp makes files 0600; an exported model or checkpoint should be readable like any other file."""
    old = os.umask(0o022)
    try:
        with utils_files.atomic_write(tmp_path / "f.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "f.bin").st_mode) == 0o644


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with utils_files.atomic_write(tmp_path / "f.bin") as f:
            f.write(b"partial")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
def test_loading_a_checkpoint_does_not_read_the_entries_it_does_not_use(tmp_path):
    """A training checkpoint also holds the EMA, D and Adam's moments: they are mapped, not read into memory."""
    state = {**small_state(0), "opt_g": {"exp_avg": torch.ones(64, 2**20)}}              # 256 MB unused
    path = models_checkpoint.save_checkpoint(state, tmp_path / "last.pt")
    del state
    before = _rss_mb()
    loaded = models_checkpoint.load_checkpoint(path)
    generator, _ = models_checkpoint.generator_from_state(loaded)
    grew = _rss_mb() - before
    assert grew < 64, f"loading grew the resident memory by {grew:.0f} MB"
    assert float(loaded["opt_g"]["exp_avg"][-1, -1]) == 1.0                            # still readable on demand
