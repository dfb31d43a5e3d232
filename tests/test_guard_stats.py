"""scripts/guard_stats.py: what the guard measures per condition on a split, for choosing its thresholds."""
from pathlib import Path

import pytest
from test_split_scores import load_script

from medgan_nb.models import Guard

SAMPLE = str(Path(__file__).resolve().parents[1] / "data" / "kvasir-sample")


def _script():
    return load_script("guard_stats")


@pytest.fixture(scope="module")
def val_stats():
    return _script().stats(None, "val", SAMPLE, Guard(), model="realtime", top=3)


def test_the_shipped_guard_leaves_clean_frames_alone_and_restores_the_degraded_ones(val_stats):
    assert set(val_stats) == {"clean", "blur_noise", "original", "light"}
    for condition, s in val_stats.items():
        assert s["images"] == 7 and s["treated_wrongly"] == 0, condition
    clean = val_stats["clean"]
    assert clean["change"]["max"] < Guard().change_below and clean["noise_level"]["max"] < Guard().below
    assert val_stats["original"]["change"]["min"] > Guard().change_full     # blurred noise: the whole correction


def test_largest_changes_name_the_clean_frames_with_the_largest_corrections_first(val_stats):
    top = val_stats["clean"]["largest_changes"]
    assert len(top) == 3 and all(name.endswith(".jpg") for name, _, _ in top)
    changes = [c for _, c, _ in top]
    assert changes == sorted(changes, reverse=True) and changes[0] == pytest.approx(
        val_stats["clean"]["change"]["max"], abs=1e-4)


def test_training_frames_as_centre_crops_or_seeded_random_crops_give_the_same_numbers_every_run():
    stats = _script().stats
    runs = [stats(None, "train", SAMPLE, Guard(), model="realtime", every=20, crop=crop)
            for crop in ("centre", "centre", "random", "random")]
    assert runs[0] == runs[1] and runs[2] == runs[3] and runs[0] != runs[2]
    assert runs[0]["clean"]["images"] == 6                                   # 102 frames, every 20th
