"""Checks on the repository itself: notebooks are committed clean, the documented commands exist."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        if any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
            dirty.append(path.name)
    assert not dirty, f"strip outputs before committing: {dirty}"


def test_readme_quick_start_matches_makefile_and_ci():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.search(r"^make test\b", quick, re.M) and re.search(r"^make demo\b", quick, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^demo:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
