"""One job in one process: `python -m jobs.worker JOB_ID --db URL [--home DIR]`.

Why a process per job: a cancel can end it, a crash cannot take the UI down, and the GPU
memory is returned when it exits. The worker loads its job row, marks it running, runs the core
function for the job's kind with database-backed progress, sinks and stop check, and writes the
final status itself (succeeded / cancelled / failed with the traceback's tail). If it dies
without doing so (kill -9, power loss), the dispatcher's reaper finds the row still running and
marks it interrupted. Under `accelerate launch` every rank runs this; only rank 0 writes rows.
First of all it lowers its own CPU priority (jobs.priority), so the app's pages stay quick.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.progress import announce, no_progress
from core.training.process_group import close_process_group, exit_process
from jobs.context import ExitCode, Outcome, WorkerContext
from jobs.db import DATABASE_ENV, make_engine, session_factory
from jobs.evaluation_job import run_evaluate
from jobs.lifecycle import root_job_id
from jobs.priority import lower_own_priority
from jobs.records import ChainDataset, Job, JobKind, JobStatus, TrainingRun, utcnow
from jobs.reporting import JobProgress, StopCheck, TrainingReporter, model_loading_status
from jobs.results import chain_records, dataset_for_job, run_for_dir, store_question_set
from jobs.sweep_job import chosen_config, run_sweep

if TYPE_CHECKING:
    from core.config import GenerateConfig

TRACEBACK_LINES = 15
#: Checker choices that load no model of their own (core.synthesis.generators.build_checker).
CHECKERS_WITHOUT_LOADING = frozenset({"text", "self", "openai"})


def _store_question_set_once(sessions: sessionmaker[Session], name: str, source: str, questions: list) -> int:
    """Store a question-set snapshot; when another worker stored the same set a moment before
    (a unique-constraint race between two jobs starting together), use that one."""
    try:
        with sessions.begin() as session:
            return store_question_set(session, name, source, questions)
    except IntegrityError:
        with sessions.begin() as session:
            return store_question_set(session, name, source, questions)


def load_training_chains(session: Session, config: dict) -> list:
    """The chains a train job learns from; flagged chains only where their dataset chose keep."""
    from core.data.chain_store import is_trainable

    chains = _stored_training_chains(session, config)
    if config.get("extra_chains"):  # e.g. the shipped chains beside a pipeline's freshly generated ones
        from core.data.chains import load_chains_jsonl

        chains = chains + load_chains_jsonl(config["extra_chains"])
    trainable = [chain for chain in chains if is_trainable(chain.meta)]
    if not trainable:
        raise ValueError(f"All {len(chains)} chains are flagged unsafe (or dropped): regenerate the dataset, "
                         "or generate with flagged_policy='keep' to train on flagged chains on purpose.")
    return trainable


def _stored_training_chains(session: Session, config: dict) -> list:
    from core.data.chains import bundled_sample_chains_path, chain_from_dict, load_chains_jsonl

    if config.get("chains"):
        return load_chains_jsonl(config["chains"])
    dataset_id = config.get("chain_dataset_id")
    if config.get("chains_from_job"):
        root = root_job_id(session, config["chains_from_job"])
        dataset_id = session.scalar(select(ChainDataset.id).where(ChainDataset.job_id == root))
        if dataset_id is None:
            raise ValueError(f"Job {config['chains_from_job']} stored no chain dataset: run that generate job first.")
    if dataset_id is None:
        return load_chains_jsonl(bundled_sample_chains_path())
    records = chain_records(session, dataset_id)
    if not records:
        raise ValueError(f"Chain dataset {dataset_id} has no kept chains: generate chains into it first.")
    return [chain_from_dict(r, f"dataset {dataset_id} chain {r.get('id')}") for r in records]


def run_train(ctx: WorkerContext) -> Outcome:
    from core.training.recipe import EXPORT_DIR, run_training, setup_run
    from jobs.specs import parse_train

    spec = parse_train(ctx.job.config)
    run_dir = Path(ctx.job.run_dir)
    if spec.sweep is not None:
        with ctx.sessions() as session:
            chains = load_training_chains(session, ctx.job.config)
        return run_sweep(ctx, spec.mote, spec.sweep, chains)
    with ctx.sessions.begin() as session:
        chains = load_training_chains(session, ctx.job.config)
        if spec.setting_from_job is not None:
            spec.mote, sweep = chosen_config(session, spec.mote, spec.setting_from_job)
            ctx.say(f"Training with {sweep.settings.setting.value}={sweep.chosen.value:g}, the value sweep job "
                    f"{spec.setting_from_job} kept (lowest held-out loss of {list(sweep.settings.values)})")
        run_id = run_for_dir(session, root_job_id(session, ctx.job.id), run_dir, spec.mote.method.value, spec.mote.model)
    ctx.say(f"Training {spec.mote.method.value} on {len(chains)} chains with {spec.mote.model}; run folder {run_dir}")
    progress = JobProgress(ctx.sessions, ctx.job.id) if ctx.is_main else no_progress
    announce(progress, model_loading_status(spec.mote.model, ctx.home))
    setup = setup_run(spec.mote, chains, home=ctx.home, say=ctx.say)
    reporter = TrainingReporter(ctx.sessions, ctx.job.id, run_id, run_dir) if ctx.is_main else None
    result = run_training(setup, run_dir, resume=True, reporter=reporter, should_stop=ctx.stop, say=ctx.say,
                          progress=progress)
    if reporter is not None:
        reporter.close()
        with ctx.sessions.begin() as session:
            run = session.get(TrainingRun, run_id)
            run.total_steps, run.final_step = result.total_steps, result.steps
            if not result.stopped and (run_dir / EXPORT_DIR).is_dir():
                run.export_path = str(run_dir / EXPORT_DIR)
    loss = f", final loss {result.losses[-1]:.4f}" if result.losses else ""
    return Outcome(result.stopped, f"{result.steps}/{result.total_steps} steps{loss}")


def run_generate(ctx: WorkerContext) -> Outcome:
    from core.data.chain_store import JsonlChainSink
    from core.synthesis.pipeline import generate_chains
    from core.synthesis.generators import build_checker, build_generator
    from core.synthesis.prompts import load_prompt_set
    from core.data.questions import load_question_set
    from jobs.sinks import DatabaseChainSink, MirroredChainSink
    from jobs.specs import parse_generate

    spec = parse_generate(ctx.job.config)
    run_dir = Path(ctx.job.run_dir)
    report = load_question_set(spec.questions)
    if report.rejected:
        ctx.say(report.summary())
    set_name = Path(spec.questions).stem
    set_id = _store_question_set_once(ctx.sessions, set_name, spec.questions, report.questions)
    with ctx.sessions.begin() as session:
        root = root_job_id(session, ctx.job.id)
        dataset_id = dataset_for_job(session, root, spec.dataset_name or f"job-{root}-{set_name}", run_dir, set_id)
    sink = MirroredChainSink(DatabaseChainSink(ctx.sessions, dataset_id), JsonlChainSink(run_dir))
    sink.backfill()
    done = sink.done_ids() & {q.id for q in report.questions}
    limit = max(0, spec.limit - len(done)) if spec.limit is not None else None  # a retry finishes the limit
    prompts = load_prompt_set(spec.generate.prompts_dir)
    progress = JobProgress(ctx.sessions, ctx.job.id)
    announce(progress, _generator_status(spec.generate, spec.model, ctx.home))
    generator = build_generator(spec.generate, spec.model, home=ctx.home, say=ctx.say)
    if spec.generate.checker not in CHECKERS_WITHOUT_LOADING:
        announce(progress, f"loading checker: {model_loading_status(spec.generate.checker, ctx.home)}")
    checker = build_checker(spec.generate, generator, prompts, home=ctx.home, say=ctx.say)
    todo = len(report.questions) - len(done) if limit is None else min(limit, len(report.questions) - len(done))
    ctx.say(f"Generating chains for {todo} of the {len(report.questions)} questions of {set_name} "
            f"({len(done)} done before) with {generator.id}")
    summary = generate_chains(report.questions, generator, spec.generate, prompts, sink, checker=checker,
                              progress=progress, should_stop=ctx.stop, limit=limit)
    _report_quality(ctx, dataset_id, run_dir)
    return Outcome(summary.stopped, f"{summary.written} chains written, {summary.skipped_done} already done")


def _generator_status(config: GenerateConfig, model: str, home: Path) -> str:
    """The status line while the generate job's text generator gets ready."""
    if config.generator == "openai":
        return f"connecting to {config.endpoint_model} at {config.endpoint_url}"
    return model_loading_status(model if config.generator == "self" else config.generator, home)


def _report_quality(ctx: WorkerContext, dataset_id: int, run_dir: Path) -> None:
    """Print the dataset's data-quality report and store it beside its chains (quality.json/.md),
    so a user sees whether the data teaches safety before spending time on training."""
    import json

    from jobs.results import dataset_quality

    with ctx.sessions() as session:
        quality = dataset_quality(session, dataset_id)
    ctx.say(quality.to_markdown())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "quality.md").write_text(quality.to_markdown() + "\n", encoding="utf-8")
    (run_dir / "quality.json").write_text(json.dumps(quality.to_dict(), indent=2), encoding="utf-8")


RUNNERS: dict[JobKind, Callable[[WorkerContext], Outcome]] = {
    JobKind.TRAIN: run_train, JobKind.GENERATE: run_generate, JobKind.EVALUATE: run_evaluate}


def claim(sessions: sessionmaker[Session], job_id: int) -> Job:
    """Mark the job running (a job started by hand, still queued, gets this pid)."""
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"There is no job {job_id} in this database: check --db / {DATABASE_ENV}.")
        if job.status is JobStatus.QUEUED:
            job.status, job.pid, job.host = JobStatus.RUNNING, os.getpid(), socket.gethostname()
        elif job.status is not JobStatus.RUNNING:
            raise LookupError(f"Job {job_id} is {job.status.value}; only a queued or running job can run. "
                              f"Use `launch.py jobs retry {job_id}` to run it again.")
        if job.kind not in RUNNERS:
            raise LookupError(f"Job {job_id} is a {job.kind.value} job, which no worker runs.")
        job.started_at = job.started_at or utcnow()
        job.message = "starting"
        return job


def finish(sessions: sessionmaker[Session], job_id: int, status: JobStatus, code: ExitCode, message: str, error: str | None = None) -> None:
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        job.status, job.exit_code, job.finished_at, job.message = status, int(code), utcnow(), message
        job.error = error
        if status is JobStatus.SUCCEEDED:
            job.progress, job.eta_seconds = 1.0, 0.0


def run_job(sessions: sessionmaker[Session], job_id: int, home: Path) -> ExitCode:
    """Run one job to its end and record how it ended; returns the process exit code."""
    is_main = int(os.environ.get("RANK", "0")) == 0
    stop = StopCheck(sessions, job_id)
    previous = {sig: signal.signal(sig, stop.request) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run_job(sessions, job_id, home, stop, is_main)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_job(sessions: sessionmaker[Session], job_id: int, home: Path, stop: StopCheck, is_main: bool) -> ExitCode:
    try:
        job = claim(sessions, job_id) if is_main else sessions().get(Job, job_id)
    except LookupError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return ExitCode.BAD_REQUEST
    ctx = WorkerContext(job, sessions, home, stop, is_main)
    try:
        outcome = RUNNERS[job.kind](ctx)
    except Exception as error:
        tail = "".join(traceback.format_exc().splitlines(keepends=True)[-TRACEBACK_LINES:])
        traceback.print_exc()
        if is_main:
            finish(sessions, job_id, JobStatus.FAILED, ExitCode.FAILED, "failed", f"{type(error).__name__}: {error}\n\nTraceback (last lines):\n{tail}")
        return ExitCode.FAILED
    cancelled = outcome.stopped and (stop.signalled or stop.cancelled)
    status, code = (JobStatus.CANCELLED, ExitCode.CANCELLED) if cancelled else (JobStatus.SUCCEEDED, ExitCode.SUCCEEDED)
    ctx.say(f"Job {job_id} {status.value}: {outcome.summary}")
    if is_main:
        finish(sessions, job_id, status, code, outcome.summary, "cancelled on request; progress was saved" if cancelled else None)
    return code


def main(argv: list[str] | None = None) -> int:
    lower_own_priority()  # before any heavy import or model load: the app's pages come first
    parser = argparse.ArgumentParser(prog="python -m jobs.worker", description="Run one MoTE Studio job.")
    parser.add_argument("job_id", type=int)
    parser.add_argument("--db", help=f"database URL (default: ${DATABASE_ENV})")
    parser.add_argument("--home", help="data directory (default: $MOTE_HOME or ~/.mote-studio)")
    args = parser.parse_args(argv)
    url = args.db or os.environ.get(DATABASE_ENV)
    if not url:
        parser.error(f"pass --db URL or set {DATABASE_ENV}")
    if args.home:  # the dispatcher always passes it: no torch import before the SIGTERM handler
        home = Path(args.home).expanduser()
    else:
        from core.model_source import default_home

        home = default_home()
    engine = make_engine(url)
    try:
        return int(run_job(session_factory(engine), args.job_id, home))
    finally:
        close_process_group()  # a rank of a multi-process job exits without aborting in gloo/NCCL threads
        engine.dispose()


if __name__ == "__main__":
    exit_process(main())  # a rank of a multi-process job leaves without C++ teardown aborts
