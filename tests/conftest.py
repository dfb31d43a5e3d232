import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

SHARED_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "endoscopy-sample"


@pytest.fixture
def tiny_cfg(tmp_path):
    from medgan_nb.config import Config
    return Config.preset("tiny", output_dir=str(tmp_path / "output"))
