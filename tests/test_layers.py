"""The package's layers: imports only go downward, and no module imports itself round a cycle.

Read from the source with `ast` (nothing is imported), so a violation is found even where it sits in a function
body that no test calls. The checker runs on the real package and on a small fabricated one that breaks both rules,
so that it is seen to fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "medgan_nb"

# A unit is a subpackage or a top-level module. It may import units of a lower rank and its own modules.
RANKS = {
    "utils": 0,
    "config": 1,
    "degrade": 2,
    "data": 3,
    "models": 4, "losses": 4, "metrics": 4, "sharpness": 4, "naturalness": 4,
    "training": 5, "evaluation": 5, "inference": 5,
    "figures": 6,
    "cli": 7,
    "__main__": 8,
}
ROOT_NAMES_ALLOWED = {"__version__"}      # the root package's one eager name; everything else there is lazy


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path, modules: set[str]) -> list[tuple[str, set[str], int]]:
    """(imported module, names taken from it, line) for every import of the package in `path`, at any depth."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, set(), node.lineno) for a in node.names if a.name.split(".")[0] == root.name]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != root.name:
                continue
            names = {a.name for a in node.names}
            submodules = {f"{target}.{n}" for n in names if f"{target}.{n}" in modules}
            found += [(m, set(), node.lineno) for m in sorted(submodules)]
            if names - {m.rpartition(".")[2] for m in submodules}:
                found.append((target, names - {m.rpartition(".")[2] for m in submodules}, node.lineno))
    return found


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def check(root: Path, ranks: dict[str, int]) -> list[str]:
    """Every upward import, import of an unranked unit, and import cycle in the package at `root`."""
    files = sorted(root.rglob("*.py"))
    if not files:
        raise FileNotFoundError(f"no Python files under {root}")
    modules = {module_name(f, root) for f in files}
    problems, graph = [], {}
    for f in files:
        src = module_name(f, root)
        graph[src] = set()
        for target, names, line in imports_of(f, root, modules):
            where = f"{f.relative_to(root.parent)}:{line}"
            if target == root.name:
                if names - ROOT_NAMES_ALLOWED:
                    problems.append(f"{where} imports {sorted(names - ROOT_NAMES_ALLOWED)} from the root package")
                continue
            a, b = unit_of(src), unit_of(target)
            if src == root.name:
                pass                                           # the root's own (lazy) imports
            elif a not in ranks or b not in ranks:
                problems.append(f"{where}: unit {a if a not in ranks else b!r} has no rank")
            elif a != b and ranks[b] >= ranks[a]:
                problems.append(f"{where}: {a} (rank {ranks[a]}) imports {target} (rank {ranks[b]})")
            graph[src].add(target)
    problems += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self-import)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:                 # Tarjan's algorithm; the package is far too small to recurse deeply
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component) + [sorted(component)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_package_imports_only_go_downward_and_have_no_cycle():
    problems = check(PACKAGE, RANKS)
    assert not problems, "\n".join(problems)


def test_every_unit_has_a_rank():
    units = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").exists()}
    assert units <= set(RANKS), sorted(units - set(RANKS))


def test_no_subpackage_name_hides_one_of_its_modules():
    """``import medgan_nb.data.fetch as m`` returns the attribute ``fetch`` of ``medgan_nb.data``: a function of
    that name re-exported by the subpackage would stand in for the module."""
    clashes = []
    for init in PACKAGE.glob("*/__init__.py"):
        submodules = {p.stem for p in init.parent.glob("*.py")} | {p.parent.name for p in init.parent.glob("*/__init__.py")}
        for node in ast.walk(ast.parse(init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                clashes += [f"{init.parent.name}.{a.asname or a.name}" for a in node.names
                            if (a.asname or a.name) in submodules and (a.asname or a.name) != node.module]
    assert not clashes, clashes


@pytest.fixture
def broken_package(tmp_path: Path) -> Path:
    root = tmp_path / "medgan_nb"
    files = {
        "__init__.py": '__version__ = "0"\n',
        "utils/__init__.py": "",
        "utils/images.py": "def f():\n    from ..data.decode import g   # upward, hidden in a function\n",
        "data/__init__.py": "",
        "data/decode.py": "from ..utils.images import f\nfrom . import datasets\n",
        "data/datasets.py": "from .decode import f\nfrom .. import __version__\n",
        "models/__init__.py": "",
        "models/build.py": "from .. import Config\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_checker_finds_upward_imports_cycles_and_root_imports(broken_package: Path):
    problems = check(broken_package, RANKS)
    assert any("utils/images.py:2: utils (rank 0) imports medgan_nb.data.decode (rank 3)" in p for p in problems)
    assert any(p.startswith("import cycle:") and "medgan_nb.data.datasets" in p and "medgan_nb.data.decode" in p
               for p in problems)
    assert any("models/build.py:1 imports ['Config'] from the root package" in p for p in problems)
    assert len(problems) == 3, problems       # one strongly connected component: images, decode, datasets
