"""Where judge-validation reports are kept: HOME/judge-validation/<judge id>/report.{json,md}.

Why one module: the CLI writes the report and the Evaluate tab shows it beside the judge's
results; both must agree on the folder, and a judge id holds ':' and '/' (llm:http://host/v1#m)
that cannot be a folder name as they are.
"""
from __future__ import annotations

import re
from pathlib import Path

from core.evaluation.judge_config import build_judge
from core.evaluation.validation import ValidationReport, judge_config_from_spec, run_validation

VALIDATION_FOLDER = "judge-validation"
REPORT_MARKDOWN = "report.md"


def validation_dir(home: Path, judge_id: str) -> Path:
    """HOME/judge-validation/<judge id with every character but letters, digits, '.', '_', '-' as '_'>."""
    return Path(home) / VALIDATION_FOLDER / re.sub(r"[^A-Za-z0-9._-]", "_", judge_id)


def judge_id_of(judge_spec: str, *, home: Path | None = None) -> str:
    """The id of the judge a spec names (nothing is loaded or contacted)."""
    return build_judge(judge_config_from_spec(judge_spec), home=home).id


def validate_and_store(judge_spec: str, home: Path, out_dir: Path | None = None, *,
                       validation_set: Path | None = None) -> tuple[ValidationReport, Path]:
    """Validate the judge a spec names and write its report into `out_dir` (default: its folder
    under HOME, where the Evaluate tab finds it); returns the report and the folder."""
    out = Path(out_dir) if out_dir is not None else validation_dir(home, judge_id_of(judge_spec, home=home))
    return run_validation(judge_spec, out, validation_set=validation_set, home=home), out


def stored_report(home: Path, judge_id: str) -> str | None:
    """The stored Markdown report of a judge, or None when it was never validated into HOME."""
    path = validation_dir(home, judge_id) / REPORT_MARKDOWN
    return path.read_text(encoding="utf-8") if path.is_file() else None
