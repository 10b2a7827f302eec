"""JobQueue: submit, cancel, retry and recover jobs; one APScheduler tick dispatches and reaps.

Why APScheduler holds nothing: a single BackgroundScheduler calls `tick()` every second, and
`tick()` reads the job rows, so shutting the app down leaves queued jobs queued and running
workers running, and the next JobQueue on the same database carries on (re-attaching to live
workers, marking dead ones interrupted). Only job ids cross the scheduler.
"""
from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.orm import Session

from core.outbound import OutboundPolicy

from jobs.db import database_url, init_db, session_factory
from jobs.dispatch import Dispatcher, DispatchSettings
from jobs.gpus import GpuStatus, list_gpus
from jobs.lifecycle import REJECTED_AT_SUBMIT, create_retry, latest_attempt, mark_cancelled, new_job, pipeline_stages
from jobs.lock import DispatcherLock, dispatcher_pid
from jobs.priority import WorkerPriority
from jobs.outbound_check import check_config_outbound
from jobs.processes import is_our_worker, signal_group
from jobs.records import ChainDataset, Job, JobKind, JobStatus, utcnow
from jobs.evaluate_spec import EvaluateSpec
from jobs.specs import GenerateSpec, JobConfigError, JobSpec, PipelineSpec, TrainSpec, parse_job_config, parse_kind

log = logging.getLogger(__name__)
#: A job claimed this recently without a stored pid is being started by another process.
STARTING_GRACE_S = 30.0


class JobQueue:
    """The one way jobs are created and controlled (app, CLI and tests alike)."""

    def __init__(self, url: str | None = None, home: Path | None = None, *, grace_seconds: float = 30.0,
                 max_cpu_jobs: int = 1, gpus_per_job: int = 1, tick_seconds: float = 1.0,
                 gpu_lister: Callable[[], GpuStatus] = list_gpus, worker_nice: int | None = None,
                 worker_threads: int | None = None) -> None:
        """`worker_nice` / `worker_threads`: each worker's niceness increment and CPU threads per
        CPU job (None: $MOTE_WORKER_NICE / $MOTE_WORKER_THREADS, else 10 and automatic; see
        jobs.priority)."""
        from core.model_source import default_home

        self.home = Path(home).expanduser() if home is not None else default_home()
        self.home.mkdir(parents=True, exist_ok=True)
        self.url = database_url(self.home, url)
        self.engine = init_db(self.url)
        self.sessions = session_factory(self.engine)
        self.tick_seconds = tick_seconds
        priority = WorkerPriority.from_environment(nice=worker_nice, threads=worker_threads)
        self.settings = DispatchSettings(grace_seconds, max_cpu_jobs, gpus_per_job, priority=priority)
        self.dispatcher = Dispatcher(self.sessions, self.url, self.home, self.settings, gpu_lister)
        self._scheduler: BackgroundScheduler | None = None
        self._lock: DispatcherLock | None = None
        self._tick_guard = threading.Lock()

    # ---- submitting ------------------------------------------------------------------------
    def submit(self, kind: JobKind | str, config: dict[str, Any], depends_on: list[int] = (),
               gpus: list[int] | None = None, auto_retry: bool = False, outbound: OutboundPolicy | None = None) -> int:
        """Queue a job and return its id. An invalid config raises JobConfigError naming the
        setting, and is also stored as a failed job so history shows it. `outbound`: the
        operator's policy for URLs and key variables sent by a caller (the app); None for the
        operator's own CLI."""
        kind = parse_kind(kind)
        try:
            if outbound is not None:
                check_config_outbound(config, outbound)
            spec = parse_job_config(kind, config)
            with self.sessions() as session:
                self._check_references(session, spec, list(depends_on), gpus)
        except JobConfigError as error:
            error.job_id = self._store_rejected(kind, config, str(error))
            raise
        depends_on = list(depends_on)
        if isinstance(spec, TrainSpec) and spec.chains_from_job and spec.chains_from_job not in depends_on:
            depends_on.append(spec.chains_from_job)  # train only on a finished generation
        if isinstance(spec, TrainSpec) and spec.setting_from_job and spec.setting_from_job not in depends_on:
            depends_on.append(spec.setting_from_job)  # train only with a finished sweep's choice
        if isinstance(spec, EvaluateSpec):  # evaluate only finished runs
            depends_on += [s.train_job for s in spec.subjects if s.train_job and s.train_job not in depends_on]
        with self.sessions.begin() as session:
            if isinstance(spec, PipelineSpec):
                return self._submit_pipeline(session, spec, depends_on, gpus, auto_retry)
            return new_job(session, self.home, kind, spec.snapshot(), depends_on=depends_on,
                           gpus=gpus, auto_retry=auto_retry).id

    def _check_references(self, session: Session, spec: JobSpec, depends_on: list[int], gpus: list[int] | None) -> None:
        missing = [d for d in depends_on if session.get(Job, d) is None]
        if missing:
            raise JobConfigError(f"depends_on: no job(s) {missing}; list existing job ids (launch.py jobs list).")
        if gpus is not None and (not isinstance(gpus, list) or not all(isinstance(g, int) and g >= 0 for g in gpus)):
            raise JobConfigError(f"gpus={gpus!r} is not valid: give a list of GPU indices such as [0, 1], or none.")
        if gpus and len(gpus) > 1 and isinstance(spec, (GenerateSpec, EvaluateSpec)):
            raise JobConfigError(f"gpus={gpus}: generate and evaluate jobs decode on one GPU; give one index "
                                 "(several GPUs speed up training jobs only).")
        if isinstance(spec, PipelineSpec):
            spec = spec.train
        if isinstance(spec, EvaluateSpec):
            for subject in spec.subjects:
                source = session.get(Job, subject.train_job) if subject.train_job else None
                if subject.train_job and (source is None or source.kind is not JobKind.TRAIN):
                    raise JobConfigError(f"evaluate config: subject {subject.label!r}: train_job={subject.train_job} "
                                         "is not a training job (launch.py jobs list shows the ids).")
        if isinstance(spec, TrainSpec):
            if spec.chain_dataset_id and session.get(ChainDataset, spec.chain_dataset_id) is None:
                raise JobConfigError(f"train config: chain_dataset_id={spec.chain_dataset_id} does not exist.")
            source = session.get(Job, spec.chains_from_job) if spec.chains_from_job else None
            if spec.chains_from_job and (source is None or source.kind is not JobKind.GENERATE):
                raise JobConfigError(f"train config: chains_from_job={spec.chains_from_job} is not a generate job.")
            sweep = session.get(Job, spec.setting_from_job) if spec.setting_from_job else None
            if spec.setting_from_job and (sweep is None or not (sweep.config or {}).get("sweep")):
                raise JobConfigError(f"train config: setting_from_job={spec.setting_from_job} is not a sweep job "
                                     "(a train job with a sweep section).")

    def _store_rejected(self, kind: JobKind, config: Any, error: str) -> int:
        snapshot = json.loads(json.dumps(config, default=str)) if config is not None else {}
        with self.sessions.begin() as session:
            job = new_job(session, self.home, kind, snapshot if isinstance(snapshot, dict) else {"value": snapshot},
                          status=JobStatus.FAILED, error=f"Invalid config: {error}")
            job.message = REJECTED_AT_SUBMIT
            return job.id

    def _submit_pipeline(self, session: Session, spec: PipelineSpec, depends_on: list[int],
                         gpus: list[int] | None, auto_retry: bool) -> int:
        """generate (optional) -> one train job per method -> evaluate (optional), under a parent
        pipeline job that succeeds when every stage has."""
        def job(kind: JobKind, config: dict, after: list[int]) -> int:
            devices = gpus if kind is JobKind.TRAIN or not gpus else gpus[:1]  # only training spans GPUs
            return new_job(session, self.home, kind, config, depends_on=after, gpus=devices, auto_retry=auto_retry).id

        stages: dict[str, int] = {}
        train = spec.train.snapshot()
        if spec.generate is not None:
            stages["generate"] = job(JobKind.GENERATE, spec.generate.snapshot(), depends_on)
            train["chains_from_job"] = stages["generate"]
        after = [stages["generate"]] if spec.generate is not None else depends_on
        if spec.sweep is not None:  # one run per value first; each method then trains with the value it kept
            sweep = {**train, "mote": {**train["mote"], "method": spec.sweep.method.value}, "sweep": spec.sweep.to_dict()}
            if train.get("out"):
                sweep["out"] = str(Path(train["out"]) / "sweep")
            stages["sweep"] = job(JobKind.TRAIN, sweep, after)
            train, after = {**train, "setting_from_job": stages["sweep"]}, [stages["sweep"]]
        for method in spec.methods:
            config = {**train, "mote": {**train["mote"], "method": method}}
            if train.get("out"):
                config["out"] = str(Path(train["out"]) / method)
            stages["train" if len(spec.methods) == 1 else f"train:{method}"] = job(JobKind.TRAIN, config, after)
        if spec.evaluate is not None:
            runs = [{"label": name.split(":", 1)[-1] if ":" in name else spec.methods[0], "train_job": job_id}
                    for name, job_id in stages.items() if name.startswith("train")]
            base = [{"label": "base", "base": spec.train.mote.model}] if spec.include_base else []
            base += [{"label": f"prompt:{pipeline}:base", "base": spec.train.mote.model, "prompting": pipeline}
                     for pipeline in spec.prompting]
            config = {**spec.evaluate.snapshot(), "subjects": base + runs, "sweep_from_job": stages.get("sweep")}
            stages["evaluate"] = job(JobKind.EVALUATE, config, [r["train_job"] for r in runs] or after)
        return new_job(session, self.home, JobKind.PIPELINE, {**spec.snapshot(), "stages": stages},
                       depends_on=list(stages.values())).id

    # ---- controlling -----------------------------------------------------------------------
    def cancel(self, job_id: int) -> JobStatus:
        """Queued (or interrupted): cancelled at once. Running: SIGTERM now (the worker saves a
        checkpoint and stops), SIGKILL after the grace period; the reaper records the end. The
        signal goes out only after the cancel request is committed, so a worker that exits at once
        is never read by the reaper as having vanished without a cancel."""
        to_signal: list[tuple[int, int]] = []
        with self.sessions.begin() as session:
            job = self._get(session, job_id)
            if job.kind is JobKind.PIPELINE and job.status is JobStatus.QUEUED:
                for stage in pipeline_stages(job):
                    latest = latest_attempt(session, stage)
                    if latest is not None and latest.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                        self._cancel_one(latest, to_signal)
            status = self._cancel_one(job, to_signal)
        for pid, running_id in to_signal:
            signal_group(pid, signal.SIGTERM)
            self.dispatcher.terminated.add(running_id)
        return status

    def _cancel_one(self, job: Job, to_signal: list[tuple[int, int]]) -> JobStatus:
        if job.status in (JobStatus.QUEUED, JobStatus.INTERRUPTED):
            mark_cancelled(job, "cancelled by the user" + (" before it started" if job.status is JobStatus.QUEUED else ""))
        elif job.status is JobStatus.RUNNING:
            job.cancel_requested, job.cancel_requested_at = True, job.cancel_requested_at or utcnow()
            job.message = "cancelling: saving progress"
            if job.host == self.dispatcher.host and is_our_worker(job.pid, job.id):
                to_signal.append((job.pid, job.id))
        else:
            raise ValueError(f"Job {job.id} already {job.status.value}; there is nothing to cancel.")
        return job.status

    def retry(self, job_id: int) -> int:
        """A new job (retry_of=job_id) that resumes the failed, cancelled or interrupted one."""
        with self.sessions.begin() as session:
            job = self._get(session, job_id)
            if job.kind is not JobKind.PIPELINE:
                return create_retry(session, self.home, job).id
            stages = {}
            for name, stage_id in (job.config.get("stages") or {}).items():
                latest = latest_attempt(session, stage_id)
                unfinished = latest.status in (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)
                stages[name] = create_retry(session, self.home, latest).id if unfinished else latest.id
            retry = create_retry(session, self.home, job)
            retry.config = {**job.config, "stages": stages}
            return retry.id

    def recover(self) -> list[int]:
        return self.dispatcher.recover()

    def settle_unattended(self) -> list[int]:
        """While no dispatcher runs (the --detach path, the app stopped), end the running jobs of
        this host whose worker is gone, so list, show, retry, cancel and logs --follow see the truth
        instead of 'running' for ever. Returns the ids it ended; does nothing under a dispatcher."""
        if self.running or dispatcher_pid(self.home) is not None:
            return []
        return self.dispatcher.recover(starting_grace=timedelta(seconds=STARTING_GRACE_S))

    def dispatch(self) -> list[int]:
        return self.dispatcher.dispatch()

    def reap(self) -> list[int]:
        return self.dispatcher.reap()

    def tick(self) -> None:
        """Reap, then dispatch; ticks never overlap, and an error is logged, not raised."""
        if not self._tick_guard.acquire(blocking=False):
            return
        try:
            self.reap()
            self.dispatch()
        except Exception:
            log.exception("job queue tick failed; trying again next tick")
        finally:
            self._tick_guard.release()

    def get(self, job_id: int) -> Job:
        with self.sessions() as session:
            return self._get(session, job_id)

    @staticmethod
    def _get(session: Session, job_id: int) -> Job:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"There is no job {job_id}: see `launch.py jobs list` for ids.")
        return job

    # ---- running ---------------------------------------------------------------------------
    def start(self, *, lock: bool = True, beside_app: bool = False) -> None:
        """Recover after a restart, then tick every `tick_seconds` in a background thread.
        `beside_app`: the app serves pages from this process, so CPU jobs leave it a core."""
        if self._scheduler is not None:
            return
        if beside_app:
            self.settings.priority = replace(self.settings.priority, beside_app=True)
        if lock:
            self._lock = DispatcherLock(self.home)
            self._lock.acquire()
        self.recover()
        self._scheduler = BackgroundScheduler(daemon=True)
        self._scheduler.add_job(self.tick, "interval", seconds=self.tick_seconds, max_instances=1,
                                coalesce=True, next_run_time=utcnow_local())
        self._scheduler.start()

    def shutdown(self, wait: bool = False) -> None:
        """Stop ticking; queued jobs stay queued and running workers keep running."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=wait)
            self._scheduler = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def running(self) -> bool:
        return self._scheduler is not None


def utcnow_local():
    """APScheduler wants an aware or local time for the first run: now."""
    from datetime import datetime

    return datetime.now().astimezone()
