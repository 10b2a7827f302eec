"""`launch.py questions list|import|leakage` and `launch.py stats`: question sets and chain data."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

VERBS = ("questions", "stats")
QUESTION_ACTIONS = ("list", "import", "leakage")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    stats = subparsers.add_parser("stats", help="chain dataset statistics (Table 2) of a chains folder")
    stats.add_argument("chains", help="folder holding chains.jsonl (or the file)")
    questions = subparsers.add_parser("questions", help="list, import and check question sets")
    questions.add_argument("action", choices=QUESTION_ACTIONS)
    questions.add_argument("file", nargs="?", help="file or folder to import")
    questions.add_argument("--column", help="question column (default: auto-detect)")
    questions.add_argument("--out", help="write the imported questions as JSONL")
    questions.add_argument("--train", default="train")
    questions.add_argument("--eval", default="eval_harmful")
    questions.add_argument("--near", type=float, default=0.9, help="near-duplicate threshold (token Jaccard)")
    questions.add_argument("--drop", help="write the evaluation set without the overlapping questions")


def run(args: argparse.Namespace) -> int:
    if args.verb == "stats":
        return run_stats(args)
    handlers = {"list": list_sets, "import": import_set, "leakage": check_leakage}
    return handlers[args.action](args)


def run_stats(args: argparse.Namespace) -> int:
    """Table-2 statistics of a chains folder or file."""
    from core.data.chain_store import JsonlChainSink, chain_statistics, statistics_table
    from core.data.chains import load_chains_jsonl

    path = Path(args.chains)
    if path.is_file():  # a chains file of any name (e.g. assets/chains/sample_chains.jsonl)
        chains = load_chains_jsonl(path)
        records = [{"flagged": False, **c.to_dict(), "shape": c.shape.value} for c in chains]
        print(statistics_table(chain_statistics(records, [])))
        return 0
    from core.data.quality import quality_report

    sink = JsonlChainSink(path)
    print(statistics_table(chain_statistics(sink.records(), sink.dropped())))
    print()
    print(quality_report(sink.records() + sink.dropped()).to_markdown())
    return 0


def list_sets(args: argparse.Namespace) -> int:
    """Each bundled question set with its size and question kinds."""
    from core.data.questions import bundled_sets, load_question_set

    for name in bundled_sets():
        report = load_question_set(name)
        kinds = sorted({q.kind.value for q in report.questions if q.kind})
        print(f"{name:16s} {len(report.questions):5d} questions  kinds: {', '.join(kinds)}")
    return 0


def import_set(args: argparse.Namespace) -> int:
    """Read a question file or folder, report what was kept, and save it with --out."""
    from core.data.questions import ColumnMapping, import_questions, save_questions_jsonl

    report = import_questions(args.file, ColumnMapping(question=args.column))
    print(report.summary())
    if not report.questions:
        print(f"error: no usable question in {args.file}: nothing was saved. Fix the rejected rows, or name the "
              "question column with --column.", file=sys.stderr)
        return 1
    if args.out:
        print(f"Saved to {save_questions_jsonl(report.questions, args.out)}")
    return 0


def check_leakage(args: argparse.Namespace) -> int:
    """Evaluation questions that (nearly) repeat a training question; --drop saves the rest."""
    from core.data.leakage import drop_leakage, find_leakage
    from core.data.questions import load_question_set, save_questions_jsonl

    train, evaluation = load_question_set(args.train).questions, load_question_set(args.eval).questions
    pairs = find_leakage(train, evaluation, near=args.near)
    for pair in pairs:
        print(f"LEAK {pair.train_id} ~ {pair.eval_id} ({pair.similarity:.2f}): {pair.text}")
    print(f"{len(pairs)} evaluation question(s) of {len(evaluation)} overlap the training set.")
    if args.drop:
        print(f"Saved {len(evaluation) - len(pairs)} clean questions to "
              f"{save_questions_jsonl(drop_leakage(evaluation, pairs), args.drop)}")
    return 0
