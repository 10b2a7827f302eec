"""Storing what jobs produce: question-set snapshots, chain datasets, training runs, checkpoints
and metrics. Small functions over a Session, shared by the worker, the sinks and the UI.

Why upserts: a retried job repeats work at the edges (a resumed run re-logs the steps after its
last checkpoint; a chain may be written again after a kill); keyed rows are overwritten or kept,
never duplicated, on both SQLite and PostgreSQL.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.data.quality import QualityReport, quality_report
from jobs.records import Chain, ChainDataset, Checkpoint, Metric, Question, QuestionSet, TrainingRun


def upsert(session: Session, model: type, values: dict[str, Any], keys: list[str], update: Iterable[str] = ()) -> None:
    """INSERT, or on a clash of `keys` update the `update` columns (none: keep the old row)."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert
        statement = insert(model).values(**values)
        update = list(update)
        if update:
            statement = statement.on_conflict_do_update(
                index_elements=keys, set_={name: statement.excluded[name] for name in update})
        else:
            statement = statement.on_conflict_do_nothing(index_elements=keys)
        session.execute(statement)
        return
    existing = session.scalars(select(model).filter_by(**{k: values[k] for k in keys})).first()
    if existing is None:
        session.add(model(**values))
    else:
        for name in update:
            setattr(existing, name, values[name])


def store_question_set(session: Session, name: str, source: str, questions: list[Any]) -> int:
    """The id of a snapshot of `questions` (core Question objects); identical sets are stored once."""
    records = [q.to_dict() for q in questions]
    digest = hashlib.sha256(json.dumps(records, sort_keys=True).encode()).hexdigest()
    existing = session.scalars(select(QuestionSet).filter_by(name=name, content_hash=digest)).first()
    if existing is not None:
        return existing.id
    row = QuestionSet(name=name, source=source, content_hash=digest)
    session.add(row)
    session.flush()
    session.add_all(Question(set_id=row.id, question_id=r["id"], text=r["question"], kind=r.get("kind"),
                             category=r.get("category") or "", record=r) for r in records)
    return row.id


def dataset_for_job(session: Session, root_job_id: int, name: str, path: Path, question_set_id: int | None) -> int:
    """The chain dataset a generate job (and each of its retries) writes to."""
    existing = session.scalars(select(ChainDataset).filter_by(job_id=root_job_id)).first()
    if existing is not None:
        return existing.id
    row = ChainDataset(name=name, job_id=root_job_id, path=str(path), question_set_id=question_set_id)
    session.add(row)
    session.flush()
    return row.id


def chain_records(session: Session, dataset_id: int, *, include_dropped: bool = False) -> list[dict[str, Any]]:
    query = select(Chain.record).where(Chain.dataset_id == dataset_id).order_by(Chain.id)
    if not include_dropped:
        query = query.where(Chain.dropped.is_(False))
    return list(session.scalars(query))


def dataset_quality(session: Session, dataset_id: int) -> QualityReport:
    """The data-quality report of a chain dataset, over its kept and dropped chains alike."""
    return quality_report(chain_records(session, dataset_id, include_dropped=True))


def run_for_dir(session: Session, job_id: int, run_dir: Path, method: str, base_model: str) -> int:
    """The training run of `run_dir`, created by the first job that trains there."""
    existing = session.scalars(select(TrainingRun).filter_by(run_dir=str(run_dir))).first()
    if existing is not None:
        return existing.id
    row = TrainingRun(job_id=job_id, run_dir=str(run_dir), method=method, base_model=base_model)
    session.add(row)
    session.flush()
    return row.id


def record_metric(session: Session, run_id: int, job_id: int, step: int, metrics: dict[str, float]) -> None:
    values = {"run_id": run_id, "job_id": job_id, "step": step, "loss": float(metrics["loss"]),
              "learning_rate": metrics.get("learning_rate"), "tokens_per_second": metrics.get("tokens_per_second")}
    upsert(session, Metric, values, ["run_id", "step"], ["job_id", "loss", "learning_rate", "tokens_per_second"])


def sync_checkpoints(session: Session, run_id: int, run_dir: Path) -> None:
    """One Checkpoint row per complete checkpoint folder on disk (see core.training.checkpoint)."""
    from core.training.checkpoint import STATE_FILE

    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return
    known = set(session.scalars(select(Checkpoint.step).where(Checkpoint.run_id == run_id)))
    for path in sorted(folder.glob("step-*")):
        if not (path / STATE_FILE).exists() or path.name.endswith(".tmp"):
            continue
        step = int(path.name.split("-", 1)[1])
        if step not in known:
            upsert(session, Checkpoint, {"run_id": run_id, "step": step, "path": str(path)}, ["run_id", "step"])
