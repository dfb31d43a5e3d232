"""Cross-centre scoring (medgan_nb.evaluation.centres and ``evaluate --centres``) on a small made folder."""
import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image

from medgan_nb.cli import main
from medgan_nb.config import Config
from medgan_nb.evaluation.centres import ALL, centre_tables, centres_markdown, evaluate_centres, read_rows
from medgan_nb.evaluation.conditions import GOAL_CONDITIONS
from medgan_nb.evaluation.core import half_of
from medgan_nb.models import build_generator, save_checkpoint

CONDITIONS = {"blur_noise": GOAL_CONDITIONS["blur_noise"]}
CLASSICS = ("identity", "median", "nlm", "cbm3d")


def test_the_halves_are_fixed_by_the_file_name_and_about_equal():
    names = [f"img{i}.jpg" for i in range(200)]
    halves = [half_of(n) for n in names]
    assert halves == [half_of(f"some/other/folder/{n}") for n in names]     # the folder does not matter
    assert halves == ["report" if int(hashlib.sha256(n.encode()).hexdigest()[-1], 16) % 2 == 0 else "selection"
                      for n in names]
    assert 80 < halves.count("report") < 120


@pytest.fixture(scope="module")
def centres(tmp_path_factory):
    """Two centres of smooth colour frames, 10 and 8 of them, of different sizes."""
    root = tmp_path_factory.mktemp("centres")
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:56] / 48.0
    for centre, n in (("C1", 10), ("C2", 8)):
        (root / centre).mkdir()
        for i in range(n):
            phase = rng.random(3) * 6
            img = np.stack([0.5 + 0.4 * np.sin(3 * xx + 2 * yy + p) for p in phase], -1)
            Image.fromarray((img * 255).astype(np.uint8)).save(root / centre / f"frame{i}.png")
    (root / "notes").mkdir()                                   # no images: not a centre
    (root / "notes" / "README.txt").write_text("not a centre")
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = Config.from_preset("tiny")
    torch.manual_seed(0)
    return save_checkpoint({"config": cfg.to_dict(), "generator": build_generator(cfg).state_dict()},
                           tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def scored(centres, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("scored") / "centres"
    tables = evaluate_centres(checkpoint, centres, out, conditions=CONDITIONS, baselines=CLASSICS, device="cpu",
                              quiet=True)
    return out, tables


def test_each_centre_is_scored_on_its_report_half_with_paired_intervals(centres, scored):
    out, tables = scored
    rows = tables["conditions"]["blur_noise"]
    assert list(rows) == ["C1", "C2", ALL]
    for centre in ("C1", "C2"):
        report = sorted(p.name for p in (centres / centre).glob("*.png") if half_of(p.name) == "report")
        per_image = read_rows(out / centre)
        assert sorted({r["key"] for r in per_image}) == report and rows[centre]["n"] == len(report)
        model = {r["key"]: r["psnr"] for r in per_image if r["method"] == "gan"}
        cbm3d = {r["key"]: r["psnr"] for r in per_image if r["method"] == "cbm3d"}
        if cbm3d:                                   # bm3d installed (an optional extra): paired with CBM3D too
            gap = rows[centre]["vs_cbm3d"]
            assert gap["mean"] == pytest.approx(np.mean([model[k] - cbm3d[k] for k in model]))
            assert gap["low"] <= gap["mean"] <= gap["high"]
        else:
            assert rows[centre]["vs_cbm3d"] is None
        best = rows[centre]["best_classic"]
        classic = {r["key"]: r["psnr"] for r in per_image if r["method"] == best}
        gap = rows[centre]["vs_best_classic"]
        assert gap["mean"] == pytest.approx(np.mean([model[k] - classic[k] for k in model]))
        assert gap["low"] <= gap["mean"] <= gap["high"]
        assert rows[centre]["psnr"]["gan"] == pytest.approx(np.mean(list(model.values())))
        ran = [m for m in ("median", "nlm", "cbm3d") if m in rows[centre]["psnr"]]
        assert best in ran and rows[centre]["psnr"][best] == max(rows[centre]["psnr"][m] for m in ran)
        identity = {r["key"]: r["psnr"] for r in per_image if r["method"] == "identity"}
        assert rows[centre]["below_input"] == sum(model[k] - identity[k] < -0.1 for k in model)
    assert rows[ALL]["n"] == rows["C1"]["n"] + rows["C2"]["n"]
    written = json.loads((out / "centres.json").read_text())
    assert written["conditions"] == json.loads(json.dumps(tables["conditions"]))
    assert written["metadata"]["half"] == "report"
    md = (out / "centres.md").read_text()
    assert "## blur_noise" in md and "| C1 |" in md and f"| {ALL} |" in md and "model − best classic" in md


def test_the_classics_of_an_earlier_run_are_reused_only_for_the_same_inputs(centres, checkpoint, scored, tmp_path):
    out, tables = scored
    again = evaluate_centres(checkpoint, centres, tmp_path / "again", conditions=CONDITIONS, classics_from=out,
                             device="cpu", quiet=True)
    assert again["conditions"]["blur_noise"]["C2"]["psnr"] == tables["conditions"]["blur_noise"]["C2"]["psnr"]
    assert {r["method"] for r in read_rows(tmp_path / "again" / "C1")} == {"gan"}       # the classics did not run
    with pytest.raises(ValueError, match="other inputs"):
        evaluate_centres(checkpoint, centres, tmp_path / "other", half="selection", conditions=CONDITIONS,
                         classics_from=out, device="cpu", quiet=True)


def test_unpaired_rows_are_refused():
    rows = {"C1": [{"condition": "c", "method": "gan", "key": "a", "psnr": 30.0},
                   {"condition": "c", "method": "nlm", "key": "b", "psnr": 29.0}]}
    with pytest.raises(ValueError, match="not paired"):
        centre_tables(rows)


def test_the_command_scores_centres_and_explains_its_mistakes(centres, checkpoint, scored, tmp_path, capsys):
    out, _ = scored
    code = main(["evaluate", str(checkpoint), "--data", str(centres), "--centres", "--classics-from", str(out),
                 "--out", str(tmp_path / "cli"), "--set", "image_size=32", "--device", "cpu", "--quiet"])
    printed = capsys.readouterr().out
    assert code == 0 and "## blur_noise" in printed and "| C2 |" in printed
    assert (tmp_path / "cli" / "centres.md").is_file()
    assert main(["evaluate", str(checkpoint), "--centres", "--out", str(tmp_path / "x")]) == 1
    assert "--centres needs --data" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--data", str(centres / "C1"), "--centres", "--out",
                 str(tmp_path / "y")]) == 1
    assert "no sub-folder" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--half", "report", "--out", str(tmp_path / "z")]) == 1
    assert "half" in capsys.readouterr().err


def test_the_gap_to_cbm3d_is_paired_frame_by_frame():
    rows = {"C1": [{"condition": "c", "method": m, "key": k, "psnr": p}
                   for m, ps in (("gan", (30.0, 31.0, 32.0)), ("cbm3d", (29.0, 31.5, 31.0)))
                   for k, p in zip("abc", ps)]}
    row = centre_tables(rows)["conditions"]["c"]["C1"]
    assert row["vs_cbm3d"]["mean"] == pytest.approx(0.5) and row["best_classic"] == "cbm3d"
    assert "model − CBM3D" in centres_markdown(centre_tables(rows))


def test_without_cbm3d_the_table_has_no_cbm3d_column():
    rows = {"C1": [{"condition": "c", "method": m, "key": k, "psnr": p}
                   for m, base in (("gan", 30.0), ("identity", 20.0), ("nlm", 29.0)) for k, p in
                   (("a", base), ("b", base + 1), ("c", base + 0.5))]}
    tables = centre_tables(rows)
    row = tables["conditions"]["c"]["C1"]
    assert row["vs_cbm3d"] is None and row["best_classic"] == "nlm"
    assert row["vs_best_classic"]["mean"] == pytest.approx(1.0) and row["below_input"] == 0
    md = centres_markdown(tables)
    assert "CBM3D" not in md and "| C1 | 3 | 30.50 | 20.50 | 29.50 | NLM | +1.00 | 0 |" in md
