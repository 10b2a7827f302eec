"""Apply loop trimming (GenerateConfig.loop_words) to a chain file generated before it existed.

    python scripts/trim_chain_loops.py CHAINS.jsonl [--model smollm2-135m-instruct] [--home DIR]

Each chain's analysis, guidance and Safe Answer are cut where they first repeat a run of
`loop_words` words, back to the last whole sentence (a stage that ran to its token limit loses its
unfinished sentence too), exactly as the generation pipeline now does while decoding. A chain whose
answer changed is checked again: the refusal judge reads it (label mismatch), and, with --model,
the generator's own label-probability checker scores it again (P(unsafe) and the verdict); an
answer left hollow (empty, one word, a loop) is flagged "degenerate answer". A chain that becomes
flagged is dropped, as the flagged policy would after its last regeneration; it stays in the file,
so the quality report counts it, and training skips it. The untrimmed texts are kept under
`untrimmed`. The file is rewritten atomically and its quality report (NAME.quality.md / .json) is
written again. Prints what changed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import GenerateConfig  # noqa: E402
from core.data.quality import rewrite_chain_file  # noqa: E402
from core.data.repetition import REPEAT_RUN_WORDS, trim_repetition  # noqa: E402
from core.evaluation.degenerate import degenerate_reason  # noqa: E402
from core.synthesis.checkers import CheckItem  # noqa: E402
from core.synthesis.pipeline import HOLLOW  # noqa: E402
from core.synthesis.verification import FlagReason, label_mismatch, refuses  # noqa: E402

STAGE_LIMITS = {"analysis": "analysis_tokens", "guidance": "guidance_tokens", "answer": "answer_tokens"}


def stage_tokens(record: dict, stage: str) -> int | None:
    attempts = record.get("attempts") or []
    return ((attempts[-1].get("tokens") or {}) if attempts else {}).get(stage)


def trimmed_stages(record: dict, run_words: int) -> dict[str, str]:
    """{stage: trimmed text} for each stage whose text changes."""
    decoding = record.get("decoding") or {}
    changed = {}
    for stage, limit_key in STAGE_LIMITS.items():
        text = record.get(stage)
        if not text:
            continue
        tokens, limit = stage_tokens(record, stage), decoding.get(limit_key)
        hit_limit = tokens is not None and limit is not None and tokens >= limit
        new = trim_repetition(text, run_words, hit_limit=hit_limit).strip()
        if new != text:
            changed[stage] = new
    return changed


def retrim(record: dict, run_words: int, checker=None, tokenizer=None) -> dict:
    """The record with trimmed stages, re-judged (module docstring); unchanged when nothing loops."""
    changed = trimmed_stages(record, run_words)
    if not changed:
        return record
    updated = {**record, **changed, "untrimmed": {stage: record[stage] for stage in changed}}
    updated["decoding"] = {**(record.get("decoding") or {}), "loop_words": run_words}
    if tokenizer is not None:
        updated["tokens"] = {stage: len(tokenizer(updated[stage], add_special_tokens=False)["input_ids"])
                             for stage in STAGE_LIMITS if updated.get(stage)}
    reasons = [r for r in (record.get("flag_reasons") or []) if r not in (FlagReason.LABEL_MISMATCH.value,)]
    if "answer" in changed:
        answer = changed["answer"]
        refused = refuses(record["question"], answer)
        updated["refused"] = refused
        updated["label_mismatch"] = label_mismatch(record.get("kind"), refused)
        if checker is not None:
            [verdict] = checker.check([CheckItem(record["question"], answer, "answer")])
            updated.update(p_unsafe=verdict.p_unsafe, checker=verdict.checker)
            if not verdict.safe and FlagReason.UNSAFE_ANSWER.value not in reasons:
                reasons.append(FlagReason.UNSAFE_ANSWER.value)
        if degenerate_reason(answer) in HOLLOW:
            reasons.append(FlagReason.DEGENERATE_ANSWER.value)
    if updated.get("label_mismatch"):
        reasons.append(FlagReason.LABEL_MISMATCH.value)
    flagged = bool(reasons)
    updated.update(flag_reasons=reasons, flagged=flagged,
                   dropped=record.get("dropped") or (flagged and not record.get("keep_flagged")))
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chains", type=Path)
    parser.add_argument("--loop-words", type=int, default=REPEAT_RUN_WORDS)
    parser.add_argument("--model", help="re-score changed answers with this model's label-probability checker")
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args(argv)
    checker = tokenizer = None
    if args.model:
        from core.decoding.completions import LocalGenerator
        from core.synthesis.generators import build_checker
        from core.synthesis.prompts import load_prompt_set
        from core.model_source import ensure_home, load_base_model

        home = ensure_home(args.home)
        base, tokenizer = load_base_model(args.model, home)
        config = GenerateConfig()
        checker = build_checker(config, LocalGenerator(base, tokenizer, model_id=args.model), load_prompt_set())
    records = [json.loads(line) for line in args.chains.read_text(encoding="utf-8").splitlines() if line.strip()]
    updated = [retrim(record, args.loop_words, checker, tokenizer) for record in records]
    trimmed = sum(1 for before, after in zip(records, updated) if after is not before)
    dropped = sum(1 for before, after in zip(records, updated) if after.get("dropped") and not before.get("dropped"))
    rewrite_chain_file(args.chains, updated)
    print(f"{args.chains}: {trimmed} of {len(records)} chains trimmed; {dropped} newly dropped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
