"""MoTE Studio entry point: maps verbs to functions (the only wiring point).

    python launch.py demo    train MoTE experts on the bundled sample chains, then answer a
                             question stage by stage (what `make run` starts)
    python launch.py train   train MoTE or a baseline on a chain file with a preset or config
    python launch.py ask     answer a question with a trained run, printing each stage
    python launch.py generate  self-generate AlignCoT chains for a question set (resumable)
    python launch.py questions list | import FILE | leakage --train A --eval B [--drop OUT]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


def _home(args: argparse.Namespace) -> Path:
    from core.model_source import default_home, ensure_home

    return ensure_home(Path(args.home).expanduser() if args.home else default_home(), print)


def _config(args: argparse.Namespace):
    from core.config import MoteConfig, load_preset

    config = MoteConfig.from_yaml(args.config) if getattr(args, "config", None) else load_preset(args.preset)
    if getattr(args, "model", None):
        config.model = args.model
    if getattr(args, "method", None):
        config.method = config.method.__class__(args.method)
    if getattr(args, "max_steps", None):
        config.train.max_steps = args.max_steps
    return config


def print_chain(mote, question: str, path: str | None, max_stage_tokens: int) -> None:
    """Stream a chain to the terminal: each stage headed by its name and active expert."""
    from core.inference import GenerationSettings, stream_chain
    from core.stages import ChainShape

    settings = GenerationSettings(max_stage_tokens=max_stage_tokens, path=ChainShape(path) if path else None)
    print(f"\nQuestion: {question}")
    for event in stream_chain(mote, question, settings):
        if event.kind == "start":
            print(f"\n[{event.stage.label} | expert: {event.expert}]", flush=True)
        elif event.kind == "text":
            print(event.text, end="", flush=True)
    print()


def cmd_train(args: argparse.Namespace) -> int:
    from core.chains import bundled_sample_chains_path, load_chains_jsonl
    from core.recipe import run_training, setup_run

    home = _home(args)
    config = _config(args)
    chains = load_chains_jsonl(args.chains or bundled_sample_chains_path())
    out = Path(args.out) if args.out else home / "runs" / time.strftime(f"{config.method.value}-%Y%m%d-%H%M%S")
    print(f"Training {config.method.value} on {len(chains)} chains with {config.model}; run folder {out}")
    setup = setup_run(config, chains, home=home)
    result = run_training(setup, out, reporter=ConsoleReporter())
    print(f"Done: {result.steps} steps, final loss {result.losses[-1]:.4f}; experts exported to {out / 'export'}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.chains import bundled_sample_chains_path, load_chains_jsonl
    from core.recipe import run_training, setup_run

    home = _home(args)
    config = _config(args)
    chains = load_chains_jsonl(bundled_sample_chains_path())
    out = home / "runs" / time.strftime("demo-%Y%m%d-%H%M%S")
    print(f"MoTE demo: training step-routed experts on {len(chains)} bundled sample chains ({config.model}).")
    setup = setup_run(config, chains, home=home)
    result = run_training(setup, out, reporter=ConsoleReporter())
    print(f"Trained {result.steps} steps (loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}); run folder {out}")
    print_chain(setup.mote, args.question, args.path, args.max_stage_tokens)
    return 0


class ProgressBar:
    """A one-line terminal progress bar with rate and ETA."""

    def __init__(self, label: str) -> None:
        self.label, self.started = label, time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        elapsed = time.monotonic() - self.started
        eta = elapsed / max(done, 1) * (total - done)
        filled = int(30 * done / max(total, 1))
        print(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}  "
              f"{done / max(elapsed, 1e-9) * 60:.1f}/min  ETA {eta:.0f}s", end="", flush=True)
        if done == total:
            print()


def cmd_generate(args: argparse.Namespace) -> int:
    from core.chain_store import JsonlChainSink, chain_statistics, statistics_table
    from core.config import GenerateConfig
    from core.generation import generate_chains
    from core.generators import build_generator
    from core.prompts import load_prompt_set
    from core.questions import load_question_set

    home = _home(args)
    settings = GenerateConfig.__dataclass_fields__
    overrides = {k: v for k, v in vars(args).items() if k in settings and v is not None}
    config = GenerateConfig(**overrides)
    report = load_question_set(args.questions)
    if report.rejected:
        print(report.summary())
    prompts = load_prompt_set(config.prompts_dir)
    generator = build_generator(config, args.model, home=home)
    sink = JsonlChainSink(args.out)
    print(f"Generating chains for {len(report.questions)} questions with {generator.id} into {args.out}")
    summary = generate_chains(report.questions, generator, config, prompts, sink, progress=ProgressBar("chains"), limit=args.limit)
    print(f"Wrote {summary.written} chains ({summary.skipped_done} already done) in {summary.seconds:.0f}s")
    print(statistics_table(chain_statistics(sink.records(), sink.dropped())))
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    from core.leakage import drop_leakage, find_leakage
    from core.questions import ColumnMapping, bundled_sets, import_questions, load_question_set, save_questions_jsonl

    if args.action == "list":
        for name in bundled_sets():
            report = load_question_set(name)
            kinds = sorted({q.kind.value for q in report.questions if q.kind})
            print(f"{name:16s} {len(report.questions):5d} questions  kinds: {', '.join(kinds)}")
    elif args.action == "import":
        report = import_questions(args.file, ColumnMapping(question=args.column))
        print(report.summary())
        if args.out:
            print(f"Saved to {save_questions_jsonl(report.questions, args.out)}")
    else:
        train, evaluation = load_question_set(args.train).questions, load_question_set(args.eval).questions
        pairs = find_leakage(train, evaluation, near=args.near)
        for pair in pairs:
            print(f"LEAK {pair.train_id} ~ {pair.eval_id} ({pair.similarity:.2f}): {pair.text}")
        print(f"{len(pairs)} evaluation question(s) of {len(evaluation)} overlap the training set.")
        if args.drop:
            print(f"Saved {len(evaluation) - len(pairs)} clean questions to "
                  f"{save_questions_jsonl(drop_leakage(evaluation, pairs), args.drop)}")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from core.recipe import load_trained

    mote = load_trained(args.run, home=_home(args))
    print_chain(mote, args.question, args.path, args.max_stage_tokens)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description="MoTE Studio")
    parser.add_argument("--home", help="data directory (default: $MOTE_HOME or ~/.mote-studio)")
    verbs = parser.add_subparsers(dest="verb")
    paths = ["answer", "analysis->answer", "analysis->guidance->answer"]

    demo = verbs.add_parser("demo", help="train on the bundled chains, then answer a question")
    train = verbs.add_parser("train", help="train MoTE or a baseline on a chain file")
    for sub in (demo, train):
        sub.add_argument("--preset", default="quick", help="bundled preset: quick or paper")
        sub.add_argument("--config", help="YAML config file (overrides --preset)")
        sub.add_argument("--model", help="base model: bundled alias, local folder or hub id")
        sub.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--chains", help="chain dataset (.jsonl); default: the bundled sample chains")
    train.add_argument("--method", help="mote, lora, lora_x2, sft, mote_no_skip, mote_no_shared, mote_no_skip_no_shared")
    train.add_argument("--out", help="run folder (default: HOME/runs/METHOD-TIMESTAMP)")
    generate = verbs.add_parser("generate", help="self-generate AlignCoT chains for a question set")
    generate.add_argument("--questions", required=True, help="bundled set name (e.g. train) or a file/folder")
    generate.add_argument("--model", default="smollm2-135m-instruct", help="the model being aligned")
    generate.add_argument("--out", required=True, help="output folder (chains.jsonl; a rerun resumes)")
    generate.add_argument("--limit", type=int, help="generate at most N new chains")
    generate.add_argument("--batch-size", dest="batch_size", type=int)
    generate.add_argument("--generator", help="self (default), a local model, or openai")
    generate.add_argument("--endpoint-url", dest="endpoint_url")
    generate.add_argument("--endpoint-model", dest="endpoint_model")
    generate.add_argument("--api-key-env", dest="api_key_env")
    generate.add_argument("--flagged-policy", dest="flagged_policy", choices=["keep", "drop", "regenerate"])
    generate.add_argument("--max-regenerations", dest="max_regenerations", type=int)
    generate.add_argument("--temperature", type=float)
    generate.add_argument("--prompts-dir", dest="prompts_dir")
    for name in ("analysis", "guidance", "answer", "check"):
        generate.add_argument(f"--{name}-tokens", dest=f"{name}_tokens", type=int)
    questions = verbs.add_parser("questions", help="list, import and check question sets")
    questions.add_argument("action", choices=["list", "import", "leakage"])
    questions.add_argument("file", nargs="?", help="file or folder to import")
    questions.add_argument("--column", help="question column (default: auto-detect)")
    questions.add_argument("--out", help="write the imported questions as JSONL")
    questions.add_argument("--train", default="train")
    questions.add_argument("--eval", default="eval_harmful")
    questions.add_argument("--near", type=float, default=0.9, help="near-duplicate threshold (token Jaccard)")
    questions.add_argument("--drop", help="write the evaluation set without the overlapping questions")
    ask = verbs.add_parser("ask", help="answer a question with a trained run")
    ask.add_argument("--run", required=True, help="run folder or its export folder")
    for sub in (demo, ask):
        sub.add_argument("--question", default=DEMO_QUESTION)
        sub.add_argument("--path", choices=paths, help="force a chain shape (default: the model's choice)")
        sub.add_argument("--max-stage-tokens", type=int, default=160)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"demo": cmd_demo, "train": cmd_train, "ask": cmd_ask, "generate": cmd_generate, "questions": cmd_questions}
    if args.verb is None:
        args = build_parser().parse_args(["demo", *(argv or sys.argv[1:])])
    try:
        return handlers[args.verb](args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
