"""No hidden state in the lessons: every `## ` section of a lab or appendix uses only names that the set-up
cells or the section itself define (read statically with `ast`, so the check costs milliseconds).

The set-up is what comes before the first `## ` heading plus a section titled "Set-up"/"Setup". A name that
a section uses but only another section defines would make the section fail when a student jumps to it after
the set-up cell alone: that is what this test catches. Names bound inside a function or a comprehension count
as the section's own (a loose reading: it may miss a use, it never invents one).
"""
import ast
import builtins
import json
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
