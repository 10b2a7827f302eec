"""The options several verbs share, and what they become: a data directory, a job queue, a config.

Why one module: `--home`/`--db` are read by nearly every verb and `--preset/--config/--model/
--max-steps` by demo, train and pipeline; resolving them once keeps the verbs' answers the same.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from core.stages import ChainShape

if TYPE_CHECKING:
    from core.config import MoteConfig
    from jobs.queue import JobQueue

#: --path choices: the chain shapes a user may force.
CHAIN_PATHS = [shape.value for shape in ChainShape]
METHOD_HELP = "mote, lora, lora_x2, sft, mote_no_skip, mote_no_shared, mote_no_skip_no_shared, moe_token, mixlora"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--home and --db: global flags, given before the verb."""
    parser.add_argument("--home", help="data directory (default: $MOTE_HOME or ~/.mote-studio)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default: $MOTE_DATABASE_URL or HOME/mote.db)")


def add_config_arguments(sub: argparse.ArgumentParser) -> None:
    """--preset, --config, --model, --max-steps: the MoTE config a verb trains with."""
    sub.add_argument("--preset", default="quick", help="bundled preset: quick or paper")
    sub.add_argument("--config", help="YAML config file (overrides --preset)")
    sub.add_argument("--model", help="base model: bundled alias, local folder or hub id")
    sub.add_argument("--max-steps", type=int, help="stop after N optimizer steps")


def add_method_argument(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--method", help=METHOD_HELP)


def home_from(args: argparse.Namespace) -> Path:
    """The data directory named by --home (or the default), created on first use."""
    from core.model_source import default_home, ensure_home

    return ensure_home(Path(args.home).expanduser() if args.home else default_home(), print)


def queue_from(args: argparse.Namespace) -> JobQueue:
    """The job queue over --db in the --home data directory (not started: verbs decide)."""
    from jobs.queue import JobQueue

    return JobQueue(url=args.db, home=home_from(args))


def mote_config(args: argparse.Namespace) -> MoteConfig:
    """--config (or --preset), then --model, --method and --max-steps on top."""
    from core.config import MoteConfig, load_preset

    config = MoteConfig.from_yaml(args.config) if getattr(args, "config", None) else load_preset(args.preset)
    if getattr(args, "model", None):
        config.model = args.model
    if getattr(args, "method", None):
        config.method = config.method.__class__(args.method)
    if getattr(args, "max_steps", None) is not None:
        config.train.max_steps = args.max_steps
    return config
