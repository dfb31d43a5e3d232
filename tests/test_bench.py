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


def test_table_names_noise_reuse_in_the_degradation_and_data_share_rows():
    share = {"preset": "demo", "batch": 16, "image_size": 128, "data_s": 0.02, "model_s": 0.08, "data_share": 0.2}
    md = table({"degradation": {"what": "images/s", "seed_images_per_s": 100, "project_images_per_s": 400,
                                "ratio": 4.0, "ratio_bound_by_randn": 10.0, "randn_fraction": 0.4, "noise_reuse": 8,
                                "project_reuse_images_per_s": 700, "ratio_reuse": 7.0},
                "data_share": {"demo": {**share, "noise_reuse": 1},
                               "demo_noise_reuse_8": {**share, "noise_reuse": 8, "data_s": 0.01, "data_share": 0.11}}})
    rows = md.splitlines()[2:]
    assert rows[0] == ("| degradation, images/s | 100 | 400; noise_reuse 8: 700 | 4× (randn alone bounds it at "
                       "10×: 0.4 of that bound); with noise_reuse 8: 7× | ≥ 10× |")
    assert rows[1].startswith("| training step, demo preset (batch 16, 128²): data / model s | - | "
                              "0.02 / 0.08 s: data 20 %")
    assert rows[2].startswith("| training step, demo preset, noise_reuse 8 (batch 16, 128²): data / model s | - "
                              "| 0.01 / 0.08 s: data 11 %")


def test_seed_reference_degradation_behaves_like_the_original():
    torch.manual_seed(0)
    x = torch.full((3, 64, 64), 0.5)
    y = ref.apply_degradation(x)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1 and not torch.equal(x, y)
    assert torch.equal(x, torch.full((3, 64, 64), 0.5))                   # the input is not modified


def test_race_trains_a_candidate_and_plots_the_curve(tmp_path):
    from benchmarks import race
    result = race.run_one("unet-d5-w16", cpu_seconds=float("inf"), eval_every=float("inf"), data_dir=None,
                          out=tmp_path, val_images=3, max_steps=3)     # a fixed amount of work, not a time budget
    minutes, steps, scores = zip(*result["curve"])
    assert steps == (0, 3) and minutes[0] == 0 <= minutes[1] and result["steps"] == 3
    assert result["psnr_input"] == scores[0] and 10 < scores[0] < 40 and result["val_images"] == 3
    assert result["parameters"] == 1_043_619                               # the lite UNet, residual
    summary = race.summarize({"unet-d5-w16": result}, 4 / 60, None, tmp_path)
    assert json.loads((tmp_path / "race.json").read_text())["candidates"]["unet-d5-w16"]["steps"] == result["steps"]
    assert (tmp_path / "race.png").stat().st_size > 1000 and summary["threads_each"] == 1


def test_inference_times_each_backend_with_its_psnr_cost_and_the_auto_pick():
    from benchmarks import speed
    r = speed.inference(torch.device("cpu"), reps=1, frames=2, models=("shipped_realtime", "seed_architecture"),
                        backends=("torch", "torch-bf16"))
    rt, seed = r["models"]["shipped_realtime"], r["models"]["seed_architecture"]
    assert set(rt["backends"]) == {"torch", "torch-bf16"} and rt["frames"] == 2
    assert rt["backends"]["torch"]["psnr_diff_db"] == 0.0 and rt["backends"]["torch"]["median_ms"] > 0
    assert abs(rt["backends"]["torch-bf16"]["psnr_diff_db"]) < 0.1            # bf16 costs hundredths of a dB
    assert rt["auto"] in {"torch", "torch-bf16"} and rt["guard_ms"] > 0 and 20 < rt["fp32_psnr_db"] < 40
    assert seed["reference_ms"] > 0 and seed["parameters"] > 54e6
    b = seed["backends"]["torch"]
    assert b["ratio_vs_reference"] == round(b["median_ms"] / seed["reference_ms"], 2)
    md = table({"inference": r})
    row = next(r for r in md.splitlines() if r.startswith("| inference 256², seed architecture, torch "))
    ref_ms, ms, ratio = seed["reference_ms"], b["median_ms"], b["ratio_vs_reference"]
    assert f"| {ref_ms:g} ms | {ms:g} ms, Δ PSNR +0.000 dB | {ratio:g}× |" in row
    assert md.count("← auto") == 2 and "≤ 8 ms" in md and "≤ 0.6×" in md


def test_inference_table_marks_errors_and_int8_over_its_psnr_budget():
    section = {"int8_max_cost_db": 0.1, "models": {"shipped_quality": {
        "auto": "openvino-bf16", "guard_ms": 0.5, "target": "-", "backends": {
            "openvino-bf16": {"median_ms": 30.0, "psnr_diff_db": -0.001},
            "onnxruntime-int8": {"median_ms": 40.0, "psnr_diff_db": -0.3, "kept": False},
            "openvino": {"error": "ImportError: openvino is not installed"}}}}}
    rows = table({"inference": section}).splitlines()[2:]
    assert rows[0] == ("| inference 256², shipped quality, openvino-bf16 ← auto (+ guard 0.5 ms) | - | "
                       "30 ms, Δ PSNR -0.001 dB | - | - |")
    assert "not kept (> 0.1 dB)" in rows[1] and "n/a (ImportError: openvino is not installed)" in rows[2]
