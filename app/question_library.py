"""Question sets the app offers: the bundled ones and those a user imported through the Data tab.

Why imported sets are saved as JSONL under <home>/question_sets: a generate job takes a bundled
name or a path, so an imported set becomes a plain file any job (and the CLI) can read, with the
rejected rows already left out and the import report shown once, at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.file_names import checked_name
from core.data.questions import (
    ColumnMapping,
    ImportReport,
    Question,
    bundled_sets,
    import_questions,
    load_question_set,
    save_questions_jsonl,
)

SETS_DIR = "question_sets"


@dataclass(frozen=True)
class QuestionSetRef:
    """A set by name, and what a generate job is given for it (bundled name or file path)."""

    name: str
    source: str
    bundled: bool


class QuestionLibrary:
    """Lists, previews and imports question sets for one data directory."""

    def __init__(self, home: Path) -> None:
        self.folder = Path(home) / SETS_DIR

    def sets(self) -> list[QuestionSetRef]:
        """Bundled sets first, then imported ones, each group by name."""
        refs = [QuestionSetRef(name, name, True) for name in bundled_sets()]
        if self.folder.is_dir():
            refs += [QuestionSetRef(p.stem, str(p), False) for p in sorted(self.folder.glob("*.jsonl"))]
        return refs

    def get(self, name: str) -> QuestionSetRef:
        for ref in self.sets():
            if ref.name == name:
                return ref
        known = ", ".join(ref.name for ref in self.sets()) or "none"
        raise LookupError(f"There is no question set named {name!r}; sets: {known}. Import it in the Data tab first.")

    def questions(self, name: str) -> list[Question]:
        return load_question_set(self.get(name).source).questions

    @staticmethod
    def preview(path: str | Path, question_column: str | None = None) -> ImportReport:
        """Read a file as an import would, without saving anything."""
        mapping = ColumnMapping(question=question_column.strip() or None) if question_column else None
        return import_questions(path, mapping, source_name=Path(path).name)

    def import_set(self, path: str | Path, name: str, question_column: str | None = None) -> tuple[QuestionSetRef, ImportReport]:
        """Save the usable rows of `path` as the set `name`; raises when nothing is usable."""
        name = checked_name(name, "Set")
        if name in bundled_sets():
            raise ValueError(f"{name!r} is the name of a bundled set: choose another name for the import.")
        report = self.preview(path, question_column)
        if not report.questions:
            raise ValueError(f"No usable question in {Path(path).name}: {report.summary()}. Fix the rows, "
                             "or name the question column.")
        target = save_questions_jsonl(report.questions, self.folder / f"{name}.jsonl")
        return QuestionSetRef(name, str(target), False), report
