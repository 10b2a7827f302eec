"""The evaluate job in a worker: check judges, answer, judge, summarise — storing as it goes.

Why this order: judges are built and checked (a request to an endpoint, a model load) before
the first answer, so a wrong URL, key or path fails in seconds, not after an hour of
generation. Every answer and verdict is stored the moment it exists (eval_answers,
judgements), so a cancelled or crashed evaluation resumes where it stopped. Subjects are loaded
one at a time and released before the next, so several models never share memory.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.decoding.subject_ref import PromptingPipeline, SubjectRef
from core.synthesis.prompting_subject import load_any_subject
from core.evaluation.runner import EvalSettings, PlannedPrompt, answer_prompts, judge_answers, plan_prompts
from core.evaluation.summary import EvaluationSummary, summarise
from core.evaluation.types import Answer, Aspect, Judge, Verdict
from core.progress import announce, labelled, shifted
from jobs.context import Outcome, WorkerContext
from jobs.evaluate_spec import EvaluateSpec, SubjectSpec, parse_evaluate
from jobs.lifecycle import root_job_id
from jobs.records import EvalAnswer, Evaluation, Judgement, TrainingRun
from jobs.reporting import JobProgress
from jobs.results import upsert


def subject_source(session: Session, subject: SubjectSpec) -> tuple[str, int | None]:
    """What core.synthesis.prompting_subject.load_any_subject takes ('base:<model>', a run folder,
    or either behind 'prompt:PIPELINE:') and the run row id."""
    source, run_id = _plain_source(session, subject)
    if subject.prompting:
        source = str(SubjectRef.prompt(PromptingPipeline(subject.prompting), SubjectRef.parse(source)))
    return source, run_id


def _plain_source(session: Session, subject: SubjectSpec) -> tuple[str, int | None]:
    if subject.base:
        return f"base:{subject.base}", None
    if subject.run:
        run = session.scalars(select(TrainingRun).where(TrainingRun.run_dir == subject.run)).first()
        return subject.run, run.id if run else None
    root = root_job_id(session, subject.train_job)
    run = session.scalars(select(TrainingRun).where(TrainingRun.job_id == root)).first()
    if run is None or not run.export_path:
        raise ValueError(f"Subject {subject.label!r}: training job {subject.train_job} has no finished run; "
                         f"retry it (launch.py jobs retry {subject.train_job}) before evaluating.")
    return run.run_dir, run.id


def evaluation_row(session: Session, job_id: int, subject: SubjectSpec, run_id: int | None, spec: EvaluateSpec,
                   rubrics: dict[str, Any] | None = None) -> int:
    """The Evaluation row of (root job, subject); a retried job finds the one it started.
    `rubrics` records each LLM judge's rubric versions and hashes, so a score can be traced to
    the exact prompt that produced it."""
    row = session.scalars(select(Evaluation).where(Evaluation.job_id == job_id, Evaluation.subject == subject.label)).first()
    if row is None:
        row = Evaluation(job_id=job_id, run_id=run_id, subject=subject.label, run_config=subject.snapshot(),
                         question_sets=list(spec.settings.get("sets") or []),
                         judge_config={"judges": spec.judges, "rubrics": rubrics or {}})
        session.add(row)
        session.flush()
    return row.id


def stored_answers(session: Session, evaluation_id: int) -> list[Answer]:
    rows = session.scalars(select(EvalAnswer).where(EvalAnswer.evaluation_id == evaluation_id).order_by(EvalAnswer.id))
    return [Answer(**row.record) for row in rows]


def stored_verdicts(session: Session, evaluation_id: int) -> list[Verdict]:
    rows = session.scalars(select(Judgement).where(Judgement.evaluation_id == evaluation_id).order_by(Judgement.id))
    return [Verdict(r.sample_id, Aspect(r.aspect), r.judge, r.score, r.raw_output, r.attempts, r.heuristic) for r in rows]


def reuse_answers(session: Session, source_job: int, label: str, evaluation_id: int, wanted: set[str]) -> int:
    """Copy the answers evaluate job `source_job` stored for subject `label` (those in `wanted`
    and not stored here yet) into this evaluation; returns how many were copied."""
    root = root_job_id(session, source_job)
    source = session.scalars(select(Evaluation).where(Evaluation.job_id == root, Evaluation.subject == label)).first()
    if source is None:
        labels = session.scalars(select(Evaluation.subject).where(Evaluation.job_id == root)).all()
        raise ValueError(f"answers_from={source_job}: that job stored no answers for subject {label!r} "
                         f"(it has {sorted(labels) or 'none'}): use the same subject labels, or drop answers_from.")
    have = set(session.scalars(select(EvalAnswer.sample_id).where(EvalAnswer.evaluation_id == evaluation_id)))
    copied = 0
    for row in session.scalars(select(EvalAnswer).where(EvalAnswer.evaluation_id == source.id).order_by(EvalAnswer.id)):
        if row.sample_id in wanted and row.sample_id not in have:
            session.add(EvalAnswer(evaluation_id=evaluation_id, sample_id=row.sample_id, record=dict(row.record)))
            copied += 1
    return copied


class AnswerStore:
    """Sink for answers and verdicts of one Evaluation row."""

    def __init__(self, sessions: sessionmaker[Session], evaluation_id: int) -> None:
        self.sessions, self.evaluation_id = sessions, evaluation_id

    def add_answer(self, answer: Answer) -> None:
        with self.sessions.begin() as session:
            upsert(session, EvalAnswer, {"evaluation_id": self.evaluation_id, "sample_id": answer.sample_id,
                                         "record": answer.to_dict()}, ["evaluation_id", "sample_id"], ["record"])

    def add_verdicts(self, verdicts: list[Verdict]) -> None:
        with self.sessions.begin() as session:
            for v in verdicts:
                values = {"evaluation_id": self.evaluation_id, "sample_id": v.sample_id,
                          "question_id": v.sample_id.split("@", 1)[0], "aspect": v.aspect.value, "judge": v.judge,
                          "raw_output": v.raw_output, "score": v.score, "attempts": v.attempts, "heuristic": v.heuristic}
                upsert(session, Judgement, values, ["evaluation_id", "sample_id", "aspect", "judge"],
                       ["raw_output", "score", "attempts", "heuristic"])


def build_judges(spec: EvaluateSpec, home: Path, say) -> list[Judge]:
    """Every judge, checked for real before any answer is generated."""
    from core.evaluation.judge_config import JudgeConfig, build_checked_judge

    judges = []
    for index, record in enumerate(spec.judges):
        config = JudgeConfig.from_dict(dict(record))
        say(f"Checking judge {index + 1}/{len(spec.judges)} ({config.kind.value}) ...")
        try:
            judges.append(build_checked_judge(config, home=home))
        except Exception as error:
            raise ValueError(f"Judge {index + 1} ({config.kind.value}) cannot be used: {error}") from error
    return judges


@dataclass
class EvaluationPlan:
    """Everything the phases of one evaluate job share, prepared once."""

    spec: EvaluateSpec
    settings: EvalSettings
    out: Path
    judges: list[Judge]
    prompts: list[PlannedPrompt]
    sources: list[tuple[SubjectSpec, str, int | None]]
    """Each subject, the spec core.synthesis.prompting_subject.load_any_subject takes, and its run row id."""
    stores: dict[str, AnswerStore]
    progress: JobProgress

    def judging_units(self, judge: Judge) -> int:
        """Bar units of one judge's pass over one subject's answers: none for a string matcher
        (it takes a moment), else one per answer and aspect, about the cost of an answer."""
        return 0 if judge.heuristic else len(self.prompts) * len(judge.aspects)

    @property
    def bar_units(self) -> int:
        """The whole job on one bar: every subject's answers, then every judge's passes, so the
        bar and its ETA run once from 0 to 1 instead of restarting for each judging pass."""
        return len(self.sources) * (len(self.prompts) + sum(self.judging_units(j) for j in self.judges))


def run_evaluate(ctx: WorkerContext) -> Outcome:
    """Worker runner for JobKind.EVALUATE: prepare, answer, judge, summarise (one function each)."""
    plan = prepare_evaluation(ctx)
    return answer_phase(ctx, plan) or judge_phase(ctx, plan) or summarise_phase(ctx, plan)


def prepare_evaluation(ctx: WorkerContext) -> EvaluationPlan:
    """Parse the spec, check every judge for real, plan the prompts and open one store per subject."""
    spec = parse_evaluate(ctx.job.config)
    settings = EvalSettings(**spec.settings)
    out = Path(spec.out or Path(ctx.job.run_dir) / "report")
    progress = JobProgress(ctx.sessions, ctx.job.id)
    announce(progress, f"checking {len(spec.judges)} judge(s)")
    judges = build_judges(spec, ctx.home, ctx.say)
    prompts = plan_prompts(settings)
    with ctx.sessions.begin() as session:
        root = root_job_id(session, ctx.job.id)
        sources = [(subject, *subject_source(session, subject)) for subject in spec.subjects]
        rubrics = {j.id: j.rubric_versions for j in judges if hasattr(j, "rubric_versions")}
        stores = {s.label: AnswerStore(ctx.sessions, evaluation_row(session, root, s, run_id, spec, rubrics))
                  for s, _, run_id in sources}
    if spec.answers_from is not None:
        wanted = {prompt.sample_id for prompt in prompts}
        with ctx.sessions.begin() as session:
            for subject, _, _ in sources:
                copied = reuse_answers(session, spec.answers_from, subject.label, stores[subject.label].evaluation_id, wanted)
                ctx.say(f"[{subject.label}] reused {copied} stored answers of evaluate job {spec.answers_from}")
    ctx.say(f"Evaluating {len(sources)} subject(s) on {len(prompts)} prompts each with judges {[j.id for j in judges]}")
    return EvaluationPlan(spec, settings, out, judges, prompts, sources, stores, progress)


def answer_phase(ctx: WorkerContext, plan: EvaluationPlan) -> Outcome | None:
    """Each subject answers the prompts it has not answered yet; an Outcome only when stopped."""
    for position, (subject, source, _) in enumerate(plan.sources):
        store = plan.stores[subject.label]
        with ctx.sessions() as session:
            done = {a.sample_id for a in stored_answers(session, store.evaluation_id)}
        if len(done) >= len(plan.prompts):
            continue
        ctx.say(f"[{subject.label}] loading {source}; {len(done)}/{len(plan.prompts)} answers stored")
        report = labelled(shifted(plan.progress, position * len(plan.prompts), plan.bar_units), subject.label)
        announce(report, f"loading subject {source}")
        model = load_any_subject(source, home=ctx.home, say=ctx.say)
        stopped = answer_prompts(model, plan.prompts, plan.settings, done=done, on_answer=store.add_answer,
                                 should_stop=ctx.stop, progress=report)
        del model
        gc.collect()
        if stopped:
            return Outcome(True, f"stopped while answering as {subject.label}; answers so far are stored")
    return None


def judge_phase(ctx: WorkerContext, plan: EvaluationPlan) -> Outcome | None:
    """Every judge scores every stored answer it has not scored yet; an Outcome only when stopped."""
    before = len(plan.prompts) * len(plan.sources)
    for judge in plan.judges:
        for subject, _, _ in plan.sources:
            store = plan.stores[subject.label]
            with ctx.sessions() as session:
                answers = stored_answers(session, store.evaluation_id)
                done = {(v.sample_id, v.aspect.value) for v in stored_verdicts(session, store.evaluation_id) if v.judge == judge.id}
            ctx.say(f"[{subject.label}] judging with {judge.id}")
            width = plan.judging_units(judge)
            report = labelled(shifted(plan.progress, before, plan.bar_units, width=width), subject.label)
            if judge_answers(judge, answers, done=done, on_verdicts=store.add_verdicts, should_stop=ctx.stop,
                             progress=report):
                return Outcome(True, "stopped while judging; verdicts so far are stored")
            before += width
    return None


def summarise_phase(ctx: WorkerContext, plan: EvaluationPlan) -> Outcome:
    """Metric tables, comparisons, charts and agreement from the stored answers and verdicts."""
    announce(plan.progress, "writing the report")
    answers: dict[str, list[Answer]] = {}
    verdicts: dict[str, list[Verdict]] = {}
    with ctx.sessions() as session:
        for subject, _, _ in plan.sources:
            evaluation_id = plan.stores[subject.label].evaluation_id
            answers[subject.label] = stored_answers(session, evaluation_id)
            verdicts[subject.label] = stored_verdicts(session, evaluation_id)
    sweep = None
    if plan.spec.sweep_from_job is not None:  # a study's sweep: its held-out losses open the report
        from core.training.sweep import SweepResult
        from jobs.sweep_job import sweep_folder

        with ctx.sessions() as session:
            sweep = SweepResult.load(sweep_folder(session, plan.spec.sweep_from_job))
    summary = summarise(answers, verdicts, plan.judges, plan.out, resamples=plan.settings.resamples,
                        seed=plan.settings.seed, sweep=sweep)
    _store_summary(ctx.sessions, plan.stores, summary)
    ctx.say(summary.markdown)
    unparsable = sum(1 for items in verdicts.values() for v in items if v.score is None)
    return Outcome(False, f"{len(plan.sources)} subject(s) x {len(plan.prompts)} prompts judged; report in {plan.out}"
                          + (f"; {unparsable} verdicts unparsable (excluded, counted in the report)" if unparsable else ""))


def _store_summary(sessions: sessionmaker[Session], stores: dict[str, AnswerStore], summary: EvaluationSummary) -> None:
    with sessions.begin() as session:
        for label, store in stores.items():
            row = session.get(Evaluation, store.evaluation_id)
            row.summary = {"tables": {judge: tables[label].to_dict() for judge, tables in summary.tables.items()},
                           "files": summary.files, "headline": summary.to_dict()["headline"],
                           "sweep": summary.sweep.to_dict() if summary.sweep else None}
