"""Browsing and curating generated chains: filters, one column per stage, flag / edit / delete, export.

Why edits go to the database rows: training on a dataset reads the kept rows (jobs.results.
chain_records), so a fixed answer or a removed chain is what the next run learns from. A deleted
chain is kept as a dropped row, not erased: a resumed generate job asks which ids are done, and
an erased row would be generated again.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.data.chains import ChainFormatError, chain_from_dict
from core.stages import CHAIN_STAGES
from jobs.records import Chain, ChainDataset

EXPORTS_DIR = "exports"
ANY = "any"


@dataclass(frozen=True)
class DatasetSummary:
    id: int
    name: str
    job_id: int | None
    kept: int
    flagged: int
    dropped: int
    path: str | None

    @property
    def label(self) -> str:
        return f"{self.id}: {self.name} ({self.kept} chains, {self.flagged} flagged)"


@dataclass(frozen=True)
class ChainFilter:
    """`ANY` (or None) leaves a dimension unfiltered; flag is 'flagged' or 'not flagged'."""

    shape: str | None = None
    flag: str | None = None
    category: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class ChainView:
    """One chain as the browser shows it: a column per stage, plus the last safety verdict."""

    id: int
    chain_id: str
    shape: str
    flagged: bool
    kind: str
    category: str
    question: str
    stages: dict[str, str]
    verdict: str
    edited: bool


def _view(row: Chain) -> ChainView:
    record = row.record or {}
    answers = [a for attempt in record.get("attempts") or [] for a in attempt.get("answers") or []]
    return ChainView(row.id, row.chain_id, row.shape or "", row.flagged, record.get("kind") or "",
                     record.get("category") or "", record.get("question") or "",
                     {s.name.lower(): record.get(s.name.lower()) or "" for s in CHAIN_STAGES},
                     answers[-1].get("verdict", "") if answers else "", bool(record.get("edited")))


def _given(value: str | None) -> bool:
    return bool(value) and value != ANY


class ChainBrowser:
    def __init__(self, sessions: sessionmaker[Session], home: Path) -> None:
        self.sessions, self.home = sessions, Path(home)

    def datasets(self) -> list[DatasetSummary]:
        """Newest first, with kept / flagged / dropped counts."""
        counts = select(Chain.dataset_id, Chain.dropped, Chain.flagged, func.count()).group_by(
            Chain.dataset_id, Chain.dropped, Chain.flagged)
        with self.sessions() as session:
            tally: dict[int, dict[str, int]] = {}
            for dataset_id, dropped, flagged, n in session.execute(counts):
                slot = tally.setdefault(dataset_id, {"kept": 0, "flagged": 0, "dropped": 0})
                slot["dropped" if dropped else "kept"] += n
                slot["flagged"] += n if flagged and not dropped else 0
            rows = session.scalars(select(ChainDataset).order_by(ChainDataset.id.desc())).all()
            return [DatasetSummary(d.id, d.name, d.job_id, **tally.get(d.id, {"kept": 0, "flagged": 0, "dropped": 0}),
                                   path=d.path) for d in rows]

    def chains(self, dataset_id: int, filters: ChainFilter | None = None, *, limit: int = 500) -> list[ChainView]:
        """Kept chains of a dataset matching every given filter, in generation order."""
        filters = filters or ChainFilter()
        query = select(Chain).where(Chain.dataset_id == dataset_id, Chain.dropped.is_(False)).order_by(Chain.id)
        if _given(filters.shape):
            query = query.where(Chain.shape == filters.shape)
        if _given(filters.flag):
            query = query.where(Chain.flagged.is_(filters.flag == "flagged"))
        with self.sessions() as session:
            self._dataset(session, dataset_id)
            views = [_view(row) for row in session.scalars(query)]
        if _given(filters.category):
            views = [v for v in views if v.category == filters.category]
        if _given(filters.kind):
            views = [v for v in views if v.kind == filters.kind]
        return views[:limit]

    def facets(self, dataset_id: int) -> dict[str, list[str]]:
        """The categories and kinds present in a dataset, for the filter menus."""
        views = self.chains(dataset_id, limit=100_000)
        return {"category": sorted({v.category for v in views if v.category}),
                "kind": sorted({v.kind for v in views if v.kind})}

    def chain(self, chain_pk: int) -> ChainView:
        with self.sessions() as session:
            return _view(self._chain(session, chain_pk))

    def set_flag(self, chain_pk: int, flagged: bool) -> ChainView:
        with self.sessions.begin() as session:
            row = self._chain(session, chain_pk)
            row.flagged = bool(flagged)
            row.record = {**row.record, "flagged": bool(flagged), "flag_set_by_user": True}
            return _view(row)

    def edit(self, chain_pk: int, stages: dict[str, str]) -> ChainView:
        """Replace stage texts; an empty stage is removed, and the result must be a valid chain."""
        with self.sessions.begin() as session:
            row = self._chain(session, chain_pk)
            record = dict(row.record)
            for stage in CHAIN_STAGES:
                name = stage.name.lower()
                if name in stages:
                    record[name] = (stages[name] or "").strip() or None
            try:
                chain = chain_from_dict(record, f"chain {row.chain_id}")
            except ChainFormatError as error:
                raise ValueError(f"{error} Fill in the Safe Answer, and Question Analysis if you keep Answer Guidance.") from None
            record.update(shape=chain.shape.value, edited=True)
            row.record, row.shape = record, chain.shape.value
            return _view(row)

    def delete(self, chain_pk: int) -> None:
        """Take the chain out of the dataset (kept as a dropped row, see the module docstring)."""
        with self.sessions.begin() as session:
            row = self._chain(session, chain_pk)
            row.dropped = True
            row.record = {**row.record, "dropped": True, "deleted_by_user": True}

    def export(self, dataset_id: int) -> Path:
        """Write the kept chains as JSONL (trainable with `launch.py train --chains FILE`)."""
        with self.sessions() as session:
            dataset = self._dataset(session, dataset_id)
            records = list(session.scalars(select(Chain.record).where(
                Chain.dataset_id == dataset_id, Chain.dropped.is_(False)).order_by(Chain.id)))
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", dataset.name).strip("-") or "chains"
        path = self.home / EXPORTS_DIR / f"dataset-{dataset_id}-{name}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
        partial.replace(path)
        return path

    @staticmethod
    def _dataset(session: Session, dataset_id: int) -> ChainDataset:
        dataset = session.get(ChainDataset, dataset_id)
        if dataset is None:
            raise LookupError(f"There is no chain dataset {dataset_id}: pick one from the list (refresh it first).")
        return dataset

    @staticmethod
    def _chain(session: Session, chain_pk: int) -> Chain:
        row = session.get(Chain, chain_pk)
        if row is None:
            raise LookupError(f"There is no chain {chain_pk}: select a row of the chain table first.")
        return row
