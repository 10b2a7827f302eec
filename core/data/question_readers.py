"""Reading question files into raw rows: JSONL, JSON, CSV/TSV, Parquet and Hugging Face datasets.

Why a module of its own: each format has its own failure modes (a broken line, a bad byte, a
missing split); here they become rows with a `problem`, so one bad row never aborts a file and
`core.data.questions` can report it with its row number.

Hostile input, row by row: a JSONL line or CSV cell nested deeper than Python's JSON reader allows
rejects only itself; a CSV field may hold up to MAX_CSV_FIELD_CHARS characters, a longer one
rejects its row. Text is UTF-8 (a UTF-8 BOM is skipped); UTF-16 with a byte-order mark is decoded
too, and other encodings (Latin-1, UTF-16 without a BOM) get a hint to re-save the file as UTF-8.
Messages name a file by its name only: an app upload lives under a server temp path that is
no business of the user.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterator
from typing import Any

SUPPORTED_FORMATS = (
    ".jsonl, .json (a list of objects), .csv, .tsv, .parquet, a folder saved with datasets' "
    "save_to_disk, or a Hugging Face hub dataset name (org/name)"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_SAVED_DATASET_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under surrogateescape
#: The longest CSV/TSV field read (16 Mi characters); Python's csv default is 128 KiB. A longer
#: field rejects its row. (Questions longer than import_questions' max_chars are rejected anyway.)
MAX_CSV_FIELD_CHARS = 16 * 1024 * 1024
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
RESAVE_AS_UTF8 = "re-save the file as UTF-8 (e.g. in a spreadsheet: Save As, CSV UTF-8)"
NESTED_TOO_DEEPLY = "nested too deeply (more levels of [ or { than Python's JSON reader allows)"


class QuestionImportError(ValueError):
    """A question source that cannot be read at all; the message says how to fix it."""


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



# --- reading files into rows ---------------------------------------------------------------------

def _strip_bom(data: bytes) -> bytes:
    return data[3:] if data.startswith(b"\xef\xbb\xbf") else data


def _has_utf16_bom(data: bytes) -> bool:
    return data.startswith(_UTF16_BOMS)


def _decode_utf16(data: bytes, name: str) -> str:
    """A file with a UTF-16 byte-order mark (what some spreadsheets save as 'Unicode text')."""
    try:
        return data.decode("utf-16")
    except UnicodeDecodeError as error:
        raise QuestionImportError(f"{name}: starts like UTF-16 but is not valid UTF-16 at byte {error.start}; "
                                  f"{RESAVE_AS_UTF8}.") from None


def _nul_share(half: bytes) -> float:
    return half.count(0) / max(len(half), 1)


def _refuse_utf16_without_bom(data: bytes, name: str) -> None:
    """NULs in nearly every other byte (and almost none in the others) at the start: UTF-16 text
    with no byte-order mark, which would otherwise read as one garbled column. A run of NULs
    planted in a row fills both halves and is left to reject its own row."""
    head = data[:512]
    if len(head) < 8:
        return
    even, odd = _nul_share(head[0::2]), _nul_share(head[1::2])
    if max(even, odd) >= 0.9 and min(even, odd) <= 0.1:
        raise QuestionImportError(f"{name} looks like UTF-16 text without a byte-order mark; {RESAVE_AS_UTF8}.")


def _record_row(number: int, record: Any, columns: dict[str, None]) -> _RawRow:
    if not isinstance(record, dict):
        return _RawRow(number, None, f"not a JSON object (got {type(record).__name__})")
    columns.update(dict.fromkeys(record))
    return _RawRow(number, record)


def _jsonl_lines(path: Path) -> list[bytes | str]:
    data = path.read_bytes()
    if _has_utf16_bom(data):
        return _decode_utf16(data, path.name).split("\n")
    _refuse_utf16_without_bom(data, path.name)
    return _strip_bom(data).split(b"\n")


def _read_jsonl(path: Path) -> _Table:
    """Decode line by line, so one bad line rejects only itself."""
    rows: list[_RawRow] = []
    columns: dict[str, None] = {}
    for number, raw in enumerate(_jsonl_lines(path), start=1):
        if not raw.strip():
            continue
        try:
            rows.append(_record_row(number, json.loads(raw if isinstance(raw, str) else raw.decode("utf-8")), columns))
        except UnicodeDecodeError as error:
            rows.append(_RawRow(number, None, f"undecodable: invalid UTF-8 at byte {error.start + 1} of the line "
                                              f"({RESAVE_AS_UTF8})"))
        except json.JSONDecodeError as error:
            rows.append(_RawRow(number, None, f"undecodable: invalid JSON ({error.msg} at column {error.colno})"))
        except RecursionError:
            rows.append(_RawRow(number, None, NESTED_TOO_DEEPLY))
    return _Table(list(columns), rows)


def _read_json(path: Path) -> _Table:
    """One document, so a fault in it is the file's: the messages point to JSONL, where it is a row's."""
    data, name = path.read_bytes(), path.name
    try:
        text = _decode_utf16(data, name) if _has_utf16_bom(data) else _strip_bom(data).decode("utf-8")
        parsed = json.loads(text)
    except UnicodeDecodeError as error:
        raise QuestionImportError(
            f"{name}: invalid UTF-8 at byte {error.start}; {RESAVE_AS_UTF8}, or save it as JSONL where a "
            "bad line only rejects that row.") from None
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":  # JSON Lines saved under a .json name
            return _read_jsonl(path)
        raise QuestionImportError(
            f"{name}: invalid JSON ({error.msg} at line {error.lineno}, column {error.colno}); fix it, "
            "or save one object per line as .jsonl so a bad line only rejects that row.") from None
    except RecursionError:
        raise QuestionImportError(
            f"{name}: an item is {NESTED_TOO_DEEPLY}; remove it, or save one object per line as .jsonl "
            "so such a line only rejects that row.") from None
    if not isinstance(parsed, list):
        raise QuestionImportError(
            f"{name} holds a JSON {type(parsed).__name__}, not a list of objects; save the rows as "
            "a JSON list ([{...}, ...]) or as JSONL (one object per line).")
    columns: dict[str, None] = {}
    rows = [_record_row(number, record, columns) for number, record in enumerate(parsed, start=1)]
    return _Table(list(columns), rows)


def _csv_text(path: Path) -> str:
    """Bad UTF-8 bytes survive decoding as surrogates, so only the rows holding them are rejected."""
    data = path.read_bytes()
    if _has_utf16_bom(data):
        return _decode_utf16(data, path.name)
    _refuse_utf16_without_bom(data, path.name)
    return _strip_bom(data).decode("utf-8", errors="surrogateescape")


def _csv_records(reader: Any) -> Iterator[list[str] | str]:
    """Each record's cells, or the reason it could not be parsed (the reader goes on after it)."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                yield (f"a field is longer than {MAX_CSV_FIELD_CHARS:,} characters, the most a CSV/TSV "
                       "field may hold")
            else:
                yield f"unreadable CSV ({error})"


def _read_csv(path: Path, delimiter: str = ",") -> _Table:
    # Process-wide, so it is only ever raised, never lowered below what other code set.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_CSV_FIELD_CHARS))
    reader = csv.reader(io.StringIO(_csv_text(path), newline=""), delimiter=delimiter)
    header = next(_csv_records(reader), [])
    if isinstance(header, str):
        raise QuestionImportError(f"{path.name}: the header row cannot be read: {header}.")
    columns = [name.strip() for name in header]
    if any(_SURROGATE.search(name) for name in columns):
        raise QuestionImportError(f"{path.name}: the header row holds bytes that are not UTF-8 (the file is "
                                  f"probably Latin-1 or Windows-1252); {RESAVE_AS_UTF8}.")
    rows: list[_RawRow] = []
    for number, cells in enumerate(_csv_records(reader), start=2):  # spreadsheet numbering: header is row 1
        if isinstance(cells, str):
            rows.append(_RawRow(number, None, cells))
        elif not any(cell.strip() for cell in cells):
            continue
        elif any(_SURROGATE.search(cell) for cell in cells):
            rows.append(_RawRow(number, None, f"undecodable: bytes in this row are not UTF-8 ({RESAVE_AS_UTF8})"))
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
        reason = str(error).replace(str(path), path.name).replace(str(path.parent), "")
        raise QuestionImportError(f"{path.name} is not a readable Parquet file ({reason}); check that it was "
                                  "written as Parquet, or export the rows as CSV or JSONL.") from None
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
                f"{path.name}: unsupported format '{path.suffix or '(no extension)'}'; supported: {SUPPORTED_FORMATS}.")
        return reader(path), path.stem, path.name
    if path.suffix.lower() not in _READERS and _HUB_ID.match(str(source)):
        return _read_hub(str(source), split), str(source).split("/")[-1], str(source)
    raise QuestionImportError(f"No file or folder at {path}; check the path. Supported: {SUPPORTED_FORMATS}.")
