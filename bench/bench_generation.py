"""Batched vs one-at-a-time self-generation of chains on the bundled model.

Prints `batched_vs_sequential: X` = chains/s with batch B (default 8) / chains/s with batch 1,
same questions, same greedy settings, measured side by side in one run (goal >= 3.0). Also
writes the raw timings as JSON.

    python bench/bench_generation.py [--home DIR] [--questions N] [--batch-size B]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.decoding.completions import LocalGenerator  # noqa: E402
from core.data.chain_store import JsonlChainSink  # noqa: E402
from core.config import GenerateConfig  # noqa: E402
from core.synthesis.pipeline import generate_chains  # noqa: E402
from core.model_source import default_home, load_base_model  # noqa: E402
from core.synthesis.prompts import load_prompt_set  # noqa: E402

GOALS = {"batched_vs_sequential": (">=", 3.0)}  # read by bench/report.py for its verdict
QUESTIONS_FILE = Path(__file__).resolve().parent.parent / "assets" / "questions" / "train.jsonl"


def bench_questions(count: int) -> list[SimpleNamespace]:
    """Alternate harmful and helpful training questions, so chain shapes vary."""
    rows = [json.loads(line) for line in QUESTIONS_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    harmful = [r for r in rows if r["kind"] == "harmful"]
    helpful = [r for r in rows if r["kind"] != "harmful"]
    mixed = [r for pair in zip(harmful, helpful) for r in pair][:count]
    return [SimpleNamespace(id=r["id"], text=r["question"], kind=r["kind"], category=r["category"]) for r in mixed]


def chains_per_second(model, tokenizer, questions, config: GenerateConfig, batch_size: int) -> tuple[float, float, list[dict]]:
    generator = LocalGenerator(model, tokenizer, batch_size=batch_size, model_id="bench")
    with tempfile.TemporaryDirectory() as folder:
        sink = JsonlChainSink(folder)
        started = time.perf_counter()
        generate_chains(questions, generator, config, load_prompt_set(), sink)
        seconds = time.perf_counter() - started
        records = sink.records()
    return len(records) / seconds, seconds, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--questions", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench_generation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_base_model("smollm2-135m-instruct", args.home or default_home())
    config = GenerateConfig(analysis_tokens=64, guidance_tokens=48, answer_tokens=96, check_tokens=4, batch_size=args.batch_size)
    questions = bench_questions(args.questions)
    chains_per_second(model, tokenizer, questions[:1], config, 1)  # warm-up
    batched, batched_s, records = chains_per_second(model, tokenizer, questions, config, args.batch_size)
    sequential, sequential_s, _ = chains_per_second(model, tokenizer, questions, config, 1)
    shapes = {r["id"]: r["shape"] for r in records}
    figures = {
        "batched_vs_sequential": batched / sequential,
        "batched_chains_per_second": batched, "sequential_chains_per_second": sequential,
        "batched_seconds": batched_s, "sequential_seconds": sequential_s,
        "questions": len(questions), "batch_size": args.batch_size, "shapes": shapes,
    }
    for name in ("batched_vs_sequential", "batched_chains_per_second", "sequential_chains_per_second"):
        print(f"{name}: {figures[name]:.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
