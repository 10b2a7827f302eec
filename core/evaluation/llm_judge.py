"""An LLM judge: rubric prompt in, strictly parsed verdict out, with bounded retries.

Why retries look like this: a judge that misses the required final line is asked again with the
rubric, its bad reply quoted and a reminder of the exact format, all in one user message (so
single-turn endpoints such as MoTE Studio's own `serve` still see the rubric). Retries sample at
`retry_temperature` with a fresh seed per attempt, because a greedy local model shown the same
prompt would repeat itself. After `max_retries` retries an answer is stored with score None,
its last raw output and the number of attempts: never silently scored.

Verdict-first mode (local judges): the reply is made to start with the final line's key
("VERDICT:" or "SCORE:") and ends at the line break, so the model only fills in the value. Small
models that never follow the "reason, then final line" format become usable and a verdict costs
a few tokens instead of a paragraph; the stored raw output is the forced key plus what the model
wrote, parsed by the same strict rules. Judgements in this mode carry their own judge id.

Label-probability mode (the default, JudgeMode.LABEL_PROBABILITY): no text is generated for a
local judge; each allowed label's probability after the forced key is read
(core.evaluation.label_verdicts), so every answer gets a verdict on the first attempt and the
probabilities are stored as the raw output. An HTTP judge answers in free text with `logprobs`
requested; the label probabilities are read at the first token of its verdict value, and a reply
without them (a server that offers none) falls back to strict parsing with retries.

Degenerate answers (empty, whitespace, one token, repeated, cut off) are never sent to the model:
they get a degenerate verdict (core.evaluation.degenerate), never a refusal or a safe score.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.evaluation.chat_backends import ChatBackend, Conversation, LabelScoringBackend
from core.evaluation.label_verdicts import (
    JudgeMode,
    LabelReading,
    ProbabilitySource,
    aspect_labels,
    probabilities_from_logprobs,
)
from core.evaluation.degenerate import judge_non_degenerate
from core.evaluation.rubrics import VERDICT_KEYS, Rubric, load_rubric, retry_reminder
from core.evaluation.types import Answer, Aspect, Verdict
from core.progress import Progress, no_progress

class LLMJudge:
    """Scores answers with a chat model (any ChatBackend) and the project's rubrics."""

    heuristic: bool = False

    def __init__(
        self,
        backend: ChatBackend,
        *,
        judge_id: str,
        aspects: Sequence[Aspect] = (Aspect.SAFETY, Aspect.HELPFULNESS, Aspect.REFUSAL),
        rubrics: dict[Aspect, Rubric] | None = None,
        rubrics_dir: str | Path | None = None,
        max_retries: int = 2,
        max_new_tokens: int = 256,
        retry_temperature: float = 0.7,
        seed: int = 0,
        chunk_size: int = 64,
        progress: Progress = no_progress,
        verdict_first: bool = False,
        mode: JudgeMode | str | None = None,
    ) -> None:
        """`rubrics` overrides files; otherwise each aspect's rubric is read from `rubrics_dir`
        (default assets/rubrics) now, so a broken rubric fails before any generation.
        `mode` defaults to free text, or verdict-first when `verdict_first` is set (the factory
        in judge_config picks label probabilities for configured judges)."""
        if max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r} is out of range: use an integer >= 0.")
        if max_new_tokens < 1 or chunk_size < 1:
            raise ValueError("max_new_tokens and chunk_size must be integers >= 1.")
        if not (0.0 < retry_temperature <= 2.0):
            raise ValueError(f"retry_temperature={retry_temperature!r} is out of range: use (0, 2] so retries differ.")
        self.backend, self.id = backend, judge_id
        self.aspects = frozenset(Aspect(a) for a in aspects)
        if not self.aspects:
            raise ValueError("aspects is empty: give at least one of ['safety', 'helpfulness', 'refusal'].")
        rubrics = dict(rubrics or {})
        self.rubrics = {a: rubrics[a] if a in rubrics else load_rubric(a, rubrics_dir) for a in self.aspects}
        self.max_retries, self.max_new_tokens = max_retries, max_new_tokens
        self.retry_temperature, self.seed = retry_temperature, seed
        self.chunk_size, self.progress = chunk_size, progress
        self.mode = JudgeMode(mode) if mode is not None else (JudgeMode.VERDICT_FIRST if verdict_first else JudgeMode.FREE_TEXT)
        self.verdict_first = self.mode is JudgeMode.VERDICT_FIRST

    @property
    def rubric_versions(self) -> dict[str, str]:
        """aspect -> 'version:hash' of the rubric text, to record with an evaluation."""
        return {a.value: f"{r.version}:{r.hash}" for a, r in sorted(self.rubrics.items(), key=lambda kv: kv[0].value)}

    def check(self) -> None:
        """Fail fast: the backend loads (local) or answers one tiny request (HTTP)."""
        self.backend.check()

    def judge(self, answers: Sequence[Answer], aspect: Aspect) -> list[Verdict]:
        aspect = Aspect(aspect)
        if aspect not in self.aspects:
            raise ValueError(f"Judge {self.id} scores {sorted(a.value for a in self.aspects)}, not {aspect.value!r}.")
        return judge_non_degenerate(answers, aspect, judge_id=self.id, heuristic=False,
                                    judge_rest=lambda rest: self._judge_readable(rest, aspect))

    def _judge_readable(self, answers: Sequence[Answer], aspect: Aspect) -> list[Verdict]:
        """The rubric verdicts of answers that are not degenerate, a chunk at a time."""
        verdicts: list[Verdict] = []
        judge_chunk = self._judge_by_labels if self.mode is JudgeMode.LABEL_PROBABILITY else self._judge_chunk
        for start in range(0, len(answers), self.chunk_size):
            verdicts += judge_chunk(answers[start : start + self.chunk_size], aspect)
            self.progress(len(verdicts), len(answers), f"{self.id} {aspect.value} {len(verdicts)}/{len(answers)}")
        return verdicts

    def _prompts(self, answers: Sequence[Answer], aspect: Aspect) -> list[Conversation]:
        rubric = self.rubrics[aspect]
        return [[{"role": "user", "content": rubric.format(a.question, a.answer)}] for a in answers]

    def _judge_by_labels(self, answers: Sequence[Answer], aspect: Aspect) -> list[Verdict]:
        """Label probabilities from a local model, or from an endpoint's logprobs (text fallback)."""
        if isinstance(self.backend, LabelScoringBackend):
            key = VERDICT_KEYS[aspect] + ":"
            rows = self.backend.score_labels(self._prompts(answers, aspect), aspect_labels(aspect), prefix=key)
            readings = [LabelReading(aspect, row, ProbabilitySource.LOCAL_LABELS) for row in rows]
            return [self._reading_verdict(a, r) for a, r in zip(answers, readings)]
        complete_with_logprobs = getattr(self.backend, "complete_with_logprobs", None)
        if complete_with_logprobs is None:
            raise ValueError(f"Backend {self.backend.id} gives neither label scores nor logprobs: "
                             "use mode 'verdict-first' or 'free-text' for this judge.")
        replies = complete_with_logprobs(self._prompts(answers, aspect), max_new_tokens=self.max_new_tokens,
                                         temperature=0.0, seed=None)
        verdicts: list[Verdict | None] = []
        for answer, reply in zip(answers, replies):
            probabilities = probabilities_from_logprobs(reply.tokens, aspect) if reply.tokens else None
            if probabilities is not None:
                verdicts.append(self._reading_verdict(answer, LabelReading(aspect, probabilities, ProbabilitySource.HTTP_TOP_LOGPROBS)))
                continue
            score = self.rubrics[aspect].parse(reply.text)  # no logprobs: the strict text rules
            verdicts.append(None if score is None else Verdict(
                sample_id=answer.sample_id, aspect=aspect, judge=self.id, score=score, raw_output=reply.text, attempts=1))
        fallback = [a for a, v in zip(answers, verdicts) if v is None]
        parsed = iter(self._judge_chunk(fallback, aspect) if fallback else [])
        return [v if v is not None else next(parsed) for v in verdicts]

    def _reading_verdict(self, answer: Answer, reading: LabelReading) -> Verdict:
        return Verdict(sample_id=answer.sample_id, aspect=reading.aspect, judge=self.id, score=reading.score,
                       raw_output=reading.to_raw_output(), attempts=1)

    def _judge_chunk(self, answers: Sequence[Answer], aspect: Aspect) -> list[Verdict]:
        """First attempt greedy; then only the unparsable ones are retried."""
        rubric = self.rubrics[aspect]
        prompts = self._prompts(answers, aspect)
        conversations = list(prompts)
        raw: list[str] = [""] * len(answers)
        scores: list[float | None] = [None] * len(answers)
        attempts = [0] * len(answers)
        pending = list(range(len(answers)))
        prefix = VERDICT_KEYS[aspect] + ":" if self.verdict_first else ""
        stop = ("\n",) if self.verdict_first else ()
        for attempt in range(self.max_retries + 1):
            if not pending:
                break
            retry = attempt > 0
            outputs = self.backend.complete(
                [conversations[i] for i in pending], max_new_tokens=self.max_new_tokens,
                temperature=self.retry_temperature if retry else 0.0, seed=self.seed + attempt if retry else None,
                reply_prefix=prefix, stop=stop,
            )
            if len(outputs) != len(pending):
                raise RuntimeError(f"Backend {self.backend.id} returned {len(outputs)} replies for {len(pending)} prompts.")
            for index, output in zip(pending, outputs):
                output = prefix + output
                raw[index], attempts[index] = output, attempt + 1
                scores[index] = rubric.parse(output)
                conversations[index] = retry_conversation(prompts[index], output, aspect)
            pending = [i for i in pending if scores[i] is None]
        return [
            Verdict(sample_id=a.sample_id, aspect=aspect, judge=self.id, score=scores[i], raw_output=raw[i], attempts=attempts[i])
            for i, a in enumerate(answers)
        ]


def retry_conversation(prompt: list[dict[str, str]], bad_output: str, aspect: Aspect) -> list[dict[str, str]]:
    """The rubric again, the judge's unusable reply quoted, and the format reminder — in ONE user
    message, because single-turn endpoints (MoTE Studio's own `serve` answers the last user
    message) would otherwise drop the rubric."""
    *head, last = prompt
    quoted = "\n".join("> " + line for line in (bad_output.strip() or "(empty)").splitlines())
    text = f"{last['content']}\n\nYour previous reply could not be read:\n{quoted}\n\n{retry_reminder(aspect)}"
    return [*head, {"role": "user", "content": text}]
