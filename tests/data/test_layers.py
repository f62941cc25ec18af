"""The data layer's modules import each other in one direction only: no cycles, none deferred."""

from __future__ import annotations

import ast
from pathlib import Path

import abn.data

DATA = Path(abn.data.__file__).parent


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """The ``abn.data`` modules ``path`` imports at module level and inside functions."""
    top: set[str] = set()
    deferred: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("abn.data."):
            (top if node in tree.body else deferred).add(node.module.removeprefix("abn.data."))
    return top, deferred


def test_no_cycles_and_no_deferred_imports_in_the_data_layer() -> None:
    graph: dict[str, set[str]] = {}
    for path in sorted(DATA.glob("*.py")):
        if path.stem == "__init__":
            continue
        top, deferred = _imports(path)
        assert not deferred, f"{path.name} defers importing {sorted(deferred)}"
        graph[path.stem] = top
    assert "registry" not in graph["recipes"] and "transforms" not in graph["registry"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    cycles = [name for name in graph if reaches(name, name, {name})]
    assert not cycles, f"import cycles through {cycles}"
