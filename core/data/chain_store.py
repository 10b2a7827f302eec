"""Chain datasets on disk: a crash-safe JSONL sink, and the dataset statistics of Table 2.

Why append-and-fsync: generation runs for hours; each chain is written and flushed the moment
it is finished, so a killed run loses at most the chains in flight, and a rerun skips every id
already written (kept or dropped). A half-written last line from a kill is cut off on reopen.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.stages import CHAIN_STAGES, ChainShape, shape_of

CHAINS_FILE = "chains.jsonl"
DROPPED_FILE = "dropped.jsonl"


def _read_records(path: Path, repair: bool) -> list[dict[str, Any]]:
    """Records of a JSONL file; an incomplete last line (a kill mid-write) is removed."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good_end = [], 0
    for line in data.splitlines(keepends=True):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("incomplete line")
            records.append(json.loads(line))
            good_end += len(line)
        except ValueError:
            break
    if repair and good_end < len(data):
        with path.open("r+b") as handle:
            handle.truncate(good_end)
    return records


class JsonlChainSink:
    """Kept chains (flagged or not) to chains.jsonl, dropped ones to dropped.jsonl."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.chains_path = self.folder / CHAINS_FILE
        self.dropped_path = self.folder / DROPPED_FILE

    def done_ids(self) -> set[str]:
        return {r["id"] for path in (self.chains_path, self.dropped_path) for r in _read_records(path, repair=True)}

    def write(self, record: dict[str, Any]) -> None:
        path = self.dropped_path if record.get("dropped") else self.chains_path
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def records(self) -> list[dict[str, Any]]:
        return _read_records(self.chains_path, repair=False)

    def dropped(self) -> list[dict[str, Any]]:
        return _read_records(self.dropped_path, repair=False)


def is_trainable(record: Mapping[str, Any]) -> bool:
    """Whether training may use a chain record (or a Chain's meta).

    Why: a chain the checker still judged unsafe after every stage teaches the model to answer
    unsafely. It is trained on only when the user explicitly chose the keep policy for its
    dataset (recorded as keep_flagged); a chain a person flagged by hand, or a dropped one, never.
    """
    if record.get("dropped"):
        return False
    if not record.get("flagged"):
        return True
    return bool(record.get("keep_flagged")) and not record.get("flag_set_by_user")


def trainable_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records training uses (see is_trainable)."""
    return [record for record in records if is_trainable(record)]


def chain_statistics(kept: list[dict[str, Any]], dropped: list[dict[str, Any]] | None = None, tokenizer=None) -> dict[str, Any]:
    """Shape counts, flagged rate and mean tokens per stage (the paper's Table 2)."""
    dropped = dropped or []
    everything = kept + dropped
    shapes = Counter(record_shape(r) for r in kept)
    stats: dict[str, Any] = {
        "chains": len(kept),
        "dropped": len(dropped),
        "shape_counts": {shape.value: shapes.get(shape.value, 0) for shape in ChainShape},
        "flagged_rate": (sum(r["flagged"] for r in everything) / len(everything)) if everything else 0.0,
        "unparsable_verdicts": sum(not parsed for r in everything for parsed in _check_results(r)),
        "checks": sum(len(_check_results(r)) for r in everything),
    }
    means = {}
    for stage in ("analysis", "guidance", "answer"):
        counts = [_stage_tokens(r, stage, tokenizer) for r in kept if r.get(stage)]
        means[stage] = round(sum(counts) / len(counts), 1) if counts else 0.0
    stats["mean_tokens"] = means
    return stats


def record_shape(record: dict[str, Any]) -> str:
    """A stored chain's shape value: the one its generator recorded, else the one its stage texts
    make (imported chains carry none), so guidance-first chains are counted as such."""
    if record.get("shape"):
        return str(record["shape"])
    return shape_of([stage for stage in CHAIN_STAGES if record.get(stage.name.lower())]).value
def _check_results(record: dict[str, Any]) -> list[bool]:
    """Whether each check of a chain (answers, and analysis/guidance checks) gave a verdict."""
    results = []
    for attempt in record.get("attempts", []):
        results += [bool(x.get("verdict_parsed", True)) for x in attempt.get("answers", [])]
        results += [c.get("label") != "unparsable" for c in (attempt.get("stage_checks") or {}).values()]
    return results


def _stage_tokens(record: dict[str, Any], stage: str, tokenizer) -> int:
    if tokenizer is not None:
        return len(tokenizer(record[stage], add_special_tokens=False)["input_ids"])
    recorded = record.get("attempts", [{}])[-1].get("tokens", {}).get(stage)
    return recorded if recorded else len(record[stage].split())


def statistics_table(stats: dict[str, Any]) -> str:
    """Markdown table of `chain_statistics` output."""
    shapes = stats["shape_counts"]
    rows = [
        ("chains kept", stats["chains"]), ("chains dropped", stats["dropped"]),
        ("answer only", shapes[ChainShape.ANSWER_ONLY.value]),
        ("analysis -> answer", shapes[ChainShape.ANALYSIS_ANSWER.value]),
        ("full chain", shapes[ChainShape.FULL.value]),
        ("guidance -> answer", shapes[ChainShape.GUIDANCE_ANSWER.value]),
        ("flagged rate", f"{stats['flagged_rate']:.1%}"),
        ("unparsable verdicts", f"{stats['unparsable_verdicts']} of {stats['checks']} checks"),
        ("mean tokens: analysis", stats["mean_tokens"]["analysis"]),
        ("mean tokens: guidance", stats["mean_tokens"]["guidance"]),
        ("mean tokens: answer", stats["mean_tokens"]["answer"]),
    ]
    return "| statistic | value |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)
