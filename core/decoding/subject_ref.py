"""Which model answers: the one parser of subject spellings used by the CLI, jobs and the app.

    base:MODEL   a plain base model (the bundled alias, a local model folder or a hub id)
    job:ID       a training job, resolved to its run folder by jobs/ (core cannot read the queue)
    PATH         a training run folder, or its export/ folder

Why a type: these spellings were parsed with string prefixes in several places, each with its
own copy of the prefix; a SubjectRef is parsed once, at the edge, and passed on typed.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

BASE_PREFIX = "base:"
JOB_PREFIX = "job:"
#: The accepted spellings, quoted in errors.
ACCEPTED_SPELLINGS = (
    "'base:<model>' (the bundled alias 'smollm2-135m-instruct', a local model folder or a hub id), "
    "'job:<id>' (a training job), a training run folder that holds export/mote.json, or that export/ folder itself"
)


class SubjectSpecError(ValueError):
    """A subject spelling that cannot be used; the message lists what is accepted."""


class SubjectRefKind(str, enum.Enum):
    """What a subject spelling names."""

    BASE = "base"
    JOB = "job"
    RUN_DIR = "run_dir"


@dataclass(frozen=True)
class SubjectRef:
    """A parsed subject spelling: its kind and the model name, job id or run folder it names."""

    kind: SubjectRefKind
    value: str
    """The model (BASE), the job id as digits (JOB) or the run folder path (RUN_DIR)."""

    @classmethod
    def parse(cls, text: str) -> SubjectRef:
        """'base:MODEL' | 'job:ID' | a run folder path (not checked for existence here)."""
        text = str(text).strip()
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
        """A short name for reports: 'base:MODEL', 'job-ID', or the run folder's name."""
        if self.kind is SubjectRefKind.JOB:
            return f"job-{self.value}"
        if self.kind is SubjectRefKind.BASE:
            return str(self)
        folder = Path(self.value)
        return folder.parent.name if folder.name == "export" else folder.name

    def __str__(self) -> str:
        if self.kind is SubjectRefKind.BASE:
            return BASE_PREFIX + self.value
        if self.kind is SubjectRefKind.JOB:
            return JOB_PREFIX + self.value
        return self.value
