"""Question sets: what self-generation answers and what evaluation asks, read from any common format.

Why lenient per row but strict per file: an imported set of 10k prompts usually holds a few bad
rows (blank, repeated, a broken line); refusing the whole file helps nobody, so such rows are
rejected with their row number and reason and the rest kept. A file whose question column cannot
be found at all is an error instead, naming the columns it has and how to map one.

Row numbers are the ones a person would look up: the line number for JSONL; the spreadsheet row
for CSV/TSV (the header is row 1, so the first data row is row 2); the 1-based item or row index
for a JSON list, Parquet and Hugging Face datasets.

Text is cleaned as `core.data.text_hygiene` says: control and invisible characters are stripped
from every saved field, a question with nothing visible left is rejected as empty, and a lone
surrogate or a bidi control rejects its row. So every kept row can be saved as UTF-8.

File formats are read by `core.data.question_readers`; duplicates across sets and train/eval leakage
are found by `core.data.leakage`.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from core.data.atomic_write import write_bytes_atomically
from core.data.question_readers import (
    NESTED_TOO_DEEPLY,
    RESAVE_AS_UTF8,
    QuestionImportError,
    _RawRow,
    _read_source,
    _Table,
)
from core.data.text_hygiene import UnsafeText, clean_text, has_visible_text
from core.paths import ASSETS_DIR

BUNDLED_DIR = ASSETS_DIR / "questions"
#: Auto-detected question columns, first match wins (compared case-insensitively).
QUESTION_COLUMNS = ("question", "prompt", "instruction", "messages", "conversations", "text")
#: Columns that hold a conversation: a list of {role, content} (OpenAI) or {from, value} (ShareGPT).
MESSAGE_COLUMNS = ("messages", "conversations")
#: ShareGPT speaker names -> OpenAI roles; other roles are kept as written (lower-cased).
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
                 "bing": "assistant", "model": "assistant"}


class QuestionKind(str, Enum):
    """What a question is for; BENIGN means harmless but risky-sounding (an over-refusal probe)."""

    HARMFUL = "harmful"
    HELPFUL = "helpful"
    BENIGN = "benign"


class _Rejected(Exception):
    """One row is unusable; carries the reason shown to the user."""


@dataclass
class Question:
    """One prompt. For multi-turn imports `messages` is the full conversation ({role, content})
    and `text` its last user message."""

    id: str
    text: str
    kind: QuestionKind | None
    category: str = ""
    source: str = ""
    messages: list[dict] | None = None

    def prompt_messages(self) -> list[dict]:
        """The conversation up to and including the last user turn: what a model should answer."""
        if not self.messages:
            return [{"role": "user", "content": self.text}]
        last_user = max(i for i, m in enumerate(self.messages) if m["role"] == "user")
        return [dict(m) for m in self.messages[: last_user + 1]]

    @property
    def key(self) -> str:
        """The normalised text duplicates and leakage are judged on. Earlier turns count, so two
        chats that both end in 'go on' are not duplicates."""
        prompt = self.prompt_messages()
        if len(prompt) > 1:
            return normalise("\n".join(m["content"] for m in prompt))
        return normalise(self.text)

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id, "question": self.text,
                                  "kind": self.kind.value if self.kind else None,
                                  "category": self.category, "source": self.source}
        if self.messages is not None:
            record["messages"] = self.messages
        return record


@dataclass
class RejectedRow:
    """A row left out of an import: its row number (see the module docstring) and why."""

    row: int
    reason: str


@dataclass
class ImportReport:
    """The questions kept, the rows rejected, and where they came from."""

    questions: list[Question]
    rejected: list[RejectedRow]
    source: str

    def summary(self, limit: int = 10) -> str:
        """One line for the UI or a log; lists the first `limit` rejections."""
        kept, bad = len(self.questions), len(self.rejected)
        head = f"{kept} question{'' if kept == 1 else 's'} imported"
        if not bad:
            return f"{head}, no rows rejected"
        details = "; ".join(f"row {r.row} {r.reason}" for r in self.rejected[:limit])
        more = f"; and {bad - limit} more" if bad > limit else ""
        return f"{head}, {bad} row{'' if bad == 1 else 's'} rejected: {details}{more}"


@dataclass
class ColumnMapping:
    """Which column holds what. None means auto-detect: the question among QUESTION_COLUMNS,
    the others by their own name ('id', 'kind', 'category'). A column named here must exist."""

    question: str | None = None
    id: str | None = None
    kind: str | None = None
    category: str | None = None


@dataclass
class _Context:
    """What every row of one import shares: the resolved columns and the limits."""

    stem: str
    source: str
    mapping: ColumnMapping
    required: tuple[str, ...]
    source_column: str | None
    messages_column: str | None
    default_kind: QuestionKind | None
    max_chars: int


def normalise(text: str) -> str:
    """Lower-case, collapse whitespace and strip punctuation at the ends, so 'How do I X?' and
    'how do i  x' count as the same question."""
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or unicodedata.category(text[start]).startswith("P")):
        start += 1
    while end > start and (text[end - 1].isspace() or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[start:end]


# --- rows into questions -------------------------------------------------------------------------

def _find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {column.lower(): column for column in reversed(columns)}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _columns_found(columns: list[str], shown: int = 20, width: int = 40) -> str:
    """The columns for an error message: a few, each cut short, and a hint when a name holds
    characters no header would (a file in another encoding read as UTF-8)."""
    if not columns:
        return "none"
    names = ", ".join(repr(c if len(c) <= width else c[:width] + "...") for c in columns[:shown])
    more = f" and {len(columns) - shown} more" if len(columns) > shown else ""
    hint = f" (the names hold invisible characters: {RESAVE_AS_UTF8})" if any(map(_garbled, columns)) else ""
    return names + more + hint


def _garbled(name: str) -> bool:
    try:
        return clean_text(name) != name
    except UnsafeText:
        return True


def _context(mapping: ColumnMapping, table: _Table, stem: str, source: str,
             default_kind: QuestionKind | None, max_chars: int) -> _Context:
    """Resolve the mapping against the columns found, or say which columns exist and how to map one."""
    found = _columns_found(table.columns)
    for role in ("question", "id", "kind", "category"):
        named = getattr(mapping, role)
        if named is not None and named not in table.columns:
            raise QuestionImportError(
                f"{source}: no column {named!r} (mapped as the {role}); columns found: {found}. "
                f"Map one of them with ColumnMapping({role}='...').")
    question = mapping.question or _find_column(table.columns, QUESTION_COLUMNS)
    if question is None:
        raise QuestionImportError(
            f"{source}: no question column found; columns found: {found}. Name one of "
            f"{', '.join(QUESTION_COLUMNS)}, or map yours with ColumnMapping(question='your_column').")
    resolved = ColumnMapping(
        question=question, id=mapping.id or _find_column(table.columns, ("id",)),
        kind=mapping.kind or _find_column(table.columns, ("kind",)),
        category=mapping.category or _find_column(table.columns, ("category",)))
    required = (question,) + tuple(c for c in (mapping.id, mapping.kind, mapping.category) if c)
    messages_column = None if question.lower() in MESSAGE_COLUMNS else _find_column(table.columns, MESSAGE_COLUMNS)
    return _Context(stem, source, resolved, required, _find_column(table.columns, ("source",)),
                    messages_column, default_kind, max_chars)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(p if isinstance(p, str) else str(p.get("text") or "")
                         for p in content if isinstance(p, (str, dict)))
    raise _Rejected("malformed messages: a message's content is not text")


def _messages(value: list) -> list[dict]:
    """OpenAI {role, content} or ShareGPT {from, value} -> OpenAI style."""
    messages = []
    for number, message in enumerate(value, start=1):
        role = (message.get("role") or message.get("from")) if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        content = message.get("value") if content is None and isinstance(message, dict) else content
        if not isinstance(role, str) or content is None:
            raise _Rejected(f"malformed messages: message {number} needs role/content (OpenAI) "
                            "or from/value (ShareGPT)")
        role = _clean(role, f"message {number}'s role").strip().lower()
        content = _clean(_content_text(content), f"message {number}")
        messages.append({"role": _ROLE_ALIASES.get(role, role), "content": content})
    if not any(m["role"] == "user" for m in messages):
        raise _Rejected("no user message in messages")
    return messages


def _question_text(value: Any, column: str) -> tuple[str, list[dict] | None]:
    if isinstance(value, str) and column.lower() in MESSAGE_COLUMNS and value.lstrip().startswith("["):
        try:  # a conversation stored as JSON text in a CSV cell
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _Rejected("malformed messages: the cell is not a JSON list of messages") from None
        except RecursionError:
            raise _Rejected(f"malformed messages: the cell is {NESTED_TOO_DEEPLY}") from None
    if value is None:
        return "", None
    if isinstance(value, str):
        return _clean(value, "question").strip(), None
    if isinstance(value, list):
        messages = _messages(value)
        return [m for m in messages if m["role"] == "user"][-1]["content"].strip(), messages
    raise _Rejected(f"question is not text (got {type(value).__name__})")


def _sibling_messages(record: dict[str, Any], ctx: _Context, text: str) -> list[dict] | None:
    """A 'messages' column next to the question column is kept when it ends in that question
    (how save_questions_jsonl writes multi-turn questions)."""
    value = record.get(ctx.messages_column) if ctx.messages_column else None
    if not isinstance(value, list):
        return None
    try:
        messages = _messages(value)
    except _Rejected:
        return None
    last_user = [m for m in messages if m["role"] == "user"][-1]["content"].strip()
    return messages if last_user == text else None


def _clean(text: str, what: str) -> str:
    try:
        return clean_text(text, what)
    except UnsafeText as unsafe:
        raise _Rejected(str(unsafe)) from None


def _cell_text(value: Any, what: str = "cell") -> str:
    return "" if value is None else _clean(str(value), what).strip()


def _kind(value: Any, default: QuestionKind | None) -> QuestionKind | None:
    if not _cell_text(value, "kind"):
        return default
    try:
        return QuestionKind(_cell_text(value, "kind").lower())
    except ValueError:
        allowed = ", ".join(kind.value for kind in QuestionKind)
        raise _Rejected(f"invalid kind {value!r} (use {allowed})") from None


def _question_from_row(row: _RawRow, ctx: _Context) -> Question:
    record = row.record or {}
    missing = [column for column in ctx.required if column not in record]
    if missing:
        raise _Rejected(f"missing column {missing[0]!r}")
    text, messages = _question_text(record.get(ctx.mapping.question), ctx.mapping.question)
    if not normalise(text):
        raise _Rejected("empty question")
    if not has_visible_text(text):
        raise _Rejected("empty question: it holds only invisible characters (spaces, marks or format characters)")
    if len(text) > ctx.max_chars:
        raise _Rejected(f"over-long question ({len(text)} characters; max_chars is {ctx.max_chars})")
    kind = _kind(record.get(ctx.mapping.kind) if ctx.mapping.kind else None, ctx.default_kind)
    return Question(
        id=(_cell_text(record.get(ctx.mapping.id), "id") if ctx.mapping.id else "") or f"{ctx.stem}-{row.number}",
        text=text, kind=kind,
        category=_cell_text(record.get(ctx.mapping.category), "category") if ctx.mapping.category else "",
        source=(_cell_text(record.get(ctx.source_column), "source") if ctx.source_column else "")
        or _clean(ctx.source, "source"),
        messages=messages if messages is not None else _sibling_messages(record, ctx, text))


def import_questions(source: str | Path, mapping: ColumnMapping | None = None, *,
                     default_kind: QuestionKind | None = None, max_chars: int = 4000,
                     split: str = "train", source_name: str | None = None) -> ImportReport:
    """Read questions from a file, a save_to_disk folder or a hub dataset; bad rows are rejected
    (with row number and reason) and the rest kept. `default_kind` fills rows with no kind;
    `split` picks the split of a DatasetDict or hub dataset; `source_name` labels the report."""
    if max_chars < 1:
        raise ValueError(f"max_chars must be a positive number of characters, got {max_chars}.")
    table, stem, display = _read_source(source, split)
    name = source_name or display
    rejected = [RejectedRow(row.number, row.problem) for row in table.rows if row.problem]
    if not table.columns:  # nothing readable: the rejections say why
        return ImportReport([], rejected, name)
    ctx = _context(mapping or ColumnMapping(), table, stem, name, default_kind, max_chars)
    questions, rejected = [], []
    first_row_of_text: dict[str, int] = {}
    first_row_of_id: dict[str, int] = {}
    for row in table.rows:
        try:
            if row.problem:
                raise _Rejected(row.problem)
            question = _question_from_row(row, ctx)
            if question.key in first_row_of_text:
                raise _Rejected(f"duplicate question (same as row {first_row_of_text[question.key]})")
            if question.id in first_row_of_id:
                raise _Rejected(f"duplicate id {question.id!r} (first used on row {first_row_of_id[question.id]})")
        except _Rejected as rejection:
            rejected.append(RejectedRow(row.number, str(rejection)))
            continue
        except RecursionError:  # a value nested deep enough to survive parsing but not walking
            rejected.append(RejectedRow(row.number, NESTED_TOO_DEEPLY))
            continue
        first_row_of_text[question.key] = first_row_of_id[question.id] = row.number
        questions.append(question)
    return ImportReport(questions, rejected, name)


# --- named sets, saving, duplicates and leakage --------------------------------------------------

def bundled_sets() -> dict[str, Path]:
    """The sets shipped in assets/questions, by file stem ('train', 'eval_harmful', ...)."""
    return {path.stem: path for path in sorted(BUNDLED_DIR.glob("*.jsonl"))} if BUNDLED_DIR.is_dir() else {}


def load_question_set(name_or_path: str | Path) -> ImportReport:
    """A bundled set by name, or any file or folder import_questions reads."""
    bundled = bundled_sets()
    if str(name_or_path) in bundled:
        return import_questions(bundled[str(name_or_path)], source_name=str(name_or_path))
    if Path(name_or_path).expanduser().exists():
        return import_questions(name_or_path)
    raise QuestionImportError(
        f"No bundled question set named {str(name_or_path)!r} and no file or folder at that path; "
        f"bundled sets: {', '.join(bundled) or 'none'}. Pass one of those names or a path "
        "(use import_questions for a hub dataset).")


def _jsonl_bytes(questions: list[Question]) -> bytes:
    lines = []
    for question in questions:
        try:
            lines.append((json.dumps(question.to_dict(), ensure_ascii=False) + "\n").encode("utf-8"))
        except UnicodeEncodeError as error:
            raise ValueError(f"Question {question.id!r} holds text that cannot be written as UTF-8 ({error.reason}); "
                             "import it through import_questions, which rejects such rows.") from None
    return b"".join(lines)


def save_questions_jsonl(questions: list[Question], path: str | Path) -> Path:
    """Write one JSON object per line (id, question, kind, category, source[, messages]); the file
    reads back with import_questions / load_question_set. Encoded whole first, then written
    atomically (core.data.atomic_write), so a bad row or a crash leaves no file and no half set;
    an empty list is refused, since a set with no question is never what was meant."""
    if not questions:
        raise ValueError(f"No question to save to {Path(path).name}: every row was rejected or the list is empty.")
    return write_bytes_atomically(path, _jsonl_bytes(questions))
