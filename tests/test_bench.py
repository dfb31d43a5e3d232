"""The benchmark suite runs and writes what it promises (tiny sizes; the numbers themselves are not checked)."""
import json

import torch

from benchmarks import seed_reference as ref
from benchmarks.__main__ import main, table
from benchmarks.common import write_results


def test_quick_benchmark_writes_results_and_a_table(tmp_path, capsys):
    assert main(["--quick", "--only", "degradation", "data_loading", "--out", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    d = results["sections"]["degradation"]
    assert d["seed_images_per_s"] > 0 and d["project_images_per_s"] > 0
    assert d["ratio"] == round(d["seed"]["median_s"] / d["project"]["median_s"], 2)
    assert len(d["seed"]["runs_s"]) == 2
    assert results["sections"]["data_loading"]["project_load_images_per_s"] > 0
    assert results["machine"]["torch"] == torch.__version__ and results["machine"]["torch_threads"] >= 1
    out = capsys.readouterr().out
    assert "| degradation, images/s" in out and "| data loading, images/s" in out
    assert results["table_markdown"] in out


def test_results_are_merged_and_the_previous_file_kept(tmp_path):
    write_results(tmp_path, {"created": "2026-01-01T00:00:00+00:00", "sections": {"a": {"x": 1}}})
    write_results(tmp_path, {"created": "2026-01-02T00:00:00+00:00", "sections": {"b": {"y": 2}}})
    merged = json.loads((tmp_path / "results.json").read_text())
    assert merged["sections"] == {"a": {"x": 1}, "b": {"y": 2}} and merged["created"].startswith("2026-01-02")
    kept = [p.name for p in tmp_path.glob("results-*.json")]
    assert len(kept) == 1 and json.loads((tmp_path / kept[0]).read_text())["sections"] == {"a": {"x": 1}}


def test_table_lists_ratios_and_targets():
    md = table({"training": {"seed_s": 20.0, "project_s": 10.0, "ratio": 2.0}})
    assert md.splitlines()[2] == "| training iteration, s (seed models, batch 4, 1 D + 3 G) | 20 | 10 | 2× | ≥ 1.3× |"


def test_seed_reference_degradation_behaves_like_the_original():
    torch.manual_seed(0)
    x = torch.full((3, 64, 64), 0.5)
    y = ref.apply_degradation(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)
    assert torch.equal(x, torch.full((3, 64, 64), 0.5))                   # the input is not modified


def test_race_trains_a_candidate_for_a_cpu_budget_and_plots_the_curve(tmp_path):
    from benchmarks import race
    result = race.run_one("unet-d5-w16", cpu_seconds=4, eval_every=2, data_dir=None, out=tmp_path, val_images=3)
    minutes, steps, scores = zip(*result["curve"])
    assert minutes[0] == 0 and steps[0] == 0 and len(result["curve"]) >= 2
    assert list(steps) == sorted(steps) and result["steps"] == steps[-1] > 0
    assert result["psnr_input"] == scores[0] and 10 < scores[0] < 40 and result["val_images"] == 3
    assert result["parameters"] == 1_043_619                               # the lite UNet, residual
    summary = race.summarize({"unet-d5-w16": result}, 4 / 60, None, tmp_path)
    assert json.loads((tmp_path / "race.json").read_text())["candidates"]["unet-d5-w16"]["steps"] == result["steps"]
    assert (tmp_path / "race.png").stat().st_size > 1000 and summary["threads_each"] == 1
