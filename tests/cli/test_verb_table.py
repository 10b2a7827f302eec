"""launch.py is the verb table: every cli/ module it lists owns its verbs, no verb is claimed
twice, and every verb is in the command-line guide's table."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import launch

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "cli.md"


def _parser_verbs(parser: argparse.ArgumentParser) -> list[str]:
    (verbs,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return list(verbs.choices)


def test_each_verb_belongs_to_exactly_one_group_and_reaches_its_run():
    claimed = [verb for group in launch.VERB_GROUPS for verb in group.VERBS]
    assert len(claimed) == len(set(claimed))
    assert sorted(_parser_verbs(launch.build_parser())) == sorted(claimed)
    for group in launch.VERB_GROUPS:
        assert callable(group.add_parser) and callable(group.run), group.__name__
    assert launch.DEFAULT_GROUP.VERBS == ("ui",)


def test_the_guide_lists_every_verb():
    table = GUIDE.read_text(encoding="utf-8").split("## ")[0]
    documented = set(re.findall(r"^\| `([a-z-]+)`", table, flags=re.M)) | set(re.findall(r"`([a-z-]+)`,? ", table))
    missing = sorted(set(_parser_verbs(launch.build_parser())) - documented)
    assert not missing, f"docs/guide/cli.md's verb table lacks {missing}"
