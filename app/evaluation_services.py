"""The Evaluate tab's actions: launch an evaluation or the quick pipeline, read results, compare
runs. Held by app.services.Services as `services.evaluation`.

Why a separate object: these actions are one group with one job; composed (not mixed in), the
object says in its constructor what it needs (the queue, the question library, the default
model), and every read goes through jobs/ queries. Long work is always a queued job.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from app.evaluation_views import settings_diff_table
from app.question_library import QuestionLibrary
from core.decoding.subject_ref import PROMPT_PREFIX, PromptingPipeline, SubjectRef
from core.decoding.subjects import BASE_PREFIX
from core.evaluation.heuristic_judge import HEURISTIC_JUDGE_ID
from core.evaluation.validation_store import stored_report, validate_and_store
from core.outbound import LOOPBACK_ONLY, OutboundPolicy
from jobs.kinds import JobKind, JobStatus
from jobs.pipelines import pipeline_config, study_config, study_preset_path
from jobs.queries import evaluation_report, evaluation_samples, job_row, job_rows, loss_curves, run_settings
from jobs.queue import JobQueue
from jobs.views import EvaluationReport, JobRow, LossPoint

EVAL_SET_PREFIX = "eval_"
LLM_JUDGE_PREFIX = "llm:"
JOB_PREFIX = "job:"


class EvaluationServices:
    """Everything the Evaluate tab can do, over one job queue."""

    def __init__(self, queue: JobQueue, questions: QuestionLibrary, *, default_model: str,
                 outbound: OutboundPolicy = LOOPBACK_ONLY) -> None:
        self.queue, self.questions, self.default_model = queue, questions, default_model
        self.outbound = outbound  # URLs and key variables a caller may use (set by the operator at launch)

    def evaluation_subjects(self) -> list[tuple[str, str]]:
        """(label, spec): each base model, plainly and through each prompting pipeline (the
        paper's Table 3), then every succeeded training job."""
        jobs = job_rows(self.queue.sessions, kind=JobKind.TRAIN, status=JobStatus.SUCCEEDED)
        bases = list(dict.fromkeys([self.default_model, *((j.config.get("mote") or {}).get("model") for j in jobs)]))
        choices = []
        for base in filter(None, bases):
            name = Path(base).name if "/" in base else base
            choices.append((f"base model: {name}", BASE_PREFIX + base))
            choices += [(f"base model: {name} · prompting: {p.value}", f"{PROMPT_PREFIX}{p.value}:{BASE_PREFIX}{base}")
                        for p in PromptingPipeline]
        choices += [(f"job {j.id} · {j.training_method}", f"{JOB_PREFIX}{j.id}") for j in jobs]
        return choices

    def evaluation_sets(self) -> list[str]:
        """Question sets that can be evaluated on: the bundled eval_* sets first, then imported ones."""
        names = [ref.name for ref in self.questions.sets()]
        return sorted(names, key=lambda n: (not n.startswith(EVAL_SET_PREFIX), n))

    def _subject(self, spec: str) -> dict[str, Any]:
        """An evaluate job's subject entry for a spec from evaluation_subjects() (or a run folder)."""
        if spec.startswith(PROMPT_PREFIX):
            ref = SubjectRef.parse(spec)
            return {**self._subject(ref.value), "label": ref.label, "prompting": ref.pipeline.value}
        if spec.startswith(JOB_PREFIX):
            job_id = int(spec[len(JOB_PREFIX):])
            method = (job_row(self.queue.sessions, job_id).config.get("mote") or {}).get("method", "run")
            return {"label": f"{method} (job {job_id})", "train_job": job_id}
        if spec.startswith(BASE_PREFIX):
            return {"label": spec, "base": spec[len(BASE_PREFIX):]}
        return {"label": Path(spec).name, "run": spec}

    def launch_evaluation(self, subjects: list[str], sets: list[str], settings: dict[str, Any],
                          judges: list[dict[str, Any]]) -> int:
        """Queue an evaluate job; subjects are specs from evaluation_subjects()."""
        if not subjects:
            raise ValueError("Pick at least one model to evaluate (a base model or a finished training job).")
        sources = [self.questions.get(name).source for name in sets] if sets else None
        config = {"subjects": [self._subject(spec) for spec in subjects],
                  "settings": {**settings, **({"sets": sources} if sources else {})}, "judges": judges}
        return self.queue.submit(JobKind.EVALUATE, config, outbound=self.outbound)

    def launch_quick_pipeline(self, model: str | None = None) -> int:
        """The quick preset end to end: generate -> train MoTE and LoRA -> evaluate with the base model."""
        from core.config import load_preset

        mote = load_preset("quick")
        mote.model = model or self.default_model
        config = pipeline_config("quick", {"model": mote.model}, {"mote": mote.to_dict()}, methods=None, evaluate=True)
        return self.queue.submit(JobKind.PIPELINE, config, outbound=self.outbound)

    def launch_cpu_study(self) -> int:
        """The CPU study preset (assets/studies/cpu.yaml), as `launch.py study --preset cpu` queues it;
        a missing shipped chains file is refused here with the message that names it."""
        return self.queue.submit(JobKind.PIPELINE, study_config(study_preset_path("cpu")), outbound=self.outbound)

    def evaluation_jobs(self) -> list[JobRow]:
        return job_rows(self.queue.sessions, kind=JobKind.EVALUATE)

    def evaluation_report(self, job_id: int) -> EvaluationReport:
        return evaluation_report(self.queue.sessions, job_id)

    def evaluation_samples(self, job_id: int, judge: str | None = None, subject: str | None = None) -> list[dict[str, str]]:
        return evaluation_samples(self.queue.sessions, job_id, judge, subject)

    def compare_runs(self, job_ids: list[int]) -> tuple[list[LossPoint], str]:
        """Overlaid loss curves and a Markdown table of the settings that differ."""
        return loss_curves(self.queue.sessions, job_ids), settings_diff_table(run_settings(self.queue.sessions, job_ids))

    def judge_validation(self, judge_id: str | None) -> str:
        """The stored validation report of a judge (Markdown), or what to run to make one.

        Only the heuristic judge is validated from the app (a second); an LLM judge reads a few
        hundred answers, which is job-length work, so its command is given instead."""
        if not judge_id:
            return "Pick a judge above to see how well it agrees with the labelled answers."
        report = stored_report(self.queue.home, judge_id)
        if report is not None:
            return report
        if judge_id == HEURISTIC_JUDGE_ID:
            return "The heuristic judge has not been validated in this data directory yet: press the button below."
        return (f"Judge `{judge_id}` has not been validated yet. Run `python launch.py judges validate --judge "
                f"{judge_spec_hint(judge_id)}` (minutes on a CPU); its report then shows here.")

    def validate_heuristic_judge(self) -> str:
        """Validate the heuristic judge now (regular expressions over a few hundred answers) and store its report."""
        validate_and_store("heuristic", self.queue.home)
        return self.judge_validation(HEURISTIC_JUDGE_ID)


def judge_spec_hint(judge_id: str) -> str:
    """The --judge value that names an LLM judge id like 'llm:MODEL:label-prob'; for an HTTP judge, the
    form of the value to fill in (its URL and model name are not stored in the id)."""
    model = judge_id[len(LLM_JUDGE_PREFIX):].rsplit(":", 1)[0] if judge_id.startswith(LLM_JUDGE_PREFIX) else ""
    if model and "://" not in model:
        return f"local:{model}"
    return "http://HOST/v1#MODEL_NAME  (or a YAML file of this judge's settings)"
