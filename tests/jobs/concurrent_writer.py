"""Writes chains, metrics and progress as fast as it can, as a worker would (test e).

    python -m tests.jobs.concurrent_writer URL DATASET_ID RUN_ID JOB_ID PREFIX COUNT
"""
from __future__ import annotations

import sys

from jobs.db import make_engine, session_factory
from jobs.reporting import JobProgress
from jobs.results import record_metric
from jobs.sinks import DatabaseChainSink


def main(url: str, dataset_id: int, run_id: int, job_id: int, prefix: str, count: int) -> None:
    sessions = session_factory(make_engine(url))
    sink = DatabaseChainSink(sessions, dataset_id)
    progress = JobProgress(sessions, job_id)
    for i in range(count):
        sink.write({"id": f"{prefix}-{i}", "question": "q", "answer": "a", "shape": "answer", "flagged": False})
        with sessions.begin() as session:
            record_metric(session, run_id, job_id, i + 1, {"loss": 1.0 / (i + 1), "learning_rate": 1e-3})
        progress(i + 1, count, f"{i + 1}/{count} chains")  # both processes update the same job row


if __name__ == "__main__":
    url, dataset_id, run_id, job_id, prefix, count = sys.argv[1:]
    main(url, int(dataset_id), int(run_id), int(job_id), prefix, int(count))
