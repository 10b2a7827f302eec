"""What each job kind is asked to do, checked before it is queued.

Why check at submit: a typo in a config should fail in a second, in front of the user, not
after the job waited an hour in the queue. The checks build core's own config dataclasses
(their errors name the field and the allowed range), and the snapshot stored on the job row is
the normalised config, defaults included, so history shows exactly what ran.

Config layouts (plain dicts, as the CLI, YAML and UI produce them):
    train:     {"mote": {MoteConfig fields}, "chains": "file.jsonl" | "chain_dataset_id": N
                | "chains_from_job": GENERATE_JOB_ID}        (none: the bundled sample chains)
    generate:  {"generate": {GenerateConfig fields}, "questions": "train" | "file",
                "model": "smollm2-135m-instruct", "limit": N | null, "dataset_name": "..."}
    pipeline:  {"generate": {generate config}, "train": {train config without a chain source}}
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import GenerateConfig, MoteConfig, plain_values
from jobs.records import JobKind

EVALUATION_NOT_READY = (
    "evaluate jobs are not available yet: evaluation lands with the evaluation issue (core has no "
    "evaluator). Submit generate, train or pipeline jobs for now."
)


class JobConfigError(ValueError):
    """A job config that cannot run; the message names the setting and how to fix it.
    `job_id` is the failed job row that records it (set by the queue)."""

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class NotAvailableYet(JobConfigError):
    """A kind of work MoTE Studio cannot run yet; not a mistake in the config, so not kept in history."""


def _only(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise JobConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise JobConfigError(f"{where}: unknown setting(s) {unknown}; valid settings are {sorted(allowed)}.")
    return data


def _positive_int(where: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise JobConfigError(f"{where}={value!r} is not valid: use a positive integer (or leave it out).")
    return value


@dataclass
class TrainSpec:
    mote: MoteConfig
    chains: str | None = None
    chain_dataset_id: int | None = None
    chains_from_job: int | None = None
    out: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"mote": self.mote.to_dict(), "chains": self.chains, "chain_dataset_id": self.chain_dataset_id,
                "chains_from_job": self.chains_from_job, "out": self.out}


@dataclass
class GenerateSpec:
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    questions: str = "train"
    model: str = "smollm2-135m-instruct"  # core.model_source.DEFAULT_MODEL_ALIAS (that module loads torch)
    limit: int | None = None
    dataset_name: str | None = None
    out: str | None = None

    def snapshot(self) -> dict[str, Any]:
        return {"generate": plain_values(dataclasses.asdict(self.generate)), "questions": self.questions,
                "model": self.model, "limit": self.limit, "dataset_name": self.dataset_name, "out": self.out}


@dataclass
class PipelineSpec:
    generate: GenerateSpec
    train: TrainSpec

    def snapshot(self) -> dict[str, Any]:
        return {"generate": self.generate.snapshot(), "train": self.train.snapshot()}


JobSpec = TrainSpec | GenerateSpec | PipelineSpec


def parse_train(data: Any, where: str = "train config", *, chains_required: bool = True) -> TrainSpec:
    data = _only(where, data, {"mote", "chains", "chain_dataset_id", "chains_from_job", "out"})
    try:
        mote = MoteConfig.from_dict(dict(data.get("mote") or {}))
    except (ValueError, TypeError) as error:
        raise JobConfigError(f"{where}: mote: {error}") from None
    sources = [k for k in ("chains", "chain_dataset_id", "chains_from_job") if data.get(k) is not None]
    if len(sources) > 1:
        raise JobConfigError(f"{where}: give one chain source, not {sources}.")
    if not chains_required and sources:
        raise JobConfigError(f"{where}: a pipeline trains on its own generated chains; remove {sources[0]}.")
    chains = data.get("chains")
    if chains is not None and not Path(chains).expanduser().is_file():
        raise JobConfigError(f"{where}: chains={chains!r} is not a file: pass a chains .jsonl file.")
    return TrainSpec(mote, str(Path(chains).expanduser().resolve()) if chains else None,
                     _positive_int(f"{where}: chain_dataset_id", data.get("chain_dataset_id")),
                     _positive_int(f"{where}: chains_from_job", data.get("chains_from_job")), _out_dir(data))


def parse_generate(data: Any, where: str = "generate config") -> GenerateSpec:
    from core.questions import bundled_sets

    data = _only(where, data, {"generate", "questions", "model", "limit", "dataset_name", "out"})
    settings = _only(f"{where}: generate", data.get("generate") or {},
                     {f.name for f in dataclasses.fields(GenerateConfig)})
    try:
        generate = GenerateConfig(**settings)
    except (ValueError, TypeError) as error:
        raise JobConfigError(f"{where}: generate: {error}") from None
    questions = str(data.get("questions") or "train")
    if questions not in bundled_sets() and not Path(questions).expanduser().exists():
        raise JobConfigError(f"{where}: questions={questions!r} is neither a bundled set "
                             f"({', '.join(bundled_sets())}) nor an existing file or folder.")
    if questions not in bundled_sets():
        questions = str(Path(questions).expanduser().resolve())
    return GenerateSpec(generate, questions, str(data.get("model") or GenerateSpec.model),
                        _positive_int(f"{where}: limit", data.get("limit")), data.get("dataset_name"), _out_dir(data))


def _out_dir(data: dict[str, Any]) -> str | None:
    """An explicit output folder (absolute), or None for <home>/runs/job-N."""
    return str(Path(data["out"]).expanduser().resolve()) if data.get("out") else None


def parse_kind(kind: JobKind | str) -> JobKind:
    """A job kind MoTE Studio can run; the error lists the valid kinds."""
    try:
        kind = JobKind(kind)
    except ValueError:
        raise JobConfigError(f"kind={kind!r} is not known: use one of {[k.value for k in JobKind]}.") from None
    if kind is JobKind.EVALUATE:
        raise NotAvailableYet(EVALUATION_NOT_READY)
    return kind


def parse_job_config(kind: JobKind | str, config: Any) -> JobSpec:
    """The checked spec for `kind`; raises JobConfigError naming the bad setting."""
    kind = parse_kind(kind)
    if kind is JobKind.TRAIN:
        return parse_train(config)
    if kind is JobKind.GENERATE:
        return parse_generate(config)
    data = _only("pipeline config", config, {"generate", "train", "evaluate"})
    if data.get("evaluate") is not None:
        raise NotAvailableYet(f"pipeline config: evaluate: {EVALUATION_NOT_READY}")
    return PipelineSpec(parse_generate(data.get("generate") or {}, "pipeline generate config"),
                        parse_train(data.get("train") or {}, "pipeline train config", chains_required=False))
