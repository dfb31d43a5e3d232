"""Checks on the repository itself: notebooks are committed clean, the documented commands exist."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_committed_notebooks_have_no_outputs():
    dirty = []
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        if any(c.get("outputs") or c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
            dirty.append(path.name)
    assert not dirty, f"strip outputs before committing: {dirty}"


def test_every_notebook_cell_has_a_unique_id():
    """nbformat 4.5 requires cell ids (a cell added by a script without one is a validation warning today and
    an error in later nbformat versions)."""
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        ids = [c.get("id") for c in nb["cells"]]
        assert None not in ids and len(set(ids)) == len(ids), path.name


def test_readme_quick_start_matches_makefile_and_ci():
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.search(r"^make test\b", quick, re.M) and re.search(r"^make demo\b", quick, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^test:", makefile, re.M) and re.search(r"^demo:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


# Ways to let the clock decide how much work is done: a time budget for training, timing loops that run
# "until stable", or a loop that compares a clock reading with a limit.
CLOCK_BOUND = re.compile(r"max_minutes\s*=(?!=)\s*(?!0+(?:\.0*)?(?![\w.]))|(?:blocked|adaptive)_autorange|min_run_time|"
                         r"while[^\n]*(?:perf_counter|monotonic|process_time|time\.time)\(")


def test_no_notebook_cell_and_no_test_bounds_work_by_the_clock():
    """Under any load the same cells and tests do the same work: runs have fixed lengths (a safety stop may
    exist in the notebook preset, but no cell sets one), timings use a fixed number of calls."""
    found = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and CLOCK_BOUND.search("".join(cell["source"])):
                found.append(f"{path.name} cell {i}")
    for path in sorted((ROOT / "tests").glob("*.py")):
        text = path.read_text()
        for match in CLOCK_BOUND.finditer(text):
            line = text[text.rfind("\n", 0, match.start()) + 1:text.find("\n", match.end())]
            if not line.strip().startswith(("assert", "CLOCK_BOUND")) and \
                    "fake clock" not in text[max(0, match.start() - 400):match.start()]:     # a mocked cap
                found.append(f"{path.name}: {line.strip()}")
    assert not found, f"work bounded by the clock: {found}"


def test_tiny_mode_has_no_time_cap():
    import os

    from medgan_nb.config import Config, notebook_config, notebook_scan_config
    os.environ["MEDGAN_TINY"] = "1"          # as make test sets it (the tests run under it)
    configs = [Config.from_preset("tiny"), notebook_config(), *(notebook_scan_config(m) for m in ("ct", "mri", "xray"))]
    assert all(c.max_minutes == 0 and c.preset in ("tiny", "ct", "mri", "xray") for c in configs)


def test_importing_the_package_shortens_the_thread_spin_unless_the_user_set_one():
    import os
    import subprocess
    import sys
    code = "import os, medgan_nb; print(os.environ['GOMP_SPINCOUNT'])"
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}

    def spin_count(env):
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()

    assert spin_count(env) == "10000" and spin_count({**env, "GOMP_SPINCOUNT": "42"}) == "42"
    assert re.search(r"^export GOMP_SPINCOUNT \?= 10000$", (ROOT / "Makefile").read_text(), re.M)


# What a lesson must not carry: it is read on other machines, on other days, from other commits.
LESSON_CLUTTER = {
    "a date": r"\b(19|20)\d\d-[01]\d-[0-3]\d\b",
    "a clock time": r"\b[0-2]\d:[0-5]\d(:[0-5]\d)?\s*(UTC|GMT|CET|CEST)\b",
    "a commit hash": r"\b(commit|at|@)\s+(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b",
    "a machine name": r"\b(Xeon|EPYC|Ryzen|Core i[3579]|Threadripper|H100|H200|A100|RTX ?\d{4}|M[123] (Pro|Max))\b",
    "an issue number": r"\bissue #?\d+\b",
}


def test_lessons_carry_no_dates_times_machines_commits_or_issue_numbers():
    found = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            text = "".join(cell["source"])
            found += [f"{path.name} cell {i}: {what}: {m.group(0)!r}" for what, pattern in LESSON_CLUTTER.items()
                      for m in re.finditer(pattern, text, re.I)]
    assert found == [], "\n".join(found)


def test_the_clutter_patterns_catch_what_they_name():
    samples = {"a date": "measured 2026-12-07", "a clock time": "at 21:02 UTC", "a commit hash": "at 3fe2eb9",
               "a machine name": "on an Intel Xeon", "an issue number": "see issue 27"}
    for what, text in samples.items():
        assert re.search(LESSON_CLUTTER[what], text, re.I), what
    assert not any(re.search(p, "Isola et al., CVPR 2017; 256×256 frames; 20:1; at 1000000 photons", re.I)
                   for p in LESSON_CLUTTER.values())
