"""What a job is called: the user's name when one was given, else a readable default built from
its settings ("mote · sample chains · 28 steps"), and the one label that refers to a job
everywhere (Chat, Train, Evaluate, Jobs, Runs, the CLI): "<name> (job <id>)".

Why one module: a run was called "run 1 (mote, job 2)" in Chat, "job 3 · mote" in Train and
"mote:job-4" elsewhere; one function per question keeps every place saying the same thing. A
retry keeps the name of the job it retries (it continues the same run).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from jobs.kinds import JobKind
from jobs.records import ChainDataset, Job

SAMPLE_CHAINS = "sample chains"
MAX_NAME_LENGTH = 120
SEPARATOR = " · "


def job_label(name: str, job_id: int) -> str:
    """The one way a job is referred to: its name and its id (ids stay unique, names need not)."""
    return f"{name} (job {job_id})"


def checked_name(name: str) -> str:
    """A name as stored: trimmed, one line, not empty, at most MAX_NAME_LENGTH characters."""
    text = " ".join((name or "").split())
    if not text:
        raise ValueError("The name is empty: type a name, or leave the field empty when launching for the default.")
    if len(text) > MAX_NAME_LENGTH:
        raise ValueError(f"The name has {len(text)} characters: shorten it to at most {MAX_NAME_LENGTH}.")
    return text


def training_length(train: Mapping[str, Any]) -> str:
    """'28 steps' when max_steps is set, else '3 epochs'."""
    if train.get("max_steps"):
        return f"{int(train['max_steps'])} steps"
    epochs = float(train.get("epochs", 3.0))
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}"


def chains_name(config: Mapping[str, Any], dataset_name: str | None = None) -> str:
    """What a training job learns from, in words: the dataset's name, a file's stem, the sample chains."""
    if config.get("chain_dataset_id") is not None:
        return dataset_name or f"dataset {config['chain_dataset_id']}"
    if config.get("chains_from_job") is not None:
        return f"chains of job {config['chains_from_job']}"
    if config.get("chains"):
        return Path(str(config["chains"])).stem
    return SAMPLE_CHAINS


def default_train_name(config: Mapping[str, Any], dataset_name: str | None = None) -> str:
    """'method · chains · length' of a training job's config."""
    mote = config.get("mote") or {}
    method = str(mote.get("method") or "mote")
    return SEPARATOR.join([method, chains_name(config, dataset_name), training_length(mote.get("train") or {})])


def default_name(kind: JobKind, config: Mapping[str, Any], dataset_name: str | None = None) -> str:
    """A readable default for any job kind."""
    if kind is JobKind.TRAIN:
        return default_train_name(config, dataset_name)
    if kind is JobKind.GENERATE:
        questions = Path(str(config.get("questions") or "questions")).stem
        limit = f"{SEPARATOR}{config['limit']} questions" if config.get("limit") else ""
        return f"chains{SEPARATOR}{questions}{limit}"
    if kind is JobKind.EVALUATE:
        labels = [str(s.get("label")) for s in config.get("subjects") or [] if s.get("label")]
        return "evaluate" + (SEPARATOR + ", ".join(labels[:3]) + (" …" if len(labels) > 3 else "") if labels else "")
    return kind.value


def dataset_name_of(session: Session, config: Mapping[str, Any]) -> str | None:
    """The stored name of the chain dataset a training config names (None when it names none)."""
    dataset = session.get(ChainDataset, config["chain_dataset_id"]) if config.get("chain_dataset_id") else None
    return dataset.name if dataset is not None else None


def job_name(session: Session, job: Job) -> str:
    """The stored name of `job` or of the job it retries (followed back), else the default."""
    current: Job | None = job
    while current is not None:
        if current.name:
            return current.name
        current = session.get(Job, current.retry_of) if current.retry_of else None
    config = job.config or {}
    return default_name(job.kind, config, dataset_name_of(session, config))
