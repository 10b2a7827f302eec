"""The one-way flow, held by a rule table: browser -> app -> jobs -> core, cli on top, no cycles.

Why a table: each rule says which package may not import what, and a violation names the
importing module and the import, so a newcomer sees the layering and a break is caught at once.
Imports under `if TYPE_CHECKING:` are not counted (they do not run).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "jobs", "app", "cli")


@dataclass(frozen=True)
class Rule:
    """Modules under `package` must not import any name in `forbidden` (or anything below it)."""

    package: str
    forbidden: tuple[str, ...]
    why: str


RULES = (
    Rule("core", ("app", "jobs", "cli", "gradio", "sqlalchemy", "apscheduler", "alembic"),
         "the method is importable and testable without the UI, the database or the scheduler"),
    Rule("jobs", ("app", "cli", "gradio"), "jobs serve the app and the CLI, never the other way"),
    Rule("app", ("sqlalchemy", "jobs.records", "cli"), "the app reads and writes through jobs/ queries and commands"),
)


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[module_name(path, root)] = path
    launch = root / "launch.py"
    if launch.exists():
        found["launch"] = launch
    return found


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return skipped


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Dotted names imported by a module; `from pkg import mod` counts as importing pkg.mod."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_nodes(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in modules else base)
    return found


def violates(imported: str, forbidden: str) -> bool:
    return imported == forbidden or imported.startswith(forbidden + ".")


def rule_offences(root: Path = ROOT) -> list[str]:
    modules = project_modules(root)
    offences = []
    for name, path in sorted(modules.items()):
        for rule in RULES:
            if not violates(name, rule.package):
                continue
            for imported in sorted(imports_of(name, path, modules)):
                for forbidden in rule.forbidden:
                    if violates(imported, forbidden):
                        offences.append(f"{name} imports {imported} ({rule.package} must not import {forbidden}: {rule.why})")
    return offences


def test_rule_table_holds():
    offences = rule_offences()
    assert not offences, "\n".join(offences)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imports_of(name, path, modules):
            # An import of pkg.mod.Name resolves to the longest project module it names.
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            # Importing a package's __init__ from inside the package is not a design cycle.
            if imported and imported != name and not name.startswith(imported + "."):
                targets.add(imported)
        graph[name] = targets
    return graph


def test_no_import_cycle_between_project_modules():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("source, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
])
def test_the_cycle_finder_finds_cycles(source, expected):
    assert _cycles(source) == expected


def test_a_violation_is_reported_with_the_import(tmp_path):
    """The rule check names the offending module and import (on a throwaway tree)."""
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "core" / "probe.py").write_text("import sqlalchemy\nfrom jobs import records\n", encoding="utf-8")
    offences = rule_offences(tmp_path)
    assert any(o.startswith("core.probe imports sqlalchemy") for o in offences)
    assert any(o.startswith("core.probe imports jobs") for o in offences)
