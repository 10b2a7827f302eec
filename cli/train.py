"""`launch.py train`: train MoTE or a baseline on a chain file or a stored chain dataset (a queued job)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from cli.options import add_config_arguments, add_method_argument, mote_config, queue_from
from cli.submit import add_submit_arguments, submit_from_args
from jobs.records import JobKind

VERBS = ("train",)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="train MoTE or a baseline on a chain file (a queued job)")
    add_config_arguments(train)
    train.add_argument("--chains", help="chain dataset (.jsonl); default: the bundled sample chains")
    train.add_argument("--chain-dataset", type=int, help="a stored chain dataset by id (the app's Data tab shows ids)")
    add_method_argument(train)
    train.add_argument("--out", help="run folder (default: HOME/runs/job-ID)")
    add_submit_arguments(train)


def warn_about_dataset(args: argparse.Namespace, dataset_id: int, out: TextIO | None = None) -> list[str]:
    """Print why the dataset may not teach safety (its data-quality report), as the app's Train
    form says it; the job is still submitted: a warning, not a block. Returns the lines printed."""
    from jobs.chain_queries import dataset_quality_view

    queue = queue_from(args)
    try:
        view = dataset_quality_view(queue.sessions, dataset_id)
    except LookupError:
        return []  # the submit check says that the dataset does not exist
    finally:
        queue.engine.dispose()
    for warning in view.warnings:
        print(f"Warning: {warning}", file=out or sys.stderr)  # stderr at call time (tests capture it)
    return list(view.warnings)


def run(args: argparse.Namespace) -> int:
    """Submit a training job (MoTE or a baseline) to the queue and follow it."""
    chains = str(Path(args.chains).resolve()) if args.chains else None
    if args.chain_dataset is not None:
        warn_about_dataset(args, args.chain_dataset)
    return submit_from_args(args, JobKind.TRAIN, {"mote": mote_config(args).to_dict(), "chains": chains, "out": args.out,
                                                  "chain_dataset_id": args.chain_dataset})
