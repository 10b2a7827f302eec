"""Apply the copied-exemplar check to a chain file generated before the check existed.

    python scripts/recheck_copied_exemplars.py CHAINS.jsonl [--prompts-dir DIR]

A kept chain whose analysis or guidance repeats one of the few-shot exemplars its stage prompt
showed (the record's own `decoding.exemplars` count, the stage templates of --prompts-dir) is
marked flagged and dropped with the reason "copied exemplar", as the flagged policy would have
after its last regeneration; it stays in the file, so the data-quality report still counts it,
and training skips it. The file is rewritten atomically; the quality report beside it
(NAME.quality.md / .json) is written again. Prints how many chains it dropped.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.quality import rewrite_chain_file  # noqa: E402
from core.synthesis.prompts import PROMPTS_DIR, load_prompt_set  # noqa: E402
from core.synthesis.verification import FlagReason, copies_exemplar  # noqa: E402


def recheck(record: dict, prompts) -> dict:
    """The record, flagged and dropped when a kept stage copies an exemplar it was shown."""
    shown_count = int((record.get("decoding") or {}).get("exemplars") or 0)
    copied = [stage for stage in ("analysis", "guidance") if record.get(stage) and
              copies_exemplar(record[stage], [answer for _, answer in prompts[stage].examples[:shown_count]])]
    if not copied or record.get("dropped"):
        return record
    reasons = list(record.get("flag_reasons") or [])
    if FlagReason.COPIED_EXEMPLAR.value not in reasons:
        reasons.append(FlagReason.COPIED_EXEMPLAR.value)
    return {**record, "flagged": True, "dropped": not record.get("keep_flagged"), "flag_reasons": reasons,
            "copied_exemplar": copied}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chains", type=Path)
    parser.add_argument("--prompts-dir", type=Path, default=PROMPTS_DIR)
    args = parser.parse_args(argv)
    prompts = load_prompt_set(args.prompts_dir)
    records = [json.loads(line) for line in args.chains.read_text(encoding="utf-8").splitlines() if line.strip()]
    checked = [recheck(record, prompts) for record in records]
    dropped = sum(1 for before, after in zip(records, checked) if after.get("dropped") and not before.get("dropped"))
    rewrite_chain_file(args.chains, checked)
    print(f"{args.chains}: {dropped} of {len(records)} chains copied an exemplar and are now dropped.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
