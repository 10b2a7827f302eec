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


def print_chain(mote, question: str, path: str | None, max_stage_tokens: int, min_stage_tokens: int = 1) -> None:
    """Stream a chain to the terminal: each stage headed by its name and active expert."""
    from core.inference import GenerationSettings, stream_chain
    from core.stages import ChainShape

    settings = GenerationSettings(max_stage_tokens=max_stage_tokens, min_stage_tokens=min_stage_tokens,
                                  path=ChainShape(path) if path else None)
    print(f"\nQuestion: {question}")
    for event in stream_chain(mote, question, settings):
        if event.kind == "start":
            print(f"\n[{event.stage.label} | expert: {event.expert}]", flush=True)
        elif event.kind == "text":
            print(event.text, end="", flush=True)
    print()


def _queue(args: argparse.Namespace):
    from jobs.queue import JobQueue

    return JobQueue(url=args.db, home=_home(args))


def _submit(args: argparse.Namespace, kind: str, config: dict) -> int:
    from jobs.cli import submit_and_follow

    return submit_and_follow(_queue(args), kind, config, args.detach, depends_on=args.after, gpus=args.gpus, auto_retry=args.auto_retry)


def cmd_train(args: argparse.Namespace) -> int:
    """Submit a training job (MoTE or a baseline) to the queue and follow it."""
    config = _config(args)
    chains = str(Path(args.chains).resolve()) if args.chains else None
    return _submit(args, "train", {"mote": config.to_dict(), "chains": chains, "out": args.out})


def _generate_config(args: argparse.Namespace) -> dict:
    from core.config import GenerateConfig

    fields = GenerateConfig.__dataclass_fields__
    settings = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return {"generate": settings, "questions": args.questions, "model": args.model, "limit": args.limit}


def cmd_generate(args: argparse.Namespace) -> int:
    """Submit a self-generation job; chains go to the database and to OUT/chains.jsonl."""
    return _submit(args, "generate", {**_generate_config(args), "out": args.out})


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Submit generate -> train as dependent jobs."""
    train = {"mote": _config(args).to_dict()}
    return _submit(args, "pipeline", {"generate": _generate_config(args), "train": train})


def cmd_jobs(args: argparse.Namespace) -> int:
    from jobs.cli import run_jobs_command

    return run_jobs_command(args, _queue(args))


def cmd_stats(args: argparse.Namespace) -> int:
    """Table-2 statistics of a chains folder or file."""
    from core.chain_store import JsonlChainSink, chain_statistics, statistics_table

    folder = Path(args.chains)
    sink = JsonlChainSink(folder if folder.is_dir() else folder.parent)
    print(statistics_table(chain_statistics(sink.records(), sink.dropped())))
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
    print_chain(setup.mote, args.question, args.path, args.max_stage_tokens, args.min_stage_tokens)
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
    print_chain(mote, args.question, args.path, args.max_stage_tokens, args.min_stage_tokens)
    return 0


def _add_generate_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--questions", default="train", help="bundled set name (e.g. train) or a file/folder")
    if not any(a.dest == "model" for a in sub._actions):
        sub.add_argument("--model", default="smollm2-135m-instruct", help="the model being aligned")
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
    for name in ("analysis", "guidance", "answer", "check"):
        sub.add_argument(f"--{name}-tokens", dest=f"{name}_tokens", type=int)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description="MoTE Studio")
    parser.add_argument("--home", help="data directory (default: $MOTE_HOME or ~/.mote-studio)")
    parser.add_argument("--db", help="SQLAlchemy database URL (default: $MOTE_DATABASE_URL or HOME/mote.db)")
    verbs = parser.add_subparsers(dest="verb")
    paths = ["answer", "analysis->answer", "analysis->guidance->answer"]

    demo = verbs.add_parser("demo", help="train on the bundled chains, then answer a question")
    train = verbs.add_parser("train", help="train MoTE or a baseline on a chain file (a queued job)")
    pipeline = verbs.add_parser("pipeline", help="generate chains, then train on them (dependent jobs)")
    for sub in (demo, train, pipeline):
        sub.add_argument("--preset", default="quick", help="bundled preset: quick or paper")
        sub.add_argument("--config", help="YAML config file (overrides --preset)")
        sub.add_argument("--model", help="base model: bundled alias, local folder or hub id")
        sub.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--chains", help="chain dataset (.jsonl); default: the bundled sample chains")
    for sub in (train, pipeline):
        sub.add_argument("--method", help="mote, lora, lora_x2, sft, mote_no_skip, mote_no_shared, mote_no_skip_no_shared")
    train.add_argument("--out", help="run folder (default: HOME/runs/job-ID)")
    generate = verbs.add_parser("generate", help="self-generate AlignCoT chains for a question set (a queued job)")
    generate.add_argument("--out", help="output folder for chains.jsonl (default: HOME/runs/job-ID); a retry resumes")
    for sub in (generate, pipeline):
        _add_generate_arguments(sub)
    from jobs.cli import add_job_arguments, add_submit_arguments

    for sub in (train, generate, pipeline):
        add_submit_arguments(sub)
    add_job_arguments(verbs)
    stats = verbs.add_parser("stats", help="chain dataset statistics (Table 2) of a chains folder")
    stats.add_argument("chains", help="folder holding chains.jsonl (or the file)")
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
        sub.add_argument("--min-stage-tokens", type=int, default=8,
                         help="a stage cannot close before this many tokens (a short demo run closes stages early)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"demo": cmd_demo, "train": cmd_train, "ask": cmd_ask, "generate": cmd_generate, "questions": cmd_questions,
                "pipeline": cmd_pipeline, "jobs": cmd_jobs, "stats": cmd_stats}
    if args.verb is None:  # `python launch.py [--home DIR]` runs the demo
        args = build_parser().parse_args([*(sys.argv[1:] if argv is None else argv), "demo"])
    try:
        return handlers[args.verb](args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
