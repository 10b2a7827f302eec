"""Chain sinks backed by the database (core.synthesis.pipeline.ChainSink), for generate jobs.

Why the database is the primary copy: a retried generate job asks `done_ids()` which questions
are finished, and the UI browses chains while the job runs; the JSONL file in the run folder is
a mirror for people and for training from a file, refilled from the database on every start.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.data.chain_record import ChainRecord
from core.data.chain_store import JsonlChainSink
from jobs.records import Chain
from jobs.results import chain_records, upsert


class DatabaseChainSink:
    """Each finished chain becomes a Chain row of one dataset, committed at once."""

    def __init__(self, sessions: sessionmaker[Session], dataset_id: int) -> None:
        self.sessions, self.dataset_id = sessions, dataset_id

    def done_ids(self) -> set[str]:
        with self.sessions() as session:
            return set(session.scalars(select(Chain.chain_id).where(Chain.dataset_id == self.dataset_id)))

    def write(self, record: dict[str, Any]) -> None:
        """Store the record as generation wrote it; the filter columns come from its typed form."""
        chain = ChainRecord.from_dict(record, f"generated chain {record.get('id')!r}")
        values = {"dataset_id": self.dataset_id, "chain_id": chain.id, "shape": chain.shape.value,
                  "flagged": chain.flagged, "dropped": chain.dropped, "record": record}
        with self.sessions.begin() as session:
            upsert(session, Chain, values, ["dataset_id", "chain_id"])  # a repeat keeps the first copy

    def records(self, *, include_dropped: bool = False) -> list[dict[str, Any]]:
        with self.sessions() as session:
            return chain_records(session, self.dataset_id, include_dropped=include_dropped)


class MirroredChainSink:
    """Writes to the database, then mirrors to the run folder's chains.jsonl / dropped.jsonl."""

    def __init__(self, primary: DatabaseChainSink, mirror: JsonlChainSink) -> None:
        self.primary, self.mirror = primary, mirror

    def backfill(self) -> int:
        """Copy chains the file lacks (a kill between the two writes); returns how many."""
        on_file = self.mirror.done_ids()
        missing = [r for r in self.primary.records(include_dropped=True) if str(r["id"]) not in on_file]
        for record in missing:
            self.mirror.write(record)
        return len(missing)

    def done_ids(self) -> set[str]:
        return self.primary.done_ids()

    def write(self, record: dict[str, Any]) -> None:
        self.primary.write(record)
        self.mirror.write(record)
