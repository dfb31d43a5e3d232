"""CBM3D, the optional baseline: it restores when bm3d is installed, and is skipped, saying so, when it is not."""
import importlib.util
import json
import sys

import numpy as np
import pytest

from medgan_nb.config import Config
from medgan_nb.evaluation import (
    BASELINES,
    BM3D_MISSING,
    FAST_BASELINES,
    LABELS,
    NEEDS_BM3D,
    cbm3d,
    evaluate,
    median_cbm3d,
    missing_reason,
    nlm,
)

HAVE_BM3D = importlib.util.find_spec("bm3d") is not None
needs_bm3d = pytest.mark.skipif(not HAVE_BM3D, reason="the optional bm3d package is not installed")


def test_cbm3d_comes_after_the_existing_baselines_with_labels():
    assert list(BASELINES) == [*FAST_BASELINES, *NEEDS_BM3D]
    assert list(FAST_BASELINES) == ["identity", "median", "gaussian", "nlm", "tv", "bilateral"]
    assert LABELS["cbm3d"] == "CBM3D" and LABELS["median_cbm3d"] == "median + CBM3D"


@pytest.fixture(scope="module")
def images():
    """A 32² image with gradients, a ripple and an edge; with noise 0.1; and with 2 % salt-and-pepper on top."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    clean = np.stack([0.3 + 0.4 * xx, 0.5 + 0.2 * np.sin(6 * yy), 0.4 + 0.2 * (xx > 0.5)], -1).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    specks = noisy.copy()
    hit = rng.random((32, 32)) < 0.02
    specks[hit] = rng.integers(0, 2, (int(hit.sum()), 1)).astype(np.float32)
    return clean, noisy, specks


def db(x, clean):
    return 10 * np.log10(1 / np.mean((x.astype(np.float64) - clean) ** 2))


@needs_bm3d
def test_cbm3d_denoises_far_better_than_identity_and_better_than_nlm(images):
    clean, noisy, _ = images                      # measured: identity 20.0, NLM 31.1, CBM3D 33.0 dB
    out = cbm3d(noisy, 0.1)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype and 0 <= out.min() and out.max() <= 1
    assert db(out, clean) > db(noisy, clean) + 10
    assert db(out, clean) > db(nlm(noisy, 0.1), clean) + 0.5


@needs_bm3d
def test_median_then_cbm3d_removes_salt_and_pepper_that_cbm3d_keeps(images):
    clean, _, specks = images                     # measured: CBM3D 27.2, median + CBM3D 32.6 dB
    assert db(median_cbm3d(specks, 0.1), clean) > db(cbm3d(specks, 0.1), clean) + 3


@needs_bm3d
def test_evaluation_with_bm3d_scores_cbm3d_above_the_input(tmp_path):
    cfg = Config.from_preset("tiny", degradations=("noise",), noise_std=0.1, noise_std_range=0.0)
    metrics = evaluate(None, tmp_path / "out", cfg=cfg, baselines=("identity", "cbm3d"), breakdown=False,
                       max_images=1, quiet=True)      # one image: the figures restore it again, ~1 s each
    results = metrics["results"]["all"]
    assert list(results) == ["identity", "cbm3d"] and metrics["metadata"]["skipped"] == {}
    assert results["cbm3d"]["psnr_mean"] > results["identity"]["psnr_mean"] + 5
    assert results["cbm3d"]["ms_per_image"] > 0           # timed (its value depends on the machine), and reported
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| cbm3d |" in report and "CBM3D is given each image's true noise level" in report
    assert "skipped" not in report


@pytest.fixture
def without_bm3d(monkeypatch):
    """Make `import bm3d` fail, as on a machine without the optional extra (CI)."""
    monkeypatch.setitem(sys.modules, "bm3d", None)


def test_without_bm3d_cbm3d_says_how_to_install_it(without_bm3d, images):
    assert missing_reason("cbm3d") == missing_reason("median_cbm3d") == BM3D_MISSING
    assert missing_reason("nlm") is None
    assert BM3D_MISSING == "CBM3D skipped: pip install bm3d (non-commercial licence)"
    with pytest.raises(ImportError, match="pip install bm3d"):
        cbm3d(images[1], 0.1)


def test_without_bm3d_evaluation_skips_cbm3d_and_says_so(without_bm3d, tmp_path):
    metrics = evaluate(None, tmp_path / "out", cfg=Config.from_preset("tiny"),
                       baselines=("identity", "cbm3d", "median_cbm3d", "median"), breakdown=False,
                       max_images=2, quiet=True)
    assert list(metrics["results"]["all"]) == ["identity", "median"]
    assert metrics["metadata"]["methods"] == ["identity", "median"]
    assert metrics["metadata"]["skipped"] == {"cbm3d": BM3D_MISSING, "median_cbm3d": BM3D_MISSING}
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metadata"]["skipped"]["cbm3d"] == BM3D_MISSING
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.count(BM3D_MISSING) == 1 and "(cbm3d, median_cbm3d)" in report
