"""What jobs/ hands to the app and the CLI: frozen snapshots of jobs, training runs, chain
datasets, chains and evaluation reports, and the typed options of the queries that return them.

Why frozen dataclasses and no SQLAlchemy here: a row object outlives its session (a lazy
attribute then fails far from the query) and invites writes from anywhere; a snapshot is
complete when it is returned, and the app can import this module without the database layer.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.config import FlaggedPolicy
from core.data.chain_record import ChainRecord
from core.data.quality import QualityReport
from core.data.questions import QuestionKind
from core.stages import ChainShape
from jobs.kinds import JobKind, JobStatus


class JobSort(str, enum.Enum):
    NEWEST = "newest first"
    OLDEST = "oldest first"
    LONGEST = "longest first"
    STATUS = "by status"


@dataclass(frozen=True)
class JobRow:
    """One job as lists show it; `note` is its error if it failed, else its latest message."""

    id: int
    kind: JobKind
    status: JobStatus
    progress: float
    duration_seconds: float | None
    devices: str
    created: datetime
    note: str
    retry_of: int | None
    config: Mapping[str, Any]
    log_path: str | None
    name: str = ""
    """The user's name for the job, or its default (jobs.run_names)."""

    @property
    def label(self) -> str:
        """How the job is referred to everywhere: '<name> (job <id>)'."""
        return f"{self.name} (job {self.id})" if self.name else f"job {self.id}"

    @property
    def training_method(self) -> str:
        """The method a training job trains ('?' for other jobs)."""
        return (self.config.get("mote") or {}).get("method", "?")


@dataclass(frozen=True)
class TrainingMonitor:
    """What the Train tab shows for one training job: its state, metrics per step and log tail."""

    job_id: int
    status: JobStatus
    progress: float
    eta_seconds: float | None
    message: str
    steps: tuple[int, ...] = ()
    losses: tuple[float, ...] = ()
    learning_rates: tuple[float | None, ...] = ()
    total_steps: int | None = None
    export_path: str | None = None
    log: str = ""
    error: str | None = None


@dataclass(frozen=True)
class TrainingRunSummary:
    """A training run folder and what it trained (the chat subjects list exported ones)."""

    id: int
    job_id: int
    run_dir: str
    method: str
    base_model: str
    export_path: str | None


@dataclass(frozen=True)
class RunRow:
    """One training run as the Runs view lists it (the newest job of a run: a retry replaces
    the job it retries); `evaluation` holds the headline figures of its newest evaluation."""

    job_id: int
    name: str
    method: str
    dataset: str
    status: JobStatus
    steps_done: int | None
    total_steps: int | None
    final_loss: float | None
    created: datetime
    evaluation: Mapping[str, float | None] = field(default_factory=dict)
    """Metric label -> value (None: not measured), from the newest finished evaluate job."""
    evaluated_by: int | None = None
    flagged_policy: FlaggedPolicy | None = None
    """The flagged-chain policy of the stored dataset it trains on (None: no dataset, or not recorded)."""

    @property
    def label(self) -> str:
        return f"{self.name} (job {self.job_id})"


@dataclass(frozen=True)
class LossPoint:
    run: str
    step: int
    loss: float


@dataclass(frozen=True)
class RunSettings:
    """A training job's settings as dotted names (core.config_reference.flatten_settings)."""

    job_id: int
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class DatasetSummary:
    id: int
    name: str
    job_id: int | None
    kept: int
    flagged: int
    dropped: int
    path: str | None

    @property
    def label(self) -> str:
        return f"{self.id}: {self.name} ({self.kept} chains, {self.flagged} flagged)"


@dataclass(frozen=True)
class DatasetQualityView:
    """A chain dataset's data-quality report, the flagged-chain policy it was generated with, and
    the reasons (core.data.quality.teaching_warnings) it would not teach safety."""

    dataset_id: int
    name: str
    report: QualityReport
    flagged_policy: FlaggedPolicy | None
    """From the generate job's settings, else the chains' records; None: not recorded (imported chains)."""
    warnings: tuple[str, ...] = ()

    @property
    def chains(self) -> int:
        return sum(group.chains for group in self.report.groups)

    @property
    def labelled(self) -> bool:
        """Whether any question carries a label: without one the report cannot say what the answers teach."""
        return any(group.label != "unlabelled" for group in self.report.groups)


@dataclass(frozen=True)
class ChainFilter:
    """None leaves a dimension unfiltered."""

    shape: ChainShape | None = None
    flagged: bool | None = None
    category: str | None = None
    kind: QuestionKind | None = None


@dataclass(frozen=True)
class ChainView:
    """One stored chain: its row id (what flag / edit / delete take) and its record."""

    id: int
    record: ChainRecord


@dataclass(frozen=True)
class ChainFacets:
    """The categories and kinds present in a dataset, for the filter menus."""

    categories: tuple[str, ...]
    kinds: tuple[QuestionKind, ...]


@dataclass(frozen=True)
class ReportChart:
    path: str
    caption: str


@dataclass(frozen=True)
class EvaluationReport:
    """One evaluate job as the Evaluate tab shows it (the report is read, never recomputed)."""

    job_id: int
    status: JobStatus
    message: str
    subjects: tuple[str, ...] = ()
    judges: tuple[str, ...] = ()
    markdown: str = ""
    charts: tuple[ReportChart, ...] = ()
    report_dir: str | None = None


@dataclass(frozen=True)
class DatabaseSummary:
    """Where the job database is and how much it holds (the password never shown)."""

    url: str
    backend: str
    size_mib: float | None
    jobs: int
    running_jobs: int
    chains: int
    training_runs: int
