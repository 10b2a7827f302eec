"""A study's sweep stage in a worker, and how the methods' training jobs use its choice.

Why a train job with a `sweep` section rather than a new job kind: a sweep is training (same
chains, same queue rules, same run folders and progress), only repeated per value and followed
by a measurement. Each value trains in its own folder under the job's run folder
(`value-<i>/`, a TrainingRun row each, so its loss curve shows like any run); a finished value
leaves `heldout.json` there, so a cancelled or interrupted sweep resumes at the value it was
training. The result, every value's held-out loss and the value kept, is `sweep.json` in the
job's folder: the methods' training jobs read their setting from it, and the study's report
shows it (jobs/evaluation_job.py).
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from core.config import MoteConfig
from core.progress import labelled, no_progress
from core.training.sweep import SweepResult, SweepSettings, run_trial, stored_trial, with_setting
from jobs.context import Outcome, WorkerContext
from jobs.lifecycle import latest_attempt, root_job_id
from jobs.records import Job, JobKind, TrainingRun
from jobs.reporting import JobProgress, TrainingReporter
from jobs.results import run_for_dir


def run_sweep(ctx: WorkerContext, mote: MoteConfig, sweep: SweepSettings, chains: list) -> Outcome:
    """Train `sweep.method` once per value on the chains minus the held-out slice, measure each
    run's held-out loss, and store them all with the value kept (sweep.json)."""
    from core.training.heldout import split_holdout

    split = split_holdout(chains, sweep.holdout, sweep.seed)
    run_dir = Path(ctx.job.run_dir)
    ctx.say(f"Sweep of {sweep.setting.value} over {list(sweep.values)} with {sweep.method.value}: "
            f"training on {len(split.train)} chains, held-out loss on {len(split.heldout)} (seed {sweep.seed})")
    trials = []
    for index, value in enumerate(sweep.values):
        folder = run_dir / f"value-{index}"
        trial = stored_trial(folder)
        if trial is None:
            trial = _train_value(ctx, mote, sweep, value, split, folder)
            if trial is None:
                return Outcome(True, f"stopped while training {sweep.setting.value}={value:g}; finished values are kept")
        ctx.say(f"{sweep.setting.value}={value:g}: held-out loss {trial.heldout_loss:.4f} after {trial.steps} steps")
        trials.append(trial)
    result = SweepResult(sweep, tuple(trials), len(split.train), len(split.heldout), tuple(str(c.id) for c in split.heldout))
    if ctx.is_main:
        result.save(run_dir)
    ctx.say(result.to_markdown())
    return Outcome(False, f"kept {sweep.setting.value}={result.chosen.value:g} "
                          f"(held-out loss {result.chosen.heldout_loss:.4f}) of {list(sweep.values)}")


def _train_value(ctx: WorkerContext, mote: MoteConfig, sweep: SweepSettings, value: float, split, folder: Path):
    """One value's run, recorded as a TrainingRun row of this job so its loss curve shows."""
    from core.training.recipe import EXPORT_DIR  # loads torch: only in the worker that trains
    config = with_setting(mote, sweep.setting, value)
    reporter = None
    if ctx.is_main:
        with ctx.sessions.begin() as session:
            run_id = run_for_dir(session, root_job_id(session, ctx.job.id), folder, config.method.value, config.model)
        reporter = TrainingReporter(ctx.sessions, ctx.job.id, run_id, folder)
    ctx.say(f"Training {sweep.method.value} with {sweep.setting.value}={value:g} into {folder}")
    progress = labelled(JobProgress(ctx.sessions, ctx.job.id), f"{sweep.setting.value}={value:g}") if ctx.is_main else no_progress
    trial = run_trial(mote, sweep.setting, value, split, folder, home=ctx.home, should_stop=ctx.stop,
                      reporter=reporter, say=ctx.say, progress=progress)
    if reporter is not None:
        reporter.close()
        with ctx.sessions.begin() as session:
            row = session.get(TrainingRun, run_id)
            if trial is not None:
                row.final_step = row.total_steps = trial.steps
                row.export_path = str(folder / EXPORT_DIR) if (folder / EXPORT_DIR).is_dir() else None
    return trial


def sweep_folder(session: Session, sweep_job: int) -> Path:
    """The run folder of a sweep job's latest attempt (a retry writes its own)."""
    job = latest_attempt(session, sweep_job) or session.get(Job, sweep_job)
    if job is None or job.kind is not JobKind.TRAIN or not (job.config or {}).get("sweep"):
        raise ValueError(f"Job {sweep_job} is not a sweep job (a train job with a sweep section): "
                         "check setting_from_job / sweep_from_job.")
    return Path(job.run_dir)


def chosen_config(session: Session, mote: MoteConfig, sweep_job: int) -> tuple[MoteConfig, SweepResult]:
    """`mote` with the setting the sweep job kept (its sweep.json), and that sweep's result."""
    result = SweepResult.load(sweep_folder(session, sweep_job))
    return with_setting(mote, result.settings.setting, result.chosen.value), result
