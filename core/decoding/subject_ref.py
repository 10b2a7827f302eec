"""Which model answers: the one parser of subject spellings used by the CLI, jobs and the app.

    base:MODEL                a plain base model (the bundled alias, a local model folder or a hub id)
    job:ID                    a training job, resolved to its run folder by jobs/ (core cannot read the queue)
    PATH                      a training run folder, or its export/ folder
    prompt:PIPELINE:SUBJECT   any of the above answering through a prompting pipeline (the paper's
                              Table 3), e.g. prompt:aligncot:base:smollm2-135m-instruct, prompt:cot:job:12

Why a type: these spellings were parsed with string prefixes in several places, each with its
own copy of the prefix; a SubjectRef is parsed once, at the edge, and passed on typed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

BASE_PREFIX = "base:"
JOB_PREFIX = "job:"
PROMPT_PREFIX = "prompt:"
#: The accepted spellings, quoted in errors.
ACCEPTED_SPELLINGS = (
    "'base:<model>' (the bundled alias 'smollm2-135m-instruct', a local model folder or a hub id), "
    "'job:<id>' (a training job), a training run folder that holds export/mote.json, or that export/ folder itself, "
    "or 'prompt:<pipeline>:<one of those>' (pipelines: plain, cot, critique-revise, analysis-answer, "
    "guidance-answer, aligncot)"
)


class SubjectSpecError(ValueError):
    """A subject spelling that cannot be used; the message lists what is accepted."""


class SubjectRefKind(str, enum.Enum):
    """What a subject spelling names."""

    BASE = "base"
    JOB = "job"
    RUN_DIR = "run_dir"
    PROMPT = "prompt"
    """Another subject answering through a prompting pipeline (core.synthesis.prompting_subject)."""


class PromptingPipeline(str, enum.Enum):
    """The prompting pipelines of the paper's Table 3: how an untrained model is asked, stage by
    stage, with the shared stage templates of assets/prompts/ (core.synthesis.prompting_subject
    says which templates each one runs)."""

    PLAIN = "plain"
    """The answer template alone."""
    COT = "cot"
    """Zero-shot chain of thought: the answer template, the reply opened with the trigger phrase."""
    CRITIQUE_REVISE = "critique-revise"
    """A draft answer, a critique of it, a revised answer."""
    ANALYSIS_ANSWER = "analysis-answer"
    GUIDANCE_ANSWER = "guidance-answer"
    ALIGNCOT = "aligncot"
    """analysis -> guidance -> answer: the full AlignCoT chain, one prompt per stage."""

    @classmethod
    def parse(cls, text: str) -> PromptingPipeline:
        """A pipeline from its name, case-insensitive ('alignCoT' works); '_' may stand for '-'."""
        key = str(text).strip().lower().replace("_", "-")
        try:
            return cls(key)
        except ValueError:
            raise SubjectSpecError(f"'{text}' is not a prompting pipeline: use one of {[p.value for p in cls]}.") from None


@dataclass(frozen=True)
class SubjectRef:
    """A parsed subject spelling: its kind and the model name, job id or run folder it names."""

    kind: SubjectRefKind
    value: str
    """The model (BASE), the job id as digits (JOB), the run folder path (RUN_DIR), or the
    prompted subject's own spelling (PROMPT)."""
    pipeline: PromptingPipeline | None = None
    """The prompting pipeline; set for PROMPT references only."""

    def __post_init__(self) -> None:
        if (self.kind is SubjectRefKind.PROMPT) != (self.pipeline is not None):
            raise ValueError(f"SubjectRef({self.kind.value!r}): a pipeline goes with PROMPT references and only with them.")

    @classmethod
    def parse(cls, text: str) -> SubjectRef:
        """'base:MODEL' | 'job:ID' | 'prompt:PIPELINE:SUBJECT' | a run folder path (not checked
        for existence here)."""
        text = str(text).strip()
        if text.startswith(PROMPT_PREFIX):
            return cls._parse_prompt(text)
        if text.startswith(BASE_PREFIX):
            model = text[len(BASE_PREFIX):].strip()
            if not model:
                raise SubjectSpecError(f"'{text}' names no model after 'base:'. Accepted: {ACCEPTED_SPELLINGS}.")
            return cls(SubjectRefKind.BASE, model)
        if text.startswith(JOB_PREFIX):
            job = text[len(JOB_PREFIX):].strip()
            if not job.isdigit():
                raise SubjectSpecError(f"'{text}': job: takes a training job id, e.g. job:12.")
            return cls(SubjectRefKind.JOB, str(int(job)))
        if not text:
            raise SubjectSpecError(f"The subject is empty. Accepted: {ACCEPTED_SPELLINGS}.")
        return cls(SubjectRefKind.RUN_DIR, text)

    @classmethod
    def _parse_prompt(cls, text: str) -> SubjectRef:
        name, separator, rest = text[len(PROMPT_PREFIX):].partition(":")
        if not separator or not rest.strip():
            raise SubjectSpecError(f"'{text}': write prompt:<pipeline>:<subject>, e.g. prompt:aligncot:base:smollm2-135m-instruct "
                                   f"or prompt:cot:job:12.")
        return cls.prompt(PromptingPipeline.parse(name), cls.parse(rest))

    @classmethod
    def prompt(cls, pipeline: PromptingPipeline, inner: SubjectRef) -> SubjectRef:
        """`inner` answering through `pipeline`; pipelines do not nest."""
        if inner.kind is SubjectRefKind.PROMPT:
            raise SubjectSpecError(f"'{inner}' already names a prompting pipeline: prompt: takes a base model, "
                                   "a training job or a run folder.")
        return cls(SubjectRefKind.PROMPT, str(inner), pipeline)

    @property
    def inner(self) -> SubjectRef:
        """The subject a PROMPT reference prompts."""
        if self.kind is not SubjectRefKind.PROMPT:
            raise ValueError(f"{self} is not a prompting reference: it wraps no other subject.")
        return SubjectRef.parse(self.value)

    @classmethod
    def base(cls, model: str) -> SubjectRef:
        return cls.parse(BASE_PREFIX + model)

    @classmethod
    def job(cls, job_id: int) -> SubjectRef:
        return cls(SubjectRefKind.JOB, str(int(job_id)))

    @classmethod
    def run_dir(cls, folder: str | Path) -> SubjectRef:
        return cls(SubjectRefKind.RUN_DIR, str(folder))

    @property
    def job_id(self) -> int:
        """The training job's id; only for JOB references."""
        if self.kind is not SubjectRefKind.JOB:
            raise ValueError(f"{self} is not a job reference: it has no job id.")
        return int(self.value)

    @property
    def label(self) -> str:
        """A short name for reports: 'base:MODEL', 'job-ID', the run folder's name, or
        'prompt:PIPELINE:' and the prompted subject's label."""
        if self.kind is SubjectRefKind.PROMPT:
            return f"{PROMPT_PREFIX}{self.pipeline.value}:{self.inner.label}"
        if self.kind is SubjectRefKind.JOB:
            return f"job-{self.value}"
        if self.kind is SubjectRefKind.BASE:
            return str(self)
        folder = Path(self.value)
        return folder.parent.name if folder.name == "export" else folder.name

    def __str__(self) -> str:
        if self.kind is SubjectRefKind.PROMPT:
            return f"{PROMPT_PREFIX}{self.pipeline.value}:{self.value}"
        if self.kind is SubjectRefKind.BASE:
            return BASE_PREFIX + self.value
        if self.kind is SubjectRefKind.JOB:
            return JOB_PREFIX + self.value
        return self.value
