"""The chain browser's vocabulary: the filter menus' words turned into a typed jobs.views.ChainFilter,
and the folder exports go to.

Why here and not in jobs/: "any", "flagged" and "not flagged" are what the Data tab's menus
(and the named API endpoint /browse_chains) accept; jobs/ filters on ChainShape, QuestionKind and
booleans only.
"""
from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeVar

from core.data.questions import QuestionKind
from core.stages import ChainShape
from jobs.views import ChainFilter

T = TypeVar("T")

EXPORTS_DIR = "exports"
ANY = "any"


class FlagChoice(str, enum.Enum):
    ANY = ANY
    FLAGGED = "flagged"
    NOT_FLAGGED = "not flagged"


def _given(value: str | None) -> str | None:
    return value if value and value != ANY else None


def _parsed(value: str | None, parse: Callable[[str], T], what: str, choices: list[str]) -> T | None:
    given = _given(value)
    if given is None:
        return None
    try:
        return parse(given)
    except ValueError:
        raise ValueError(f"{given!r} is not a {what}: use {ANY!r} or one of {', '.join(choices)}.") from None


def chain_filter(shape: str | None = None, flag: str | None = None, category: str | None = None,
                 kind: str | None = None) -> ChainFilter:
    """The filter the menus describe; `any` (or empty) leaves a dimension unfiltered."""
    flag_choice = _parsed(flag, FlagChoice, "flag filter", [c.value for c in FlagChoice])
    return ChainFilter(
        shape=_parsed(shape, ChainShape, "chain shape", [s.value for s in ChainShape]),
        flagged=None if flag_choice in (None, FlagChoice.ANY) else flag_choice is FlagChoice.FLAGGED,
        category=_given(category),
        kind=_parsed(kind, QuestionKind, "question kind", [k.value for k in QuestionKind]))
