"""`make notebooks` (scripts/run_notebooks.py): every notebook to HTML with its time; failures reported."""
import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "run_notebooks.py"


def notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def test_notebooks_become_html_with_times_and_a_failure_is_reported(tmp_path):
    good = notebook(tmp_path / "01_good.ipynb", "import os\nprint('tiny' if os.environ.get('MEDGAN_TINY') else 'x')")
    bad = notebook(tmp_path / "02_bad.ipynb", "print('before')", "raise ValueError('broken cell')", "print('never')")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), str(good), str(bad), "--out", str(out), "--tiny"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    (run,) = out.iterdir()
    times = json.loads((run / "times.json").read_text())
    assert [r["notebook"] for r in times["notebooks"]] == ["01_good.ipynb", "02_bad.ipynb"]
    assert times["notebooks"][0]["error"] is None and "broken cell" in times["notebooks"][1]["error"]
    assert "tiny" in (run / "01_good.html").read_text() and "before" in (run / "02_bad.html").read_text()
    assert "| 02_bad.ipynb |" in (run / "times.md").read_text() and "FAILED" in done.stdout


def test_the_runner_not_the_lesson_waits_for_widgets(tmp_path):
    """Cells that show widgets are held for SETTLE_S by a hook the runner installs (no sleep in the lessons)."""
    pytest.importorskip("ipywidgets")
    nb = notebook(tmp_path / "01_widgets.ipynb",
                  "from IPython import get_ipython\n"
                  "print(sorted(f.__name__ for f in get_ipython().events.callbacks['post_run_cell']))",
                  "import time\nimport ipywidgets\nstart = time.perf_counter()\nipywidgets.IntSlider()",
                  "print(f'held {time.perf_counter() - start:.1f} s')")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, str(SCRIPT), str(nb), "--out", str(out), "--tiny"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    html = next(out.iterdir()).joinpath("01_widgets.html").read_text()
    assert "settle_after_widgets" in html
    held = float(re.search(r"held (\d+\.\d) s", html).group(1))
    assert held >= 2.0                           # a lower bound only: a busy machine holds it longer
