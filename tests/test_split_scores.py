"""scripts/split_scores.py: the frames a model harms in a grid cell, read from evaluate_grid's per_image.csv."""
import importlib.util
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str = "split_scores"):
    """scripts/<name>.py as a module (the scripts folder is no package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_harmed_frames_lists_frames_more_than_the_margin_below_their_input(tmp_path):
    csv = tmp_path / "per_image.csv"
    csv.write_text("condition,method,key,psnr,ssim\n"
                   "clean,identity,a/x.jpg,100.0,1\nclean,gan,a/x.jpg,73.0,1\n"      # harmed by 27 dB
                   "clean,identity,a/y.jpg,100.0,1\nclean,gan,a/y.jpg,100.0,1\n"     # unchanged
                   "noisy,identity,a/x.jpg,30.0,0.8\nnoisy,gan,a/x.jpg,29.95,0.8\n"  # within 0.1 dB
                   "noisy,identity,a/y.jpg,30.0,0.8\nnoisy,gan,a/y.jpg,29.5,0.8\n")  # harmed by 0.5 dB
    assert load_script().harmed_frames(csv) == {"clean": [("x.jpg", -27.0)], "noisy": [("y.jpg", -0.5)]}
