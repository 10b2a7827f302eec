"""Question sets: what self-generation answers and what evaluation asks, read from any common format.

Why lenient per row but strict per file: an imported set of 10k prompts usually holds a few bad
rows (blank, repeated, a broken line); refusing the whole file helps nobody, so such rows are
rejected with their row number and reason and the rest kept. A file whose question column cannot
be found at all is an error instead, naming the columns it has and how to map one.

Row numbers are the ones a person would look up: the line number for JSONL; the spreadsheet row
for CSV/TSV (the header is row 1, so the first data row is row 2); the 1-based item or row index
for a JSON list, Parquet and Hugging Face datasets.

Why leakage checks: an evaluation question that also sits (nearly word for word) in the training
set measures memory, not behaviour; `find_leakage` finds such pairs and `drop_leakage` removes them.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "assets" / "questions"
#: Auto-detected question columns, first match wins (compared case-insensitively).
QUESTION_COLUMNS = ("question", "prompt", "instruction", "messages", "conversations", "text")
#: Columns that hold a conversation: a list of {role, content} (OpenAI) or {from, value} (ShareGPT).
MESSAGE_COLUMNS = ("messages", "conversations")
SUPPORTED_FORMATS = (
    ".jsonl, .json (a list of objects), .csv, .tsv, .parquet, a folder saved with datasets' "
    "save_to_disk, or a Hugging Face hub dataset name (org/name)"
)
#: ShareGPT speaker names -> OpenAI roles; other roles are kept as written (lower-cased).
_ROLE_ALIASES = {"human": "user", "gpt": "assistant", "chatgpt": "assistant", "bard": "assistant",
                 "bing": "assistant", "model": "assistant"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_SAVED_DATASET_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under surrogateescape
_WORD = re.compile(r"\w+")


class QuestionKind(str, Enum):
    """What a question is for; BENIGN means harmless but risky-sounding (an over-refusal probe)."""

    HARMFUL = "harmful"
    HELPFUL = "helpful"
    BENIGN = "benign"


class QuestionImportError(ValueError):
    """A question source that cannot be read at all; the message names the problem and the fix."""


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
class LeakagePair:
    """An evaluation question that also appears (exactly: similarity 1.0, or nearly) in training."""

    train_id: str
    eval_id: str
    similarity: float
    text: str


@dataclass
class _RawRow:
    """A row as read: its record, or the problem that kept it from being read."""

    number: int
    record: dict[str, Any] | None
    problem: str | None = None


@dataclass
class _Table:
    columns: list[str]
    rows: list[_RawRow]


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


# --- reading files into rows ---------------------------------------------------------------------

def _strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _record_row(number: int, record: Any, columns: dict[str, None]) -> _RawRow:
    if not isinstance(record, dict):
        return _RawRow(number, None, f"not a JSON object (got {type(record).__name__})")
    columns.update(dict.fromkeys(record))
    return _RawRow(number, record)


def _read_jsonl(path: Path) -> _Table:
    """Decode line by line, so one bad line rejects only itself."""
    rows: list[_RawRow] = []
    columns: dict[str, None] = {}
    for number, raw in enumerate(_strip_bom(path.read_bytes()).split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            rows.append(_record_row(number, json.loads(raw.decode("utf-8")), columns))
        except UnicodeDecodeError as error:
            rows.append(_RawRow(number, None, f"undecodable: invalid UTF-8 at byte {error.start + 1} of the line"))
        except json.JSONDecodeError as error:
            rows.append(_RawRow(number, None, f"undecodable: invalid JSON ({error.msg} at column {error.colno})"))
    return _Table(list(columns), rows)


def _read_json(path: Path) -> _Table:
    try:
        parsed = json.loads(_strip_bom(path.read_bytes()).decode("utf-8"))
    except UnicodeDecodeError as error:
        raise QuestionImportError(
            f"{path}: invalid UTF-8 at byte {error.start}; re-save it as UTF-8, or as JSONL where a "
            "bad line only rejects that row.") from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # JSON Lines saved under a .json name
            return _read_jsonl(path)
        raise QuestionImportError(
            f"{path}: invalid JSON ({error.msg} at line {error.lineno}, column {error.colno}); fix it, "
            "or save one object per line as .jsonl so a bad line only rejects that row.") from None
    if not isinstance(parsed, list):
        raise QuestionImportError(
            f"{path} holds a JSON {type(parsed).__name__}, not a list of objects; save the rows as "
            "a JSON list ([{...}, ...]) or as JSONL (one object per line).")
    columns: dict[str, None] = {}
    rows = [_record_row(number, record, columns) for number, record in enumerate(parsed, start=1)]
    return _Table(list(columns), rows)


def _read_csv(path: Path, delimiter: str = ",") -> _Table:
    """Bad bytes survive decoding as surrogates, so only the rows holding them are rejected."""
    text = _strip_bom(path.read_bytes()).decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [name.strip() for name in next(reader, [])]
    rows: list[_RawRow] = []
    for number, cells in enumerate(reader, start=2):  # spreadsheet numbering: header is row 1
        if not any(cell.strip() for cell in cells):
            continue
        if any(_SURROGATE.search(cell) for cell in cells):
            rows.append(_RawRow(number, None, "undecodable: invalid UTF-8 bytes in this row"))
        else:
            rows.append(_RawRow(number, dict(zip(columns, cells))))  # a short row lacks columns
    return _Table(columns, rows)


def _read_tsv(path: Path) -> _Table:
    return _read_csv(path, delimiter="\t")


def _read_parquet(path: Path) -> _Table:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise QuestionImportError("Reading Parquet needs pyarrow: pip install pyarrow.") from None
    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise QuestionImportError(f"{path} is not a readable Parquet file ({error}).") from None
    return _Table(table.column_names, [_RawRow(i, r) for i, r in enumerate(table.to_pylist(), start=1)])


def _import_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise QuestionImportError(
            "Reading Hugging Face datasets needs the 'datasets' package: pip install datasets.") from None
    return datasets


def _table_from_dataset(dataset: Any) -> _Table:
    rows = [_RawRow(i, record) for i, record in enumerate(dataset.to_list(), start=1)]
    return _Table(list(dataset.column_names), rows)


def _read_saved_dataset(path: Path, split: str) -> _Table:
    if not any((path / marker).exists() for marker in _SAVED_DATASET_MARKERS):
        raise QuestionImportError(
            f"{path} is a folder but not one saved with datasets' save_to_disk (it has no "
            f"{' or '.join(_SAVED_DATASET_MARKERS)}); pass a file or such a folder ({SUPPORTED_FORMATS}).")
    datasets = _import_datasets()
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise QuestionImportError(
                f"{path} has no split {split!r}; its splits are {list(loaded)}. Pass split='...'.")
        loaded = loaded[split]
    return _table_from_dataset(loaded)


def _read_hub(name: str, split: str) -> _Table:
    datasets = _import_datasets()
    try:
        dataset = datasets.load_dataset(name, split=split)
    except datasets.exceptions.DatasetNotFoundError as error:
        raise QuestionImportError(
            f"{name!r} is neither a local file or folder nor a dataset on the Hugging Face hub "
            f"({error}); check the path or the dataset name.") from None
    except (ConnectionError, OSError) as error:
        raise QuestionImportError(
            f"Cannot reach the Hugging Face hub to load {name!r} ({error}). Pass a local file or "
            "folder instead: where the hub is reachable, run "
            "datasets.load_dataset(name).save_to_disk(folder) and bring that folder here.") from None
    except ValueError as error:  # e.g. an unknown split
        raise QuestionImportError(f"Hub dataset {name!r}: {error}. Pass split='...'.") from None
    return _table_from_dataset(dataset)


_READERS = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv, ".tsv": _read_tsv,
            ".parquet": _read_parquet}


def _read_source(source: str | Path, split: str) -> tuple[_Table, str, str]:
    """-> (table, id stem, display name)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_saved_dataset(path, split), path.name, path.name
    if path.is_file():
        reader = _READERS.get(path.suffix.lower())
        if reader is None:
            raise QuestionImportError(
                f"{path}: unsupported format '{path.suffix or '(no extension)'}'; supported: {SUPPORTED_FORMATS}.")
        return reader(path), path.stem, path.name
    if path.suffix.lower() not in _READERS and _HUB_ID.match(str(source)):
        return _read_hub(str(source), split), str(source).split("/")[-1], str(source)
    raise QuestionImportError(f"No file or folder at {path}; check the path. Supported: {SUPPORTED_FORMATS}.")


# --- rows into questions -------------------------------------------------------------------------

def _find_column(columns: list[str], candidates: tuple[str, ...]) -> str | None:
    lowered = {column.lower(): column for column in reversed(columns)}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _context(mapping: ColumnMapping, table: _Table, stem: str, source: str,
             default_kind: QuestionKind | None, max_chars: int) -> _Context:
    """Resolve the mapping against the columns found, or say which columns exist and how to map one."""
    found = ", ".join(repr(c) for c in table.columns) or "none"
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
        role = role.strip().lower()
        messages.append({"role": _ROLE_ALIASES.get(role, role), "content": _content_text(content)})
    if not any(m["role"] == "user" for m in messages):
        raise _Rejected("no user message in messages")
    return messages


def _question_text(value: Any, column: str) -> tuple[str, list[dict] | None]:
    if isinstance(value, str) and column.lower() in MESSAGE_COLUMNS and value.lstrip().startswith("["):
        try:  # a conversation stored as JSON text in a CSV cell
            value = json.loads(value)
        except json.JSONDecodeError:
            raise _Rejected("malformed messages: the cell is not a JSON list of messages") from None
    if value is None:
        return "", None
    if isinstance(value, str):
        return value.strip(), None
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


def _cell_text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _kind(value: Any, default: QuestionKind | None) -> QuestionKind | None:
    if not _cell_text(value):
        return default
    try:
        return QuestionKind(_cell_text(value).lower())
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
    if len(text) > ctx.max_chars:
        raise _Rejected(f"over-long question ({len(text)} characters; max_chars is {ctx.max_chars})")
    kind = _kind(record.get(ctx.mapping.kind) if ctx.mapping.kind else None, ctx.default_kind)
    return Question(
        id=(_cell_text(record.get(ctx.mapping.id)) if ctx.mapping.id else "") or f"{ctx.stem}-{row.number}",
        text=text, kind=kind,
        category=_cell_text(record.get(ctx.mapping.category)) if ctx.mapping.category else "",
        source=(_cell_text(record.get(ctx.source_column)) if ctx.source_column else "") or ctx.source,
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


def save_questions_jsonl(questions: list[Question], path: str | Path) -> Path:
    """Write one JSON object per line (id, question, kind, category, source[, messages]); the file
    reads back with import_questions / load_question_set. Written via a temp file so a crash
    cannot leave half a set behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    lines = (json.dumps(q.to_dict(), ensure_ascii=False) + "\n" for q in questions)
    partial.write_text("".join(lines), encoding="utf-8")
    partial.replace(path)
    return path


def deduplicate_across(sets: dict[str, list[Question]]
                       ) -> tuple[dict[str, list[Question]], list[tuple[str, str, str]]]:
    """Keep each question's first occurrence across sets (in dict order, so list the set that
    should win first); returns the kept sets and (set name, removed id, id it duplicates)."""
    first_id: dict[str, str] = {}
    kept: dict[str, list[Question]] = {}
    removed: list[tuple[str, str, str]] = []
    for name, questions in sets.items():
        kept[name] = []
        for question in questions:
            key = question.key
            if key in first_id:
                removed.append((name, question.id, first_id[key]))
            else:
                first_id[key] = question.id
                kept[name].append(question)
    return kept, removed


def _prefix_length(size: int, near: float) -> int:
    """How many of a set's rarest tokens two sets with Jaccard >= near must share one of."""
    return size - math.ceil(near * size - 1e-9) + 1


def find_leakage(train: list[Question], evaluation: list[Question], *, near: float = 0.9) -> list[LeakagePair]:
    """Evaluation questions that match a training question exactly (normalised) or nearly
    (token-set Jaccard >= near). Near pairs use prefix filtering: with tokens ordered rarest
    first, two sets that similar must share a token among their first few, so only train
    questions indexed under those tokens are compared, not all len(train) x len(evaluation)."""
    if not 0 < near <= 1:
        raise ValueError(f"near must be a Jaccard similarity in (0, 1], got {near}.")
    exact: dict[str, list[int]] = defaultdict(list)
    train_tokens = []
    for i, question in enumerate(train):
        exact[question.key].append(i)
        train_tokens.append(set(_WORD.findall(question.key)))
    frequency = Counter(token for tokens in train_tokens for token in tokens)

    def rarest_first(tokens: set[str]) -> list[str]:
        return sorted(tokens, key=lambda t: (frequency[t], t))

    index: dict[str, list[int]] = defaultdict(list)
    for i, tokens in enumerate(train_tokens):
        for token in rarest_first(tokens)[: _prefix_length(len(tokens), near)]:
            index[token].append(i)
    pairs: list[LeakagePair] = []
    for question in evaluation:
        key = question.key
        exact_rows = exact.get(key, [])
        pairs += [LeakagePair(train[i].id, question.id, 1.0, question.text) for i in exact_rows]
        tokens = set(_WORD.findall(key))
        candidates = {i for t in rarest_first(tokens)[: _prefix_length(len(tokens), near)] for i in index.get(t, ())}
        near_pairs = []
        for i in candidates.difference(exact_rows):
            other = train_tokens[i]
            if near * len(tokens) - 1e-9 <= len(other) <= len(tokens) / near + 1e-9:
                similarity = len(tokens & other) / len(tokens | other)
                if similarity >= near:
                    near_pairs.append(LeakagePair(train[i].id, question.id, similarity, question.text))
        pairs += sorted(near_pairs, key=lambda p: (-p.similarity, p.train_id))
    return pairs


def drop_leakage(evaluation: list[Question], pairs: list[LeakagePair]) -> list[Question]:
    """The evaluation set without the questions named in `pairs` (from find_leakage)."""
    leaked = {pair.eval_id for pair in pairs}
    return [question for question in evaluation if question.id not in leaked]
