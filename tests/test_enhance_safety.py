"""`enhance` under attack: a full disk, two runs into one folder, NaN weights, interrupted runs, its own outputs
as inputs, long and non-UTF-8 names, a symlinked audit log, and the cost of choosing a backend."""

import errno
import fcntl
import logging
import os

import numpy as np
import pytest
from PIL import Image
from test_enhance import Identity, checkpoint, images, read_audit, rgb  # noqa: F401  (fixtures)

import medgan_nb.inference.files as inference_files
from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.inference import enhance
from medgan_nb.inference.audit import verify_audit
from medgan_nb.models import CheckpointError, build_generator, save_checkpoint
from medgan_nb.utils import atomic_write


def pngs(out):
    return sorted(str(p.resolve()) for p in out.rglob("*.png"))


# ------------------------------------------------------------------ a full disk
def test_a_full_disk_leaves_no_output_without_its_record(images, checkpoint, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_write, records = os.write, []

    def full_on_the_second_record(fd, data):
        if bytes(data[:9]) == b'{"time": ':
            records.append(data)
            if len(records) == 2:                    # half the line goes in, then the disk is full
                real_write(fd, data[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_on_the_second_record)
    with pytest.raises(OSError, match="No space left on device"):
        enhance(images, out, checkpoint, device="cpu", quiet=True)
    monkeypatch.undo()
    logged = read_audit(out)                          # every line is still a JSON record
    assert len(logged) == 1 and pngs(out) == [r["output"] for r in logged]
    assert verify_audit(out) == []
    written = enhance(images, out, checkpoint, device="cpu", quiet=True, resume=True)
    assert len(written) == 3 and len(read_audit(out)) == 4 and verify_audit(out) == []


def test_an_incomplete_last_line_is_repaired_not_written_onto(images, checkpoint, tmp_path, caplog):
    out = tmp_path / "out"
    enhance(images / "odd.tif", out, checkpoint, device="cpu", quiet=True)
    complete = (out / "audit.jsonl").read_bytes()
    with open(out / "audit.jsonl", "ab") as f:
        f.write(b'{"time": "2026-01-01T00:0')          # what a crash mid-append leaves
    with caplog.at_level(logging.WARNING, logger="medgan_nb.inference"):
        enhance(images / "rgba.png", out, checkpoint, device="cpu", quiet=True)
    assert (out / "audit.jsonl").read_bytes().startswith(complete)
    assert [os.path.basename(r["output"]) for r in read_audit(out)] == ["odd.png", "rgba.png"]
    assert "incomplete last line" in caplog.text


# ------------------------------------------------------------------ two runs, one folder
def test_a_busy_output_folder_is_refused(images, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)        # another enhance is writing there
        with pytest.raises(RuntimeError, match="another enhance is writing to .*out; wait for it"):
            enhance(images, out, checkpoint, device="cpu", quiet=True)
        assert list(out.iterdir()) == []
        assert main(["enhance", str(images), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 1
        assert "choose another --out" in capsys.readouterr().err
    finally:
        os.close(held)
    assert len(enhance(images, out, checkpoint, device="cpu", quiet=True)) == 4     # free again


# ------------------------------------------------------------------ non-finite numbers
def test_nan_weights_are_refused_before_any_work(images, tmp_path):
    cfg = Config.from_preset("tiny")
    state = build_generator(cfg).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() >= 4)
    state[name].view(-1)[:3] = float("nan")
    path = save_checkpoint({"config": cfg.to_dict(), "generator": state}, tmp_path / "nan.pt")
    with pytest.raises(CheckpointError, match=r"nan\.pt: 3 of \d+ weights are not finite"):
        enhance(images, tmp_path / "out", path, device="cpu", quiet=True)
    assert not (tmp_path / "out").exists()


class NanOut(Identity):
    def forward(self, x):
        return x * float("nan")


def test_non_finite_outputs_are_an_error_not_a_black_image(images, checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(inference_files, "load_generator", lambda path, device: (NanOut(), None))
    monkeypatch.setattr(inference_files, "fast_generator", lambda generator, backend: generator)
    with pytest.raises(ValueError, match="not finite"):
        enhance(images, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    assert pngs(tmp_path / "out") == [] and not (tmp_path / "out" / "audit.jsonl").exists()


# ------------------------------------------------------------------ reruns
def test_resume_skips_verified_outputs_and_redoes_the_rest(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    first = enhance(images, out, checkpoint, device="cpu", quiet=True)
    kept = {p: p.stat().st_mtime_ns for p in first[2:]}
    first[0].unlink()                                   # never written
    first[1].write_bytes(b"half a png")                 # changed since: no record matches it
    again = enhance(images, out, checkpoint, device="cpu", quiet=True, resume=True)
    assert sorted(again) == sorted(first[:2])
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert verify_audit(out) == [] and len(read_audit(out)) == 6
    assert enhance(images, out, checkpoint, device="cpu", quiet=True, resume=True) == []
    with pytest.raises(ValueError, match="resume or overwrite"):
        enhance(images, out, checkpoint, device="cpu", quiet=True, resume=True, overwrite=True)


def test_messages_name_flags_on_the_command_line_and_arguments_in_python(images, checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    enhance(images, out, checkpoint, device="cpu", quiet=True)
    with pytest.raises(FileExistsError, match=r"overwrite=True .*resume=True"):
        enhance(images, out, checkpoint, device="cpu", quiet=True)
    assert main(["enhance", str(images), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "--overwrite" in err and "--resume" in err and "=True" not in err
    assert main(["enhance", str(images), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet",
                 "--resume"]) == 0
    assert "wrote 0 AI-enhanced images" in capsys.readouterr().out


def test_overwrite_supersedes_the_old_records(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    enhance(images, out, checkpoint, device="cpu", quiet=True)
    enhance(images, out, checkpoint, device="cpu", quiet=True, overwrite=True, label=True)     # other bytes
    assert len(read_audit(out)) == 8 and verify_audit(out) == []


# ------------------------------------------------------------------ our own outputs
def test_outputs_of_this_tool_are_not_inputs(images, checkpoint, tmp_path, caplog):
    enhance(images, images / "first", checkpoint, device="cpu", quiet=True)
    copied = images / "first" / "rgba.png"
    (images / "copied.png").write_bytes(copied.read_bytes())    # labelled in its metadata, away from its log
    with caplog.at_level(logging.INFO, logger="medgan_nb.inference"):
        second = enhance(images, tmp_path / "second", checkpoint, device="cpu", quiet=True)
    assert sorted(p.name for p in second) == ["gray.png", "odd.png", "rgba.png", "x.png"]
    assert "left out 5 file(s) written by medgan_nb enhance" in caplog.text


def test_the_output_folder_as_input_says_so(images, checkpoint, tmp_path):
    enhance(images, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    with pytest.raises(ValueError, match="is the output folder"):
        enhance(tmp_path / "out", tmp_path / "out", checkpoint, device="cpu", quiet=True)
    with pytest.raises(ValueError, match="is the output folder"):
        enhance(images, images, checkpoint, device="cpu", quiet=True)


# ------------------------------------------------------------------ names and links
def test_a_legal_long_file_name_is_enhanced(tmp_path, checkpoint):
    src = tmp_path / "in"
    src.mkdir()
    name = "a" * 241 + ".png"                             # 245 bytes: legal (at most 255)
    Image.fromarray(rgb(24, 24)).save(src / name)
    assert enhance(src, tmp_path / "out", checkpoint, device="cpu", quiet=True) == [tmp_path / "out" / name]
    long_utf8 = tmp_path / ("é" * 126 + ".x")                # 254 bytes in UTF-8
    with atomic_write(long_utf8) as f:
        f.write(b"ok")
    assert long_utf8.read_bytes() == b"ok"


def test_a_non_utf8_out_is_printed_safely(tmp_path, checkpoint, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb(24, 24)).save(src / "x.png")
    out = tmp_path / os.fsdecode(b"out\xff")
    assert main(["enhance", str(src), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 0
    assert "out\\xff" in capsys.readouterr().out
    assert main(["enhance", str(src), "--checkpoint", str(checkpoint), "--out", str(out), "--quiet"]) == 1
    assert "out\\xff" in capsys.readouterr().err


def test_a_symlinked_audit_log_is_refused(images, checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me\n")
    (out / "audit.jsonl").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="symbolic link"):
        enhance(images, out, checkpoint, device="cpu", quiet=True)
    assert elsewhere.read_text() == "keep me\n" and pngs(out) == []


# ------------------------------------------------------------------ choosing a backend
def test_auto_does_not_measure_backends_for_small_work(tmp_path, checkpoint, monkeypatch):
    import medgan_nb.inference.backends as backends
    monkeypatch.setattr(inference_files, "load_generator", lambda path, device: (Identity(), None))   # fast
    measured = []
    monkeypatch.setattr(backends, "_fastest", lambda *args, **kwargs: measured.append(1) or "torch")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(40):                                   # many images, few pixels
        Image.fromarray(rgb(16, 16, i)).save(src / f"{i}.png")
    enhance(src, tmp_path / "out", checkpoint, device="cpu", quiet=True)
    assert measured == [] and {r["backend"] for r in read_audit(tmp_path / "out")} == {"torch"}


def test_auto_caches_its_choice_per_weights_and_machine(tmp_path, checkpoint, monkeypatch):
    import medgan_nb.inference.backends as backends
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(inference_files, "AUTO_MIN_PIXELS", 0)          # measure even for this small work
    measured = []
    monkeypatch.setattr(backends, "_fastest", lambda *args, **kwargs: measured.append(1) or "torch-channels-last")
    monkeypatch.setattr(backends, "auto_candidates", lambda generator: ["torch", "torch-channels-last"])
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgb(16, 16)).save(src / "x.png")
    for out in ("a", "b"):
        enhance(src, tmp_path / out, checkpoint, device="cpu", quiet=True)
        assert {r["backend"] for r in read_audit(tmp_path / out)} == {"torch-channels-last"}
    assert measured == [1]
    assert list((tmp_path / "cache" / "medgan_nb").glob("backends.json"))


def test_files_that_are_neither_images_nor_dicom_are_counted_and_named(tmp_path, caplog):
    import logging

    from medgan_nb.inference.files import _jobs
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    (tmp_path / "in" / "report.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "in" / "notes.txt").write_text("x")
    with caplog.at_level(logging.WARNING):
        jobs = _jobs(tmp_path / "in", tmp_path / "out")
    assert [j[1] for j in jobs] == ["a.png"]
    assert "ignored 2 file(s) that are not images or DICOM: notes.txt, report.pdf" in caplog.text
