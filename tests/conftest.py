import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (`make test` runs two workers) each worker gets one thread, so the two share the cores.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))

SHARED_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "endoscopy-sample"


@pytest.fixture
def tiny_cfg(tmp_path):
    from medgan_nb.config import Config
    return Config.from_preset("tiny", output_dir=str(tmp_path / "output"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Captured output as valid UTF-8: tests of non-UTF-8 file names log them with surrogate escapes, which
    pytest-xdist cannot send from a worker (execnet: "strings must be utf-8 encodable")."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(name, text.encode("utf-8", "backslashreplace").decode("utf-8"))
                       for name, text in report.sections]
