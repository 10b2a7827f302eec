"""Batched vs one-at-a-time self-generation of chains on the bundled model, and the safe defaults' cost.

Prints, each as the median of per-repeat paired ratios with a 95% bootstrap interval:
  batched_vs_sequential       chains/s with batch B / chains/s one at a time, on N questions (the
                              realistic count: rows that finish are refilled from the rest; goal >= 3.0)
  batched_vs_sequential_small the same on exactly B questions (no refill possible: the old figure)
  defaults_vs_plain           chains/s of the default safe pipeline / the paper's plain pipeline
                              (free-text self-check, keep), both batched on the N questions
Each repeat runs its variants back to back (one process, the same loaded model), so the machine's
drift hits both sides of a ratio alike. Raw timings and the chain shapes go to the JSON.

    python bench/bench_generation.py [--home DIR] [--questions 48] [--batch-size 8] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_experts import goal_verdict, median_interval  # noqa: E402
from core.config import PLAIN_PIPELINE, GenerateConfig  # noqa: E402
from core.data.chain_store import JsonlChainSink  # noqa: E402
from core.decoding.completions import LocalGenerator  # noqa: E402
from core.model_source import default_home, load_base_model  # noqa: E402
from core.synthesis.generators import build_checker  # noqa: E402
from core.synthesis.pipeline import generate_chains  # noqa: E402
from core.synthesis.prompts import load_prompt_set  # noqa: E402

GOALS = {"batched_vs_sequential": (">=", 3.0)}  # read by bench/report.py for its verdict
RATIOS = ("batched_vs_sequential", "batched_vs_sequential_small", "defaults_vs_plain")
QUESTIONS_FILE = Path(__file__).resolve().parent.parent / "assets" / "questions" / "train.jsonl"
#: Short stage limits keep a repeat within minutes on 2 cores; the pipeline's logic is unchanged.
STAGE_LIMITS = {"analysis_tokens": 64, "guidance_tokens": 48, "answer_tokens": 96, "check_tokens": 4}


def bench_questions(count: int) -> list[SimpleNamespace]:
    """Alternate harmful and helpful training questions, so chain shapes vary."""
    rows = [json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    harmful = [r for r in rows if r["kind"] == "harmful"]
    helpful = [r for r in rows if r["kind"] != "harmful"]
    mixed = [r for pair in zip(harmful, helpful) for r in pair][:count]
    return [SimpleNamespace(id=r["id"], text=r["question"], kind=r["kind"], category=r["category"]) for r in mixed]


def timed_run(model, tokenizer, questions, config: GenerateConfig) -> tuple[float, list[dict]]:
    """Seconds to write a chain for every question (checker as the config says), and the chains."""
    prompts = load_prompt_set()
    generator = LocalGenerator(model, tokenizer, batch_size=config.batch_size, model_id="bench")
    checker = build_checker(config, generator, prompts)
    with tempfile.TemporaryDirectory() as folder:
        sink = JsonlChainSink(folder)
        started = time.perf_counter()
        generate_chains(questions, generator, config, prompts, sink, checker=checker)
        seconds = time.perf_counter() - started
        records = sink.records()
    if len(records) != len(questions):
        raise RuntimeError(f"wrote {len(records)} chains for {len(questions)} questions")
    return seconds, records


def one_repeat(model, tokenizer, questions, small, args: argparse.Namespace) -> dict:
    """Every variant once, back to back; returns seconds per variant and the shapes of the batched run."""
    batched = GenerateConfig(**STAGE_LIMITS, batch_size=args.batch_size)
    single = GenerateConfig(**STAGE_LIMITS, batch_size=1)
    plain = GenerateConfig(**{**STAGE_LIMITS, **PLAIN_PIPELINE}, batch_size=args.batch_size)
    seconds, shapes = {}, {}
    seconds["batched"], records = timed_run(model, tokenizer, questions, batched)
    shapes["batched"] = dict(Counter(r["shape"] for r in records))
    seconds["sequential"], _ = timed_run(model, tokenizer, questions, single)
    seconds["batched_small"], _ = timed_run(model, tokenizer, small, batched)
    seconds["sequential_small"], _ = timed_run(model, tokenizer, small, single)
    if not args.no_plain:
        seconds["plain"], plain_records = timed_run(model, tokenizer, questions, plain)
        shapes["plain"] = dict(Counter(r["shape"] for r in plain_records))
    return {"seconds": seconds, "shapes": shapes}


def ratios_of(repeat: dict) -> dict[str, float]:
    """Chains-per-second ratios (same chain count on both sides, so a ratio of inverse seconds)."""
    s = repeat["seconds"]
    found = {"batched_vs_sequential": s["sequential"] / s["batched"],
             "batched_vs_sequential_small": s["sequential_small"] / s["batched_small"]}
    if "plain" in s:
        found["defaults_vs_plain"] = s["plain"] / s["batched"]
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=48, help="the realistic count (refill acts)")
    parser.add_argument("--batch-size", type=int, default=8, help="rows decoded together; also the small case's count")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-plain", action="store_true", help="skip the defaults-vs-plain figure")
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench_generation.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tokenizer = load_base_model("smollm2-135m-instruct", args.home or default_home())
    questions = bench_questions(args.questions)
    small = questions[:args.batch_size]
    timed_run(model, tokenizer, questions[:1], GenerateConfig(**STAGE_LIMITS, batch_size=1))  # warm-up
    started = time.perf_counter()
    repeats = []
    for index in range(args.repeats):
        repeat = one_repeat(model, tokenizer, questions, small, args)
        repeat["ratios"] = ratios_of(repeat)
        repeats.append(repeat)
        print(f"repeat {index + 1}/{args.repeats}: " + ", ".join(f"{k} {v:.2f}" for k, v in repeat["ratios"].items()),
              flush=True)
    figures, intervals = {}, {}
    for name in RATIOS:
        values = [r["ratios"][name] for r in repeats if name in r["ratios"]]
        if not values:
            continue
        figures[name] = statistics.median(values)
        intervals[name] = list(median_interval(values))
    seconds = {key: statistics.median(r["seconds"][key] for r in repeats) for key in repeats[0]["seconds"]}
    figures["batched_chains_per_second"] = len(questions) / seconds["batched"]
    figures["sequential_chains_per_second"] = len(questions) / seconds["sequential"]
    figures["batched_seconds"], figures["sequential_seconds"] = seconds["batched"], seconds["sequential"]
    for name, value in figures.items():
        line = f"{name}: {value:.3f}"
        if name in intervals:
            low, high = intervals[name]
            line += f" [{low:.3f}, {high:.3f}]"
            if name in GOALS:
                op, goal = GOALS[name]
                line += f"  goal {op} {goal}: {goal_verdict(op, goal, low, high, len(repeats))}"
        print(line)
    result = {**figures, "intervals_95": intervals, "repeats": len(repeats), "questions": len(questions),
              "batch_size": args.batch_size, "stage_limits": STAGE_LIMITS, "median_seconds": seconds,
              "raw": repeats, "wall_seconds": time.perf_counter() - started}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
