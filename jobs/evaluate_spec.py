"""The evaluate job's config, checked at submit: subjects, evaluation settings and judges.

Layout (plain dicts, as the CLI, YAML and UI produce them):
    evaluate: {"subjects": [{"label": "MoTE", "train_job": 12} | {"label": "run", "run": "runs/x"}
                            | {"label": "base", "base": "smollm2-135m-instruct"}]
                            (each may add "prompting": "aligncot" | "cot" | ...: that model answering
                            through a prompting pipeline, core.synthesis.prompting_subject),
               "settings": {core.evaluation.runner.EvalSettings fields},
               "judges": [{core.evaluation.judge_config.JudgeConfig fields}, ...],   (default: heuristic)
               "out": "folder",                                                      (default: the job's folder)
               "answers_from": 12,   (optional: reuse the answers evaluate job 12 stored for the same subject
                                      labels, so new judges score them without generating again)
               "sweep_from_job": 9}  (optional: a study's sweep job, whose held-out losses the report shows)
Why the checks here: a typo in a judge URL or a question set should fail in front of the user
before the job waits in the queue; the worker then checks every judge for real (a request, a
model load) before it generates a single answer.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.spec_checks import JobConfigError, check_model, check_model_present, only_settings, out_dir, positive_int

SUBJECT_SOURCES = ("train_job", "run", "base")
DEFAULT_JUDGES = ({"kind": "heuristic"},)


@dataclass
class SubjectSpec:
    """One model to evaluate: a training job's run, a run folder, or a base model, answering
    plainly or through a prompting pipeline."""

    label: str
    train_job: int | None = None
    run: str | None = None
    base: str | None = None
    prompting: str | None = None
    """A core.decoding.subject_ref.PromptingPipeline value, or None for a plain chat turn."""

    def snapshot(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class EvaluateSpec:
    subjects: list[SubjectSpec]
    settings: dict[str, Any] = field(default_factory=dict)
    judges: list[dict[str, Any]] = field(default_factory=lambda: [dict(j) for j in DEFAULT_JUDGES])
    out: str | None = None
    answers_from: int | None = None
    """An earlier evaluate job whose stored answers are reused (same subject labels)."""
    sweep_from_job: int | None = None
    """A study's sweep job (a train job with a sweep): its held-out losses lead the report."""

    def snapshot(self) -> dict[str, Any]:
        return {"subjects": [s.snapshot() for s in self.subjects], "settings": self.settings,
                "judges": self.judges, "out": self.out, "answers_from": self.answers_from,
                "sweep_from_job": self.sweep_from_job}


def parse_subject(where: str, data: Any) -> SubjectSpec:
    data = only_settings(where, data, {"label", "prompting", *SUBJECT_SOURCES})
    sources = [k for k in SUBJECT_SOURCES if data.get(k) not in (None, "")]
    if len(sources) != 1:
        raise JobConfigError(f"{where}: give exactly one of {list(SUBJECT_SOURCES)} (got {sources or 'none'}).")
    source = sources[0]
    pipeline = _pipeline(where, data.get("prompting"))
    label = str(data.get("label") or (f"job-{data['train_job']}" if source == "train_job" else
                                      f"base:{data['base']}" if source == "base" else Path(data["run"]).name))
    if pipeline and not data.get("label"):
        label = f"prompt:{pipeline}:{label}"
    if source == "train_job":
        return SubjectSpec(label, train_job=positive_int(f"{where}: train_job", data["train_job"]), prompting=pipeline)
    if source == "run":
        run = Path(str(data["run"])).expanduser()
        if not run.is_dir():
            raise JobConfigError(f"{where}: run={data['run']!r} is not a folder: pass a trained run folder (or its export/).")
        return SubjectSpec(label, run=str(run.resolve()), prompting=pipeline)
    check_model(f"{where}: base", str(data["base"]))
    return SubjectSpec(label, base=str(data["base"]), prompting=pipeline)


def _pipeline(where: str, value: Any) -> str | None:
    """The prompting pipeline's value, or None for a plain chat turn."""
    from core.decoding.subject_ref import PromptingPipeline, SubjectSpecError

    if value in (None, ""):
        return None
    try:
        return PromptingPipeline.parse(str(value)).value
    except SubjectSpecError as error:
        raise JobConfigError(f"{where}: prompting: {error}") from None


def _settings(where: str, data: Any) -> dict[str, Any]:
    from core.evaluation.runner import EvalSettings, plan_prompts

    data = only_settings(f"{where}: settings", data or {}, {f.name for f in dataclasses.fields(EvalSettings)})
    try:
        settings = EvalSettings(**data)
        plan = plan_prompts(settings)  # reads the sets: a missing set or a kind-less row fails now
    except (ValueError, TypeError, FileNotFoundError) as error:
        raise JobConfigError(f"{where}: settings: {error}") from None
    if not plan:
        raise JobConfigError(f"{where}: settings: the question sets give no prompt to ask.")
    return settings.to_dict()


def _judges(where: str, data: Any) -> list[dict[str, Any]]:
    from core.evaluation.judge_config import JudgeConfig, JudgeKind

    items = list(data) if data else [dict(j) for j in DEFAULT_JUDGES]
    checked = []
    for index, item in enumerate(items):
        try:
            config = JudgeConfig.from_dict(dict(item))
        except (ValueError, TypeError) as error:
            raise JobConfigError(f"{where}: judges[{index}]: {error}") from None
        if config.kind is JudgeKind.HTTP and config.api_key_env and not os.environ.get(config.api_key_env):
            raise JobConfigError(f"{where}: judges[{index}]: the API key variable {config.api_key_env} is not set: "
                                 f"export {config.api_key_env}=... in the shell that starts MoTE Studio.")
        if config.kind in (JudgeKind.LOCAL, JudgeKind.CLASSIFIER):
            check_model_present(f"{where}: judges[{index}]: model", config.model)
        checked.append(config.to_dict())
    if len(checked) != len({str(c) for c in checked}):
        raise JobConfigError(f"{where}: judges: the same judge is listed twice; remove the copy.")
    return checked


def parse_evaluate(data: Any, where: str = "evaluate config", *, subjects_required: bool = True) -> EvaluateSpec:
    data = only_settings(where, data, {"subjects", "settings", "judges", "out", "answers_from", "sweep_from_job"})
    subjects = [parse_subject(f"{where}: subjects[{i}]", s) for i, s in enumerate(data.get("subjects") or [])]
    if subjects_required and not subjects:
        raise JobConfigError(f"{where}: subjects is empty: name at least one run, training job or base model.")
    labels = [s.label for s in subjects]
    if len(labels) != len(set(labels)):
        raise JobConfigError(f"{where}: subject labels {labels} repeat: give each subject its own label.")
    return EvaluateSpec(subjects, _settings(where, data.get("settings")), _judges(where, data.get("judges")), out_dir(data),
                        positive_int(f"{where}: answers_from", data.get("answers_from")),
                        positive_int(f"{where}: sweep_from_job", data.get("sweep_from_job")))
