"""Small functions (STYLE.md: a function past ~60 lines is doing two jobs): none in src/deepshield."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "deepshield"
MAX_LINES = 60


def long_functions(source: str, name: str = "<source>", limit: int = MAX_LINES) -> list[str]:
    """``file:line name (N lines)`` for every function or method longer than ``limit`` lines."""
    return [f"{name}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > limit]


def test_no_function_over_60_lines():
    found = [hit for path in sorted(PACKAGE.rglob("*.py"))
             for hit in long_functions(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))]
    assert not found, "split these functions:\n" + "\n".join(found)


def test_the_check_counts_nested_and_async_functions():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    source = f"def outer():\n    async def inner():\n{body.replace('    ', '        ')}\n    return inner\n"
    hits = long_functions(source)
    assert [h.split(" (")[0] for h in hits] == ["<source>:1 outer", "<source>:2 inner"]
