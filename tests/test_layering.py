"""core/ never imports the UI, the database or the scheduler (data flows app -> jobs -> core)."""
from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {"gradio", "sqlalchemy", "apscheduler", "app", "jobs", "alembic"}
CORE = Path(__file__).resolve().parent.parent / "core"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_imports_no_ui_database_or_scheduler():
    offenders = {str(p.relative_to(CORE)): imported_roots(p) & FORBIDDEN for p in CORE.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
