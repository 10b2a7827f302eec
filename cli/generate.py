"""`launch.py generate`: self-generate AlignCoT chains for a question set (a queued, resumable job).

The generation flags are shared with `pipeline`, whose first stage is this same job.
"""
from __future__ import annotations

import argparse
from typing import Any

from cli.submit import add_submit_arguments, submit_from_args
from jobs.records import JobKind

VERBS = ("generate",)
DEFAULT_MODEL = "smollm2-135m-instruct"
STAGE_TOKEN_FLAGS = ("analysis", "guidance", "answer", "check")


def add_generate_arguments(sub: argparse.ArgumentParser) -> None:
    """The question set, the model being aligned and GenerateConfig's flags (each maps to a field)."""
    sub.add_argument("--questions", help="bundled set name (default: train) or a file/folder")
    if not any(action.dest == "model" for action in sub._actions):  # `pipeline` has --model from its config flags
        sub.add_argument("--model", default=DEFAULT_MODEL, help="the model being aligned")
    sub.add_argument("--limit", type=int, help="generate at most N chains")
    sub.add_argument("--batch-size", dest="batch_size", type=int)
    sub.add_argument("--generator", help="self (default), a local model, or openai")
    sub.add_argument("--endpoint-url", dest="endpoint_url")
    sub.add_argument("--endpoint-model", dest="endpoint_model")
    sub.add_argument("--api-key-env", dest="api_key_env")
    sub.add_argument("--flagged-policy", dest="flagged_policy", choices=["keep", "drop", "regenerate"])
    sub.add_argument("--max-regenerations", dest="max_regenerations", type=int)
    sub.add_argument("--temperature", type=float)
    sub.add_argument("--prompts-dir", dest="prompts_dir")
    for name in STAGE_TOKEN_FLAGS:
        sub.add_argument(f"--{name}-tokens", dest=f"{name}_tokens", type=int)
    sub.add_argument("--checker", help="self (label probabilities, default), text (free-text self-check), openai, "
                                       "or a local model")
    sub.add_argument("--unsafe-threshold", dest="unsafe_threshold", type=float, help="P(unsafe) at which a check flags")
    sub.add_argument("--exemplars", type=int, help="few-shot example pairs per stage prompt (default 2)")
    sub.add_argument("--answer-openings", dest="answer_openings", choices=["harmful", "off"])
    sub.add_argument("--best-of", dest="best_of", type=int, help="answer candidates per answer step (default 1)")
    sub.add_argument("--no-check-stages", dest="check_stages", action="store_const", const=False,
                     help="do not check the analysis and guidance stages")
    sub.add_argument("--no-label-checks", dest="label_checks", action="store_const", const=False,
                     help="do not flag answers that contradict the question's label")
    sub.add_argument("--plain-pipeline", action="store_true",
                     help="the paper's plain pipeline: free-text self-check, keep flagged chains, no label checks, "
                          "no stage checks, no exemplars, no openings, one candidate (flags given explicitly win)")


def generate_config(args: argparse.Namespace) -> dict[str, Any]:
    """The generate part of a job config: the GenerateConfig fields the user set, and the set."""
    from core.config import GenerateConfig

    fields = GenerateConfig.__dataclass_fields__
    settings = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    if getattr(args, "plain_pipeline", False):
        from core.config import PLAIN_PIPELINE

        settings = {**PLAIN_PIPELINE, **settings}
    return {"generate": settings, "questions": args.questions, "model": args.model, "limit": args.limit}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    generate = subparsers.add_parser("generate", help="self-generate AlignCoT chains for a question set (a queued job)")
    generate.add_argument("--out", help="output folder for chains.jsonl (default: HOME/runs/job-ID); a retry resumes")
    add_generate_arguments(generate)
    add_submit_arguments(generate)


def run(args: argparse.Namespace) -> int:
    """Submit a self-generation job; chains go to the database and to OUT/chains.jsonl."""
    return submit_from_args(args, JobKind.GENERATE, {**generate_config(args), "out": args.out})
