"""The services facade: the one object the tabs call (the chat tab streams through app.chat_runtime).

Why a facade: tab builders stay small and Gradio-only, every action has one tested Python entry
point (the UI, the named API endpoints and tests/app/test_services.py all go through it), and
long work never runs here: it is submitted to the job queue, whose workers run it in their own
processes while the page polls the database.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.chain_browser import EXPORTS_DIR
from app.evaluation_services import EvaluationServices
from app.file_names import checked_name
from app.question_library import QuestionLibrary, QuestionSetRef
from app.system_info import SystemReport, system_report
from app.train_form import ChainSource, cli_command
from core.outbound import LOOPBACK_ONLY, OutboundPolicy
from core.config import GenerateConfig, MoteConfig, load_preset, preset_names
from core.data.questions import ImportReport, Question
from core.decoding.subject_ref import PromptingPipeline, SubjectRef, SubjectRefKind
from core.decoding.subjects import BASE_PREFIX
from core.stages import Stage
from jobs import chain_queries, commands, run_queries
from jobs.formatting import format_job_detail
from jobs.db import database_url
from jobs.kinds import JobKind, JobStatus
from jobs.logs import log_tail
from jobs.queries import exported_runs, job_row, job_rows, kinds_in_motion, loss_curves, run_settings, training_monitor
from jobs.run_names import default_train_name
from jobs.queue import JobQueue
from jobs.specs import GenerateSpec
from jobs.views import (
    ChainFacets,
    ChainFilter,
    ChainView,
    DatasetQualityView,
    DatasetSummary,
    JobRow,
    JobSort,
    LossPoint,
    RunRow,
    RunSettings,
    TrainingMonitor,
)

CONFIGS_DIR = "configs"


@dataclass(frozen=True)
class RunComparison:
    """Several runs side by side: their loss curves, settings and evaluation rows."""

    runs: tuple[RunRow, ...]
    curves: tuple[LossPoint, ...]
    settings: tuple[RunSettings, ...]


@dataclass(frozen=True)
class ChatSubjectChoice:
    """A model the chat tab can talk to: its label and the spec core.decoding.subjects loads."""

    label: str
    spec: str


def with_prompting_pipelines(choices: list[ChatSubjectChoice]) -> list[ChatSubjectChoice]:
    """`choices`, then every prompting pipeline (the paper's Table 3) over each base model among
    them, e.g. "aligncot prompting · base model: smollm2-135m-instruct": so a pane can show what
    the prompts alone give next to a trained run."""
    bases = [choice for choice in choices if SubjectRef.parse(choice.spec).kind is SubjectRefKind.BASE]
    prompted = [ChatSubjectChoice(f"{pipeline.value} prompting · {base.label}",
                                  str(SubjectRef.prompt(pipeline, SubjectRef.parse(base.spec))))
                for base in bases for pipeline in PromptingPipeline]
    return [*choices, *prompted]


class Services:
    """Everything the UI can do, over one job queue (its database and data directory); the
    Evaluate tab's actions are `self.evaluation`. Every read and write goes through jobs/."""

    def __init__(self, queue: JobQueue, *, default_model: str = GenerateSpec.model,
                 outbound: OutboundPolicy = LOOPBACK_ONLY) -> None:
        self.queue = queue
        self.outbound = outbound  # URLs and key variables a caller may use (set by the operator at launch)
        self.home = queue.home
        self.default_model = default_model
        self.questions = QuestionLibrary(self.home)
        self.evaluation = EvaluationServices(queue, self.questions, default_model=default_model, outbound=outbound)
        self.notices: list[str] = []

    # ---- question sets ---------------------------------------------------------------------
    def question_sets(self) -> list[QuestionSetRef]:
        return self.questions.sets()

    def question_set_rows(self, name: str) -> list[Question]:
        return self.questions.questions(name)

    def preview_import(self, path: str | Path, question_column: str | None = None) -> ImportReport:
        return self.questions.preview(path, question_column)

    def import_question_set(self, path: str | Path, name: str, question_column: str | None = None) -> tuple[QuestionSetRef, ImportReport]:
        return self.questions.import_set(path, name, question_column)

    # ---- generation ------------------------------------------------------------------------
    def launch_generation(self, question_set: str, *, model: str | None = None, limit: int | None = None,
                          dataset_name: str | None = None, settings: dict[str, Any] | None = None) -> int:
        """Queue a generate job for a set (bundled or imported); returns its job id."""
        ref = self.questions.get(question_set)
        config = {"generate": dict(settings or {}), "questions": ref.source, "model": model or self.default_model,
                  "limit": limit, "dataset_name": (dataset_name or "").strip() or None}
        return self.queue.submit(JobKind.GENERATE, config, outbound=self.outbound)

    @staticmethod
    def generate_defaults() -> GenerateConfig:
        return GenerateConfig()

    # ---- chains ----------------------------------------------------------------------------
    def chain_datasets(self) -> list[DatasetSummary]:
        return chain_queries.dataset_summaries(self.queue.sessions)

    def chains(self, dataset_id: int, filters: ChainFilter = ChainFilter(), limit: int | None = 500) -> list[ChainView]:
        return chain_queries.chain_views(self.queue.sessions, dataset_id, filters, limit=limit)

    def chain_facets(self, dataset_id: int) -> ChainFacets:
        return chain_queries.chain_facets(self.queue.sessions, dataset_id)

    def chain(self, chain_pk: int) -> ChainView:
        return chain_queries.stored_chain(self.queue.sessions, chain_pk)

    def dataset_quality(self, dataset_id: int) -> DatasetQualityView:
        """The dataset's data-quality report, flagged-chain policy and teaching warnings."""
        return chain_queries.dataset_quality_view(self.queue.sessions, dataset_id)

    def flag_chain(self, chain_pk: int, flagged: bool) -> ChainView:
        return commands.set_chain_flag(self.queue.sessions, chain_pk, flagged)

    def edit_chain(self, chain_pk: int, texts: Mapping[Stage, str | None]) -> ChainView:
        return commands.edit_chain(self.queue.sessions, chain_pk, texts)

    def delete_chain(self, chain_pk: int) -> None:
        commands.delete_chain(self.queue.sessions, chain_pk)

    def export_chains(self, dataset_id: int) -> Path:
        return commands.export_chains(self.queue.sessions, dataset_id, self.home / EXPORTS_DIR)

    # ---- training --------------------------------------------------------------------------
    @staticmethod
    def presets() -> list[str]:
        return preset_names()

    def saved_configs(self) -> list[str]:
        folder = self.home / CONFIGS_DIR
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def load_config(self, name: str) -> MoteConfig:
        """A saved config by name, else a bundled preset by name."""
        path = self.home / CONFIGS_DIR / f"{name}.yaml"
        return MoteConfig.from_yaml(path) if path.exists() else load_preset(name)

    def config_path(self, name: str) -> Path:
        name = checked_name(name, "Config")
        return self.home / CONFIGS_DIR / f"{name}.yaml"

    def save_config(self, config: MoteConfig, name: str) -> Path:
        if name in preset_names():
            raise ValueError(f"{name!r} is a bundled preset: save your config under another name.")
        path = self.config_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config.to_yaml(), encoding="utf-8")
        return path

    def train_preview(self, config: MoteConfig, source: ChainSource, name: str) -> tuple[str, str]:
        """The YAML of `config` and the CLI command that submits the same job."""
        db = None if self.queue.url == database_url(self.home) else self.queue.url  # the CLI finds it alone
        return config.to_yaml(), cli_command(source, self.config_path(name), home=self.home, db_url=db)

    def launch_training(self, config: MoteConfig, source: ChainSource, name: str | None = None) -> int:
        """Queue a training job, named `name` (empty: the default, see default_run_name)."""
        job_id = self.queue.submit(JobKind.TRAIN, {"mote": config.to_dict(), **source.job_config()}, outbound=self.outbound)
        if (name or "").strip():
            commands.rename_job(self.queue.sessions, job_id, name)
        return job_id

    def default_run_name(self, config: MoteConfig, source: ChainSource) -> str:
        """The name a run gets when none is typed: 'method · chains · length'."""
        datasets = {d.id: d.name for d in self.chain_datasets()} if source.dataset_id is not None else {}
        return default_train_name({"mote": config.to_dict(), **source.job_config()}, datasets.get(source.dataset_id))

    def rename_job(self, job_id: int, name: str) -> str:
        return commands.rename_job(self.queue.sessions, job_id, name)

    def rename_dataset(self, dataset_id: int, name: str) -> str:
        return commands.rename_dataset(self.queue.sessions, dataset_id, name)

    # ---- runs ------------------------------------------------------------------------------
    def runs(self) -> list[RunRow]:
        """Every training run, newest first (a retried job shows as its retry)."""
        return run_queries.run_rows(self.queue.sessions)

    def compare_runs(self, job_ids: list[int]) -> RunComparison:
        """The chosen runs' rows, overlaid loss curves and settings, in the order chosen."""
        by_id = {run.job_id: run for run in self.runs()}
        chosen = [by_id[i] for i in job_ids if i in by_id]
        ids = [run.job_id for run in chosen]
        return RunComparison(tuple(chosen), tuple(loss_curves(self.queue.sessions, ids)),
                             tuple(run_settings(self.queue.sessions, ids)))

    def training_jobs(self) -> list[JobRow]:
        """Training jobs, newest first (running ones are what a reloaded page re-attaches to)."""
        return job_rows(self.queue.sessions, kind=JobKind.TRAIN, limit=100)

    def watched_training_job(self) -> int | None:
        """What a freshly loaded Train tab shows: the newest running training job, else the newest."""
        jobs = self.training_jobs()
        running = [j for j in jobs if j.status in (JobStatus.RUNNING, JobStatus.QUEUED)]
        candidates = running or jobs
        return candidates[0].id if candidates else None

    def training_monitor(self, job_id: int) -> TrainingMonitor:
        return training_monitor(self.queue.sessions, job_id)

    def run_settings(self, job_id: int) -> tuple[MoteConfig, ChainSource]:
        """A past training job's config and chain source ("new run from this one")."""
        config = job_row(self.queue.sessions, job_id).config
        if "mote" not in config:
            raise ValueError(f"Job {job_id} is not a training job: pick a run from the list.")
        source = ChainSource(dataset_id=config.get("chain_dataset_id"), file=config.get("chains"))
        return MoteConfig.from_dict(config["mote"]), source

    # ---- jobs ------------------------------------------------------------------------------
    def jobs(self, kind: JobKind | None = None, status: JobStatus | None = None, sort: JobSort = JobSort.NEWEST) -> list[JobRow]:
        return job_rows(self.queue.sessions, kind=kind, status=status, sort=sort)

    def job_detail_text(self, job_id: int) -> str:
        return format_job_detail(self.queue, job_id)

    def job_log(self, job_id: int, lines: int = 60) -> str:
        job = job_row(self.queue.sessions, job_id)
        if job.kind is JobKind.PIPELINE:
            stages = ", ".join(f"{name}: job {i}" for name, i in (job.config.get("stages") or {}).items())
            return f"A pipeline has no log of its own; see its stages ({stages})."
        return log_tail(job.log_path, lines)

    def kinds_in_motion(self, finished_within_s: float) -> frozenset[JobKind]:
        """Kinds of jobs queued, running or just ended (the page's timers tick only for these)."""
        return kinds_in_motion(self.queue.sessions, finished_within_s=finished_within_s)

    def cancel_job(self, job_id: int) -> JobStatus:
        return self.queue.cancel(job_id)

    def retry_job(self, job_id: int) -> int:
        return self.queue.retry(job_id)

    # ---- chat ------------------------------------------------------------------------------
    def chat_subjects(self) -> list[ChatSubjectChoice]:
        """The base models in use, then every finished run with an export (MoTE and baselines)."""
        runs = exported_runs(self.queue.sessions)
        bases = list(dict.fromkeys([self.default_model, *(run.base_model for run in runs)]))
        choices = [ChatSubjectChoice(f"base model: {Path(b).name if '/' in b else b}", BASE_PREFIX + b) for b in bases]
        labels = {job.id: job.label for job in self.training_jobs()}
        choices += [ChatSubjectChoice(labels.get(run.job_id, f"{run.method} (job {run.job_id})"), run.run_dir) for run in runs]
        return choices

    # ---- system ----------------------------------------------------------------------------
    def system(self) -> SystemReport:
        return system_report(self.queue)
