"""Batched vs one-at-a-time evaluation answers on the bundled model, and MoTE's batched speed
next to the base model's.

Prints, per subject (the untrained base model, and a MoTE model: a trained run given with --run,
else fresh MoTE experts on the base model with the full chain forced), answers/s with
`batch_size` prompts decoded together / answers/s one at a time, on the same evaluation prompts
with the same greedy settings, measured side by side in one run; and how many answers came out
identical (batching changes float rounding, so a near-tie may flip a token).

Then, timed `--repeats` times with the two subjects interleaved repeat by repeat (a paired design;
figure = median of the per-repeat ratios with a 95% bootstrap interval and a goal verdict, the
helpers of bench/bench_experts.py):
- mote_vs_base_batched_answers [goal >= 0.8]: MoTE's batched answers/s / the base model's, on
  answers of equal length: every MoTE stage is forced to write exactly --max-stage-tokens tokens
  (full chain: 3 stages + 6 markers) and the base model's answer exactly as many tokens. This is
  the decoding cost per answer, with the experts' cost and nothing else.
- mote_vs_base_batched_answers_as_written: the same ratio with the evaluation settings above
  (the chain writes up to three stages where the base model writes one answer, so it also
  counts the chain's extra tokens); tokens per answer of each are in the JSON.
Writes JSON (--out).

    python bench/bench_evaluation.py [--home DIR] [--run RUN] [--prompts N] [--batch-size B] [--repeats R]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_experts import goal_verdict, median_interval  # noqa: E402
from core.config import ExpertConfig  # noqa: E402
from core.evaluation.runner import EvalSettings, plan_prompts  # noqa: E402
from core.decoding.chain_programs import GenerationSettings  # noqa: E402
from core.experts.model import build_mote_model  # noqa: E402
from core.model_source import default_home, load_base_model  # noqa: E402
from core.stages import CHAIN_STAGES, ChainShape  # noqa: E402
from core.decoding.subjects import BaseSubject, ChatSubject, MoteSubject, load_subject  # noqa: E402

BATCHED_GOAL = 0.8


def timed(subject: ChatSubject, prompts: list[str], settings: GenerationSettings, batch_size: int) -> tuple[float, dict[int, str], int]:
    """(seconds, index -> stage texts as JSON, completion tokens written)."""
    started = time.perf_counter()
    replies = dict(subject.answer_many(prompts, settings, batch_size=batch_size))
    seconds = time.perf_counter() - started
    return seconds, {i: json.dumps(r.stage_texts()) for i, r in replies.items()}, sum(r.completion_tokens for r in replies.values())


def compare(name: str, subject: ChatSubject, prompts: list[str], settings: GenerationSettings, batch_size: int) -> dict:
    timed(subject, prompts[:2], settings, 2)  # warm-up
    batched_s, batched, _ = timed(subject, prompts, settings, batch_size)
    sequential_s, sequential, _ = timed(subject, prompts, settings, 1)
    figures = {f"{name}_batched_vs_sequential": sequential_s / batched_s,
               f"{name}_batched_answers_per_second": len(prompts) / batched_s,
               f"{name}_sequential_answers_per_second": len(prompts) / sequential_s,
               f"{name}_identical_answers": sum(batched[i] == sequential[i] for i in sequential) / len(prompts)}
    for key, value in figures.items():
        print(f"{key}: {value:.3f}", flush=True)
    return figures


def paired_ratio(figure: str, pairs: list[tuple[ChatSubject, GenerationSettings]], prompts: list[str], batch_size: int,
                 repeats: int, goal: float | None) -> dict:
    """MoTE answers/s over base answers/s, repeat by repeat (base first, then MoTE: seconds apart)."""
    (base, base_settings), (mote, mote_settings) = pairs
    ratios, tokens = [], {"base": 0, "mote": 0}
    for _ in range(repeats):
        base_s, _, tokens["base"] = timed(base, prompts, base_settings, batch_size)
        mote_s, _, tokens["mote"] = timed(mote, prompts, mote_settings, batch_size)
        ratios.append(base_s / mote_s)
    low, high = median_interval(ratios)
    result = {"value": statistics.median(ratios), "interval_95": [low, high], "ratios": ratios,
              "tokens_per_answer": {k: v / len(prompts) for k, v in tokens.items()}}
    line = f"{figure}: {result['value']:.3f} (95% interval {low:.3f}-{high:.3f}, {repeats} repeats"
    if goal is not None:
        result["goal"] = f">= {goal}"
        result["verdict"] = goal_verdict(">=", goal, low, high, repeats)
        line += f"; goal >= {goal}: {result['verdict']}"
    print(line + f"; tokens per answer base {result['tokens_per_answer']['base']:.1f}, "
                 f"mote {result['tokens_per_answer']['mote']:.1f})", flush=True)
    return result


def equal_length_settings(stage_tokens: int) -> tuple[GenerationSettings, GenerationSettings]:
    """(base, MoTE) settings under which both write exactly the same number of tokens per answer."""
    chain_tokens = len(CHAIN_STAGES) * (stage_tokens + 2)  # each stage: its tokens and two markers
    return (GenerationSettings(max_stage_tokens=chain_tokens, min_stage_tokens=chain_tokens),
            GenerationSettings(max_stage_tokens=stage_tokens, min_stage_tokens=stage_tokens, path=ChainShape.FULL))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--run", default=None, help="a trained run folder (default: fresh MoTE experts, full chain forced)")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-stage-tokens", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5, help="paired repeats of the MoTE-vs-base figures")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/bench_evaluation.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    home = args.home or default_home()
    plan = plan_prompts(EvalSettings(limit=args.prompts, jailbreak_prompts=1))
    prompts = [p.prompt for p in plan][: args.prompts]
    settings = GenerationSettings(max_stage_tokens=args.max_stage_tokens, min_stage_tokens=4)
    model, tokenizer = load_base_model("smollm2-135m-instruct", home)
    base_subject = BaseSubject(model, tokenizer, label="base")
    figures = compare("base", base_subject, prompts, settings, args.batch_size)
    if args.run:
        mote_subject = load_subject(args.run, home=home)
        mote_settings = settings
    else:  # its own copy of the base model: attaching experts changes the model in place
        mote_model, mote_tokenizer = load_base_model("smollm2-135m-instruct", home)
        mote = build_mote_model(mote_model, mote_tokenizer, ExpertConfig(rank=16, lora_alpha=32.0))
        mote_subject, mote_settings = MoteSubject(mote, label="mote"), GenerationSettings(
            max_stage_tokens=args.max_stage_tokens, min_stage_tokens=4, path=ChainShape.FULL)
    figures.update(compare("mote", mote_subject, prompts, mote_settings, args.batch_size))
    base_equal, mote_equal = equal_length_settings(args.max_stage_tokens)
    paired = {
        "mote_vs_base_batched_answers": paired_ratio(
            "mote_vs_base_batched_answers", [(base_subject, base_equal), (mote_subject, mote_equal)],
            prompts, args.batch_size, args.repeats, BATCHED_GOAL),
        "mote_vs_base_batched_answers_as_written": paired_ratio(
            "mote_vs_base_batched_answers_as_written", [(base_subject, settings), (mote_subject, mote_settings)],
            prompts, args.batch_size, args.repeats, None),
    }
    figures.update({name: result["value"] for name, result in paired.items()})
    figures.update(paired_figures=paired, prompts=len(prompts), batch_size=args.batch_size,
                   max_stage_tokens=args.max_stage_tokens, repeats=args.repeats, threads=args.threads,
                   run=args.run or "fresh experts, full chain forced")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
