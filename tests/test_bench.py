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
