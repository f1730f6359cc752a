"""The import floors of ``src/deepshield`` (README, *Extending*): no circles, nothing imports upward.

Every ``import``/``from ... import`` of a deepshield module counts, at module level or inside a function
(a lazy import is still a dependency); only imports under ``if TYPE_CHECKING:`` (annotations) do not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "deepshield"

# floor of each top-level part of the package; a module may import only its own floor and those below.
FLOORS: dict[str, int] = {
    "deepshield": 0, "errors": 0, "io": 0, "progress": 0, "registry": 0, "contracts": 0, "runtime": 0,
    "config": 1,
    "data": 2, "models": 2, "attacks": 2,
    "threats": 3,
    "training": 4,
    "evaluation": 5, "explain": 5,
    "predict": 6, "export": 6, "video_attack": 6, "stream": 6,
    "serve": 7, "cli": 7, "demo": 7, "__main__": 7,
}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for body in node.body for n in ast.walk(body)}
    return skip


def imports_of(name: str, source: str, is_package: bool, modules: set[str]) -> set[str]:
    """The deepshield modules ``name`` imports (``from pkg import sub`` resolves to ``pkg.sub``)."""
    tree = ast.parse(source)
    skip = _type_checking_nodes(tree)
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "deepshield"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "deepshield":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                out.add(sub if sub in modules else target)
    return out - {name}


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in (root / "deepshield").rglob("*.py")}
    return {n: imports_of(n, p.read_text(encoding="utf-8"), p.name == "__init__.py", set(files))
            for n, p in files.items()}


def floor_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else module
    if part not in FLOORS:
        raise AssertionError(f"{module}: no floor for '{part}'; add it to FLOORS in tests/test_layering.py "
                             "and to the README's Extending section")
    return FLOORS[part]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (floor {floor_of(m)}) imports {t} (floor {floor_of(t)})"
                  for m, targets in graph.items() for t in targets if floor_of(t) > floor_of(m))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
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
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_goes_up_a_floor():
    bad = upward_imports(import_graph())
    assert not bad, "imports against the floors (move the shared piece down):\n" + "\n".join(bad)


def test_no_import_circles():
    found = cycles(import_graph())
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_every_part_has_a_floor():
    for module in import_graph():
        floor_of(module)


def _fake_package(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / "deepshield" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_checks_catch_an_upward_import_and_a_circle(tmp_path):
    root = _fake_package(tmp_path, {
        "__init__.py": "", "config/__init__.py": "from deepshield.evaluation import report\n",
        "evaluation/__init__.py": "", "evaluation/report.py": "from . import plots\n",
        "evaluation/plots.py": "def f():\n    from deepshield.evaluation.report import x\n",
        "models/__init__.py": ("from typing import TYPE_CHECKING\n"
                               "if TYPE_CHECKING:\n    from deepshield import cli\n"),
    })
    graph = import_graph(root)
    assert upward_imports(graph) == [
        "deepshield.config (floor 1) imports deepshield.evaluation.report (floor 5)"]
    assert cycles(graph) == [["deepshield.evaluation.plots", "deepshield.evaluation.report"]]
    assert graph["deepshield.models"] == set()  # annotation-only imports do not count


def test_a_part_without_a_floor_is_named(tmp_path):
    with pytest.raises(AssertionError, match="no floor for 'newpart'"):
        floor_of("deepshield.newpart.thing")
