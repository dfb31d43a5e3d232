from benchmarks.degradation import degradation, profile_table


def test_degradation_benchmark_reports_rates_ratios_and_step_times():
    result = degradation(size=32, batch=4, reps=1)
    for key in ("what", "seed_images_per_s", "project_images_per_s", "ratio", "randn_only_images_per_s",
                "ratio_bound_by_randn", "randn_fraction", "steps_ms", "seed", "project", "project_reuse_images_per_s",
                "ratio_reuse", "noise_reuse"):
        assert key in result
    for key in ("seed_images_per_s", "project_images_per_s", "ratio", "ratio_bound_by_randn", "randn_fraction",
                "project_reuse_images_per_s", "ratio_reuse"):
        assert result[key] > 0
    assert set(result["steps_ms"]) == {"noise", "salt_pepper", "blur", "color_jitter"}
    assert all(ms > 0 for ms in result["steps_ms"].values())


def test_profile_table_lists_the_pipeline_operators():
    for reuse in (1, 8):
        table = profile_table(size=16, batch=2, reps=1, noise_reuse=reuse)
        assert "aten::" in table and "Self CPU" in table


def test_data_share_splits_a_step_into_data_and_model():
    from benchmarks.data_share import data_share
    r = data_share("tiny", steps=2)
    assert r["data_s"] > 0 and r["model_s"] > 0
    assert 0 < r["data_share"] < 1
    assert abs(r["data_share"] - r["data_s"] / (r["data_s"] + r["model_s"])) < 0.01
