"""CLI verbs over the job queue, for launch.py to wire: `jobs list|show|logs|cancel|retry|gpus`,
and `submit_and_follow` behind `generate|train|pipeline`.

Why the CLI may run its own dispatcher: a headless user (no app running) still gets the queue,
the worker process, the stored history and resumable runs, exactly as the UI would. When the app
runs, it owns the dispatcher (<home>/dispatcher.pid) and the CLI only submits and watches.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from jobs.gpus import describe, list_gpus
from jobs.lifecycle import latest_attempt
from jobs.lock import dispatcher_pid
from jobs.queries import job_detail, list_jobs
from jobs.queue import JobQueue
from jobs.records import Job, JobKind, JobStatus, utcnow
from jobs.specs import JobConfigError
from jobs.worker import ExitCode

POLL_SECONDS = 0.5
EXIT_CODES = {JobStatus.SUCCEEDED: int(ExitCode.SUCCEEDED), JobStatus.CANCELLED: int(ExitCode.CANCELLED)}


def add_job_arguments(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `jobs list|show ID|logs ID [--follow]|cancel ID|retry ID|gpus` to launch.py's verbs."""
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


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by the verbs that submit a job (generate, train, pipeline)."""
    parser.add_argument("--detach", action="store_true", help="submit and return at once (the job keeps running)")
    parser.add_argument("--gpus", type=lambda text: [int(x) for x in text.split(",") if x != ""],
                        help="GPU indices to use, e.g. 0,1 (default: the first free GPU, or the CPU)")
    parser.add_argument("--after", type=int, nargs="+", default=[], help="start only after these job ids succeed")
    parser.add_argument("--auto-retry", action="store_true", help="retry by itself if interrupted (e.g. a restart)")


def _duration(job: Job) -> str:
    if job.started_at is None:
        return "-"
    end = job.finished_at or utcnow()
    seconds = int((end - job.started_at).total_seconds())
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0][:80] if (text or "").strip() else ""


def format_job_list(jobs: list[Job]) -> str:
    lines = [f"{'id':>5}  {'kind':9} {'status':11} {'progress':>8}  {'time':>8}  note"]
    for job in jobs:
        note = _first_line(job.error) if job.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED) else (job.message or "")
        retry = f" (retry of {job.retry_of})" if job.retry_of else ""
        lines.append(f"{job.id:>5}  {job.kind.value:9} {job.status.value:11} {job.progress:>7.0%}  {_duration(job):>8}  {note}{retry}")
    return "\n".join(lines)


def format_job_detail(queue: JobQueue, job_id: int) -> str:
    detail = job_detail(queue.sessions, job_id)
    job = detail.job
    rows: list[tuple[str, Any]] = [
        ("job", f"{job.id} ({job.kind.value})"), ("status", job.status.value), ("progress", f"{job.progress:.0%}"),
        ("eta", f"{job.eta_seconds:.0f} s" if job.eta_seconds is not None and job.status is JobStatus.RUNNING else None),
        ("message", job.message), ("created", job.created_at), ("started", job.started_at), ("finished", job.finished_at),
        ("exit code", job.exit_code), ("devices", ("CPU" if job.gpus == [] else f"GPU {job.gpus}") if job.gpus is not None else None),
        ("pid", job.pid if job.status is JobStatus.RUNNING else None), ("retry of", job.retry_of),
        ("retried as", detail.retries or None), ("depends on", detail.depends_on or None),
        ("needed by", detail.dependents or None), ("auto retry", job.auto_retry or None),
        ("run folder", job.run_dir), ("log", job.log_path),
    ]
    lines = [f"{name:12} {value}" for name, value in rows if value is not None]
    if detail.training:
        t = detail.training
        lines.append(f"{'training':12} {t['method']} on {t['base_model']}: step {t['last_step']}/{t['total_steps'] or '?'}, "
                     f"last loss {t['last_loss'] if t['last_loss'] is None else round(t['last_loss'], 4)}, "
                     f"checkpoints {t['checkpoints'] or 'none'}, export {t['export'] or 'not yet'}")
    if detail.chains:
        c = detail.chains
        lines.append(f"{'chains':12} dataset {c['dataset_id']} '{c['name']}': {c['kept']} kept, {c['dropped']} dropped")
    if job.error:
        lines += ["error:", *("  " + line for line in job.error.rstrip().splitlines())]
    lines += ["config:", *("  " + line for line in yaml.safe_dump(job.config, sort_keys=False).rstrip().splitlines())]
    return "\n".join(lines)


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
            if not follow or queue.get(job_id).status.finished and (not path.exists() or path.stat().st_size == position):
                return 0
            time.sleep(POLL_SECONDS)
            queue.settle_unattended()  # the worker may die while nobody runs the queue
    except KeyboardInterrupt:
        out.write(f"\nStopped following; job {job_id} keeps running.\n")
        return 0


def current_stage(session, job: Job) -> Job:
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
    filled = int(30 * shown.progress)
    eta = f"  ETA {shown.eta_seconds:.0f}s" if shown.eta_seconds is not None and shown.status is JobStatus.RUNNING else ""
    return (f"\rjob {job.id} {job.status.value:9}{stage} [{'#' * filled}{'.' * (30 - filled)}] {shown.progress:4.0%}"
            f"{eta}  {(shown.message or '')[:50]:50}")


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
    shown, heading, in_table = [], "", False
    for line in summary.read_text(encoding="utf-8").splitlines():
        if line.startswith("### "):
            heading, in_table = line[4:], False
        elif line.startswith("| subject | Help"):
            shown += ["", heading, line]
            in_table = True
        elif in_table and line.startswith("|"):
            shown.append(line)
        else:
            in_table = False
    shown += ["", f"Full comparison (notes, charts, per-sample drill-down): {summary.parent}", "and in the app's Evaluate tab."]
    return "\n".join(shown) + "\n"


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
            if job.status.finished and not (job.status is JobStatus.INTERRUPTED and job.auto_retry):
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
                      depends_on: list[int] = (), gpus: list[int] | None = None, auto_retry: bool = False,
                      out: TextIO = sys.stdout) -> int:
    """Submit; without a running app, dispatch in this process; then follow, or return at once."""
    try:
        job_id = queue.submit(kind, config, depends_on=list(depends_on), gpus=gpus, auto_retry=auto_retry)
    except JobConfigError as error:
        stored = f" (recorded as failed job {error.job_id})" if error.job_id else ""
        out.write(f"error: {error}{stored}\n")
        return int(ExitCode.BAD_REQUEST)
    owner = dispatcher_pid(queue.home)
    out.write(f"Submitted {JobKind(kind).value} job {job_id}" + (f" to the running app (dispatcher pid {owner})" if owner else "") + ".\n")
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


def run_jobs_command(args: argparse.Namespace, queue: JobQueue, out: TextIO = sys.stdout) -> int:
    """Handle `launch.py jobs ...` (parsed by add_job_arguments)."""
    action = args.jobs_action
    if action in ("list", "show", "logs", "cancel", "retry"):
        queue.settle_unattended()  # a worker that died with no dispatcher running shows as ended, not running
    if action == "list":
        out.write(format_job_list(list_jobs(queue.sessions, limit=args.limit,
                                            status=JobStatus(args.status) if args.status else None)) + "\n")
    elif action == "show":
        out.write(format_job_detail(queue, args.job_id) + "\n")
    elif action == "logs":
        return print_log(queue, args.job_id, args.follow, out)
    elif action == "cancel":
        status = queue.cancel(args.job_id)
        out.write(f"Job {args.job_id}: {'cancel requested (the worker saves its progress and stops)' if status is JobStatus.RUNNING else status.value}.\n")
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
        while list_jobs(queue.sessions, limit=1, status=JobStatus.QUEUED) or list_jobs(queue.sessions, limit=1, status=JobStatus.RUNNING):
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        out.write("Stopped dispatching; running jobs continue in their own processes.\n")
    finally:
        queue.shutdown()
    out.write("No job is queued or running.\n")
    return 0
