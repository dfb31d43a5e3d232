"""Scan results state their verdicts on n scans: per-scan gaps, an interval only where n >= 5."""
import pytest

from medgan_nb.evaluation.scans import MIN_SCANS_FOR_INTERVAL, markdown, verdicts
from medgan_nb.figures.scans import comparison_sentences


def table(model: float, nlm: float, bm3d: float) -> dict:
    row = lambda p: {"psnr": p, "ssim": 0.5, "ms": 1.0}                    # noqa: E731
    return {"noise": {"input": row(20.0), "nlm": row(nlm), "bm3d": row(bm3d), "model": row(model)}}


def result(per_scan: dict) -> dict:
    first = next(iter(per_scan.values()))
    return {"modality": "mri", "per_scan": per_scan, "verdicts": verdicts(per_scan), "table": first}


def test_one_scan_gives_a_gap_but_no_interval():
    v = verdicts({"a": table(30.0, 28.0, 29.5)})["noise"]
    assert v["n"] == 1 and v["gaps"] == {"a": pytest.approx(0.5)} and v["wins"] == 1
    assert v["interval"] is None and v["note"] == "n too small"
    text = markdown(result({"a": table(30.0, 28.0, 29.5)}))
    assert "on 1 scan(s)" in text and "n too small" in text and "| a | noise | model | 30.00 |" in text
    assert "n too small for a general verdict" in comparison_sentences(result({"a": table(30.0, 28.0, 29.5)}))[0]


def test_enough_scans_give_a_bootstrap_interval_around_the_mean_gap():
    gaps = [1.0, -0.5, 2.0, 0.5, 1.5, -1.0]
    per_scan = {f"s{i}": table(30.0 + g, 30.0, 29.0) for i, g in enumerate(gaps)}
    v = verdicts(per_scan)["noise"]
    assert v["n"] == len(gaps) >= MIN_SCANS_FOR_INTERVAL and v["note"] == ""
    assert v["mean"] == pytest.approx(sum(gaps) / len(gaps)) and v["wins"] == 4
    low, high = v["interval"]
    assert min(gaps) < low < v["mean"] < high < max(gaps)
    assert "95 % interval" in markdown(result(per_scan))
