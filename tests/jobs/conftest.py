"""Fixtures for the jobs layer: a fresh database per test (SQLite, and PostgreSQL when
MOTE_TEST_POSTGRES_URL is set), a data directory, queues that are shut down and whose
workers are ended (by pid) after each test, tiny chains and questions on disk.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.engine import make_url

from core.data.chains import save_chains_jsonl
from jobs.processes import is_our_worker
from jobs.queue import JobQueue
from jobs.records import Job, JobStatus
from tests.conftest import short_chains

POSTGRES_ENV = "MOTE_TEST_POSTGRES_URL"
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_ENV) else [])


@pytest.fixture(autouse=True)
def one_thread_workers(monkeypatch):
    """Workers inherit this: one BLAS thread each keeps two concurrent CPU jobs from thrashing."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mote.db'}"
        return
    base = os.environ[POSTGRES_ENV]
    schema = f"mote_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def make_queue(db_url, home) -> Callable[..., JobQueue]:
    """JobQueue factory; at teardown every queue stops and any worker still alive is killed."""
    queues: list[JobQueue] = []

    def build(**kwargs) -> JobQueue:
        settings = {"tick_seconds": 0.2, "grace_seconds": 20.0, **kwargs}
        queue = JobQueue(db_url, home, **settings)
        queues.append(queue)
        return queue

    yield build
    for queue in queues:
        queue.shutdown(wait=True)
    if queues:  # end workers the tests started and left running: by pid, and only if still ours
        with queues[0].sessions() as session:
            running = [(j.id, j.pid) for j in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))]
        for job_id, pid in running:
            if is_our_worker(pid, job_id):
                os.killpg(pid, signal.SIGKILL)
    for queue in queues:
        for child in queue.dispatcher.children.values():
            if isinstance(child, subprocess.Popen):
                if child.poll() is None:  # our own child, whatever its job row says (e.g. still cancelling)
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait(timeout=10)
        queue.engine.dispose()


@pytest.fixture
def chains_file(tmp_path) -> Path:
    path = tmp_path / "chains.jsonl"
    save_chains_jsonl(short_chains(8), path)
    return path


@pytest.fixture
def questions_file(tmp_path) -> Path:
    path = tmp_path / "questions.jsonl"
    rows = [{"id": f"q{i}", "question": f"How do I do thing {i}?", "kind": "harmful"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def train_config(model_dir: Path, chains: Path, **train) -> dict:
    settings = {"max_steps": 4, "batch_size": 4, "micro_batch_size": 2, "mixed_precision": "no",
                "warmup_ratio": 0.0, "learning_rate": 5e-3, "checkpoint_every": 2, **train}
    return {"mote": {"model": str(model_dir), "experts": {"rank": 4, "lora_alpha": 8.0, "dropout": 0.0},
                     "data": {"max_length": 256}, "train": settings}, "chains": str(chains)}


def generate_config(model_dir: Path, questions: Path, **overrides) -> dict:
    """A generate job on the tiny model whose every question yields a stored chain: the job tests
    check the queue's mechanics (resume, retry, dependents), so flagged chains are kept (the tiny
    random model's answers would otherwise be dropped by the safe-data defaults)."""
    tokens = {"analysis_tokens": 3, "guidance_tokens": 3, "answer_tokens": 3, "check_tokens": 2}
    return {"generate": {"batch_size": 4, "flagged_policy": "keep", **tokens}, "questions": str(questions),
            "model": str(model_dir), **overrides}


def wait_for(check: Callable[[], object], timeout: float = 120.0, every: float = 0.1, what: str = "condition"):
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def job_row(queue: JobQueue, job_id: int) -> Job:
    with queue.sessions() as session:
        return session.get(Job, job_id)


def wait_finished(queue: JobQueue, job_id: int, timeout: float = 150.0) -> Job:
    def finished():
        job = job_row(queue, job_id)
        return job if job.status.finished else None

    try:
        return wait_for(finished, timeout, what=f"job {job_id} to finish")
    except AssertionError:
        log = Path(job_row(queue, job_id).log_path)
        tail = log.read_text()[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f"job {job_id} did not finish in {timeout} s; log tail:\n{tail}") from None
