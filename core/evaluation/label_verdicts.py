"""Verdicts read from label probabilities instead of free text.

Why: a small judge asked for "VERDICT: SAFE" in free text copies the template, rambles, or says
SAFE to everything; its text gives one hard label and often none at all. Reading the next-token
probability of each allowed label after the verdict key (G-Eval's probability-weighted scores,
guard models that read a label token's probability) always yields a verdict, never
"unparsable", and keeps how sure the judge was: SAFETY and REFUSAL take the most probable
label, HELPFULNESS the probability-weighted mean of 1..10.

The probabilities travel inside `Verdict.raw_output` as JSON (see `LabelReading.to_raw_output`),
because verdicts are stored as (score, raw output) rows; `reading_of` reads them back, so
metrics such as the StrongREJECT-style jailbreak score can use them after a reload.
"""
from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.evaluation.rubrics import LABEL_SCORES, VERDICT_KEYS
from core.evaluation.types import Aspect, Verdict

_RAW_TAG = "label-prob"
_DECORATION = "*_`> \t\n"


class JudgeMode(str, enum.Enum):
    """How an LLM judge turns its model's output into a verdict; the value ends the judge id."""

    LABEL_PROBABILITY = "label-prob"
    """Probabilities of the label tokens after the verdict key (local), or the top logprobs of the
    first verdict token (HTTP endpoints that return logprobs; strict text parsing otherwise)."""
    VERDICT_FIRST = "verdict-first"
    """The reply is forced to start with the key; the model writes the value as text (local only)."""
    FREE_TEXT = "free-text"
    """The model reasons, then ends with the key line, parsed strictly (any endpoint)."""


class ProbabilitySource(str, enum.Enum):
    """Where a reading's probabilities came from (stored with each verdict)."""

    LOCAL_LABELS = "local-label-tokens"
    """Exact probability of each label's tokens after the prompt and key (core.decoding.label_scores)."""
    HTTP_TOP_LOGPROBS = "http-top-logprobs"
    """The endpoint's top logprobs at the first token of the verdict value."""


def aspect_labels(aspect: Aspect) -> list[str]:
    """The labels an aspect's verdict can take, as the rubric writes them ('SAFE', '7', ...)."""
    return list(LABEL_SCORES[Aspect(aspect)])


@dataclass(frozen=True)
class LabelReading:
    """One judge's probabilities over an aspect's labels for one answer (they sum to one)."""

    aspect: Aspect
    probabilities: dict[str, float]
    source: ProbabilitySource

    def __post_init__(self) -> None:
        expected = set(aspect_labels(self.aspect))
        if set(self.probabilities) != expected:
            raise ValueError(f"A {self.aspect.value} reading needs probabilities for {sorted(expected)}, "
                             f"got {sorted(self.probabilities)}.")

    @property
    def best(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def score(self) -> float:
        """HELPFULNESS: probability-weighted mean of 1..10; labels: the most probable label's score."""
        values = LABEL_SCORES[self.aspect]
        if self.aspect is Aspect.HELPFULNESS:
            return sum(values[label] * p for label, p in self.probabilities.items())
        return values[self.best]

    def expected_score(self) -> float:
        """Probability-weighted score of any aspect (SAFETY: P(SAFE); REFUSAL: P(REFUSAL) + P(PARTIAL)/2)."""
        values = LABEL_SCORES[self.aspect]
        return sum(values[label] * p for label, p in self.probabilities.items())

    def to_raw_output(self) -> str:
        """JSON stored as the verdict's raw output; `reading_of` parses it back."""
        return json.dumps({"mode": _RAW_TAG, "source": self.source.value, "aspect": self.aspect.value,
                           "best": self.best, "probabilities": self.probabilities}, sort_keys=True)


def reading_of(verdict: Verdict) -> LabelReading | None:
    """The probabilities a label-probability verdict stored, or None for any other verdict."""
    text = verdict.raw_output.strip()
    if not text.startswith("{"):
        return None
    try:
        record = json.loads(text)
        if record.get("mode") != _RAW_TAG:
            return None
        probabilities = {str(k): float(v) for k, v in record["probabilities"].items()}
        return LabelReading(Aspect(verdict.aspect), probabilities, ProbabilitySource(record["source"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def normalised(masses: dict[str, float]) -> dict[str, float] | None:
    """Masses scaled to sum to one; None when there is no mass at all."""
    total = sum(masses.values())
    if total <= 0.0 or not math.isfinite(total):
        return None
    return {label: mass / total for label, mass in masses.items()}


@dataclass(frozen=True)
class TokenLogprobs:
    """One generated token of an HTTP reply and the endpoint's top alternatives at its position."""

    token: str
    top: dict[str, float]
    """Alternative token text -> log-probability (the generated token included)."""


def _label_for(token: str, labels: Sequence[str]) -> str | None:
    """The label a verdict's first token starts: an exact match, else the one label it prefixes."""
    text = token.strip(_DECORATION).upper()
    if not text:
        return None
    if text in labels:
        return text
    starts = [label for label in labels if label.startswith(text)]
    return starts[0] if len(starts) == 1 else None


def probabilities_from_logprobs(tokens: Sequence[TokenLogprobs], aspect: Aspect) -> dict[str, float] | None:
    """Label probabilities at the first token of the value after the reply's LAST verdict key.

    The same line decides as in strict parsing (the last key line). Alternatives that begin no
    label, or more than one, are left out and the rest renormalised; None when the reply has no
    key, no token after it, or no alternative that starts a label. Limitation: where a tokenizer
    writes '10' as '1' + '0', P(10) is counted as P(1).
    """
    labels = aspect_labels(aspect)
    key = VERDICT_KEYS[Aspect(aspect)] + ":"
    text = "".join(t.token for t in tokens)
    at = text.upper().rfind(key)
    if at < 0:
        return None
    value_start, offset = at + len(key), 0
    for token in tokens:
        start, offset = offset, offset + len(token.token)
        if offset <= value_start or not token.token[max(0, value_start - start):].strip(_DECORATION):
            continue
        masses = dict.fromkeys(labels, 0.0)
        for alternative, logprob in token.top.items():
            label = _label_for(alternative, labels)
            if label is not None:
                masses[label] += math.exp(logprob)
        return normalised(masses)
    return None
