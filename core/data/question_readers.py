"""Reading question files into raw rows: JSONL, JSON, CSV/TSV, Parquet and Hugging Face datasets.

Why a module of its own: each format has its own failure modes (a broken line, a bad byte, a
missing split); here they become rows with a `problem`, so one bad row never aborts a file and
`core.data.questions` can report it with its row number.
"""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORTED_FORMATS = (
    ".jsonl, .json (a list of objects), .csv, .tsv, .parquet, a folder saved with datasets' "
    "save_to_disk, or a Hugging Face hub dataset name (org/name)"
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_SAVED_DATASET_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
_SURROGATE = re.compile("[\udc80-\udcff]")  # what undecodable bytes become under surrogateescape


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
