"""MoTE Studio entry point: maps verbs to functions (the only wiring point).

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
    python launch.py questions list | import FILE | leakage --train A --eval B [--drop OUT]
    python launch.py doctor  check the installation, database, GPUs and default model (exit 1 on FAIL)
    python launch.py config-reference [--write docs/config-reference.md]  settings reference
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
    if getattr(args, "max_steps", None) is not None:  # 0 goes on to be refused, never ignored
        config.train.max_steps = args.max_steps
    return config


def print_chain(mote, question: str, path: str | None, max_stage_tokens: int, min_stage_tokens: int = 1) -> None:
    """Stream a chain to the terminal: each stage headed by its name and active expert."""
    from core.decoding.chain_programs import GenerationSettings, stream_chain
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
    return _submit(args, "train", {"mote": config.to_dict(), "chains": chains, "out": args.out,
                                   "chain_dataset_id": args.chain_dataset})


def _generate_config(args: argparse.Namespace) -> dict:
    from core.config import GenerateConfig

    fields = GenerateConfig.__dataclass_fields__
    settings = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return {"generate": settings, "questions": args.questions, "model": args.model, "limit": args.limit}


def cmd_generate(args: argparse.Namespace) -> int:
    """Submit a self-generation job; chains go to the database and to OUT/chains.jsonl."""
    return _submit(args, "generate", {**_generate_config(args), "out": args.out})


def cmd_pipeline(args: argparse.Namespace) -> int:
    """Submit generate -> train (each method) -> evaluate as dependent jobs (assets/pipelines/PRESET.yaml)."""
    from jobs.evaluation_cli import pipeline_config

    train = {"mote": _config(args).to_dict()}
    generate = _generate_config(args)
    generate["model"] = generate.get("model") or train["mote"]["model"]  # the model being aligned writes its data
    methods = [m.strip() for m in args.methods.split(",")] if args.methods else None
    return _submit(args, "pipeline", pipeline_config(args.preset, generate, train, methods=methods,
                                                     evaluate=not args.no_evaluate))


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Submit an evaluate job: every --run answers the sets, every --judge scores the answers."""
    from jobs.evaluation_cli import evaluate_config

    source = None
    if args.rejudge is not None:
        from jobs.records import JobKind

        try:
            job = _queue(args).get(args.rejudge)
        except LookupError as error:
            print(f"error: --rejudge {args.rejudge}: {error}", file=sys.stderr)
            return 2
        if job.kind is not JobKind.EVALUATE:
            print(f"error: --rejudge {args.rejudge}: job {args.rejudge} is a {job.kind.value} job; "
                  "name an evaluate job (launch.py jobs list).", file=sys.stderr)
            return 2
        source = job.config
    return _submit(args, "evaluate", evaluate_config(args, source))


def cmd_study(args: argparse.Namespace) -> int:
    """Submit a study: train each method on the same chains, then evaluate them with the base model."""
    from jobs.evaluation_cli import study_config

    return _submit(args, "pipeline", study_config(args.config))


def cmd_jobs(args: argparse.Namespace) -> int:
    from jobs.cli import run_jobs_command

    return run_jobs_command(args, _queue(args))


def cmd_stats(args: argparse.Namespace) -> int:
    """Table-2 statistics of a chains folder or file."""
    from core.data.chain_store import JsonlChainSink, chain_statistics, statistics_table
    from core.data.chains import load_chains_jsonl

    path = Path(args.chains)
    if path.is_file():  # a chains file of any name (e.g. assets/chains/sample_chains.jsonl)
        chains = load_chains_jsonl(path)
        records = [{"flagged": False, **c.to_dict(), "shape": c.shape.value} for c in chains]
        print(statistics_table(chain_statistics(records, [])))
        return 0
    sink = JsonlChainSink(path)
    print(statistics_table(chain_statistics(sink.records(), sink.dropped())))
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the Gradio app; the job queue (scheduler) runs in this process."""
    from app.launcher import ServeOptions, parse_auth, serve

    options = ServeOptions(args.host, args.port, args.share, parse_auth(args.auth))
    options.check()  # before the model home or the database are touched
    return serve(_queue(args), options)


def cmd_demo(args: argparse.Namespace) -> int:
    from core.data.chains import bundled_sample_chains_path, load_chains_jsonl
    from core.training.recipe import run_training, setup_run

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
    from core.data.leakage import drop_leakage, find_leakage
    from core.data.questions import (
        ColumnMapping,
        bundled_sets,
        import_questions,
        load_question_set,
        save_questions_jsonl,
    )

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
    from core.training.recipe import load_trained

    mote = load_trained(args.run, home=_home(args))
    print_chain(mote, args.question, args.path, args.max_stage_tokens, args.min_stage_tokens)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a run (or base:MODEL) as an OpenAI-compatible chat-completions API until Ctrl+C."""
    from core.decoding.chain_programs import GenerationSettings
    from core.serving.server import base_url, check_port, serve
    from core.decoding.subjects import load_subject

    check_port(args.host, args.port)  # before the model loads
    subject = load_subject(args.run, home=_home(args))
    model_id = args.model_id or subject.label
    print(f"Serving {subject.label} ({subject.kind.value}) as model '{model_id}'.\n"
          f"OpenAI clients: base URL {base_url(args.host, args.port)}  (Ctrl+C stops)", flush=True)
    serve(subject, args.host, args.port, model_id=model_id, defaults=GenerationSettings(max_stage_tokens=args.max_stage_tokens))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the installation, data directory, database, GPUs and default model; exit 1 on a FAIL."""
    from jobs.doctor import doctor_command

    return doctor_command(args.home, args.db)


def cmd_config_reference(args: argparse.Namespace) -> int:
    """Print the settings reference rendered from core/config.py, or write it with --write."""
    from core.config_reference import render_config_reference, write_config_reference

    if args.write:
        print(f"Wrote {write_config_reference(args.write)}")
    else:
        print(render_config_reference(), end="")
    return 0


def _add_generate_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--questions", help="bundled set name (default: train) or a file/folder")
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
    from app.launcher import add_serve_arguments

    add_serve_arguments(parser)
    verbs = parser.add_subparsers(dest="verb")
    paths = ["answer", "analysis->answer", "analysis->guidance->answer"]
    add_serve_arguments(verbs.add_parser("ui", help="serve the app (the default when no verb is given)"), suppress=True)

    demo = verbs.add_parser("demo", help="train on the bundled chains, then answer a question")
    train = verbs.add_parser("train", help="train MoTE or a baseline on a chain file (a queued job)")
    pipeline = verbs.add_parser("pipeline", help="generate chains, train each method, evaluate (dependent jobs)")
    pipeline.add_argument("--methods", help="comma-separated methods to train (default: the preset's, e.g. mote,lora)")
    pipeline.add_argument("--no-evaluate", action="store_true", help="stop after training")
    for sub in (demo, train, pipeline):
        sub.add_argument("--preset", default="quick", help="bundled preset: quick or paper")
        sub.add_argument("--config", help="YAML config file (overrides --preset)")
        sub.add_argument("--model", help="base model: bundled alias, local folder or hub id")
        sub.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--chains", help="chain dataset (.jsonl); default: the bundled sample chains")
    train.add_argument("--chain-dataset", type=int, help="a stored chain dataset by id (the app's Data tab shows ids)")
    for sub in (train, pipeline):
        sub.add_argument("--method", help="mote, lora, lora_x2, sft, mote_no_skip, mote_no_shared, mote_no_skip_no_shared")
    train.add_argument("--out", help="run folder (default: HOME/runs/job-ID)")
    generate = verbs.add_parser("generate", help="self-generate AlignCoT chains for a question set (a queued job)")
    generate.add_argument("--out", help="output folder for chains.jsonl (default: HOME/runs/job-ID); a retry resumes")
    for sub in (generate, pipeline):
        _add_generate_arguments(sub)
    from jobs.cli import add_job_arguments, add_submit_arguments
    from jobs.evaluation_cli import add_evaluate_arguments

    evaluate = verbs.add_parser("evaluate", help="evaluate runs and base models on question sets with judges (a queued job)")
    add_evaluate_arguments(evaluate)
    study = verbs.add_parser("study", help="train MoTE and baselines on the same chains, evaluate and compare them")
    study.add_argument("--config", required=True, help="study YAML (see assets/studies/quick.yaml)")
    for sub in (train, generate, pipeline, evaluate, study):
        add_submit_arguments(sub)
    add_job_arguments(verbs)
    verbs.add_parser("doctor", help="check Python packages, data directory, database, GPUs and the default model")
    verbs.add_parser("config-reference", help="the settings reference (Markdown) from core/config.py").add_argument(
        "--write", metavar="PATH", help="write it to PATH (e.g. docs/config-reference.md) instead of printing")
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
    serve_api = verbs.add_parser("serve", help="serve a run or a base model as an OpenAI-compatible API (/v1/chat/completions)")
    serve_api.add_argument("--run", required=True, help="run folder, its export folder, or base:MODEL (alias, folder or hub id)")
    serve_api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve_api.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve_api.add_argument("--model-id", help="model name shown to clients (default: the run's label, e.g. mote:RUN)")
    serve_api.add_argument("--max-stage-tokens", type=int, default=256, help="default token limit of each stage")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"demo": cmd_demo, "train": cmd_train, "ask": cmd_ask, "generate": cmd_generate, "questions": cmd_questions,
                "pipeline": cmd_pipeline, "jobs": cmd_jobs, "stats": cmd_stats,
                "doctor": cmd_doctor, "config-reference": cmd_config_reference}
    handlers["ui"] = cmd_ui
    handlers["serve"] = cmd_serve
    handlers.update(evaluate=cmd_evaluate, study=cmd_study)
    if args.verb is None:  # `python launch.py [--home DIR] [--port P ...]` serves the app
        args.verb = "ui"
    try:
        return handlers[args.verb](args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
