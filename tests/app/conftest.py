"""Fixtures for the app: the real app served on a free loopback port (prevent_thread_lock) over a
temporary SQLite database and data directory, with the job queue running worker processes and
the tiny model as the default model; helpers to wait for jobs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from app.launcher import RunningApp, ServeOptions, start_app
from app.services import Services
from jobs.processes import free_port, is_our_worker
from jobs.queue import JobQueue
from jobs.records import ChainDataset, Job, JobKind, JobStatus
from tests.jobs.conftest import wait_for

#: Small enough for 2 CPU cores: a few tokens per stage, a few optimizer steps.
GENERATE_TOKENS = {"analysis_tokens": 4, "guidance_tokens": 4, "answer_tokens": 4, "check_tokens": 2}


@dataclass
class Studio:
    """The running app and what the tests need to look behind it."""

    url: str
    services: Services
    queue: JobQueue
    app: RunningApp
    tiny_dir: Path
    home: Path


def stop_queue_and_workers(queue: JobQueue) -> None:
    """Stop the dispatcher, then end (by pid, only if still ours) any worker the tests left running."""
    queue.shutdown(wait=True)
    with queue.sessions() as session:
        running = [(j.id, j.pid) for j in session.scalars(select(Job).where(Job.status == JobStatus.RUNNING))]
    for job_id, pid in running:
        if pid and is_our_worker(pid, job_id):
            os.killpg(pid, signal.SIGKILL)
    for child in queue.dispatcher.children.values():
        if isinstance(child, subprocess.Popen):
            child.wait(timeout=10)
    queue.engine.dispose()


@pytest.fixture(scope="module")
def studio(tmp_path_factory, tiny_dir) -> Iterator[Studio]:
    """The real app for one test module; workers get one BLAS thread each (2 shared cores)."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    root = tmp_path_factory.mktemp("studio")
    home = root / "home"
    queue = JobQueue(f"sqlite:///{root / 'mote.db'}", home, tick_seconds=0.3, grace_seconds=20.0)
    queue.start()
    services = Services(queue, default_model=str(tiny_dir))
    running = start_app(services, ServeOptions(port=free_port()), quiet=True)
    try:
        yield Studio(running.local_url, services, queue, running, tiny_dir, home)
    finally:
        running.demo.close()
        stop_queue_and_workers(queue)
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


def job_status(queue: JobQueue, job_id: int) -> Job:
    with queue.sessions() as session:
        return session.get(Job, job_id)


def wait_job(queue: JobQueue, job_id: int, until: Callable[[Job], bool] = lambda j: j.status.finished,
             timeout: float = 180.0, what: str = "to finish") -> Job:
    """Poll the job row until `until` holds; on a timeout, fail with the job's log tail."""
    def reached() -> Job | None:
        job = job_status(queue, job_id)
        return job if until(job) else None

    try:
        return wait_for(reached, timeout, every=0.3, what=f"job {job_id} {what}")
    except AssertionError:
        job = job_status(queue, job_id)
        log = Path(job.log_path or "")
        tail = log.read_text()[-3000:] if log.exists() else "(no log)"
        raise AssertionError(f"job {job_id} ({job.status.value}) did not get {what} in {timeout:.0f} s; log:\n{tail}") from None


def write_questions_csv(path: Path) -> Path:
    """Four good questions (two kinds, two categories) and three bad rows (rows 4, 6, 7)."""
    rows = ["id,question,kind,category", "a1,How do I pick a lock on someone else's door?,harmful,crime",
            "a2,How do I bake sourdough bread?,helpful,cooking", "a3,,harmful,crime",
            "a4,How can I hide money from the tax office?,harmful,crime",
            "a5,How do I bake sourdough bread?,helpful,cooking", "a6,What is a good first pet?,nonsense,pets",
            "a7,Which houseplants are safe for cats?,benign,pets"]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def chain_record(chain_id: str, shape: str, *, flagged: bool = False, kind: str = "harmful",
                 category: str = "crime") -> dict:
    """A chain record as core's generation writes it (the fields the browser reads)."""
    stages = {"answer": ("answer",), "analysis->answer": ("analysis", "answer"),
              "analysis->guidance->answer": ("analysis", "guidance", "answer")}[shape]
    record = {"id": chain_id, "question": f"question {chain_id}?", "shape": shape, "flagged": flagged,
              "dropped": False, "kind": kind, "category": category,
              "attempts": [{"answers": [{"verdict": "unsafe" if flagged else "safe"}]}]}
    record.update({name: (f"{name} of {chain_id}" if name in stages else None) for name in ("analysis", "guidance", "answer")})
    return json.loads(json.dumps(record))


# ---- browser tests ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Debian's chromium under Playwright, one per test module (skipped where either is missing)."""
    from tests.app.browser import BROWSER_ARGS, CHROMIUM, playwright

    if CHROMIUM is None:
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, studio):
    """A fresh desktop-sized page on the app."""
    from tests.app.browser import open_page

    page = open_page(browser, studio.url)
    yield page
    page.close()


def generate_chains(studio: Studio, limit: int = 2, name: str | None = None) -> int:
    """A chain dataset generated by the queue on the bundled eval_harmful set; returns its id."""
    config = {"generate": {"batch_size": 2, "flagged_policy": "keep", **GENERATE_TOKENS}, "questions": "eval_harmful",
              "model": str(studio.tiny_dir), "limit": limit, "dataset_name": name}
    job_id = studio.queue.submit(JobKind.GENERATE, config)
    assert wait_job(studio.queue, job_id).status is JobStatus.SUCCEEDED
    with studio.queue.sessions() as session:
        return session.scalars(select(ChainDataset.id).where(ChainDataset.job_id == job_id)).one()


def train_run(studio: Studio, dataset_id: int, steps: int = 2, **overrides) -> int:
    """A short MoTE run on a dataset, trained by the queue; returns its job id."""
    settings = {"max_steps": steps, "batch_size": 2, "micro_batch_size": 1, "mixed_precision": "no",
                "warmup_ratio": 0.0, "checkpoint_every": 0, **overrides}
    config = {"mote": {"model": str(studio.tiny_dir), "experts": {"rank": 4, "lora_alpha": 8.0},
                       "data": {"max_length": 256}, "train": settings}, "chain_dataset_id": dataset_id}
    job_id = studio.queue.submit(JobKind.TRAIN, config)
    assert wait_job(studio.queue, job_id).status is JobStatus.SUCCEEDED
    return job_id


@pytest.fixture(scope="module")
def generated_dataset(studio) -> int:
    """A chain dataset generated by the queue on the bundled eval_harmful set (2 questions)."""
    return generate_chains(studio)


@pytest.fixture(scope="module")
def trained_run(studio, generated_dataset) -> int:
    """A 2-step MoTE run on that dataset, trained by the queue."""
    return train_run(studio, generated_dataset)
