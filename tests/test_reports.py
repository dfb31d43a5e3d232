import json
import math
import os

import pytest

import medgan_nb.evaluation.report as evaluation_report
import medgan_nb.figures.training as figures_training
import medgan_nb.inference.audit as inference_audit
import medgan_nb.training.logs as training_logs
from medgan_nb.utils import file_sha256


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ------------------------------------------------------------------ read_log
def test_read_log_types_rows_and_columns(tmp_path):
    _write(tmp_path / "metrics.csv", "step,epoch,loss_d,adv\n1,1,0.693,0.7\n20,1,0.5,\n")
    rows = training_logs.read_log(tmp_path)
    assert rows[0] == {"step": 1, "epoch": 1, "loss_d": 0.693, "adv": 0.7}
    assert isinstance(rows[1]["step"], int) and math.isnan(rows[1]["adv"])      # an empty cell is NaN
    cols = training_logs.read_log(tmp_path / "metrics.csv", columns=True)
    assert list(cols) == ["step", "epoch", "loss_d", "adv"] and cols["step"] == [1, 20] and cols["loss_d"] == [0.693, 0.5]


def test_read_log_keeps_extra_columns_and_reads_val(tmp_path):
    _write(tmp_path / "metrics.csv", "step,epoch,loss_d,grad_adv,grad_l1\n1,1,0.6,0.25,3.5\n")
    _write(tmp_path / "val.csv", "step,epoch,psnr\n6,1,24.5\n")
    assert training_logs.read_log(tmp_path, columns=True)["grad_l1"] == [3.5]
    assert training_logs.read_log(tmp_path, "val.csv") == [{"step": 6, "epoch": 1, "psnr": 24.5}]


def test_read_log_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.csv"):
        training_logs.read_log(tmp_path)
    _write(tmp_path / "val.csv", "step,psnr\n1,abc\n")
    with pytest.raises(ValueError, match="'psnr' holds 'abc'"):
        training_logs.read_log(tmp_path, "val.csv")


def test_read_log_of_a_real_run(tiny_cfg):
    from medgan_nb.training import METRIC_FIELDS, train
    run = train(tiny_cfg.replace(epochs=1), name="r", quiet=True)
    cols = training_logs.read_log(run, columns=True)
    assert set(METRIC_FIELDS) <= set(cols) and cols["step"][0] == 1
    assert [r["epoch"] for r in training_logs.read_log(run, "val.csv")] == [1]
    assert training_logs.run_complete(run) and training_logs.latest_run(tiny_cfg.output_dir, "r", preset="tiny") == run


# ------------------------------------------------------------------ latest_run
def _run(output, name, preset="notebook", mtime=0.0, complete=True):
    run = output / "runs" / name
    config = _write(run / "config.json", json.dumps({"preset": preset}))
    os.utime(config, (mtime, mtime))
    if complete:
        _write(run / "samples" / "final.png", "png")
        _write(run / "checkpoints" / "best.pt", "pt")
    return run


def test_latest_run_picks_the_newest_matching(tmp_path):
    old = _run(tmp_path, "notebook-04", mtime=1000)
    new = _run(tmp_path, "notebook-04-1", mtime=2000)
    _run(tmp_path, "notebook-04-resume", mtime=3000)          # another name, not a suffix
    _run(tmp_path, "notebook-04-2", preset="tiny", mtime=4000)
    _run(tmp_path, "notebook-04-3", mtime=5000, complete=False)  # killed: no final.png
    assert training_logs.latest_run(tmp_path) == tmp_path / "runs" / "notebook-04-2"
    assert training_logs.latest_run(tmp_path, "notebook-04", preset="notebook") == new
    assert training_logs.latest_run(tmp_path, "notebook-04", preset="notebook", complete=False).name == "notebook-04-3"
    os.utime(old / "config.json", (9000, 9000))
    assert training_logs.latest_run(tmp_path, "notebook-04", preset="notebook") == old


def test_latest_run_errors_say_what_was_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete run folder under"):
        training_logs.latest_run(tmp_path)
    _run(tmp_path, "notebook-04", preset="tiny")
    (tmp_path / "runs" / "stray").mkdir()                       # no config.json: not a run
    with pytest.raises(FileNotFoundError, match="complete preset 'notebook' named 'notebook-04'"):
        training_logs.latest_run(tmp_path, "notebook-04", preset="notebook")


# ------------------------------------------------------------------ phase_means
def test_phase_means():
    cols = {"loss_d": [1.0, 3.0, 5.0, 7.0, 9.0], "adv": [0.0, math.nan, 2.0, 2.0, 4.0]}
    assert training_logs.phase_means(cols, ["loss_d", "adv"], parts=2) == {"loss_d": [2.0, 7.0], "adv": [0.0, 8 / 3]}
    with pytest.raises(KeyError, match="grad_adv"):
        training_logs.phase_means(cols, ["grad_adv"])
    with pytest.raises(ValueError, match="5 rows"):
        training_logs.phase_means(cols, ["loss_d"], parts=6)


# ------------------------------------------------------------------ tables
S = lambda p, s=0.5: {"psnr_mean": p, "psnr_std": 1.0, "ssim_mean": s, "ssim_std": 0.01, "ms_per_image": 2.0}


def test_psnr_table_sorts_best_first_and_shows_the_sharpness_measures_where_measured():
    gan = {**S(25.123, 0.8), "grad_ratio_mean": 0.456, "hf_ratio_mean": 0.3, "naturalness_mean": 4.567}
    table = evaluation_report.psnr_table({"identity": S(20.0), "gan": gan})
    lines = table.splitlines()
    assert lines[0] == ("| method | PSNR (dB) | SSIM | gradient energy (clean = 1) | HF power (clean = 1) | "
                        "naturalness (lower: more natural) | ms/image |")
    assert lines[2] == "| gan | 25.12 ± 1.00 | 0.800 ± 0.010 | 0.46 | 0.30 | 4.57 | 2.00 |"
    assert lines[3] == "| identity | 20.00 ± 1.00 | 0.500 ± 0.010 | – | – | – | 2.00 |"


def test_condition_table_bolds_each_winner():
    results = {"all": {"gan": S(25.0), "nlm": S(24.0)}, "noise": {"gan": S(26.0), "nlm": S(27.5)}}
    lines = evaluation_report.condition_table(results).splitlines()
    assert lines[0] == "| method | all | noise |" and lines[1] == "|---|---|---|"
    assert lines[2] == "| gan | **25.00** | 26.00 |" and lines[3] == "| nlm | 24.00 | **27.50** |"
    with pytest.raises(ValueError):
        evaluation_report.condition_table({})


def _metrics(gan, fingerprint="abc", **baselines):
    results = {"gan": gan, **baselines} if gan is not None else baselines
    return {"metadata": {"inputs_sha256": fingerprint}, "results": {"all": results}}


def test_side_by_side_labels_models_and_checks_inputs():
    evals = {"this run": _metrics(S(24.0), identity=S(20.0)), "quality": _metrics(S(26.0), identity=S(20.0))}
    table = evaluation_report.side_by_side(evals)
    assert list(table) == ["this run", "quality", "identity"] and table["quality"]["psnr_mean"] == 26.0
    assert list(evaluation_report.side_by_side(evals, baselines=False)) == ["this run", "quality"]
    with pytest.raises(ValueError, match="different inputs"):
        evaluation_report.side_by_side({"a": _metrics(S(1.0)), "b": _metrics(S(1.0), fingerprint="xyz")})
    with pytest.raises(ValueError, match="baselines only"):
        evaluation_report.side_by_side({"a": _metrics(None, identity=S(20.0))})


# ------------------------------------------------------------------ verify_audit
def _audit(tmp_path):
    src, out = _write(tmp_path / "in.png", "source bytes"), _write(tmp_path / "out" / "in.png", "output bytes")
    record = {"input": str(src), "input_sha256": file_sha256(src), "output": str(out),
              "output_sha256": file_sha256(out)}
    log = _write(tmp_path / "out" / "audit.jsonl", json.dumps(record) + "\n")
    return src, out, log


def test_verify_audit_passes_then_reports_edits_and_missing_files(tmp_path):
    src, out, log = _audit(tmp_path)
    assert inference_audit.verify_audit(log.parent) == []
    recorded = file_sha256(out)
    out.write_text("re-saved")
    src.unlink()
    problems = inference_audit.verify_audit(log)
    assert [(p.line, p.field, p.actual) for p in problems] == [(1, "input", None), (1, "output", file_sha256(out))]
    assert problems[1].recorded == recorded and "is missing" in str(problems[0])


def test_verify_audit_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no audit log"):
        inference_audit.verify_audit(tmp_path)
    _write(tmp_path / "audit.jsonl", '{"input": "a"}\n')
    with pytest.raises(ValueError, match="line 1"):
        inference_audit.verify_audit(tmp_path)


def test_verify_audit_of_real_enhance_outputs(tmp_path, tiny_cfg):
    import numpy as np
    from PIL import Image

    from medgan_nb.inference import enhance
    from medgan_nb.training import train
    run = train(tiny_cfg.replace(epochs=1), name="r", quiet=True)
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(tmp_path / "frame.png")
    written = enhance(tmp_path / "frame.png", tmp_path / "enhanced", run, quiet=True)
    assert inference_audit.verify_audit(tmp_path / "enhanced") == []
    Image.open(written[0]).save(written[0])                  # a careless re-save drops the metadata
    assert [p.field for p in inference_audit.verify_audit(tmp_path / "enhanced")] == ["output"]


def test_plot_gradient_flow_has_two_panels():
    fig = figures_training.plot_gradient_flow()
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 2 and titles[0].startswith("D step") and titles[1].startswith("G step")
