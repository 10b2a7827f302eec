"""`launch.py doctor` (check the installation) and `launch.py config-reference` (the settings docs)."""
from __future__ import annotations

import argparse

VERBS = ("doctor", "config-reference")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    subparsers.add_parser("doctor", help="check Python packages, data directory, database, GPUs and the default model")
    reference = subparsers.add_parser("config-reference", help="the settings reference (Markdown) from core/config.py")
    reference.add_argument("--write", metavar="PATH",
                           help="write it to PATH (e.g. docs/config-reference.md) instead of printing")


def run(args: argparse.Namespace) -> int:
    return run_doctor(args) if args.verb == "doctor" else run_config_reference(args)


def run_doctor(args: argparse.Namespace) -> int:
    """Check the installation, data directory, database, GPUs and default model; exit 1 on a FAIL."""
    from jobs.doctor import doctor_command

    return doctor_command(args.home, args.db)


def run_config_reference(args: argparse.Namespace) -> int:
    """Print the settings reference rendered from core/config.py, or write it with --write."""
    from core.config_reference import render_config_reference, write_config_reference

    if args.write:
        print(f"Wrote {write_config_reference(args.write)}")
    else:
        print(render_config_reference(), end="")
    return 0
