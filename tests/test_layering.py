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


APP = CORE.parent / "app"


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_app_does_no_database_work_of_its_own():
    """app/ reads and writes through jobs/ queries and commands: no SQLAlchemy, no jobs.records."""
    def forbidden(module: str) -> bool:
        return module.split(".")[0] == "sqlalchemy" or module == "jobs.records" or module.startswith("jobs.records.")

    offenders = {str(p.relative_to(APP)): sorted(m for m in imported_modules(p) if forbidden(m)) for p in APP.rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}
