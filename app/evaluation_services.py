"""The evaluation half of the services facade (mixed into app.services.Services).

Why a mixin in its own module: the Evaluate tab's actions (launch an evaluation or the quick
pipeline, read results, compare runs) are one group with one job; keeping them here keeps
services.py small. Long work is always a queued job.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.evaluation_views import (
    EvaluationResult,
    config_diff,
    evaluation_jobs,
    evaluation_result,
    evaluation_samples,
    loss_curves,
)
from jobs.pipelines import pipeline_config
from jobs.records import Job, JobKind, JobStatus

EVAL_SET_PREFIX = "eval_"
JOB_PREFIX = "job:"
BASE_PREFIX = "base:"


class EvaluationServices:
    """Needs `queue`, `sessions`, `questions`, `default_model` and `outbound` from Services."""

    def evaluation_subjects(self) -> list[tuple[str, str]]:
        """(label, spec): the default base model, then every succeeded training job."""
        with self.sessions() as session:
            jobs = list(session.scalars(select(Job).where(Job.kind == JobKind.TRAIN, Job.status == JobStatus.SUCCEEDED)
                                        .order_by(Job.id.desc())))
        bases = list(dict.fromkeys([self.default_model, *((j.config.get("mote") or {}).get("model") for j in jobs)]))
        choices = [(f"base model: {Path(b).name if '/' in b else b}", BASE_PREFIX + b) for b in bases if b]
        choices += [(f"job {j.id} · {(j.config.get('mote') or {}).get('method', '?')}", f"{JOB_PREFIX}{j.id}") for j in jobs]
        return choices

    def evaluation_sets(self) -> list[str]:
        """Question sets that can be evaluated on: the bundled eval_* sets first, then imported ones."""
        names = [ref.name for ref in self.questions.sets()]
        return sorted(names, key=lambda n: (not n.startswith(EVAL_SET_PREFIX), n))

    def launch_evaluation(self, subjects: list[str], sets: list[str], settings: dict[str, Any],
                          judges: list[dict[str, Any]]) -> int:
        """Queue an evaluate job; subjects are specs from evaluation_subjects()."""
        if not subjects:
            raise ValueError("Pick at least one model to evaluate (a base model or a finished training job).")
        items = []
        for spec in subjects:
            if spec.startswith(JOB_PREFIX):
                job_id = int(spec[len(JOB_PREFIX):])
                method = (self.queue.get(job_id).config.get("mote") or {}).get("method", "run")
                items.append({"label": f"{method} (job {job_id})", "train_job": job_id})
            else:
                items.append({"label": spec if spec.startswith(BASE_PREFIX) else Path(spec).name,
                              **({"base": spec[len(BASE_PREFIX):]} if spec.startswith(BASE_PREFIX) else {"run": spec})})
        sources = [self.questions.get(name).source for name in sets] if sets else None
        config = {"subjects": items, "settings": {**settings, **({"sets": sources} if sources else {})}, "judges": judges}
        return self.queue.submit(JobKind.EVALUATE, config, outbound=self.outbound)

    def launch_quick_pipeline(self, model: str | None = None) -> int:
        """The quick preset end to end: generate -> train MoTE and LoRA -> evaluate with the base model."""
        from core.config import load_preset

        mote = load_preset("quick")
        mote.model = model or self.default_model
        config = pipeline_config("quick", {"model": mote.model}, {"mote": mote.to_dict()}, methods=None, evaluate=True)
        return self.queue.submit(JobKind.PIPELINE, config, outbound=self.outbound)

    def evaluation_jobs(self) -> list[Job]:
        return evaluation_jobs(self.sessions)

    def evaluation_result(self, job_id: int) -> EvaluationResult:
        return evaluation_result(self.sessions, job_id)

    def evaluation_samples(self, job_id: int, judge: str | None = None, subject: str | None = None) -> list[dict[str, Any]]:
        return evaluation_samples(self.sessions, job_id, judge, subject)

    def compare_runs(self, job_ids: list[int]) -> tuple[list[dict[str, Any]], str]:
        """Overlaid loss curves (long-format rows) and the settings that differ."""
        return loss_curves(self.sessions, job_ids), config_diff(self.sessions, job_ids)
