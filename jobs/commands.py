"""Changing stored results on a user's request: flag, edit and delete a chain, export a dataset,
name a job (a run) or a chain dataset.

Why edits go to the database rows: training on a dataset reads the kept rows (jobs.results.
chain_records), so a fixed answer or a removed chain is what the next run learns from. A deleted
chain is kept as a dropped row, not erased: a resumed generate job asks which ids are done, and
an erased row would be generated again.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.data.chain_record import ChainRecord
from core.data.chains import ChainFormatError
from core.stages import Stage
from jobs.chain_queries import chain_view, find_chain, find_dataset
from jobs.records import Chain, Job
from jobs.run_names import checked_name
from jobs.results import chain_records
from jobs.views import ChainView

EDIT_HINT = "Fill in the Safe Answer, and Question Analysis if you keep Answer Guidance."


def _store(row: Chain, record: ChainRecord) -> ChainView:
    """Write the record back, with the columns the queries filter on kept equal to it."""
    row.record, row.shape, row.flagged, row.dropped = record.to_dict(), record.shape.value, record.flagged, record.dropped
    return chain_view(row)


def set_chain_flag(sessions: sessionmaker[Session], chain_pk: int, flagged: bool) -> ChainView:
    with sessions.begin() as session:
        row = find_chain(session, chain_pk)
        return _store(row, chain_view(row).record.with_flag(flagged))


def edit_chain(sessions: sessionmaker[Session], chain_pk: int, texts: Mapping[Stage, str | None]) -> ChainView:
    """Replace stage texts (blank removes a stage); a result that is no chain is refused unchanged."""
    with sessions.begin() as session:
        row = find_chain(session, chain_pk)
        try:
            edited = chain_view(row).record.with_stage_texts(texts)
        except ChainFormatError as error:
            raise ValueError(f"{error} {EDIT_HINT}") from None
        return _store(row, edited)


def delete_chain(sessions: sessionmaker[Session], chain_pk: int) -> None:
    """Take the chain out of its dataset (kept as a dropped row, see the module docstring)."""
    with sessions.begin() as session:
        row = find_chain(session, chain_pk)
        _store(row, chain_view(row).record.as_deleted())


def _dataset_records(session: Session, dataset_id: int) -> tuple[str, list[dict]]:
    dataset = find_dataset(session, dataset_id)
    return dataset.name, chain_records(session, dataset_id)


def export_chains(sessions: sessionmaker[Session], dataset_id: int, folder: Path) -> Path:
    """Write a dataset's kept chains, as stored, to folder/dataset-ID-NAME.jsonl (trainable with
    `launch.py train --chains FILE`); written to a partial file first, so a reader never sees half."""
    with sessions() as session:
        name, records = _dataset_records(session, dataset_id)
    safe_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "chains"
    path = Path(folder) / f"dataset-{dataset_id}-{safe_name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    partial.replace(path)
    return path


def rename_job(sessions: sessionmaker[Session], job_id: int, name: str) -> str:
    """Give a job (a run) the user's name; returns the stored name. The jobs it retries and its
    retries are the same run, so they take the name too (every list then shows one name)."""
    name = checked_name(name)
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"There is no job {job_id}: pick one from the list.")
        for member in _retry_family(session, job):
            member.name = name
        return name


def _retry_family(session: Session, job: Job) -> list[Job]:
    """`job`, the jobs it retries (back to the first) and every retry of any of them."""
    first = job
    while first.retry_of is not None and session.get(Job, first.retry_of) is not None:
        first = session.get(Job, first.retry_of)
    family, frontier = [first], [first.id]
    while frontier:
        children = list(session.scalars(select(Job).where(Job.retry_of.in_(frontier))))
        family += children
        frontier = [child.id for child in children]
    return family


def rename_dataset(sessions: sessionmaker[Session], dataset_id: int, name: str) -> str:
    """Rename a chain dataset; returns the stored name (runs trained on it show the new name)."""
    with sessions.begin() as session:
        dataset = find_dataset(session, dataset_id)
        dataset.name = checked_name(name)
        return dataset.name
