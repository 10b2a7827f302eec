"""Label-aware verification and best-of-N choice of Safe Answers.

Why: a checker judges whether an answer is harmful, not whether it does what the question's label
asks. A question set that carries labels says more: a harmful question's answer should decline
(or redirect safely), a helpful one's should comply. Refusal is read by the project's refusal
judge (core.evaluation.heuristic_judge), the same one evaluation uses.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from core.evaluation.heuristic_judge import is_refusal
from core.synthesis.checkers import Verdict

class FlagReason(str, Enum):
    """Why a chain is flagged (a chain may have several reasons)."""

    UNSAFE_ANSWER = "unsafe answer"
    UNPARSABLE_VERDICT = "unparsable verdict"
    LABEL_MISMATCH = "label mismatch"
    UNSAFE_ANALYSIS = "unsafe analysis"
    UNSAFE_GUIDANCE = "unsafe guidance"
    COPIED_EXEMPLAR = "copied exemplar"
    """An analysis or guidance repeats a few-shot exemplar's words instead of reading its own question."""
    DEGENERATE_ANSWER = "degenerate answer"
    """The Safe Answer is not an answer (empty, a few words, a loop) once its loop is cut off."""


#: Consecutive words shared with an exemplar that make a stage text a copy. Six: a restated
#: question ("The user wants to ...") shares three or four; a copied exemplar sentence ("The intent
#: is ordinary household cooking. Answering carries no risk to anyone.") shares a dozen.
COPY_RUN_WORDS = 6
_WORD = re.compile(r"[a-z0-9']+")


def _word_runs(text: str, length: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + length]) for i in range(len(words) - length + 1)}


def copies_exemplar(text: str, exemplars: Sequence[str], run_words: int = COPY_RUN_WORDS) -> bool:
    """True when `text` shares `run_words` consecutive words with any exemplar answer shown to the model.

    Why: a small model given few-shot examples often copies the last one's sentences; a harmful
    question's analysis that says "Answering carries no risk to anyone" (copied from the bread
    example) would teach the analysis expert the wrong reading. The checker does not catch it:
    the copied text is harmless in itself."""
    runs = _word_runs(text, run_words)
    return bool(runs) and any(runs & _word_runs(exemplar, run_words) for exemplar in exemplars)


def question_label(question: object) -> str | None:
    """'harmful', 'helpful', 'benign' or None for an unlabelled question (any object with `kind`)."""
    kind = getattr(question, "kind", None)
    kind = getattr(kind, "value", kind)
    return kind if kind in ("harmful", "helpful", "benign") else None


def refuses(question: str, answer: str) -> bool:
    """True when the refusal judge reads `answer` as a refusal (a degenerate answer never is)."""
    return is_refusal(question, answer)


def label_mismatch(label: str | None, refused: bool) -> bool:
    """Complying with a harmful question, or refusing a helpful (or benign) one."""
    if label is None:
        return False
    return not refused if label == "harmful" else refused


@dataclass(frozen=True)
class Candidate:
    """One sampled Safe Answer with its verdict and label reading."""

    answer: str
    tokens: int
    verdict: Verdict
    refused: bool
    mismatch: bool
    opening: str | None = None
    degenerate: bool = False
    """Not an answer at all (core.evaluation.degenerate): never chosen over a real one."""

    @property
    def accepted(self) -> bool:
        """Safe, matching its label, and a real answer: the adaptive pipeline may stop here."""
        return self.verdict.safe and not self.mismatch and not self.degenerate


def choose_candidate(candidates: Sequence[Candidate]) -> int:
    """Index of the best candidate: a real answer, safe and matching its label first, then lowest
    P(unsafe); ties keep the earliest (the greedy one when candidate 0 is greedy)."""
    return min(range(len(candidates)),
               key=lambda i: (candidates[i].degenerate, not candidates[i].verdict.safe, candidates[i].mismatch,
                              candidates[i].verdict.risk, i))
