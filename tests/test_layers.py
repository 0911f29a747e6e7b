"""The layers, read from the source with `ast`: collect -> analyze -> render -> commands, no cycle.

Every module imports; collect never imports analysis, rendering or commands; analysis and rendering take
only row types and constants from collect (never a function that talks to a server), and never touch
the database, the snapshot files or the command line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pgdoctor"

# Pure functions outside the analysis layer that analysis may call (no I/O).
PURE = {("pgdoctor.queries", "parse_version")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str) -> list[tuple[str, str | None]]:
    """(module, name) for every import anywhere in the module (also inside functions and
    TYPE_CHECKING); `from pkg import sub` names the submodule."""
    tree = ast.parse(MODULES[name].read_text())
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, None) if sub in MODULES else (base, alias.name))
    return out


def internal_edges() -> dict[str, set[str]]:
    return {m: {target for target, _ in imports(m) if target in MODULES} for m in MODULES}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("name", sorted(set(MODULES) - {"pgdoctor.__main__"}))  # __main__ runs the CLI
def test_every_module_imports(name: str) -> None:
    importlib.import_module(name)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (or a self-loop)."""
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
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_modules() -> None:
    assert cycles(internal_edges()) == []


def test_no_import_cycle_between_packages() -> None:
    """pgdoctor.collect, pgdoctor.analyze, pgdoctor.render, ... as nodes (the old recommend/ <-> analyze/
    cycle was one between packages, not between modules)."""
    graph: dict[str, set[str]] = {}
    for module, targets in internal_edges().items():
        src = ".".join(module.split(".")[:2])
        graph.setdefault(src, set()).update(
            ".".join(t.split(".")[:2]) for t in targets if ".".join(t.split(".")[:2]) != src
        )
    assert cycles(graph) == []


def offences(module: str, forbidden: set[str], functions_from: set[str]) -> list[str]:
    """Imports of a forbidden layer or module, and functions taken from `functions_from` modules."""
    bad: list[str] = []
    for target, name in imports(module):
        top = target.split(".")
        if target.startswith("pgdoctor"):
            if layer(target) in forbidden or target in forbidden:
                bad.append(target)
            elif name is not None and (target in functions_from or layer(target) in functions_from):
                value = getattr(importlib.import_module(target), name)
                if inspect.isfunction(value) and (target, name) not in PURE:
                    bad.append(f"{target}.{name}")
        elif top[0] in {"psycopg", "psycopg2", "sqlalchemy"} and layer(module) != "collect":
            bad.append(target)  # collect is the layer that talks to servers (PostgreSQL, PgBouncer)
    return bad


RULES = {
    "collect": ({"analyze", "render", "commands", "options", "cli", "snapshot"}, set()),
    "analyze": (
        {"render", "commands", "options", "cli", "db", "snapshot", "serde", "dsn"},
        {"collect", "pgdoctor.queries"},
    ),
    "render": (
        {"commands", "options", "cli", "db", "snapshot", "serde", "dsn", "queries"},
        {"collect"},
    ),
}


@pytest.mark.parametrize("name", [m for m in sorted(MODULES) if layer(m) in RULES])
def test_layer_rule(name: str) -> None:
    forbidden, functions_from = RULES[layer(name)]
    assert offences(name, forbidden, functions_from) == []


def test_layer_rule_catches_offences(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "fake.py"
    fake.write_text(
        "from pgdoctor.collect.connections import collect, ConnectionsData\n"
        "def f():\n    from pgdoctor.render import locks\n    import psycopg\n"
    )
    monkeypatch.setitem(MODULES, "pgdoctor.analyze.fake", fake)
    forbidden, functions_from = RULES["analyze"]
    assert offences("pgdoctor.analyze.fake", forbidden, functions_from) == [
        "pgdoctor.collect.connections.collect",
        "pgdoctor.render.locks",
        "psycopg",
    ]
