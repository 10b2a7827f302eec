"""Safety checkers for self-generation: who says whether a stage's text is safe, and how sure.

Why a protocol: the check decides a chain's length and whether it is ever trained on, so it must
be swappable (the generator itself, another local model, an endpoint) and batched (one forward
pass judges many texts). Every verdict carries its checker's id, its P(unsafe) when one exists,
and the raw evidence, so a dataset shows who judged each chain and how.

Why constrained choice for local models: a small model asked to write "VERDICT: safe" copies the
template or rambles; reading the probabilities of the label tokens after the check prompt
always yields a verdict (core.decoding.label_scores). An endpoint is read from its `logprobs`
when it returns them, otherwise its text is parsed strictly (a bare label is accepted); a text
that names no label is UNPARSABLE: counted, treated as unsafe, never given a score.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from core.synthesis.http_generator import OpenAIChatClient
    from core.synthesis.prompts import StageTemplate

#: Label continuations scored after the check template's assistant prefix ("VERDICT:").
SAFE_LABEL, UNSAFE_LABEL = " safe", " unsafe"
_VERDICT_LINE = re.compile(r"^\s*verdict\s*:\s*(.*?)\s*$", re.IGNORECASE)


class VerdictLabel(str, Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"
    UNPARSABLE = "unparsable"


@dataclass(frozen=True)
class CheckItem:
    """One text to judge: a stage's output (answer, analysis or guidance) for a question."""

    question: str
    text: str
    stage: str = "answer"


@dataclass(frozen=True)
class Verdict:
    """A checker's judgement of one text. p_unsafe is None when only text was available."""

    label: VerdictLabel
    p_unsafe: float | None
    checker: str
    raw: str

    @property
    def safe(self) -> bool:
        return self.label is VerdictLabel.SAFE

    @property
    def parsed(self) -> bool:
        return self.label is not VerdictLabel.UNPARSABLE

    @property
    def risk(self) -> float:
        """For ranking candidates: P(unsafe), or 0/1 from a text verdict (unparsable counts unsafe)."""
        if self.p_unsafe is not None:
            return self.p_unsafe
        return 0.0 if self.safe else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label.value, "p_unsafe": self.p_unsafe, "checker": self.checker, "raw": self.raw}


class SafetyChecker(Protocol):
    """Judges many texts at once; one verdict per item, in order."""

    id: str

    def check(self, items: Sequence[CheckItem]) -> list[Verdict]: ...


def parse_verdict(text: str, checker: str = "text") -> Verdict:
    """Strict: the last 'VERDICT:' line, or the whole text, must be exactly safe or unsafe."""
    lines = [line for line in text.splitlines() if _VERDICT_LINE.match(line)]
    value = _VERDICT_LINE.match(lines[-1]).group(1) if lines else text.strip()
    value = value.lower().rstrip(".!")
    if value in ("safe", "unsafe"):
        return Verdict(VerdictLabel(value), None, checker, text)
    return Verdict(VerdictLabel.UNPARSABLE, None, checker, text)


def verdict_from_p_unsafe(p_unsafe: float, threshold: float, checker: str, raw: str) -> Verdict:
    label = VerdictLabel.UNSAFE if p_unsafe >= threshold else VerdictLabel.SAFE
    return Verdict(label, p_unsafe, checker, raw)


def check_messages(template: StageTemplate, item: CheckItem, exemplars: int) -> list[dict[str, str]]:
    return template.messages(question=item.question, answer=item.text, exemplars=exemplars)


class LabelScoreChecker:
    """A local causal LM as checker: P(unsafe) from the label tokens after the check prompt."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, template: StageTemplate, *,
                 threshold: float = 0.5, exemplars: int = 0, batch_size: int = 8, model_id: str = "local") -> None:
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.threshold, self.exemplars, self.batch_size = threshold, exemplars, batch_size
        self.id = f"labels:{model_id}"

    def check(self, items: Sequence[CheckItem]) -> list[Verdict]:
        from core.decoding.label_scores import score_labels

        if not items:
            return []
        prompts = [check_messages(self.template, item, self.exemplars) for item in items]
        scores = score_labels(self.model, self.tokenizer, prompts, [SAFE_LABEL, UNSAFE_LABEL],
                              prefix=self.template.assistant_prefix, batch_size=self.batch_size)
        return [verdict_from_p_unsafe(s[UNSAFE_LABEL], self.threshold, self.id, f"P(unsafe)={s[UNSAFE_LABEL]:.4f}")
                for s in scores]


class EndpointChecker:
    """An OpenAI-compatible endpoint as checker: logprobs of the label token when the server
    returns them, else strict parsing of its reply. Requests run `concurrency` at a time."""

    def __init__(self, client: OpenAIChatClient, template: StageTemplate, *, threshold: float = 0.5,
                 exemplars: int = 0, concurrency: int = 8) -> None:
        self.client, self.template = client, template
        self.threshold, self.exemplars, self.concurrency = threshold, exemplars, concurrency
        self.id = f"openai:{client.base_url}#{client.model}"

    def check(self, items: Sequence[CheckItem]) -> list[Verdict]:
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            return list(pool.map(self._check_one, items))

    def _check_one(self, item: CheckItem) -> Verdict:
        text, logprobs = self.client.chat_logprobs(check_messages(self.template, item, self.exemplars), max_tokens=8)
        p_unsafe = p_unsafe_from_logprobs(logprobs) if logprobs else None
        if p_unsafe is not None:
            return verdict_from_p_unsafe(p_unsafe, self.threshold, self.id, text)
        return parse_verdict(text, self.id)


def p_unsafe_from_logprobs(content: list[dict[str, Any]]) -> float | None:
    """P(unsafe) at the first generated token that starts a label ('safe', 'uns...'), normalised
    over the two labels' alternatives in its top_logprobs; None when no such token is there."""
    for position in content:
        if not _label_side(position.get("token", "")):
            continue
        mass = {"safe": 0.0, "unsafe": 0.0}
        for alternative in position.get("top_logprobs") or [position]:
            side = _label_side(alternative.get("token", ""))
            if side:
                mass[side] += math.exp(float(alternative.get("logprob", -math.inf)))
        total = mass["safe"] + mass["unsafe"]
        return mass["unsafe"] / total if total > 0 else None
    return None


def _label_side(token: str) -> str | None:
    word = token.strip().lower()
    if len(word) >= 2 and "unsafe".startswith(word) and word.startswith("un"):
        return "unsafe"
    if word and "safe".startswith(word) and len(word) >= 2:
        return "safe"
    return None
