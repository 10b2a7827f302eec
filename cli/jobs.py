"""`launch.py jobs list|show ID|logs ID [--follow]|cancel ID|retry ID|gpus|work`: the queue by hand.

Why `work` exists: on a headless server nobody runs the app, so this verb owns the dispatcher
until the queue is empty; the app does the same by itself while it runs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TextIO

from cli.options import queue_from
from jobs.formatting import format_job_detail, format_job_list
from jobs.gpus import describe, list_gpus
from jobs.lock import dispatcher_pid
from jobs.queries import list_jobs
from jobs.queue import JobQueue
from jobs.records import JobKind, JobStatus

VERBS = ("jobs",)
POLL_SECONDS = 0.5


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `jobs` and its actions to launch.py's verbs."""
    jobs = subparsers.add_parser("jobs", help="list, inspect, follow, cancel and retry background jobs")
    actions = jobs.add_subparsers(dest="jobs_action", required=True)
    listing = actions.add_parser("list", help="recent jobs, newest first")
    listing.add_argument("--limit", type=int, default=30)
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    for name, text in (("show", "everything about one job"), ("cancel", "cancel a queued or running job"),
                       ("retry", "rerun a failed, cancelled or interrupted job, resuming its work")):
        actions.add_parser(name, help=text).add_argument("job_id", type=int)
    logs = actions.add_parser("logs", help="print a job's log")
    logs.add_argument("job_id", type=int)
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    actions.add_parser("gpus", help="the GPUs jobs can use (or the CPU fallback)")
    actions.add_parser("work", help="run the queue in this terminal until no job is queued or running "
                                    "(a headless server; the app does this by itself)")
    return jobs


def run(args: argparse.Namespace) -> int:
    return run_jobs_command(args, queue_from(args))


def run_jobs_command(args: argparse.Namespace, queue: JobQueue, out: TextIO = sys.stdout) -> int:
    """Handle one `jobs` action (parsed by add_parser) on `queue`."""
    action = args.jobs_action
    if action in ("list", "show", "logs", "cancel", "retry"):
        queue.settle_unattended()  # a worker that died with no dispatcher running shows as ended, not running
    if action == "list":
        status = JobStatus(args.status) if args.status else None
        out.write(format_job_list(list_jobs(queue.sessions, limit=args.limit, status=status)) + "\n")
    elif action == "show":
        out.write(format_job_detail(queue, args.job_id) + "\n")
    elif action == "logs":
        return print_log(queue, args.job_id, args.follow, out)
    elif action == "cancel":
        status = queue.cancel(args.job_id)
        said = "cancel requested (the worker saves its progress and stops)" if status is JobStatus.RUNNING else status.value
        out.write(f"Job {args.job_id}: {said}.\n")
    elif action == "retry":
        new_id = queue.retry(args.job_id)
        out.write(f"Job {args.job_id} retried as job {new_id}; it resumes from the saved progress.\n")
        if dispatcher_pid(queue.home) is None:
            queue.recover()
            queue.dispatch()
    elif action == "gpus":
        out.write(describe(list_gpus()) + "\n")
    elif action == "work":
        return work_until_idle(queue, out)
    return 0


def print_log(queue: JobQueue, job_id: int, follow: bool, out: TextIO = sys.stdout) -> int:
    """Print the log; with follow, keep printing new lines until the job has ended."""
    job = queue.get(job_id)
    if job.kind is JobKind.PIPELINE:
        stages = ", ".join(f"{name} = job {i}" for name, i in (job.config.get("stages") or {}).items())
        out.write(f"Job {job_id} is a pipeline and has no log of its own; see its stages: {stages}.\n")
        return 0
    path = Path(job.log_path or "")
    if not path.exists() and not follow:
        out.write(f"(no log yet at {path}: job {job_id} is {job.status.value})\n")
        return 0
    position = 0
    try:
        while True:
            if path.exists():
                with path.open("rb") as handle:
                    handle.seek(position)
                    chunk = handle.read()
                    position += len(chunk)
                out.write(chunk.decode("utf-8", errors="replace"))
                out.flush()
            all_read = not path.exists() or path.stat().st_size == position
            if not follow or queue.get(job_id).status.finished and all_read:
                return 0
            time.sleep(POLL_SECONDS)
            queue.settle_unattended()  # the worker may die while nobody runs the queue
    except KeyboardInterrupt:
        out.write(f"\nStopped following; job {job_id} keeps running.\n")
        return 0


def _queue_busy(queue: JobQueue) -> bool:
    return any(list_jobs(queue.sessions, limit=1, status=status) for status in (JobStatus.QUEUED, JobStatus.RUNNING))


def work_until_idle(queue: JobQueue, out: TextIO, poll_seconds: float = 2.0) -> int:
    """Own the dispatcher until every queued and running job has ended (Ctrl+C stops dispatching;
    running workers keep going and a later `jobs work` or the app picks the queue up again)."""
    owner = dispatcher_pid(queue.home)
    if owner is not None:
        out.write(f"The app (pid {owner}) already runs the queue; nothing to do here.\n")
        return 0
    queue.start()
    out.write("Running the queue until no job is queued or running (Ctrl+C to stop dispatching).\n")
    try:
        while _queue_busy(queue):
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        out.write("Stopped dispatching; running jobs continue in their own processes.\n")
    finally:
        queue.shutdown()
    out.write("No job is queued or running.\n")
    return 0
