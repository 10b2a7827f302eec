"""The records evaluation passes around: answers, aspects, verdicts, and the judge protocol.

Why a module of its own: answer generation, judges, metrics and reports are written apart and
meet only here. Scores have one meaning per aspect so metrics never guess:
SAFETY 1.0 = safe / 0.0 = unsafe; HELPFULNESS 1-10; REFUSAL 1.0 = refused / 0.0 = complied.
A score of None means either the judge's output could not be parsed after its retries, or the
answer was degenerate (empty, whitespace, one token, repeated, cut off: core.evaluation.degenerate)
and no judge read it: `Verdict.outcome` says which. Both are stored (with the raw output) and
excluded from metrics with a count, never scored; a degenerate answer is never a refusal.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


class Aspect(str, enum.Enum):
    """What a judge is asked about an answer."""

    SAFETY = "safety"
    HELPFULNESS = "helpfulness"
    REFUSAL = "refusal"


@dataclass(frozen=True)
class Answer:
    """One model answer to one prompt (the question, or the question inside a jailbreak wrapper)."""

    question_id: str
    kind: str
    """QuestionKind value: 'harmful', 'helpful' or 'benign' (risky-sounding but harmless)."""
    category: str
    question: str
    """The original question; judges read this, not the wrapped prompt."""
    answer: str
    """The final answer text (the answer stage of a chain, or the whole reply of a plain model)."""
    prompt: str = ""
    """What the model was given; equals `question` unless `wrapper` is set."""
    wrapper: str | None = None
    """Jailbreak family name when the prompt was wrapped, else None."""
    stages: dict[str, str] = field(default_factory=dict)
    """Stage name ('analysis', 'guidance', 'answer', 'check') -> text, in chain order."""
    stage_tokens: dict[str, int] = field(default_factory=dict)
    shape: str = ""
    """ChainShape value the model chose ('answer', 'analysis->answer', ...); '' for plain models."""
    finish_reason: str | None = None
    """'length' when the answer hit its token limit, 'stop' when it ended by itself; None if unknown."""

    @property
    def sample_id(self) -> str:
        """Unique within one model's evaluation: the question id, plus '@wrapper' when wrapped."""
        return f"{self.question_id}@{self.wrapper}" if self.wrapper else self.question_id

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class VerdictOutcome(str, enum.Enum):
    """What became of one (answer, aspect): scored, unreadable judge output, or no answer to judge."""

    SCORED = "scored"
    UNPARSABLE = "unparsable"
    DEGENERATE = "degenerate"


@dataclass(frozen=True)
class Verdict:
    """One judge's reading of one answer for one aspect, with the raw output behind it."""

    sample_id: str
    aspect: Aspect
    judge: str
    score: float | None
    raw_output: str
    attempts: int = 1
    heuristic: bool = False
    degenerate: str | None = None
    """Why the answer is degenerate (core.evaluation.degenerate), or None; a degenerate verdict has
    score None and was decided before any judge read the answer."""

    @property
    def parsed(self) -> bool:
        return self.score is not None

    @property
    def outcome(self) -> VerdictOutcome:
        if self.degenerate is not None:
            return VerdictOutcome.DEGENERATE
        return VerdictOutcome.SCORED if self.score is not None else VerdictOutcome.UNPARSABLE

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["aspect"] = self.aspect.value
        return record


@runtime_checkable
class Judge(Protocol):
    """Scores answers for the aspects it supports."""

    id: str
    """Stable name stored with every verdict, e.g. 'heuristic-refusal' or 'llm:/path#model'."""
    heuristic: bool
    aspects: frozenset[Aspect]

    def check(self) -> None:
        """Fail fast (before any generation) with a message that says what to fix."""

    def judge(self, answers: Sequence[Answer], aspect: Aspect) -> list[Verdict]:
        """One verdict per answer, in order; unparsable output gives score None."""
