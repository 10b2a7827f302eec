"""The dispatcher and the reaper: one tick starts ready jobs on free devices, the other notices
workers that ended, enforces cancel grace periods and recovers after a restart.

Why the rows are the truth: nothing here is remembered between ticks except the Popen handles
of workers this process started (kept only to collect their exit codes); a dispatcher started
later, in another process, finds everything it needs in the database and in /proc.
"""
from __future__ import annotations

import logging
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from jobs.db import DATABASE_ENV
from jobs.gpus import GpuStatus, Placement, list_gpus, pick_devices
from jobs.lifecycle import Readiness, dependency_state, mark_cancelled, settle_vanished
from jobs.priority import WorkerPriority
from jobs.processes import free_port, group_pids, is_our_worker, signal_group, spawn, worker_command, worker_environment
from jobs.records import Job, JobKind, JobStatus, utcnow
from jobs.specs import sharding_config_file

log = logging.getLogger(__name__)


@dataclass
class DispatchSettings:
    grace_seconds: float = 30.0
    """SIGTERM first; SIGKILL the job's process group if it still runs this long after a cancel."""
    max_cpu_jobs: int = 1
    """CPU jobs at once when there is no GPU (each gets cores / max_cpu_jobs threads)."""
    gpus_per_job: int = 1
    """GPUs a job gets when it did not name its own."""
    foreign_limit_mib: float = 1024.0
    """A GPU where other users' processes hold more memory than this is not used."""
    priority: WorkerPriority = field(default_factory=WorkerPriority)
    """Workers' niceness and CPU threads, so the app stays quick while they run."""


class Dispatcher:
    def __init__(self, sessions: sessionmaker[Session], url: str, home: Path, settings: DispatchSettings,
                 gpu_lister=list_gpus) -> None:
        self.sessions, self.url, self.home, self.settings = sessions, url, Path(home), settings
        self.list_gpus = gpu_lister
        self.host = socket.gethostname()
        self.children: dict[int, subprocess.Popen] = {}
        self.terminated: set[int] = set()

    # ---- starting jobs -------------------------------------------------------------------
    def dispatch(self) -> list[int]:
        """Cancel jobs whose dependency failed, finish pipelines, start ready jobs; returns started ids."""
        with self.sessions() as session:
            queued = [j.id for j in session.scalars(select(Job).where(Job.status == JobStatus.QUEUED).order_by(Job.id))]
            running = list(session.scalars(select(Job).where(Job.status == JobStatus.RUNNING)))
        if not queued:
            return []
        local = [j for j in running if j.host in (self.host, None)]
        busy = {g for j in local for g in (j.gpus or [])}
        cpu_running = sum(1 for j in local if not j.gpus)
        gpu_status: GpuStatus | None = None
        started = []
        for job_id in queued:
            job = self._resolve_dependencies(job_id)
            if job is None:
                continue
            gpu_status = gpu_status or self.list_gpus()
            our_pids = {p for j in local if j.pid for p in group_pids(j.pid)}
            try:
                placement = pick_devices(job.requested_gpus, busy, self.settings.gpus_per_job, gpus=gpu_status.gpus,
                                         our_pids=our_pids, foreign_limit_mib=self.settings.foreign_limit_mib,
                                         cpu_jobs_running=cpu_running, max_cpu_jobs=self.settings.max_cpu_jobs)
            except ValueError as error:
                self._fail(job_id, str(error))
                continue
            if placement is not None and self._start(job, placement):
                started.append(job_id)
                busy |= set(placement.gpus)
                cpu_running += placement.on_cpu
        return started

    def _resolve_dependencies(self, job_id: int) -> Job | None:
        """The job if it may start now; cancels it if a dependency failed; None otherwise."""
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is None or job.status is not JobStatus.QUEUED:
                return None
            state = dependency_state(session, job_id)
            if state.readiness is Readiness.BLOCKED:
                mark_cancelled(job, f"cancelled because {state.reason}")
                return None
            if state.readiness is Readiness.WAIT:
                return None
            if job.kind is JobKind.PIPELINE:  # every stage succeeded: nothing left to run
                job.status, job.progress, job.finished_at, job.message = JobStatus.SUCCEEDED, 1.0, utcnow(), "all stages succeeded"
                return None
            return job

    def _fail(self, job_id: int, error: str) -> None:
        with self.sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job_id).values(
                status=JobStatus.FAILED, error=error, finished_at=utcnow()))

    def _start(self, job: Job, placement: Placement) -> bool:
        with self.sessions.begin() as session:
            claimed = session.execute(update(Job).where(Job.id == job.id, Job.status == JobStatus.QUEUED).values(
                status=JobStatus.RUNNING, host=self.host, gpus=list(placement.gpus), started_at=utcnow(),
                pid=None, message="starting")).rowcount
        if claimed != 1:
            return False
        hidden_url = make_url(self.url).password is not None  # keep passwords out of `ps`
        # Only training is data parallel; decoding jobs run one process on their first GPU.
        processes = max(1, len(placement.gpus)) if job.kind is JobKind.TRAIN else 1
        try:  # FSDP / ZeRO-3 preset of the job's train.accelerate_config; only a multi-process run shards
            config_file = sharding_config_file(job.kind, job.config) if processes > 1 else None
        except ValueError as error:
            self._fail(job.id, str(error))
            return False
        command = worker_command(job.id, db_url=None if hidden_url else self.url, home=self.home,
                                 num_processes=processes, main_process_port=free_port() if processes > 1 else None,
                                 config_file=config_file)
        priority = self.settings.priority
        env = worker_environment(placement.gpus, cpu_threads=priority.cpu_threads(self.settings.max_cpu_jobs),
                                 extra={DATABASE_ENV: self.url} if hidden_url else {}, nice=priority.nice,
                                 threads_forced=priority.threads is not None)
        device = "CPU" if placement.on_cpu else f"GPU {','.join(map(str, placement.gpus))}"
        header = f"=== job {job.id} ({job.kind.value}) starting {utcnow():%Y-%m-%d %H:%M:%S} UTC on {device}: {' '.join(command)}"
        try:
            child = spawn(command, env, Path(job.log_path), header)
        except OSError as error:
            self._fail(job.id, f"Could not start the worker ({error}); check the Python environment and disk space.")
            return False
        self.children[job.id] = child
        with self.sessions.begin() as session:
            session.execute(update(Job).where(Job.id == job.id).values(pid=child.pid))
        log.info("started job %s (%s) on %s as pid %s", job.id, job.kind.value, device, child.pid)
        return True

    # ---- noticing ends ---------------------------------------------------------------------
    def _alive(self, job_id: int, pid: int | None) -> tuple[bool, int | None]:
        child = self.children.get(job_id)
        if child is not None:
            code = child.poll()
            return code is None, code
        return is_our_worker(pid, job_id), None

    def reap(self) -> list[int]:
        """Finish rows whose worker ended without saying how; enforce cancel grace periods."""
        with self.sessions() as session:
            rows = [(j.id, j.pid, j.cancel_requested, j.cancel_requested_at) for j in session.scalars(
                select(Job).where(Job.status == JobStatus.RUNNING, Job.host == self.host))]
        running_ids = {row[0] for row in rows}
        for job_id, child in list(self.children.items()):  # collect exit codes of finished workers
            if job_id not in running_ids and child.poll() is not None:
                self.children.pop(job_id)
                with self.sessions.begin() as session:
                    session.execute(update(Job).where(Job.id == job_id, Job.exit_code.is_(None)).values(exit_code=child.returncode))
        ended = []
        for job_id, pid, cancel_requested, requested_at in rows:
            alive, code = self._alive(job_id, pid)
            if alive:
                if cancel_requested:
                    self._enforce_cancel(job_id, pid, requested_at)
                continue
            self.children.pop(job_id, None)
            if self._finish_vanished(job_id, code):
                ended.append(job_id)
        return ended

    def _finish_vanished(self, job_id: int, code: int | None) -> bool:
        """In a new transaction (so a final status the worker wrote before exiting is seen)."""
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is None or job.status is not JobStatus.RUNNING:
                if job is not None and code is not None and job.exit_code is None:
                    job.exit_code = code
                return False
            how = f"exit code {code}" if code is not None else "no exit code: it was not started by this process"
            settle_vanished(session, self.home, job, f"The worker process ended without reporting a result ({how}); "
                            f"see {job.log_path}. Retry the job to resume from its last checkpoint or chain.", code)
            return True

    def _enforce_cancel(self, job_id: int, pid: int | None, requested_at) -> None:
        if pid is None:
            return
        if job_id not in self.terminated:  # a cancel written by another process: signal it here
            signal_group(pid, signal.SIGTERM)
            self.terminated.add(job_id)
        if requested_at is not None and utcnow() - requested_at > timedelta(seconds=self.settings.grace_seconds):
            log.warning("job %s ignored SIGTERM for %.0f s: sending SIGKILL", job_id, self.settings.grace_seconds)
            signal_group(pid, signal.SIGKILL)

    def recover(self, *, starting_grace: timedelta = timedelta(0)) -> list[int]:
        """Running rows of this host whose worker is gone become interrupted (retried when
        auto_retry is set), or cancelled when a cancel was asked; rows with a live worker stay
        running (re-attached). At start-up, and from any CLI command while no dispatcher runs.
        `starting_grace`: a row claimed this recently whose pid is not stored yet is being
        started by another process, not gone."""
        with self.sessions() as session:
            rows = [(j.id, j.pid, j.started_at) for j in session.scalars(select(Job).where(
                Job.status == JobStatus.RUNNING, (Job.host == self.host) | Job.host.is_(None)))]
        now = utcnow()
        lost = [job_id for job_id, pid, started in rows if not self._alive(job_id, pid)[0]
                and not (pid is None and started is not None and now - started < starting_grace)]
        for job_id in lost:
            with self.sessions.begin() as session:
                job = session.get(Job, job_id)
                if job is not None and job.status is JobStatus.RUNNING:
                    settle_vanished(session, self.home, job, "The worker was gone while no dispatcher ran (the app, "
                                    "the machine or the worker stopped while it ran). Retry the job to resume from its "
                                    "last checkpoint or chain.")
        return lost
