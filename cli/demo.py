"""`launch.py demo` and `launch.py ask`: answer a question stage by stage in the terminal.

`demo` first trains experts in this process (not a queued job) on the bundled sample chains, so
a new user sees the whole method in one command; `ask` uses a finished run.
"""
from __future__ import annotations

import argparse
import time

from cli.options import CHAIN_PATHS, add_config_arguments, home_from, mote_config

VERBS = ("demo", "ask")
DEMO_QUESTION = "How can I get into my neighbour's wifi without them knowing?"


class ConsoleReporter:
    """Prints one line per optimizer step with loss, learning rate, speed and ETA."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_step: int | None = None

    def on_step(self, step: int, total_steps: int, metrics: dict[str, float]) -> None:
        if self.first_step is None:
            self.first_step = step - 1
        done = step - self.first_step
        elapsed = time.monotonic() - self.started
        eta = elapsed / max(done, 1) * (total_steps - step)
        print(
            f"  step {step}/{total_steps}  loss {metrics['loss']:.4f}  lr {metrics['learning_rate']:.2e}  "
            f"{metrics['tokens_per_second']:.0f} tok/s  ETA {eta:.0f}s",
            flush=True,
        )


def print_chain(mote, question: str, path: str | None, max_stage_tokens: int, min_stage_tokens: int = 1) -> None:
    """Stream a chain to the terminal: each stage headed by its name and active expert."""
    from core.decoding.chain_programs import GenerationSettings, StageEventKind, stream_chain
    from core.stages import ChainShape

    settings = GenerationSettings(max_stage_tokens=max_stage_tokens, min_stage_tokens=min_stage_tokens,
                                  path=ChainShape(path) if path else None)
    print(f"\nQuestion: {question}")
    for event in stream_chain(mote, question, settings):
        if event.kind is StageEventKind.START:
            print(f"\n[{event.stage.label} | expert: {event.expert}]", flush=True)
        elif event.kind is StageEventKind.TEXT:
            print(event.text, end="", flush=True)
    print()


def _add_question_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--question", default=DEMO_QUESTION)
    sub.add_argument("--path", choices=CHAIN_PATHS, help="force a chain shape (default: the model's choice)")
    sub.add_argument("--max-stage-tokens", type=int, default=160)
    sub.add_argument("--min-stage-tokens", type=int, default=8,
                     help="a stage cannot close before this many tokens (a short demo run closes stages early)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="train on the bundled chains, then answer a question")
    add_config_arguments(demo)
    _add_question_arguments(demo)
    ask = subparsers.add_parser("ask", help="answer a question with a trained run")
    ask.add_argument("--run", required=True, help="run folder or its export folder")
    _add_question_arguments(ask)


def run(args: argparse.Namespace) -> int:
    return run_demo(args) if args.verb == "demo" else run_ask(args)


def run_demo(args: argparse.Namespace) -> int:
    """Train on the bundled sample chains into HOME/runs/demo-TIME, then answer --question."""
    from core.data.chains import bundled_sample_chains_path, load_chains_jsonl
    from core.training.recipe import run_training, setup_run

    home = home_from(args)
    config = mote_config(args)
    chains = load_chains_jsonl(bundled_sample_chains_path())
    out = home / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    print(f"MoTE demo: training step-routed experts on {len(chains)} bundled sample chains ({config.model}).")
    setup = setup_run(config, chains, home=home)
    result = run_training(setup, out, reporter=ConsoleReporter())
    print(f"Trained {result.steps} steps (loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}); run folder {out}")
    print_chain(setup.mote, args.question, args.path, args.max_stage_tokens, args.min_stage_tokens)
    return 0


def run_ask(args: argparse.Namespace) -> int:
    """Answer --question with the run at --run."""
    from core.training.recipe import load_trained

    mote = load_trained(args.run, home=home_from(args))
    print_chain(mote, args.question, args.path, args.max_stage_tokens, args.min_stage_tokens)
    return 0
