"""What a worker reports while core runs: progress and ETA on the job row, per-step metrics and
checkpoints of training, TensorBoard event files, and the stop check core polls.

Why the stop check reads the database too: a cancel may come from another process or machine
(the CLI, the UI on another host) that cannot signal this worker; the flag on the job row
reaches it within a second either way, and SIGTERM from the dispatcher is seen at once.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from core.progress import UNKNOWN_TOTAL
from jobs.records import Job, TrainingRun
from jobs.results import record_metric, sync_checkpoints


@dataclass
class _Pace:
    """Where the ETA is measured from: the first report of the current total in this process."""

    total: int
    done: int
    started: float


class JobProgress:
    """core.progress.Progress on the job row: progress (0..1), ETA and the status line.

    A report with total 0 (core.progress.UNKNOWN_TOTAL: "loading model X") changes only the
    status line, so the bar does not jump back while a later phase gets ready. The ETA counts
    only work done by this process since the current total was first reported (a resumed job
    does not count the work of the run before it; a new phase starts a new estimate)."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int) -> None:
        self.sessions, self.job_id = sessions, job_id
        self._pace: _Pace | None = None

    def values(self, done: int, total: int, what: str) -> dict[str, float | str | None]:
        """The job row's column values for `done` of `total` and the status line `what`."""
        if total == UNKNOWN_TOTAL:
            return {"message": what}
        now = time.monotonic()
        pace = self._pace
        if pace is None or pace.total != total or done < pace.done:
            pace = self._pace = _Pace(total, done, now)
        counted = done - pace.done
        eta = round((now - pace.started) / counted * max(total - done, 0), 1) if counted > 0 else None
        return {"progress": min(1.0, done / max(total, 1)), "eta_seconds": eta, "message": what}

    def update(self, session: Session, done: int, total: int, what: str) -> None:
        session.execute(update(Job).where(Job.id == self.job_id).values(**self.values(done, total, what)))

    def __call__(self, done: int, total: int, what: str) -> None:
        with self.sessions.begin() as session:
            self.update(session, done, total, what)


def model_loading_status(model: str, home: Path) -> str:
    """The status line while `model` loads: the bundled model's one-time conversion takes a
    minute, and a user watching the job should see that rather than a bare "loading"."""
    from core.model_source import MODEL_ALIASES, describe_default_model

    if model.strip().lower() in MODEL_ALIASES and not describe_default_model(home)["converted"]:
        return "converting the bundled model (first run only)"
    return f"loading model {model}"


class StopCheck:
    """core's should_stop: True after SIGTERM or once cancel_requested is set on the job row."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, poll_seconds: float = 1.0) -> None:
        self.sessions, self.job_id, self.poll_seconds = sessions, job_id, poll_seconds
        self.signalled = False
        self.cancelled = False
        self._last_poll = 0.0

    def request(self, *_args) -> None:
        """Signal handler: only sets a flag (core stops at the next step and saves a checkpoint)."""
        self.signalled = True

    def __call__(self) -> bool:
        if self.signalled or self.cancelled:
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.poll_seconds:
            self._last_poll = now
            with self.sessions() as session:
                self.cancelled = bool(session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id)))
        return self.cancelled


def tensorboard_writer(folder: Path):
    """A SummaryWriter when tensorboard is installed, else None (event files are optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(log_dir=str(folder))


class TrainingReporter:
    """core's StepMetricsSink: one Metric row per step (upserted), checkpoint rows as the folders
    appear, a log line and TensorBoard scalars. The job row's bar and status line come from the
    loop's Progress (a JobProgress), like every other job kind's."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, run_id: int, run_dir: Path,
                 say: Callable[[str], None] = lambda text: print(text, flush=True)) -> None:
        """`say` writes a line to the job log (the worker's stdout is the log file)."""
        self.sessions, self.job_id, self.run_id, self.run_dir = sessions, job_id, run_id, Path(run_dir)
        self.say = say
        self._total_known = False
        self.writer = tensorboard_writer(self.run_dir / "tensorboard")

    def on_step(self, step: int, total_steps: int, metrics: dict[str, float]) -> None:
        with self.sessions.begin() as session:
            if not self._total_known:  # the Train tab shows "step k/total" from the first step on
                session.execute(update(TrainingRun).where(TrainingRun.id == self.run_id).values(total_steps=total_steps))
                self._total_known = True
            record_metric(session, self.run_id, self.job_id, step, metrics)
            sync_checkpoints(session, self.run_id, self.run_dir)  # the one saved after the previous step
        rate = f"  lr {metrics['learning_rate']:.2e}" if metrics.get("learning_rate") is not None else ""
        speed = f"  {metrics['tokens_per_second']:.0f} tokens/s" if metrics.get("tokens_per_second") else ""
        self.say(f"step {step}/{total_steps}  loss {metrics['loss']:.4f}{rate}{speed}")
        if self.writer is not None:
            for name in ("loss", "learning_rate", "tokens_per_second"):
                if name in metrics:
                    self.writer.add_scalar(f"train/{name}", metrics[name], step)

    def close(self) -> None:
        with self.sessions.begin() as session:
            sync_checkpoints(session, self.run_id, self.run_dir)
        if self.writer is not None:
            self.writer.close()
