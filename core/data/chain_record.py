"""One generated chain as a typed record: its stage texts, every attempt with its self-checked
answers and verdicts, the user's curation (flag, edit, delete) and the question it answers.

Why typed: the record is the contract between self-generation (core.synthesis), storage (jobs),
the chain browser (app) and training. As a dict of about twenty keys every reader dug into it by
name, and a renamed key failed silently. The JSONL form does not change: `from_dict` reads what
generation writes, `to_dict` writes it back key for key, and keys this module does not know are
kept in `extra` and written back too.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.data.chains import Chain, ChainFormatError, chain_from_dict
from core.data.questions import QuestionKind
from core.stages import CHAIN_STAGES, ChainShape, Stage


class CheckVerdict(str, enum.Enum):
    """The self-check's verdict on an answer (an unparsable check counts as unsafe)."""

    SAFE = "safe"
    UNSAFE = "unsafe"


def _optional_shape(value: Any) -> ChainShape | None:
    return ChainShape(value) if value else None


def _extra(record: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in known}


@dataclass(frozen=True)
class CheckedAnswer:
    """One answer written during an attempt, and the self-check's verdict on it."""

    verdict: CheckVerdict
    shape: ChainShape | None = None
    answer: str = ""
    answer_tokens: int | None = None
    verdict_parsed: bool = True
    check_raw: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = frozenset({"shape", "answer", "answer_tokens", "verdict", "verdict_parsed", "check_raw"})

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> CheckedAnswer:
        return cls(verdict=CheckVerdict(record.get("verdict") or CheckVerdict.UNSAFE.value),
                   shape=_optional_shape(record.get("shape")), answer=record.get("answer") or "",
                   answer_tokens=record.get("answer_tokens"), verdict_parsed=bool(record.get("verdict_parsed", True)),
                   check_raw=record.get("check_raw") or "", extra=_extra(record, cls._KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape.value if self.shape else None, "answer": self.answer,
                "answer_tokens": self.answer_tokens, "verdict": self.verdict.value,
                "verdict_parsed": self.verdict_parsed, "check_raw": self.check_raw, **self.extra}


@dataclass(frozen=True)
class ChainAttempt:
    """One adaptive-length attempt: the longer shapes are tried until an answer is checked safe."""

    answers: tuple[CheckedAnswer, ...]
    shape: ChainShape | None = None
    flagged: bool = False
    analysis: str | None = None
    guidance: str | None = None
    answer: str = ""
    tokens: Mapping[str, int] = field(default_factory=dict)
    """Generated tokens per stage name."""
    temperature: float | None = None
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = frozenset({"shape", "flagged", "analysis", "guidance", "answer", "tokens", "answers", "temperature", "seed"})

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> ChainAttempt:
        return cls(answers=tuple(CheckedAnswer.from_dict(a) for a in record.get("answers") or []),
                   shape=_optional_shape(record.get("shape")), flagged=bool(record.get("flagged")),
                   analysis=record.get("analysis"), guidance=record.get("guidance"), answer=record.get("answer") or "",
                   tokens=dict(record.get("tokens") or {}), temperature=record.get("temperature"),
                   seed=record.get("seed"), extra=_extra(record, cls._KEYS))

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape.value if self.shape else None, "flagged": self.flagged, "analysis": self.analysis,
                "guidance": self.guidance, "answer": self.answer, "tokens": dict(self.tokens),
                "answers": [a.to_dict() for a in self.answers], "temperature": self.temperature, "seed": self.seed,
                **self.extra}


@dataclass(frozen=True)
class ChainRecord:
    """A generated chain with everything known about how it was made and curated.

    `analysis` and `guidance` are None when the chain's shape leaves them out. `flagged`: the
    final answer was still checked unsafe; `dropped`: the chain is kept out of training (the
    flagged policy dropped it, or a user deleted it).
    """

    id: str
    question: str
    answer: str
    shape: ChainShape
    analysis: str | None = None
    guidance: str | None = None
    flagged: bool = False
    dropped: bool = False
    kind: QuestionKind | None = None
    category: str = ""
    attempts: tuple[ChainAttempt, ...] = ()
    template_hash: str | None = None
    template_versions: Mapping[str, Any] | None = None
    generator: str | None = None
    decoding: Mapping[str, Any] | None = None
    timings: Mapping[str, Any] | None = None
    edited: bool = False
    """A user changed its stage texts."""
    flag_set_by_user: bool = False
    deleted_by_user: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = frozenset({"id", "question", "analysis", "guidance", "answer", "shape", "flagged", "dropped", "kind",
                       "category", "attempts", "template_hash", "template_versions", "generator", "decoding", "timings",
                       "edited", "flag_set_by_user", "deleted_by_user"})
    _OPTIONAL = ("template_hash", "template_versions", "generator", "decoding", "timings")
    _MARKS = ("edited", "flag_set_by_user", "deleted_by_user")

    # ---- the JSON form -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, record: Mapping[str, Any], where: str = "chain record") -> ChainRecord:
        """Read a record as generation writes it; errors name `where` and the fix."""
        try:
            shape = ChainShape(record["shape"]) if record.get("shape") else _shape_of_texts(record, where)
            kind = QuestionKind(record["kind"]) if record.get("kind") else None
        except ValueError as error:
            raise ChainFormatError(f"{where}: {error}; use one of the values of ChainShape and QuestionKind.") from None
        return cls(
            id=str(record.get("id", "")), question=record.get("question") or "", answer=record.get("answer") or "",
            shape=shape, analysis=record.get("analysis"), guidance=record.get("guidance"),
            flagged=bool(record.get("flagged")), dropped=bool(record.get("dropped")), kind=kind,
            category=record.get("category") or "",
            attempts=tuple(ChainAttempt.from_dict(a) for a in record.get("attempts") or []),
            **{name: record.get(name) for name in cls._OPTIONAL},
            **{name: bool(record.get(name)) for name in cls._MARKS},
            extra=_extra(record, cls._KEYS))

    def to_dict(self) -> dict[str, Any]:
        """The JSONL record: generation's keys in its order, then curation marks that are set, then
        the unknown keys read with it."""
        record: dict[str, Any] = {
            "id": self.id, "question": self.question, "analysis": self.analysis, "guidance": self.guidance,
            "answer": self.answer, "shape": self.shape.value, "flagged": self.flagged, "dropped": self.dropped,
            "kind": self.kind.value if self.kind else None, "category": self.category,
            "attempts": [a.to_dict() for a in self.attempts]}
        record.update({name: getattr(self, name) for name in self._OPTIONAL if getattr(self, name) is not None})
        record.update({name: True for name in self._MARKS if getattr(self, name)})
        record.update(self.extra)
        return record

    # ---- reading ------------------------------------------------------------------------------
    def stage_text(self, stage: Stage) -> str | None:
        """The text of one chain stage (None where the shape leaves it out)."""
        return {Stage.ANALYSIS: self.analysis, Stage.GUIDANCE: self.guidance, Stage.ANSWER: self.answer}.get(stage)

    @property
    def last_verdict(self) -> CheckVerdict | None:
        """The verdict on the last answer checked (the one the chain kept); None if never checked."""
        answers = [a for attempt in self.attempts for a in attempt.answers]
        return answers[-1].verdict if answers else None

    def to_chain(self) -> Chain:
        """The chain training reads; raises ChainFormatError when it cannot be trained on."""
        return chain_from_dict(self.to_dict(), f"chain {self.id}")

    # ---- curation -----------------------------------------------------------------------------
    def with_flag(self, flagged: bool) -> ChainRecord:
        return replace(self, flagged=bool(flagged), flag_set_by_user=True)

    def with_stage_texts(self, texts: Mapping[Stage, str | None]) -> ChainRecord:
        """New texts for the given stages (blank removes a stage); the result must still be a chain
        (an answer, and analysis before guidance), else ChainFormatError says what is missing."""
        current = {stage: self.stage_text(stage) for stage in CHAIN_STAGES}
        current.update({stage: (text or "").strip() or None for stage, text in texts.items()})
        checked = chain_from_dict({"question": self.question, **{s.name.lower(): t for s, t in current.items()}},
                                  f"chain {self.id}")
        return replace(self, analysis=current[Stage.ANALYSIS], guidance=current[Stage.GUIDANCE],
                       answer=current[Stage.ANSWER] or "", shape=checked.shape, edited=True)

    def as_deleted(self) -> ChainRecord:
        return replace(self, dropped=True, deleted_by_user=True)


def _shape_of_texts(record: Mapping[str, Any], where: str) -> ChainShape:
    """The shape of a record that does not state one, from the stages it has."""
    return chain_from_dict({**record, "question": record.get("question") or "?"}, where).shape
