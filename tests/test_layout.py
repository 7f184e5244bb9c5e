"""The package's shape: imports point down (no cycle; nothing in the core imports the paper
layer), modules stay readable in size, and the README's "What is where" names the real tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vscr_core"
# Above 500 lines only by design: the rank engine and the synthetic renderer.
LONG_BY_DESIGN = {"vscr_core/_rank.py", "vscr_core/data/synth/render.py"}
# The two that stand above the paper layer and may call into it.
ABOVE_PAPER = {"vscr_core.cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `name` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            for a in node.names:  # `from pkg import module` names the module itself
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {n: _imports(n, p, modules) for n, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        stack.pop()
        state[n] = "done"
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_a_constructed_cycle_is_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_core_never_imports_the_paper_layer():
    wrong = {n: sorted(m for m in deps if m.startswith("vscr_core.paper"))
             for n, deps in _graph().items()
             if not n.startswith("vscr_core.paper") and n not in ABOVE_PAPER}
    assert not {n: d for n, d in wrong.items() if d}


def test_the_import_reader_sees_lazy_relative_and_from_package_imports(tmp_path):
    modules = {"vscr_core.a": None, "vscr_core.paper": None, "vscr_core.paper.reported": None,
               "vscr_core.data": None, "vscr_core.data.types": None}
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from vscr_core.paper import reported\n"
                   "from .types import Sample\nimport vscr_core.a\n")
    got = _imports("vscr_core.data.m", src, modules)
    assert got == {"vscr_core.paper.reported", "vscr_core.data.types", "vscr_core.a"}


def test_modules_stay_under_500_lines_except_by_design():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert set(long) <= LONG_BY_DESIGN, long


def _what_is_where() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("## What is where")
    return text[start:text.index("\n## ", start + 1)]


def test_the_readmes_what_is_where_names_the_real_tree():
    named = set(re.findall(r"`(vscr_core/[\w/.]+)`", _what_is_where()))
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"README names paths that do not exist: {missing}"
    # every module and sub-package is named, itself or by its folder
    unnamed = []
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if p.name == "__init__.py" and len(p.read_text().splitlines()) < 10:
            continue  # a package's docstring only
        folders = {f"{'/'.join(rel.parts[:k])}/" for k in range(2, len(rel.parts))}
        if str(rel) not in named and not folders & named:
            unnamed.append(str(rel))
    assert not unnamed, f"README's What is where does not name {sorted(unnamed)}"


@pytest.mark.parametrize("name", sorted(_modules()))
def test_every_module_imports_on_its_own(name):
    __import__(name)
