"""How much a running training job slows the job-history query the UI and CLI poll.

Prints `busy_vs_idle_latency: X` = median latency of the job-list query while a training job
runs / while idle (goal <= 1.5), measured side by side in one run on the same SQLite database.
The training job is a real worker process on a tiny random model, writing a metric row per step.

    python bench/bench_responsiveness.py [--queries N] [--db URL]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.queries import list_jobs  # noqa: E402
from jobs.queue import JobQueue  # noqa: E402
from jobs.records import JobStatus  # noqa: E402
from tests.tiny_model import save_tiny_model_dir  # noqa: E402


def median_latency_ms(queue: JobQueue, count: int) -> float:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        list_jobs(queue.sessions, limit=50)
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return statistics.median(samples)


def wait_for(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the training job did not start in time")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--db", help="SQLAlchemy URL (default: a SQLite file in a temporary home)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        model = save_tiny_model_dir(home / "tiny")
        queue = JobQueue(url=args.db, home=home, grace_seconds=10)
        for _ in range(20):  # some history to list (queued, then cancelled before they run)
            queue.cancel(queue.submit("train", {"mote": {"model": str(model), "train": {"max_steps": 1}}}))
        idle = median_latency_ms(queue, args.queries)
        config = {"mote": {"model": str(model), "train": {"max_steps": 100000, "batch_size": 4, "micro_batch_size": 2, "mixed_precision": "no"}}}
        job_id = queue.submit("train", config)
        queue.start(lock=False)
        try:
            wait_for(lambda: queue.get(job_id).status is JobStatus.RUNNING and (queue.get(job_id).progress or 0) > 0)
            busy = median_latency_ms(queue, args.queries)
        finally:
            queue.cancel(job_id)
            wait_for(lambda: queue.get(job_id).status.finished, timeout=60)
            queue.shutdown()
    print(f"idle_latency_ms: {idle:.2f}")
    print(f"busy_latency_ms: {busy:.2f}")
    print(f"busy_vs_idle_latency: {busy / idle:.2f}")


if __name__ == "__main__":
    main()
