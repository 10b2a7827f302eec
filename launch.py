"""MoTE Studio entry point: the verb table. Each verb group lives in its own cli/ module.

    python launch.py [ui]    serve the app on 127.0.0.1:7860 (the default verb; what `make run` starts)
                             [--host H] [--port P] [--share --auth USER:PASS|FILE]
    python launch.py demo    train MoTE experts on the bundled sample chains, then answer a
                             question stage by stage in the terminal
    python launch.py train   train MoTE or a baseline on a chain file with a preset or config
    python launch.py ask     answer a question with a trained run, printing each stage
    python launch.py serve --run RUN|base:MODEL [--host H] [--port 8000]  OpenAI-compatible API
    python launch.py evaluate --run RUN|job:ID|base:MODEL --sets SETS --judge JUDGE  (a queued job)
    python launch.py study --config FILE   train MoTE + baselines, evaluate and compare them
    python launch.py generate  self-generate AlignCoT chains for a question set (resumable)
    python launch.py judges validate --judge JUDGE [--out DIR]  agreement with the labelled answers
    python launch.py questions list | import FILE | leakage --train A --eval B [--drop OUT]
    python launch.py doctor  check the installation, database, GPUs and default model (exit 1 on FAIL)
    python launch.py config-reference [--write docs/config-reference.md]  settings reference
    python launch.py estimate [--model 7b|13b|70b|FOLDER] [--preset paper]  memory/time per training mode
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from cli import demo, doctor, estimate, evaluate, generate, jobs, judges, questions, serve, train, ui  # noqa: E402  (after the env)
from cli.options import add_common_arguments  # noqa: E402

#: Each module: VERBS, add_parser(subparsers) and run(args) -> exit code.
VERB_GROUPS = (ui, demo, train, generate, evaluate, judges, jobs, serve, questions, doctor, estimate)
#: `python launch.py [--port P ...]` with no verb serves the app.
DEFAULT_GROUP = ui


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description="MoTE Studio")
    add_common_arguments(parser)
    ui.add_server_arguments(parser)  # the default verb's flags, also accepted before any verb
    verbs = parser.add_subparsers(dest="verb")
    for group in VERB_GROUPS:
        group.add_parser(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.verb = args.verb or DEFAULT_GROUP.VERBS[0]
    group = next(group for group in VERB_GROUPS if args.verb in group.VERBS)
    try:
        return group.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
