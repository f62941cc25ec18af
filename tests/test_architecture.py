"""The house rules of docs/ARCHITECTURE.md, checked on the source:

- ``abn`` never imports Streamlit (every module imported in a fresh interpreter);
- pages import the app's shared pieces (``app/``), never ``abn`` directly;
- ``app/`` uses only what ``abn`` exports (no private modules or names);
- ``abn``'s modules import each other without cycles (function-level imports included).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ABN = REPO / "abn"
PAGES = sorted([REPO / "Home.py", *(REPO / "pages").glob("*.py")])
APP = sorted((REPO / "app").glob("*.py"))
# what a page may import besides ``app``: the UI and its table/plot libraries, and the stdlib
PAGE_LIBRARIES = {"app", "streamlit", "pandas", "plotly"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def abn_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ABN.rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, str | None, int]]:
    """Every import in ``path`` (any depth) as ``(absolute module, imported name, line)``."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(base, alias.name, node.lineno) for alias in node.names]
    return found


def import_graph() -> dict[str, set[str]]:
    """``abn`` module → the ``abn`` modules it imports explicitly (``from pkg import sub``
    counts as importing ``pkg.sub`` when that is a module, else ``pkg``)."""
    modules = abn_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for base, imported, _ in imports(path):
            target = f"{base}.{imported}" if f"{base}.{imported}" in modules else base
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_abn_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles in abn: " + "; ".join(" <-> ".join(c) for c in found)


@pytest.mark.slow
def test_abn_never_imports_streamlit() -> None:
    names = [m for m in abn_modules() if not m.endswith("__main__")]
    probe = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "ui = sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit')[:3]\n"
        "print(len(sys.modules), ui)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    count, ui = out.stdout.split(" ", 1)
    assert int(count) > len(names)  # the modules were imported
    assert ui.strip() == "[]", f"importing abn loaded Streamlit: {ui}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_import_only_the_app_streamlit_and_the_stdlib(page: Path) -> None:
    allowed = PAGE_LIBRARIES | set(sys.stdlib_module_names)
    bad = [
        f"{page.name}:{line} imports {base}"
        for base, _, line in imports(page)
        if base.split(".")[0] not in allowed
    ]
    assert not bad, "pages go through app/: " + "; ".join(bad)


def private(dotted: str) -> bool:
    return any(part.startswith("_") and part != "__future__" for part in dotted.split("."))


@pytest.mark.parametrize("source", APP, ids=lambda p: p.name)
def test_app_uses_only_what_abn_exports(source: Path) -> None:
    bad = []
    for base, imported, line in imports(source):
        if base.split(".")[0] != "abn":
            continue
        if private(base) or (imported and private(imported)):
            bad.append(f"{source.name}:{line} imports private {base}.{imported}")
        elif imported and not hasattr(importlib.import_module(base), imported):
            bad.append(f"{source.name}:{line}: {base} has no {imported}")
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "abn":
                bad.append(f"{source.name}:{node.lineno} uses private abn.….{node.attr}")
    assert not bad, "; ".join(bad)


def test_the_import_walker_sees_function_level_and_relative_imports(tmp_path, monkeypatch) -> None:
    """``imports`` resolves relative imports and finds those inside functions."""
    pkg = tmp_path / "abn" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .a import x\n")
    (pkg / "a.py").write_text("def f():\n    from ..b import y\n    import abn.sub.c\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert imports(pkg / "__init__.py") == [("abn.sub.a", "x", 1)]
    assert imports(pkg / "a.py") == [("abn.b", "y", 2), ("abn.sub.c", None, 3)]
