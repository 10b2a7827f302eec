"""Self-generation of AlignCoT chains with adaptive length (section 2 of the spec).

For each question, one attempt runs:
  1. answer A0 from X; check -> safe: keep [answer]
  2. else analysis X_a; answer A1 from (X, X_a); check -> safe: keep [analysis, answer]
  3. else guidance X_g; answer A2 from (X, X_a, X_g); check -> keep the full chain (flagged if unsafe)
An unparsable verdict counts as unsafe and is recorded as unparsable. Flagged chains follow the
configured policy (keep / drop / regenerate up to N attempts, then keep flagged).

Why coroutines: each question's pipeline is a generator that yields one completion request at a
time and receives its completion. A text generator (a batched local model, an HTTP endpoint, or
a scripted fake in tests) pulls requests from many pipelines at once, so a batch never waits on
one question, and a finished chain goes to the sink the moment its last check returns.
"""
from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from core.config import FlaggedPolicy, GenerateConfig
from core.decoding.completions import Completion, CompletionRequest, TextGenerator
from core.synthesis.prompts import PromptSet
from core.stages import ChainShape

_VERDICT = re.compile(r"^\s*verdict\s*:\s*(.*?)\s*$", re.IGNORECASE)


class ChainSink(Protocol):
    """Where finished chains go, one at a time (a JSONL file here, a database in jobs/)."""

    def done_ids(self) -> set[str]: ...

    def write(self, record: dict[str, Any]) -> None: ...


class ProgressCallback(Protocol):
    def __call__(self, done: int, total: int) -> None: ...


@dataclass
class Verdict:
    safe: bool
    parsed: bool
    raw: str


def parse_verdict(text: str) -> Verdict:
    """Strict: the last line starting with 'VERDICT:' must say exactly safe or unsafe."""
    lines = [line for line in text.splitlines() if _VERDICT.match(line)]
    value = _VERDICT.match(lines[-1]).group(1).lower().rstrip(".!") if lines else ""
    if value in ("safe", "unsafe"):
        return Verdict(value == "safe", True, text)
    return Verdict(False, False, text)


Pipeline = Generator[CompletionRequest, Completion, dict[str, Any]]


def _ask(stage: str, messages: list[dict[str, str]], limit: int, config: GenerateConfig, temperature: float, seed: int, prefix: str = "") -> CompletionRequest:
    return CompletionRequest(messages, limit, list(config.stop_strings), prefix, temperature, config.top_p, seed, stage)


def adaptive_attempt(question: str, prompts: PromptSet, config: GenerateConfig, temperature: float, seed: int) -> Pipeline:
    """One adaptive-length attempt; returns its record (stages, checks, shape, flagged)."""
    texts: dict[str, str] = {}
    tokens: dict[str, int] = {}
    answers: list[dict[str, Any]] = []
    check = prompts["check"]
    for shape in (ChainShape.ANSWER_ONLY, ChainShape.ANALYSIS_ANSWER, ChainShape.FULL):
        if shape is ChainShape.ANALYSIS_ANSWER:
            done = yield _ask("analysis", prompts["analysis"].messages(question=question), config.analysis_tokens, config, temperature, seed)
            texts["analysis"], tokens["analysis"] = done.text.strip(), done.tokens
        if shape is ChainShape.FULL:
            messages = prompts["guidance"].messages(question=question, analysis=texts["analysis"])
            done = yield _ask("guidance", messages, config.guidance_tokens, config, temperature, seed)
            texts["guidance"], tokens["guidance"] = done.text.strip(), done.tokens
        messages = prompts["answer"].messages(question=question, analysis=texts.get("analysis", ""), guidance=texts.get("guidance", ""))
        answer = yield _ask("answer", messages, config.answer_tokens, config, temperature, seed)
        verdict_messages = check.messages(question=question, answer=answer.text.strip())
        checked = yield _ask("check", verdict_messages, config.check_tokens, config, 0.0, seed, check.assistant_prefix)
        verdict = parse_verdict(f"{check.assistant_prefix}{checked.text}")
        answers.append({
            "shape": shape.value, "answer": answer.text.strip(), "answer_tokens": answer.tokens,
            "verdict": "safe" if verdict.safe else "unsafe", "verdict_parsed": verdict.parsed, "check_raw": verdict.raw,
        })
        if verdict.safe:
            break
    final = answers[-1]
    return {
        "shape": final["shape"], "flagged": final["verdict"] != "safe", "analysis": texts.get("analysis"),
        "guidance": texts.get("guidance"), "answer": final["answer"], "tokens": {**tokens, "answer": final["answer_tokens"]},
        "answers": answers, "temperature": temperature, "seed": seed,
    }


def chain_pipeline(question: Any, prompts: PromptSet, config: GenerateConfig, generator_id: str) -> Pipeline:
    """All attempts for one question under the flagged policy; returns the chain record."""
    started = time.time()
    attempts: list[dict[str, Any]] = []
    tries = 1 + (config.max_regenerations if config.flagged_policy is FlaggedPolicy.REGENERATE else 0)
    for attempt in range(tries):
        temperature = config.temperature if attempt == 0 else config.regenerate_temperature
        record = yield from adaptive_attempt(question.text, prompts, config, temperature, config.seed + attempt)
        attempts.append(record)
        if not record["flagged"]:
            break
    final = attempts[-1]
    dropped = final["flagged"] and config.flagged_policy is FlaggedPolicy.DROP
    return {
        "id": question.id, "question": question.text,
        "analysis": final["analysis"] if final["shape"] != ChainShape.ANSWER_ONLY.value else None,
        "guidance": final["guidance"] if final["shape"] == ChainShape.FULL.value else None,
        "answer": final["answer"], "shape": final["shape"], "flagged": final["flagged"], "dropped": dropped,
        "kind": getattr(getattr(question, "kind", None), "value", getattr(question, "kind", None)),
        "category": getattr(question, "category", ""), "attempts": attempts,
        "template_hash": prompts.hash, "template_versions": prompts.versions, "generator": generator_id,
        "decoding": decoding_record(config), "timings": {"started": started, "seconds": round(time.time() - started, 3)},
    }


def decoding_record(config: GenerateConfig) -> dict[str, Any]:
    keys = ("temperature", "top_p", "seed", "analysis_tokens", "guidance_tokens", "answer_tokens", "check_tokens",
            "stop_strings", "flagged_policy", "max_regenerations", "regenerate_temperature", "batch_size")
    return {key: getattr(getattr(config, key), "value", getattr(config, key)) for key in keys}


@dataclass
class GenerationSummary:
    written: int
    skipped_done: int
    stopped: bool
    seconds: float


def generate_chains(
    questions: Iterable[Any],
    generator: TextGenerator,
    config: GenerateConfig,
    prompts: PromptSet,
    sink: ChainSink,
    *,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
) -> GenerationSummary:
    """Write a chain for every question not already in the sink (a rerun resumes)."""
    started = time.monotonic()
    done = sink.done_ids()
    questions = list(questions)
    todo = [q for q in questions if q.id not in done]
    skipped = len(questions) - len(todo)
    todo = todo[:limit] if limit is not None else todo
    pending = deque(todo)
    ready: deque[CompletionRequest] = deque()
    active: dict[str, Pipeline] = {}
    written = 0
    stop = should_stop or (lambda: False)

    def next_request() -> CompletionRequest | None:
        if ready:
            return ready.popleft()
        if not pending or stop():
            return None
        question = pending.popleft()
        pipeline = chain_pipeline(question, prompts, config, generator.id)
        request = next(pipeline)
        request.key = question.id
        active[question.id] = pipeline
        return request

    def deliver(request: CompletionRequest, completion: Completion) -> None:
        nonlocal written
        pipeline = active[request.key]
        try:
            follow = pipeline.send(completion)
        except StopIteration as finished:
            del active[request.key]
            sink.write(finished.value)
            written += 1
            if progress is not None:
                progress(written, len(todo))
            return
        follow.key = request.key
        ready.appendleft(follow)  # keep a started question moving before opening new ones

    generator.run(next_request, deliver, stop)
    return GenerationSummary(written, skipped, bool(pending or active), time.monotonic() - started)
