"""Batched vs one-at-a-time evaluation answers on the bundled model.

Prints, per subject (the untrained base model, and a MoTE model: a trained run given with --run,
else fresh MoTE experts on the base model with the full chain forced), answers/s with
`batch_size` prompts decoded together / answers/s one at a time, on the same evaluation prompts
with the same greedy settings, measured side by side in one run; and how many answers came out
identical (batching changes float rounding, so a near-tie may flip a token). Writes JSON.

    python bench/bench_evaluation.py [--home DIR] [--run RUN] [--prompts N] [--batch-size B]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import ExpertConfig  # noqa: E402
from core.evaluation.runner import EvalSettings, plan_prompts  # noqa: E402
from core.decoding.chain_programs import GenerationSettings  # noqa: E402
from core.experts.model import build_mote_model  # noqa: E402
from core.model_source import default_home, load_base_model  # noqa: E402
from core.stages import ChainShape  # noqa: E402
from core.decoding.subjects import BaseSubject, ChatSubject, MoteSubject, load_subject  # noqa: E402


def timed(subject: ChatSubject, prompts: list[str], settings: GenerationSettings, batch_size: int) -> tuple[float, dict[int, str]]:
    started = time.perf_counter()
    replies = dict(subject.answer_many(prompts, settings, batch_size=batch_size))
    return time.perf_counter() - started, {i: json.dumps(r.stage_texts()) for i, r in replies.items()}


def compare(name: str, subject: ChatSubject, prompts: list[str], settings: GenerationSettings, batch_size: int) -> dict:
    timed(subject, prompts[:2], settings, 2)  # warm-up
    batched_s, batched = timed(subject, prompts, settings, batch_size)
    sequential_s, sequential = timed(subject, prompts, settings, 1)
    figures = {f"{name}_batched_vs_sequential": sequential_s / batched_s,
               f"{name}_batched_answers_per_second": len(prompts) / batched_s,
               f"{name}_sequential_answers_per_second": len(prompts) / sequential_s,
               f"{name}_identical_answers": sum(batched[i] == sequential[i] for i in sequential) / len(prompts)}
    for key, value in figures.items():
        print(f"{key}: {value:.3f}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--run", default=None, help="a trained run folder (default: fresh MoTE experts, full chain forced)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-stage-tokens", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench_evaluation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    home = args.home or default_home()
    plan = plan_prompts(EvalSettings(limit=args.prompts, jailbreak_prompts=1))
    prompts = [p.prompt for p in plan][: args.prompts]
    settings = GenerationSettings(max_stage_tokens=args.max_stage_tokens, min_stage_tokens=4)
    model, tokenizer = load_base_model("smollm2-135m-instruct", home)
    figures = compare("base", BaseSubject(model, tokenizer, label="base"), prompts, settings, args.batch_size)
    if args.run:
        mote_subject = load_subject(args.run, home=home)
        mote_settings = settings
    else:
        mote = build_mote_model(model, tokenizer, ExpertConfig(rank=16, lora_alpha=32.0))
        mote_subject, mote_settings = MoteSubject(mote, label="mote"), GenerationSettings(
            max_stage_tokens=args.max_stage_tokens, min_stage_tokens=4, path=ChainShape.FULL)
    figures.update(compare("mote", mote_subject, prompts, mote_settings, args.batch_size))
    figures.update(prompts=len(prompts), batch_size=args.batch_size, max_stage_tokens=args.max_stage_tokens,
                   run=args.run or "fresh experts, full chain forced")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
