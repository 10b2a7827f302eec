"""The job database as typed SQLAlchemy 2 models: jobs and their results.

Why rows are the truth: the scheduler keeps no state, so after a restart (or from another
process: the CLI, a worker, the UI) everything about a job — what it was asked to do, where it
runs, how far it got, how it ended — is read back from here. Times are naive UTC.
Enums are stored as their string values (not native database enums), so adding a value later
needs no type migration on PostgreSQL.
"""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Enum, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# The enums live in jobs.kinds (no SQLAlchemy, so the app can use them); re-exported for jobs/.
from jobs.kinds import JobKind, JobStatus  # noqa: F401


def utcnow() -> datetime:
    """Naive UTC now: SQLite drops time zones, so every stored time is UTC without one."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class Base(DeclarativeBase):
    pass


class Job(Base):
    """One unit of work in its own process; `config` is the validated, normalised snapshot."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind))
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus), index=True, default=JobStatus.QUEUED)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    requested_gpus: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)
    gpus: Mapped[list[int] | None] = mapped_column(JSON, nullable=True)  # [] = CPU, set at start
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the process group leader
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    eta_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)  # latest status line
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True, index=True)
    log_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    auto_retry: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)  # the user's name for it (jobs.run_names)


class JobDependency(Base):
    """`job_id` starts only when `depends_on_id` (or its newest retry) has succeeded."""

    __tablename__ = "job_dependencies"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True, index=True)


class QuestionSet(Base):
    """A snapshot of the questions a generation (or later, an evaluation) used."""

    __tablename__ = "question_sets"
    __table_args__ = (UniqueConstraint("name", "content_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Question(Base):
    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("set_id", "question_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    set_id: Mapped[int] = mapped_column(ForeignKey("question_sets.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category: Mapped[str] = mapped_column(String(255), default="")
    record: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ChainDataset(Base):
    """Chains written by a generate job (job_id: the first attempt, shared by its retries) or imported."""

    __tablename__ = "chain_datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, unique=True)
    question_set_id: Mapped[int | None] = mapped_column(ForeignKey("question_sets.id", ondelete="SET NULL"), nullable=True)
    path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Chain(Base):
    """One generated chain; `record` is exactly what core's generation wrote."""

    __tablename__ = "chains"
    __table_args__ = (UniqueConstraint("dataset_id", "chain_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("chain_datasets.id", ondelete="CASCADE"), index=True)
    chain_id: Mapped[str] = mapped_column(String(255))
    shape: Mapped[str | None] = mapped_column(String(64), nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TrainingRun(Base):
    """One run folder; a retried training job keeps writing to the same run."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    run_dir: Mapped[str] = mapped_column(Text, unique=True)
    method: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(Text)
    total_steps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    final_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    export_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Metric(Base):
    """One optimizer step; (run, step) is unique so a resumed run re-logging a step overwrites it."""

    __tablename__ = "metrics"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    step: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    learning_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    tokens_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Evaluation(Base):
    """One subject (a trained run or a base model) evaluated by an evaluate job; `summary` holds
    its metric tables per judge once the job has finished."""

    __tablename__ = "evaluations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True, index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"), nullable=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    """The subject's label in reports (e.g. 'MoTE', 'base')."""
    run_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    question_sets: Mapped[list[Any]] = mapped_column(JSON, default=list)
    judge_config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class EvalAnswer(Base):
    """One answer of an evaluated subject (core.evaluation.types.Answer as JSON); a retried
    evaluation skips the samples that already have one."""

    __tablename__ = "eval_answers"
    __table_args__ = (UniqueConstraint("evaluation_id", "sample_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Judgement(Base):
    """One judge's verdict on one answer for one aspect, with the raw output behind the score
    (score None: unparsable after the judge's retries, excluded from metrics and counted)."""

    __tablename__ = "judgements"
    __table_args__ = (UniqueConstraint("evaluation_id", "sample_id", "aspect", "judge"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evaluation_id: Mapped[int] = mapped_column(ForeignKey("evaluations.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[str] = mapped_column(String(255))
    question_id: Mapped[str] = mapped_column(String(255))
    aspect: Mapped[str] = mapped_column(String(32))
    judge: Mapped[str] = mapped_column(String(255))
    raw_output: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    heuristic: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
