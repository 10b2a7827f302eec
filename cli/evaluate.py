"""`launch.py evaluate | study | pipeline`: the jobs that compare models, from flags and YAML files.

    --run RUN        a run folder, job:ID (a training job) or base:MODEL, or prompt:PIPELINE: before any of
                     them (e.g. prompt:aligncot:base:MODEL, a prompting pipeline); repeat for several
    --judge JUDGE    heuristic | local:MODEL[:label-prob|:verdict-first|:free-text] | URL#MODEL_NAME[@KEY_ENV] (http://host:8000/v1#mote) | a YAML file of
                     JudgeConfig fields; repeat for several (the first is the main one)
    study --config   a YAML file (jobs/pipelines.py: study_config); --preset NAME: assets/studies/NAME.yaml;
                     --regenerate: generate the chains first instead of reading the study's chains file
    pipeline         generate -> train each method -> evaluate, from assets/pipelines/PRESET.yaml
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cli.generate import add_generate_arguments, generate_config
from cli.options import CHAIN_PATHS, add_config_arguments, add_method_argument, mote_config, queue_from
from cli.submit import add_submit_arguments, submit_from_args
from core.decoding.subject_ref import SubjectRef, SubjectRefKind, SubjectSpecError
from core.evaluation.judge_config import judge_settings_from_spec
from jobs.pipelines import pipeline_config, study_config, study_preset_path
from jobs.records import JobKind
from jobs.specs import JobConfigError

VERBS = ("evaluate", "study", "pipeline")
#: Evaluate flags copied into the job's settings when given (the names are EvaluateSpec settings).
SETTING_FLAGS = ("limit", "jailbreak_prompts", "max_stage_tokens", "temperature", "seed", "path", "batch_size")


def subject_from_flag(value: str) -> dict[str, Any]:
    """'job:12' | 'base:MODEL' | a run folder | 'prompt:PIPELINE:' before any of them -> an evaluate
    subject (labelled by what was given), parsed by core.decoding.subject_ref.SubjectRef."""
    try:
        ref = SubjectRef.parse(value)
    except SubjectSpecError as error:
        raise JobConfigError(f"--run {value.strip()!r}: {error}") from None
    subject = _plain_subject(ref.inner if ref.kind is SubjectRefKind.PROMPT else ref)
    if ref.kind is SubjectRefKind.PROMPT:
        subject.update(label=ref.label, prompting=ref.pipeline.value)
    return subject


def _plain_subject(ref: SubjectRef) -> dict[str, Any]:
    if ref.kind is SubjectRefKind.JOB:
        return {"label": ref.label, "train_job": ref.job_id}
    if ref.kind is SubjectRefKind.BASE:
        return {"label": ref.label, "base": ref.value}
    return {"label": ref.label, "run": ref.value}


def judge_from_flag(value: str) -> dict[str, Any]:
    """A judge config from the --judge shorthand or a YAML/JSON file (core's one parser)."""
    try:
        return judge_settings_from_spec(value)
    except ValueError as error:
        raise JobConfigError(f"--judge: {error}") from None


def evaluate_config(args: argparse.Namespace, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evaluate job the flags describe. `source` is the config of the evaluate job named by
    --rejudge: its subjects and settings are the defaults, and its stored answers are reused."""
    settings: dict[str, Any] = dict(source.get("settings") or {}) if source else {}
    if args.sets:
        settings["sets"] = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in SETTING_FLAGS:
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    if not args.run and not source:
        raise JobConfigError("evaluate: give at least one --run (a run folder, job:ID, base:MODEL or prompt:PIPELINE:...), "
                             "or --rejudge JOB to judge an earlier evaluation's answers again.")
    subjects = [subject_from_flag(r) for r in args.run] if args.run else list(source["subjects"])
    config = {"subjects": subjects, "settings": settings,
              "judges": [judge_from_flag(j) for j in (args.judge or ["heuristic"])], "out": args.out}
    if source:
        config["answers_from"] = args.rejudge
    return config


def add_evaluate_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--run", action="append",
                     help="run folder, job:ID (training job) or base:MODEL, or prompt:PIPELINE:<one of those> "
                          "(pipelines: plain, cot, critique-revise, analysis-answer, guidance-answer, aligncot); repeat for several")
    sub.add_argument("--sets", help="comma-separated question sets (default eval_harmful,eval_helpful,eval_benign)")
    sub.add_argument("--judge", action="append",
                     help="heuristic | local:MODEL[:label-prob|:verdict-first|:free-text] | URL#MODEL[@KEY_ENV] (e.g. http://127.0.0.1:8000/v1#mote) | judge.yaml; repeat")
    sub.add_argument("--limit", type=int, help="questions per set (default 16)")
    sub.add_argument("--jailbreak-prompts", type=int, help="harmful questions also asked in every jailbreak wrapper (default 8)")
    sub.add_argument("--max-stage-tokens", type=int, help="token limit of each stage (default 96)")
    sub.add_argument("--batch-size", type=int, help="prompts each model decodes together (default 8; 1 = one at a time)")
    sub.add_argument("--temperature", type=float)
    sub.add_argument("--seed", type=int)
    sub.add_argument("--path", choices=CHAIN_PATHS, help="force a chain shape")
    sub.add_argument("--out", help="report folder (default: HOME/runs/job-ID/report)")
    sub.add_argument("--rejudge", type=int, metavar="JOB",
                     help="judge the answers evaluate job JOB stored with --judge, without generating them again "
                          "(its subjects and settings are the defaults)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser("evaluate", help="evaluate runs and base models on question sets with judges (a queued job)")
    add_evaluate_arguments(evaluate)
    study = subparsers.add_parser("study", help="train MoTE and baselines on the same chains, evaluate and compare them")
    source = study.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="study YAML (see assets/studies/quick.yaml)")
    source.add_argument("--preset", help="a bundled study: assets/studies/NAME.yaml (cpu, quick, table3, token_routing)")
    study.add_argument("--regenerate", action="store_true",
                       help="generate the study's chains first (every training question, default safe pipeline) "
                            "instead of reading its chains file")
    pipeline = subparsers.add_parser("pipeline", help="generate chains, train each method, evaluate (dependent jobs)")
    pipeline.add_argument("--methods", help="comma-separated methods to train (default: the preset's, e.g. mote,lora)")
    pipeline.add_argument("--no-evaluate", action="store_true", help="stop after training")
    pipeline.add_argument("--train-chains", help="a chains file trained on as well as the generated chains; "
                                                 "'bundled' = the shipped safe chains, 'none' = generated chains only "
                                                 "(default: the preset's train_chains)")
    add_config_arguments(pipeline)
    add_method_argument(pipeline)
    add_generate_arguments(pipeline)
    for sub in (evaluate, study, pipeline):
        add_submit_arguments(sub)


def run(args: argparse.Namespace) -> int:
    handlers = {"evaluate": run_evaluate, "study": run_study, "pipeline": run_pipeline}
    return handlers[args.verb](args)


def _rejudge_source(args: argparse.Namespace) -> dict[str, Any]:
    """The config of the evaluate job --rejudge names; LookupError/ValueError say what is wrong."""
    job = queue_from(args).get(args.rejudge)
    if job.kind is not JobKind.EVALUATE:
        raise ValueError(f"job {args.rejudge} is a {job.kind.value} job; name an evaluate job (launch.py jobs list).")
    return job.config


def run_evaluate(args: argparse.Namespace) -> int:
    """Submit an evaluate job: every --run answers the sets, every --judge scores the answers."""
    source = None
    if args.rejudge is not None:
        try:
            source = _rejudge_source(args)
        except (LookupError, ValueError) as error:
            print(f"error: --rejudge {args.rejudge}: {error}", file=sys.stderr)
            return 2
    return submit_from_args(args, JobKind.EVALUATE, evaluate_config(args, source))


def run_study(args: argparse.Namespace) -> int:
    """Submit a study: train each method on the same chains, then evaluate them with the base model."""
    path = study_preset_path(args.preset) if args.preset else args.config
    return submit_from_args(args, JobKind.PIPELINE, study_config(path, regenerate=args.regenerate))


def run_pipeline(args: argparse.Namespace) -> int:
    """Submit generate -> train (each method) -> evaluate as dependent jobs (assets/pipelines/PRESET.yaml)."""
    train = {"mote": mote_config(args).to_dict()}
    generate = generate_config(args)
    generate["model"] = generate.get("model") or train["mote"]["model"]  # the model being aligned writes its data
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    return submit_from_args(args, JobKind.PIPELINE, pipeline_config(args.preset, generate, train, methods=methods,
                                                                    evaluate=not args.no_evaluate,
                                                                    train_chains=args.train_chains))
