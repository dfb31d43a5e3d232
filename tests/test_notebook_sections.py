"""No hidden state in the lessons: every `## ` section of a lab or appendix uses only names that the set-up
cells or the section itself define (read statically with `ast`, so the check costs milliseconds).

The set-up is what comes before the first `## ` heading plus a section titled "Set-up"/"Setup". A name that
a section uses but only another section defines would make the section fail when a student jumps to it after
the set-up cell alone: that is what this test catches. Names bound inside a function or a comprehension count
as the section's own (a loose reading: it may miss a use, it never invents one).

The same holds when the lessons run: in tiny mode each lesson is executed once more with every section after
``%reset -f`` and the set-up cells alone, last section first (`section_notebook`), which also catches a section
that needs a file or a run that an earlier section makes (about two minutes for all lessons on two workers).
"""
import ast
import builtins
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted(p for p in (ROOT / "notebooks").glob("*.ipynb") if re.match(r"(\d\d|A\d)_", p.name))
AMBIENT = set(dir(builtins)) | {"display", "get_ipython", "In", "Out", "_", "__", "___"}


def sections(path: Path) -> list[tuple[str, str]]:
    """(heading, code) per `## ` section; the first item ("set-up") holds everything before the first one."""
    out = [["set-up", []]]
    for cell in json.loads(path.read_text())["cells"]:
        text = "".join(cell["source"])
        heading = next((line for line in text.splitlines() if line.startswith("## ")), None)
        if cell["cell_type"] == "markdown" and heading:
            out.append([heading[3:].strip(), []])
        elif cell["cell_type"] == "code":
            out[-1][1].append("\n".join(line for line in text.splitlines()
                                        if not line.lstrip().startswith(("%", "!"))))
    return [(title, "\n".join(code)) for title, code in out]


def names(code: str) -> tuple[set[str], set[str]]:
    """(names bound anywhere in `code`, names it reads)."""
    bound, used = set(), set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound, used


def hidden_state(path: Path) -> list[str]:
    """'section: name (defined in: other section)' for every name a section takes from another section."""
    parts = sections(path)
    setup = set().union(*(names(code)[0] for title, code in parts
                          if title == "set-up" or re.search(r"set-?up\b", title, re.I)))
    bound_in = {title: names(code)[0] for title, code in parts}
    problems = []
    for title, code in parts:
        own, used = names(code)
        for name in sorted(used - own - setup - AMBIENT):
            elsewhere = [t for t, b in bound_in.items() if name in b and t != title]
            if elsewhere:
                problems.append(f"{path.name}, section {title!r}: {name} (defined in {elsewhere[0]!r})")
    return problems


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_section_runs_after_the_set_up_alone(path):
    assert hidden_state(path) == []


def test_the_check_finds_a_name_taken_from_another_section(tmp_path):
    cells = [("code", "import numpy as np\nrng = np.random.default_rng(0)"), ("markdown", "## 1. Make"),
             ("code", "small = rng.random(3)\ndef f(x):\n    return x + 1"), ("markdown", "## 2. Use"),
             ("code", "print(f(small).sum(), [i for i in range(3)])")]
    nb = {"cells": [{"cell_type": t, "source": [s], "metadata": {}} for t, s in cells]}
    (tmp_path / "01_x.ipynb").write_text(json.dumps(nb))
    assert hidden_state(tmp_path / "01_x.ipynb") == [
        "01_x.ipynb, section '2. Use': f (defined in '1. Make')",
        "01_x.ipynb, section '2. Use': small (defined in '1. Make')"]


def section_notebook(path: Path):
    """`path` rewritten so that every `## ` section runs after a fresh start: the set-up cells, then per section,
    last section first, ``%reset -f`` (every name the notebook defined is gone), the set-up cells again and the
    section's cells. Last first: a section that needs a file or a run an earlier one makes finds none."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    setup, parts, title = [], [], "set-up"
    for cell in nb.cells:
        heading = next((line for line in cell.source.splitlines() if line.startswith("## ")), None)
        if cell.cell_type == "markdown" and heading:
            title = heading[3:].strip()
            parts.append((title, []))
        elif cell.cell_type == "code":
            is_setup = not parts or re.search(r"set-?up\b", title, re.I)
            (setup if is_setup else parts[-1][1]).append(cell.source)
    cells = [nbformat.v4.new_code_cell(src) for src in setup]
    for title, code in reversed(parts):
        if code:
            cells += [nbformat.v4.new_markdown_cell(f"## {title}"), nbformat.v4.new_code_cell("%reset -f")]
            cells += [nbformat.v4.new_code_cell(src) for src in [*setup, *code]]
    nb.cells = cells
    return nb


def first_failing_section(path: Path, cell_timeout: int = 180) -> str | None:
    """None if every section of `path` runs after the set-up alone (`section_notebook`), else "section: error".

    A cell that raises fails at once. A cell that gets no reply within `cell_timeout` seconds, or a kernel that
    dies, is given one more try in a fresh kernel: under heavy load a kernel has been seen to go idle without
    answering (its reply lost), which says nothing about the lesson; a second silence fails the test.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    for attempt in (1, 2):
        nb = section_notebook(path)
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
            return None
        except CellExecutionError as e:
            section = "set-up"
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    section = cell.source[3:]
                elif any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
                    return f"{section}: {str(e)[-2000:]}"
            return f"?: {str(e)[-2000:]}"
        except (CellTimeoutError, DeadKernelError) as e:
            if attempt == 2:
                return f"no reply twice ({type(e).__name__}): {str(e)[-500:]}"
    return None


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_every_section_runs_in_a_fresh_kernel_after_the_set_up(path):
    """The dynamic twin of the check above, in tiny mode: what `ast` cannot see (a file an earlier section wrote,
    a changed setting) fails here."""
    if os.environ.get("MEDGAN_TINY") != "1":
        pytest.skip("runs the lessons in tiny mode only (MEDGAN_TINY=1, as make test sets)")
    assert first_failing_section(path) is None


def test_a_section_that_needs_an_earlier_one_fails_and_is_named(tmp_path):
    cells = [("code", "import pathlib"), ("markdown", "## 1. Write"),
             ("code", "pathlib.Path('made.txt').write_text('x')"), ("markdown", "## 2. Read"), ("code", "print(pathlib.Path('made.txt').read_text())")]
    nb = {"cells": [{"cell_type": t, "id": f"c{i}", "source": [s], "metadata": {},
                     **({"outputs": [], "execution_count": None} if t == "code" else {})}
                    for i, (t, s) in enumerate(cells)],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "01_x.ipynb").write_text(json.dumps(nb))
    assert hidden_state(tmp_path / "01_x.ipynb") == []          # no name crosses sections: only running it shows
    failure = first_failing_section(tmp_path / "01_x.ipynb")
    assert failure is not None and failure.startswith("2. Read") and "FileNotFoundError" in failure


def test_the_section_notebook_resets_before_every_section():
    nb = section_notebook(ROOT / "notebooks" / "04_training.ipynb")
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    n_sections = sum(c.cell_type == "markdown" for c in nb.cells)
    assert sources.count("%reset -f") == n_sections > 5
    setup = sources[:sources.index("%reset -f")]
    assert setup and "print_setup" in setup[0]
    after_reset = [sources[i + 1:i + 1 + len(setup)] for i, s in enumerate(sources) if s == "%reset -f"]
    assert all(block == setup for block in after_reset)
