"""What each job kind is asked to do, checked before it is queued.

Why check at submit: a typo in a config should fail in a second, in front of the user, not
after the job waited an hour in the queue. The checks build core's own config dataclasses
(their errors name the field and the allowed range), check that the model can be found and
that a chains file is readable chains JSONL (naming its first bad line), and the snapshot stored on the job row is
the normalised config, defaults included, so history shows exactly what ran.

Config layouts (plain dicts, as the CLI, YAML and UI produce them):
    train:     {"mote": {MoteConfig fields}, "chains": "file.jsonl" | "chain_dataset_id": N
                | "chains_from_job": GENERATE_JOB_ID}        (none: the bundled sample chains)
               optional: "extra_chains": "file.jsonl"   (trained on as well, e.g. the shipped chains
                                                         beside a pipeline's freshly generated ones)
                         "sweep": {core.training.sweep.SweepSettings fields}   (a sweep job: one run per
                                                         value on the chains minus a held-out slice)
                         "setting_from_job": SWEEP_JOB_ID  (train with the value that sweep kept)
    generate:  {"generate": {GenerateConfig fields}, "questions": "train" | "file",
                "model": "smollm2-135m-instruct", "limit": N | null, "dataset_name": "..."}
    pipeline:  {"generate": {generate config} | null, "train": {train config}, "methods": ["mote", "lora"] | [],
                "sweep": {SweepSettings fields} | null   (a sweep stage first; every method uses its choice)
                "evaluate": {evaluate config without subjects, "include_base": true,
                             "prompting": ["plain", "aligncot", ...]} | null}
               generate -> one train job per method -> one evaluate job comparing them (and the base
               model, and the base model through each listed prompting pipeline). Without "generate" the
               train config names its chain source: that is a study; "methods": [] trains nothing.
    evaluate:  see jobs/evaluate_spec.py
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import GenerateConfig, MoteConfig, plain_values
from core.training.sharding import accelerate_config_file
from core.training.sweep import SweepSettings
from jobs.evaluate_spec import EvaluateSpec, parse_evaluate
from jobs.records import JobKind
from jobs.spec_checks import JobConfigError, check_model, only_settings, out_dir, positive_int

__all__ = ["JobConfigError", "parse_job_config", "parse_train", "parse_generate", "parse_pipeline", "parse_kind"]


@dataclass
class TrainSpec:
    mote: MoteConfig
    chains: str | None = None
    chain_dataset_id: int | None = None
    chains_from_job: int | None = None
    out: str | None = None
    extra_chains: str | None = None
    """A chains file trained on as well as the chain source (the shipped chains in the quick pipeline)."""
    sweep: SweepSettings | None = None
    """Set on a sweep job: it trains once per value and records the held-out losses (jobs/sweep_job.py)."""
    setting_from_job: int | None = None
    """The sweep job whose kept value this run trains with."""

    def snapshot(self) -> dict[str, Any]:
        snapshot = {"mote": self.mote.to_dict(), "chains": self.chains, "chain_dataset_id": self.chain_dataset_id,
                    "chains_from_job": self.chains_from_job, "out": self.out}
        optional = {"extra_chains": self.extra_chains, "sweep": self.sweep.to_dict() if self.sweep else None,
                    "setting_from_job": self.setting_from_job}
        return snapshot | {k: v for k, v in optional.items() if v is not None}


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
    """generate (optional) -> train, once per method -> evaluate (optional)."""

    generate: GenerateSpec | None
    train: TrainSpec
    methods: list[str] = field(default_factory=list)
    evaluate: EvaluateSpec | None = None
    """An EvaluateSpec without subjects (the trained runs, and the base model if include_base)."""
    include_base: bool = True
    prompting: list[str] = field(default_factory=list)
    """Prompting pipelines (core.decoding.subject_ref.PromptingPipeline values) the base model is
    also evaluated through: the paper's Table 3."""
    sweep: SweepSettings | None = None
    """A sweep stage before the methods' training; each method trains with the value it keeps."""

    def snapshot(self) -> dict[str, Any]:
        evaluate = ({**self.evaluate.snapshot(), "include_base": self.include_base, "prompting": self.prompting}
                    if self.evaluate else None)
        if evaluate:
            evaluate.pop("subjects")
            evaluate.pop("sweep_from_job", None)
        return {"generate": self.generate.snapshot() if self.generate else None, "train": self.train.snapshot(),
                "methods": self.methods, "evaluate": evaluate, "sweep": self.sweep.to_dict() if self.sweep else None}


JobSpec = TrainSpec | GenerateSpec | PipelineSpec | EvaluateSpec


def sharding_config_file(kind: JobKind | str, config: Any) -> Path | None:
    """The accelerate config (FSDP / ZeRO-3) a train job asks for in train.accelerate_config, else None."""
    spec = parse_job_config(kind, config)
    return accelerate_config_file(spec.mote.train.accelerate_config) if isinstance(spec, TrainSpec) else None


def parse_train(data: Any, where: str = "train config", *, chains_required: bool = True) -> TrainSpec:
    data = only_settings(where, data, {"mote", "chains", "chain_dataset_id", "chains_from_job", "out",
                                       "extra_chains", "sweep", "setting_from_job"})
    try:
        mote = MoteConfig.from_dict(dict(data.get("mote") or {}))
        accelerate_config_file(mote.train.accelerate_config)  # a missing or wrong preset fails at submit
    except (ValueError, TypeError) as error:
        raise JobConfigError(f"{where}: mote: {error}") from None
    sources = [k for k in ("chains", "chain_dataset_id", "chains_from_job") if data.get(k) is not None]
    if len(sources) > 1:
        raise JobConfigError(f"{where}: give one chain source, not {sources}.")
    if not chains_required and sources:
        raise JobConfigError(f"{where}: a pipeline with generate trains on its own generated chains; remove {sources[0]}.")
    check_model(f"{where}: mote: model", mote.model)
    chains, extra = data.get("chains"), data.get("extra_chains")
    for key, path in (("chains", chains), ("extra_chains", extra)):
        if path is not None:
            _check_chains(f"{where}: {key}" if key != "chains" else where, path)
    sweep = parse_sweep(f"{where}: sweep", data.get("sweep")) if data.get("sweep") is not None else None
    return TrainSpec(mote, str(Path(chains).expanduser().resolve()) if chains else None,
                     positive_int(f"{where}: chain_dataset_id", data.get("chain_dataset_id")),
                     positive_int(f"{where}: chains_from_job", data.get("chains_from_job")), out_dir(data),
                     str(Path(extra).expanduser().resolve()) if extra else None, sweep,
                     positive_int(f"{where}: setting_from_job", data.get("setting_from_job")))


def parse_sweep(where: str, data: Any) -> SweepSettings:
    """A sweep section ({setting, values, holdout, method, seed}); errors name the key."""
    if not isinstance(data, dict):
        raise JobConfigError(f"{where}: expected a mapping such as "
                             "{setting: train.learning_rate, values: [1e-4, 3e-4, 1e-3], holdout: 0.1, method: mote}.")
    try:
        return SweepSettings.from_dict(dict(data))
    except (ValueError, TypeError) as error:
        raise JobConfigError(f"{where}: {error}") from None


def parse_generate(data: Any, where: str = "generate config") -> GenerateSpec:
    from core.data.questions import bundled_sets

    data = only_settings(where, data, {"generate", "questions", "model", "limit", "dataset_name", "out"})
    settings = only_settings(f"{where}: generate", data.get("generate") or {},
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
    check_model(f"{where}: model", str(data.get("model") or GenerateSpec.model))
    if generate.generator not in ("self", "openai"):
        check_model(f"{where}: generate: generator", generate.generator)
    return GenerateSpec(generate, questions, str(data.get("model") or GenerateSpec.model),
                        positive_int(f"{where}: limit", data.get("limit")), data.get("dataset_name"), out_dir(data))


def _check_chains(where: str, chains: Any) -> None:
    """The chains file is readable JSONL text of valid chains, not empty; errors name the first bad line."""
    from core.data.chains import check_chains_file

    if not isinstance(chains, str) or not chains.strip():
        raise JobConfigError(f"{where}: chains={chains!r} is not a file path: pass a chains .jsonl file.")
    try:
        check_chains_file(Path(chains).expanduser())
    except (ValueError, FileNotFoundError) as error:
        raise JobConfigError(f"{where}: chains: {error}") from None


def parse_kind(kind: JobKind | str) -> JobKind:
    """A job kind MoTE Studio can run; the error lists the valid kinds."""
    try:
        kind = JobKind(kind)
    except ValueError:
        raise JobConfigError(f"kind={kind!r} is not known: use one of {[k.value for k in JobKind]}.") from None
    return kind


def parse_job_config(kind: JobKind | str, config: Any) -> JobSpec:
    """The checked spec for `kind`; raises JobConfigError naming the bad setting."""
    kind = parse_kind(kind)
    if kind is JobKind.TRAIN:
        return parse_train(config)
    if kind is JobKind.GENERATE:
        return parse_generate(config)
    if kind is JobKind.EVALUATE:
        return parse_evaluate(config)
    return parse_pipeline(config)


def parse_pipeline(config: Any) -> PipelineSpec:
    from core.config import Method

    data = only_settings("pipeline config", config, {"generate", "train", "methods", "evaluate", "sweep"})
    generate = parse_generate(data["generate"], "pipeline generate config") if data.get("generate") is not None else None
    train = parse_train(data.get("train") or {}, "pipeline train config", chains_required=generate is None)
    methods = list(data["methods"]) if data.get("methods") is not None else [train.mote.method.value]
    try:
        methods = list(dict.fromkeys(Method(m).value for m in methods))
    except ValueError as error:
        raise JobConfigError(f"pipeline config: methods: {error}; use {[m.value for m in Method]}.") from None
    evaluate, include_base, prompting = None, True, []
    if data.get("evaluate") is not None:
        settings = dict(only_settings("pipeline evaluate config", data["evaluate"],
                                      {"settings", "judges", "out", "include_base", "prompting"}))
        include_base = bool(settings.pop("include_base", True))
        prompting = _prompting_pipelines(settings.pop("prompting", None))
        evaluate = parse_evaluate(settings, "pipeline evaluate config", subjects_required=False)
    if not methods and (evaluate is None or not (include_base or prompting)):
        raise JobConfigError("pipeline config: methods is empty and nothing else is evaluated: list methods to train, "
                             "or evaluate the base model (include_base: true, or prompting: [...]).")
    sweep = parse_sweep("pipeline config: sweep", data["sweep"]) if data.get("sweep") is not None else None
    return PipelineSpec(generate, train, methods, evaluate, include_base, prompting, sweep)


def _prompting_pipelines(value: Any) -> list[str]:
    """The prompting pipelines of a pipeline's evaluate config, checked and in the order given."""
    from core.decoding.subject_ref import PromptingPipeline, SubjectSpecError

    items = [value] if isinstance(value, str) else list(value or [])
    try:
        return list(dict.fromkeys(PromptingPipeline.parse(str(item)).value for item in items))
    except SubjectSpecError as error:
        raise JobConfigError(f"pipeline evaluate config: prompting: {error}") from None
