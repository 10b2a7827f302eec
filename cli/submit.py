"""Submitting a job from the terminal and following it with a progress bar until it ends.

Why the CLI may run its own dispatcher: a headless user (no app running) still gets the queue,
the worker process, the stored history and resumable runs, exactly as the UI would. When the app
runs, it owns the dispatcher (<home>/dispatcher.pid) and the CLI only submits and watches.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from cli.options import queue_from
from jobs.lifecycle import latest_attempt
from jobs.lock import dispatcher_pid
from jobs.queue import JobQueue
from jobs.records import Job, JobKind, JobStatus
from jobs.specs import JobConfigError
from jobs.worker import ExitCode

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

POLL_SECONDS = 0.5
EXIT_CODES = {JobStatus.SUCCEEDED: int(ExitCode.SUCCEEDED), JobStatus.CANCELLED: int(ExitCode.CANCELLED)}
BAR_WIDTH = 30


def _gpu_list(text: str) -> list[int]:
    return [int(index) for index in text.split(",") if index != ""]


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the verbs that submit a job (generate, train, pipeline, evaluate, study)."""
    parser.add_argument("--detach", action="store_true", help="submit and return at once (the job keeps running)")
    parser.add_argument("--gpus", type=_gpu_list,
                        help="GPU indices to use, e.g. 0,1 (default: the first free GPU, or the CPU)")
    parser.add_argument("--after", type=int, nargs="+", default=[], help="start only after these job ids succeed")
    parser.add_argument("--auto-retry", action="store_true", help="retry by itself if interrupted (e.g. a restart)")


def submit_from_args(args: argparse.Namespace, kind: JobKind | str, config: dict[str, Any]) -> int:
    """Submit with the shared options (add_submit_arguments) and follow unless --detach."""
    return submit_and_follow(queue_from(args), kind, config, args.detach, depends_on=args.after, gpus=args.gpus,
                             auto_retry=args.auto_retry)


def current_stage(session: Session, job: Job) -> Job:
    """For a pipeline, the newest attempt of its first unfinished stage (what to show)."""
    for stage_id in (job.config.get("stages") or {}).values():
        latest = latest_attempt(session, stage_id)
        if latest is not None and latest.status is not JobStatus.SUCCEEDED:
            return latest
    return job


def progress_line(job: Job, shown: Job | None = None) -> str:
    """One line: `job`'s status, and the bar, ETA and message of `shown` (a pipeline's stage)."""
    shown = shown or job
    stage = f" > {shown.kind.value} job {shown.id}" if shown.id != job.id else ""
    filled = int(BAR_WIDTH * shown.progress)
    eta = f"  ETA {shown.eta_seconds:.0f}s" if shown.eta_seconds is not None and shown.status is JobStatus.RUNNING else ""
    return (f"\rjob {job.id} {job.status.value:9}{stage} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
            f"{shown.progress:4.0%}{eta}  {(shown.message or '')[:50]:50}")


def _comparison_tables(summary: Path) -> list[str]:
    """The report's opening (a study's answer in words and its sweep, when there are), then each
    judge's heading and comparison table from a report's summary.md."""
    shown, heading, in_table, opening = [], "", False, True
    for line in summary.read_text(encoding="utf-8").splitlines():
        if opening and not line.startswith("### "):
            if not line.startswith("!["):  # the chart is a file beside the report, named at the end
                shown.append(line)
            continue
        opening = False
        if line.startswith("### "):
            heading, in_table = line[4:], False
        elif line.startswith("| subject | Help"):
            shown += ["", heading, line]
            in_table = True
        elif in_table and line.startswith("|"):
            shown.append(line)
        else:
            in_table = False
    return shown


def comparison_text(queue: JobQueue, job: Job) -> str:
    """For a finished evaluate job (or a pipeline ending in one): each judge's comparison table
    from its report's summary.md, and where the full report is; '' for other jobs."""
    if job.kind is JobKind.PIPELINE:
        stage = (job.config.get("stages") or {}).get("evaluate")
        if stage is None:
            return ""
        with queue.sessions() as session:
            job = latest_attempt(session, stage)
    if job is None or job.kind is not JobKind.EVALUATE or job.status is not JobStatus.SUCCEEDED:
        return ""
    summary = Path(job.config.get("out") or Path(job.run_dir) / "report") / "summary.md"
    if not summary.is_file():
        return ""
    shown = _comparison_tables(summary)
    shown += ["", f"Full comparison (notes, charts, per-sample drill-down): {summary.parent}", "and in the app's Evaluate tab."]
    return "\n".join(shown) + "\n"


def _has_ended(job: Job) -> bool:
    """Ended for good: an interrupted job with auto-retry comes back as a new attempt."""
    return job.status.finished and not (job.status is JobStatus.INTERRUPTED and job.auto_retry)


def follow_job(queue: JobQueue, job_id: int, out: TextIO = sys.stdout) -> int:
    """Show a progress bar until the job (or its newest automatic retry) ends; Ctrl-C stops
    watching only. Returns 0 succeeded, 3 cancelled, 1 otherwise."""
    try:
        while True:
            with queue.sessions() as session:
                job = latest_attempt(session, job_id)
                shown = current_stage(session, job) if job.kind is JobKind.PIPELINE else job
            out.write(progress_line(job, shown))
            out.flush()
            if _has_ended(job):
                out.write("\n")
                if job.error and job.status is not JobStatus.SUCCEEDED:
                    out.write(f"{job.status.value}: {job.error.rstrip()}\n")
                if job.status is JobStatus.SUCCEEDED:
                    out.write(comparison_text(queue, job))
                return EXIT_CODES.get(job.status, int(ExitCode.FAILED))
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        out.write(f"\nStopped following; job {job_id} keeps running. Follow it again with:\n"
                  f"  python launch.py jobs logs {job_id} --follow\n")
        return 0


def submit_and_follow(queue: JobQueue, kind: JobKind | str, config: dict[str, Any], detach: bool, *,
                      depends_on: Sequence[int] = (), gpus: list[int] | None = None, auto_retry: bool = False,
                      out: TextIO = sys.stdout) -> int:
    """Submit; without a running app, dispatch in this process; then follow, or return at once."""
    try:
        job_id = queue.submit(kind, config, depends_on=list(depends_on), gpus=gpus, auto_retry=auto_retry)
    except JobConfigError as error:
        stored = f" (recorded as failed job {error.job_id})" if error.job_id else ""
        out.write(f"error: {error}{stored}\n")
        return int(ExitCode.BAD_REQUEST)
    owner = dispatcher_pid(queue.home)
    out.write(f"Submitted {JobKind(kind).value} job {job_id}"
              + (f" to the running app (dispatcher pid {owner})" if owner else "") + ".\n")
    if owner is None and detach:
        queue.recover()
        queue.dispatch()  # the worker runs in its own session and outlives this command
        status = queue.get(job_id).status
        out.write(f"Job {job_id} is {status.value}" + ("" if status is not JobStatus.QUEUED else
                  "; it starts when the app (or a later `launch.py` command) runs the queue") + ".\n")
    if detach:
        out.write(f"Follow it with: python launch.py jobs logs {job_id} --follow\n")
        return 0
    own = owner is None and not queue.running
    if own:
        queue.start()
    try:
        return follow_job(queue, job_id, out)
    finally:
        if own:
            queue.shutdown(wait=False)
