"""`launch.py judges validate --judge SPEC [--out DIR]`: check a judge against the labelled answers.

Why a verb: a judge's numbers are trusted only after its verdicts agree with human labels
(assets/judge_validation); this is the headless twin of the Evaluate tab's "Judge validation".
The report goes to HOME/judge-validation/<judge id>/ (where the app shows it) unless --out is given.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.options import home_from

VERBS = ("judges",)
JUDGE_ACTIONS = ("validate",)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    judges = subparsers.add_parser("judges", help="validate a judge against the project's labelled answers")
    judges.add_argument("action", choices=JUDGE_ACTIONS)
    judges.add_argument("--judge", required=True,
                        help="heuristic | local:MODEL | http://HOST/v1#MODEL_NAME[@KEY_ENV] | a YAML file of judge settings")
    judges.add_argument("--out", type=Path, help="report folder (default: HOME/judge-validation/<judge id>)")
    judges.add_argument("--set", dest="validation_set", type=Path,
                        help="a JSONL file of labelled answers (default: assets/judge_validation/answers.jsonl)")


def run(args: argparse.Namespace) -> int:
    from core.evaluation.validation_store import validate_and_store

    report, out = validate_and_store(args.judge, home_from(args), args.out, validation_set=args.validation_set)
    print(report.to_markdown())
    print(f"Saved {out / 'report.md'} and {out / 'report.json'}")
    return 0
