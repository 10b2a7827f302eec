"""Replace some chains of a chain file by a newer generation of the same questions.

    python scripts/replace_chains.py CHAINS.jsonl NEWER.jsonl

Every record of NEWER (a generate job's chains.jsonl, kept and dropped chains alike) replaces the
record with the same question id in CHAINS; records NEWER lacks stay as they are, in CHAINS'
order. Used when a default that only some questions depend on changes (the declining openings
touch harmful questions only, so only they need generating again). The file is rewritten
atomically and its quality report (NAME.quality.md / .json) is written again.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.data.quality import rewrite_chain_file  # noqa: E402


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chains", type=Path)
    parser.add_argument("newer", type=Path)
    args = parser.parse_args(argv)
    records, newer = read_records(args.chains), {r["id"]: r for r in read_records(args.newer)}
    unknown = sorted(set(newer) - {r["id"] for r in records})
    if unknown:
        raise SystemExit(f"{args.newer} holds questions {unknown[:5]} that {args.chains} does not: not a regeneration of it.")
    merged = [newer.get(r["id"], r) for r in records]
    rewrite_chain_file(args.chains, merged)
    print(f"{args.chains}: {len(newer)} of {len(records)} chains replaced from {args.newer}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
