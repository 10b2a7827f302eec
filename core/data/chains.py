"""Reasoning chains as data: the record training consumes, and its JSONL form.

Why strict: a chain with no answer or an unknown stage would silently train the wrong expert,
so reading reports the file, line and fix instead of guessing. Two JSONL layouts are read:
flat keys ({"question", "analysis", "guidance", "answer"}) or a list
({"question", "stages": [{"stage": "analysis", "text": ...}, ...]}). A chain has one of the
shapes of core.stages.ChainShape: [answer], [analysis, answer], [analysis, guidance, answer], or
guidance first, [guidance, answer] (flat layout: a record with guidance and answer only).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.stages import CHAIN_STAGES, ChainShape, Stage, StageSegment, parse_stage, shape_of
from core.paths import ASSETS_DIR


class ChainFormatError(ValueError):
    """A chain record that cannot be trained on; the message says where and how to fix it."""


@dataclass
class Chain:
    """One question with the stages the model wrote for it."""

    question: str
    segments: list[StageSegment]
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> ChainShape:
        return shape_of([seg.stage for seg in self.segments])

    def text(self, stage: Stage) -> str | None:
        for seg in self.segments:
            if seg.stage is stage:
                return seg.text
        return None

    @property
    def answer(self) -> str:
        return self.text(Stage.ANSWER) or ""

    def to_dict(self) -> dict[str, Any]:
        record: dict[str, Any] = {"id": self.id, "question": self.question}
        for stage in CHAIN_STAGES:
            record[stage.name.lower()] = self.text(stage)
        record.update(self.meta)
        return record


def chain_from_dict(record: dict[str, Any], where: str = "chain") -> Chain:
    """Validate one record; errors name `where` (file:line) and the fix."""
    if not isinstance(record, dict):
        raise ChainFormatError(f"{where}: expected a JSON object, got {type(record).__name__}.")
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ChainFormatError(f"{where}: the chain has no question; add a non-empty 'question' field.")
    if "stages" in record:
        segments = _segments_from_list(record["stages"], where)
        known = {"question", "stages", "id"}
    else:
        segments = [
            StageSegment(stage, record[stage.name.lower()])
            for stage in CHAIN_STAGES
            if isinstance(record.get(stage.name.lower()), str) and record[stage.name.lower()].strip()
        ]
        known = {"question", "id", "analysis", "guidance", "answer"}
    if not any(seg.stage is Stage.ANSWER for seg in segments):
        raise ChainFormatError(
            f"{where}: the chain has no answer stage; every chain needs a non-empty 'answer' "
            "(the Safe Answer), optionally preceded by 'analysis', 'guidance' or both."
        )
    try:
        shape_of([seg.stage for seg in segments])
    except ValueError as error:
        raise ChainFormatError(f"{where}: {error}") from None
    meta = {key: value for key, value in record.items() if key not in known}
    return Chain(question=question, segments=segments, id=str(record.get("id", "")), meta=meta)


def _segments_from_list(stages: Any, where: str) -> list[StageSegment]:
    if not isinstance(stages, list):
        raise ChainFormatError(f"{where}: 'stages' must be a list of {{'stage': ..., 'text': ...}} objects.")
    segments = []
    for item in stages:
        if not isinstance(item, dict) or "stage" not in item or "text" not in item:
            raise ChainFormatError(f"{where}: each entry of 'stages' needs 'stage' and 'text'.")
        try:
            stage = parse_stage(str(item["stage"]))
        except ValueError as error:
            raise ChainFormatError(f"{where}: {error}") from None
        if stage is Stage.CHECK:
            continue  # safety checking has no expert and no loss (section 3)
        segments.append(StageSegment(stage, str(item["text"])))
    return segments


#: Bytes read to tell a text file from a binary one (a NUL byte never occurs in UTF-8 JSON text).
_SNIFF_BYTES = 8192


def load_chains_jsonl(path: str | Path) -> list[Chain]:
    """Read a chain dataset; the first bad line stops it with file:line and the reason.

    Why the byte checks: a binary or non-UTF-8 file would otherwise surface as a bare
    UnicodeDecodeError naming no file, after a model had already been loaded.
    """
    path = Path(path)
    _check_readable_text(path)
    chains = []
    with path.open("rb") as handle:  # bytes, so an undecodable line is named exactly
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                raise ChainFormatError(f"{where}: not UTF-8 text; save the chains file as UTF-8 JSONL.") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ChainFormatError(f"{where}: not valid JSON ({error.msg}); one chain object per line.") from None
            except RecursionError:
                raise ChainFormatError(f"{where}: the JSON is nested too deeply to be a chain record.") from None
            chain = chain_from_dict(record, where)
            chain.id = chain.id or f"{path.stem}-{number}"
            chains.append(chain)
    return chains


def check_chains_file(path: str | Path) -> int:
    """The number of chains in a file that training can use; raises ChainFormatError naming the
    file (and the first bad line) when it is missing, unreadable, binary, malformed or empty."""
    path = Path(path)
    count = len(load_chains_jsonl(path))
    if not count:
        raise ChainFormatError(f"{path} holds no chains: write one JSON chain object per line "
                               "(question, analysis, guidance, answer).")
    return count


def _check_readable_text(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"Chain file {path} does not exist: pass a .jsonl file of chains.")
    if not path.is_file():
        raise ChainFormatError(f"Chain file {path} is not a regular file: pass a .jsonl file of chains.")
    try:
        with path.open("rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as error:
        raise ChainFormatError(f"Chain file {path} cannot be read ({error.strerror}): check its permissions.") from None
    if b"\0" in head:
        raise ChainFormatError(f"Chain file {path} is a binary file, not JSONL text (a UTF-16 text "
                               "file looks the same: re-save it as UTF-8); pass a .jsonl file with one JSON chain "
                               "object per line.")


def save_chains_jsonl(chains: list[Chain], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for chain in chains:
            handle.write(json.dumps(chain.to_dict(), ensure_ascii=False) + "\n")


def bundled_sample_chains_path() -> Path:
    """The project's own sample chains, so training runs before any generation."""
    return ASSETS_DIR / "chains" / "sample_chains.jsonl"
