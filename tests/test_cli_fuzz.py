"""The command line against ordinary mistakes and made inputs (seeded, bounded: about 40 calls, no sleeps).

Each call of `python -m medgan_nb` (in-process, `medgan_nb.cli.main`) must end in one of two ways: exit 0, or a
project error (exit 1 or 2, one "error: ..." line on stderr, no traceback). Afterwards no temporary or partial
file is left anywhere, and every output in every output folder has its audit record, whose SHA-256 matches.
Run with ``pytest -s`` to see the outcome of each call.
"""
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, generate_uid

from medgan_nb.cli import main
from medgan_nb.inference.audit import verify_audit


def ct(path: Path, pixels: np.ndarray | None = None, **tags) -> Path:
    """A small CT file; `tags` override header values, bytes as they are (e.g. b"NaN " for a RescaleSlope)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID, ds.Modality = generate_uid(), generate_uid(), "P", "CT"
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.set_pixel_data(np.full((64, 64), 1000, np.uint16) if pixels is None else pixels, "MONOCHROME2", 16)
    for keyword, value in tags.items():
        tag = pydicom.datadict.tag_for_keyword(keyword)
        ds[tag] = RawDataElement(pydicom.tag.Tag(tag), ds[tag].VR, len(value), value, 0, False, True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """A folder of good and bad inputs, as a hostile or clumsy user would hand them over."""
    root = tmp_path_factory.mktemp("fuzz-cli")
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(frames / f"good{i}.png")
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(frames / ("n" * 236 + ".png"))  # 240 bytes
    (frames / "truncated.png").write_bytes((frames / "good0.png").read_bytes()[:200])
    (frames / "text.jpg").write_text("not an image")
    (frames / "empty.png").write_bytes(b"")
    (frames / "notes.pdf").write_bytes(b"%PDF-1.4\n")
    ct(frames / "ct.dcm")                                                  # a CT among endoscopy frames
    bomb = ct(root / "bomb.dcm", np.zeros((2, 2), np.uint16))               # claims 30000² pixels
    ds = pydicom.dcmread(bomb)
    ds.Rows = ds.Columns = 30000
    ds.save_as(frames / "bomb.dcm")
    bomb.unlink()
    scans = root / "scans"
    scans.mkdir()
    ct(scans / "nan_rescale.dcm", RescaleSlope=b"NaN ")
    ct(scans / "text_rescale.dcm", RescaleIntercept=b"abc ")
    ct(scans / "good.dcm")
    (scans / "DICOMDIR").write_bytes(Path(get_testdata_file("DICOMDIR")).read_bytes())
    corrupt = root / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        (corrupt / f"c{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)))
    (root / "bad.yaml").write_text("preset: [unclosed\n")
    (root / "garbage.pt").write_bytes(b"not a checkpoint" * 10)
    return root


def calls(root: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of every call; outputs go to root/out-<name>."""
    frames, scans, out = str(root / "frames"), str(root / "scans"), lambda n: str(root / f"out-{n}")
    fast = ["--model", "realtime", "--backend", "torch", "--quiet"]
    return [
        ("enhance skip-bad", ["enhance", frames, "--out", out("skip"), "--skip-bad", *fast]),
        ("enhance again, resumed", ["enhance", frames, "--out", out("skip"), "--skip-bad", "--resume", *fast]),
        ("enhance again, refused", ["enhance", frames, "--out", out("skip"), "--skip-bad", *fast]),
        ("enhance stops at bad", ["enhance", frames, "--out", out("stop"), *fast]),
        ("enhance into input", ["enhance", frames, "--out", frames, "--skip-bad", *fast]),
        ("enhance missing input", ["enhance", str(root / "nope"), "--out", out("missing"), *fast]),
        ("enhance scans with an endoscopy model", ["enhance", scans, "--out", out("scans"), "--skip-bad", *fast]),
        ("enhance tile 0", ["enhance", frames, "--out", out("tile0"), "--tile", "0", "--skip-bad", *fast]),
        ("enhance tile -5", ["enhance", frames, "--out", out("tile-5"), "--tile", "-5", "--skip-bad", *fast]),
        ("enhance device banana", ["enhance", frames, "--out", out("banana"), "--device", "banana", *fast]),
        ("enhance device cuda", ["enhance", frames, "--out", out("cuda"), "--device", "cuda:7", *fast]),
        ("enhance unknown model", ["enhance", frames, "--out", out("model"), "--model", "nope"]),
        ("enhance garbage checkpoint", ["enhance", frames, "--out", out("garbage"), "--checkpoint",
                                        str(root / "garbage.pt")]),
        ("enhance missing checkpoint", ["enhance", frames, "--out", out("nockpt"), "--checkpoint",
                                        str(root / "nope.pt")]),
        ("enhance gan weight 2", ["enhance", frames, "--out", out("gw2"), "--model", "sharp", "--gan-weight", "2"]),
        ("enhance gan weight nan", ["enhance", frames, "--out", out("gwnan"), "--model", "sharp",
                                    "--gan-weight", "nan"]),
        ("train save_every=0", ["train", "--preset", "tiny", "--set", "save_every=0"]),
        ("train log_every=0", ["train", "--preset", "tiny", "--set", "log_every=0"]),
        ("train base_channels=0", ["train", "--preset", "tiny", "--set", "base_channels=0"]),
        ("train d_layers=-1", ["train", "--preset", "tiny", "--set", "d_layers=-1"]),
        ("train lambda NaN", ["train", "--preset", "tiny", "--set", "lambda_perceptual=NaN"]),
        ("train huge seed", ["train", "--preset", "tiny", "--set", "seed=" + "9" * 30]),
        ("train name ../../x", ["train", "--preset", "tiny", "--name", "../../x"]),
        ("train absolute name", ["train", "--preset", "tiny", "--name", str(root / "abs")]),
        ("train missing data_dir", ["train", "--preset", "tiny", "--set", f"data_dir={root / 'nope'}"]),
        ("train missing config", ["train", "--config", str(root / "nope.yaml")]),
        ("train broken config", ["train", "--config", str(root / "bad.yaml")]),
        ("train device banana", ["train", "--preset", "tiny", "--set", "device=banana"]),
        ("train resume nothing", ["train", "--resume", str(root / "nope")]),
        ("evaluate missing run", ["evaluate", str(root / "nope")]),
        ("evaluate corrupt data", ["evaluate", "--model", "realtime", "--data", str(root / "corrupt"),
                                   "--out", out("eval")]),
        ("export missing", ["export", str(root / "nope.pt"), "--format", "onnx"]),
        ("export garbage", ["export", str(root / "garbage.pt"), "--format", "onnx"]),
        ("models unknown", ["models", "nope"]),
        ("data info missing", ["data", "info", "--preset", "tiny", "--set", f"data_dir={root / 'nope'}"]),
        ("unknown command", ["frobnicate"]),
    ]


def run(argv: list[str], capsys) -> tuple[str, int | None, str]:
    """("ok" | "refused" | "foreign", exit status, stderr)."""
    try:
        status = main(argv)
    except SystemExit as e:                          # argparse, or an error raised as SystemExit
        status = e.code if isinstance(e.code, int) else 1
        err = capsys.readouterr().err + ("" if isinstance(e.code, int) or e.code is None else str(e.code))
        return ("ok" if status == 0 else "refused"), status, err
    except BaseException as e:                       # anything else is a foreign traceback
        return "foreign", None, f"{type(e).__name__}: {e}"
    err = capsys.readouterr().err
    if "Traceback" in err:
        return "foreign", status, err
    return ("ok" if status == 0 else "refused"), status, err


def test_the_command_line_never_ends_in_a_foreign_traceback_and_loses_nothing(inputs, capsys, monkeypatch):
    monkeypatch.chdir(inputs)
    outcomes, foreign = Counter(), []
    for name, argv in calls(inputs):
        kind, status, err = run(argv, capsys)
        outcomes[kind] += 1
        with capsys.disabled():
            print(f"{kind:8s} {status!s:5s} {name}: {err.strip().splitlines()[-1][:100] if err.strip() else ''}")
        if kind == "foreign":
            foreign.append(f"{name}: {err[-300:]}")
        if kind == "refused":                       # the last line says why (progress bars may come before it)
            last = err.replace("\r", "\n").strip().splitlines()[-1] if err.strip() else ""
            assert last.startswith("error") or "usage:" in err, f"{name}: {err!r}"
    assert foreign == [], "\n".join(foreign)
    assert outcomes["ok"] >= 3 and outcomes["refused"] >= 25, outcomes

    left = [p for p in inputs.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".") and p.is_file()]
    assert left == [], left
    for out in inputs.glob("out-*"):
        written = {p.resolve() for p in out.rglob("*") if p.suffix in (".png", ".dcm")}
        if not written and not (out / "audit.jsonl").exists():
            continue
        records = [json.loads(line) for line in (out / "audit.jsonl").read_text().splitlines() if line.strip()]
        recorded = {Path(r["output"]).resolve() for r in records} | {
            Path(r["dicom"]["png"]).resolve() for r in records if r.get("dicom")}
        assert written == recorded, f"{out.name}: unrecorded {written - recorded}, missing {recorded - written}"
        assert verify_audit(out) == []
        for png in (p for p in written if p.suffix == ".png"):
            with Image.open(png) as im:
                im.load()                          # a whole, decodable file
    skip = {p.name for p in (inputs / "out-skip").rglob("*.png")}
    assert skip == {"good0.png", "good1.png", "good2.png", "n" * 236 + ".png"}
    assert not any(p.name.startswith("good") and p.parent == inputs / "frames" and p.suffix == ".png" and
                   "enhanced" in p.name for p in inputs.rglob("*"))
    assert sorted(p.name for p in (inputs / "frames").iterdir() if p.suffix == ".png") == sorted(
        ["good0.png", "good1.png", "good2.png", "n" * 236 + ".png", "truncated.png", "empty.png"])
    assert not (inputs.parent / "x").exists() and not (inputs / "abs").exists()
    assert os.environ.get("MEDGAN_OUTPUT")
    runs = Path(os.environ["MEDGAN_OUTPUT"]) / "runs"
    empty = [p for p in runs.iterdir() if p.is_dir() and not any(p.iterdir())] if runs.exists() else []
    assert empty == [], empty
