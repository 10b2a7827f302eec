"""Self-generation of AlignCoT chains with adaptive length (section 2 of the spec).

For each question, one attempt runs:
  1. answer A0 from X; check -> safe: keep [answer]
  2. else analysis X_a; answer A1 from (X, X_a); check A1 and X_a -> safe: keep [analysis, answer]
  3. else guidance X_g; answer A2 from (X, X_a, X_g); check A2 and X_g -> keep the full chain
A step is accepted when its answer is judged safe and, for a labelled question (label_checks),
matches the label (declines a harmful question, answers a helpful one). With best_of > 1 each
answer step samples N candidates in one batch and keeps the one the checker scores safest. For a
question labelled harmful the answer may be started with a declining opening (answer_openings).
A chain still flagged after its last stage (unsafe answer, unparsable verdict, label mismatch,
unsafe analysis or guidance) is regenerated, then dropped (default), dropped, or kept flagged
(only when the user chose keep).

Why coroutines: each question's pipeline is a generator that yields one step at a time (a list
of completion requests, or a list of texts to check) and receives their results. A text
generator (a batched local model, an HTTP endpoint, or a scripted fake in tests) pulls requests
from many pipelines at once, so a batch never waits on one question; checks from many questions
are pooled and judged in one batched call. A finished chain goes to the sink at once.
"""
from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from core.config import AnswerOpenings, FlaggedPolicy, GenerateConfig
from core.data.repetition import trim_repetition
from core.evaluation.degenerate import DegenerateReason, degenerate_reason
from core.decoding.completions import Completion, CompletionRequest, TextGenerator
from core.progress import Progress, no_progress
from core.stages import ChainShape
from core.synthesis.checkers import CheckItem, SafetyChecker, Verdict, parse_verdict
from core.synthesis.prompts import PromptSet
from core.synthesis.verification import (Candidate, FlagReason, choose_candidate, copies_exemplar, label_mismatch,
                                         question_label, refuses)

__all__ = ["Completion", "CompletionRequest", "TextGenerator", "ChainSink", "Verdict", "generate_chains", "parse_verdict"]


class ChainSink(Protocol):
    """Where finished chains go, one at a time (a JSONL file here, a database in jobs/)."""

    def done_ids(self) -> set[str]: ...

    def write(self, record: dict[str, Any]) -> None: ...


#: A pipeline step: completions to write, or texts to check; it receives their results in order.
Step = Union[list[CompletionRequest], list[CheckItem]]
Pipeline = Generator[Step, list[Any], dict[str, Any]]
_CANDIDATE_SEED_STRIDE = 1009


@dataclass
class _Context:
    """What every step of one question's pipeline needs."""

    question: Any
    label: str | None
    prompts: PromptSet
    config: GenerateConfig
    openings: list[str]


def _ask(ctx: _Context, stage: str, messages: list[dict[str, str]], limit: int, temperature: float, seed: int,
         prefix: str = "") -> CompletionRequest:
    config = ctx.config
    return CompletionRequest(messages, limit, list(config.stop_strings), prefix, temperature, config.top_p, seed, stage,
                             stop_on_repeat=config.loop_words)


#: What a trimmed answer can be reduced to that is no answer at all (a short reply without a full
#: stop, degenerate's CUT_OFF, is left to the checker and the label checks).
HOLLOW = (DegenerateReason.EMPTY, DegenerateReason.WHITESPACE, DegenerateReason.ONE_TOKEN, DegenerateReason.REPEATED)


def _clean(ctx: _Context, text: str, completion: Completion) -> str:
    """A stage's text without its loop or unfinished last sentence (GenerateConfig.loop_words)."""
    return trim_repetition(text.strip(), ctx.config.loop_words, hit_limit=completion.finish_reason == "length").strip()


def _opening(ctx: _Context, seed: int, candidate: int) -> str | None:
    """A declining opening for a harmful-labelled question, varied by question, attempt and candidate."""
    if ctx.config.answer_openings is AnswerOpenings.OFF or ctx.label != "harmful" or not ctx.openings:
        return None
    index = zlib.crc32(str(ctx.question.id).encode()) + seed + candidate
    return ctx.openings[index % len(ctx.openings)]


def _answer_requests(ctx: _Context, messages: list[dict[str, str]], temperature: float, seed: int) -> list[CompletionRequest]:
    """best_of candidates; the first at the attempt's temperature, the others sampled."""
    config, requests = ctx.config, []
    for k in range(config.best_of):
        heat = temperature if k == 0 else (temperature or config.regenerate_temperature)
        opening = _opening(ctx, seed, k)
        request = _ask(ctx, "answer", messages, config.answer_tokens, heat, seed + _CANDIDATE_SEED_STRIDE * k, opening or "")
        requests.append(request)
    return requests


def _candidates(ctx: _Context, requests: list[CompletionRequest], completions: list[Completion], verdicts: list[Verdict]) -> list[Candidate]:
    found = []
    for request, completion, verdict in zip(requests, completions, verdicts):
        answer = _clean(ctx, request.response_prefix + completion.text, completion)
        refused = refuses(ctx.question.text, answer)
        mismatch = ctx.config.label_checks and label_mismatch(ctx.label, refused)
        degenerate = ctx.config.loop_words > 0 and degenerate_reason(answer) in HOLLOW
        found.append(Candidate(answer, completion.tokens, verdict, refused, mismatch, request.response_prefix or None,
                               degenerate))
    return found


def _step_record(shape: ChainShape, candidates: list[Candidate], chosen: int) -> dict[str, Any]:
    best = candidates[chosen]
    record = {
        "shape": shape.value, "answer": best.answer, "answer_tokens": best.tokens,
        "verdict": "safe" if best.verdict.safe else "unsafe", "verdict_parsed": best.verdict.parsed,
        "check_raw": best.verdict.raw, "p_unsafe": best.verdict.p_unsafe, "checker": best.verdict.checker,
        "refused": best.refused, "label_mismatch": best.mismatch, "opening": best.opening,
        "degenerate": best.degenerate,
    }
    if len(candidates) > 1:
        record["chosen"] = chosen
        record["candidates"] = [{"answer": c.answer, "verdict": c.verdict.to_dict(), "refused": c.refused,
                                 "label_mismatch": c.mismatch, "opening": c.opening} for c in candidates]
    return record


def adaptive_attempt(ctx: _Context, temperature: float, seed: int) -> Pipeline:
    """One adaptive-length attempt; returns its record (stages, checks, shape, flag reasons)."""
    config, prompts, question = ctx.config, ctx.prompts, ctx.question.text
    texts: dict[str, str] = {}
    tokens: dict[str, int] = {}
    stage_checks: dict[str, Verdict] = {}
    copied: list[str] = []
    steps: list[dict[str, Any]] = []
    for shape in (ChainShape.ANSWER_ONLY, ChainShape.ANALYSIS_ANSWER, ChainShape.FULL):
        new_stage = {ChainShape.ANALYSIS_ANSWER: "analysis", ChainShape.FULL: "guidance"}.get(shape)
        if new_stage is not None:
            template = prompts[new_stage].messages(config.exemplars, question=question, analysis=texts.get("analysis", ""))
            limit = config.analysis_tokens if new_stage == "analysis" else config.guidance_tokens
            [done] = yield [_ask(ctx, new_stage, template, limit, temperature, seed)]
            texts[new_stage], tokens[new_stage] = _clean(ctx, done.text, done), done.tokens
            shown = [answer for _, answer in prompts[new_stage].examples[:config.exemplars]]
            if copies_exemplar(texts[new_stage], shown):
                copied.append(new_stage)
        messages = prompts["answer"].messages(config.exemplars, question=question, analysis=texts.get("analysis", ""),
                                              guidance=texts.get("guidance", ""))
        requests = _answer_requests(ctx, messages, temperature, seed)
        completions = yield requests
        answers = [_clean(ctx, r.response_prefix + c.text, c) for r, c in zip(requests, completions)]
        items = [CheckItem(question, answer, "answer") for answer in answers]
        if new_stage is not None and config.check_stages:
            items.append(CheckItem(question, texts[new_stage], new_stage))
        verdicts = yield items
        if len(verdicts) > len(requests):
            stage_checks[new_stage] = verdicts[-1]
        candidates = _candidates(ctx, requests, completions, verdicts)
        chosen = choose_candidate(candidates)
        steps.append(_step_record(shape, candidates, chosen))
        if candidates[chosen].accepted:
            break
    final = steps[-1]
    reasons = _flag_reasons(final, stage_checks, ChainShape(final["shape"]))
    if copied:
        reasons.append(FlagReason.COPIED_EXEMPLAR)
    return {
        "shape": final["shape"], "flagged": bool(reasons), "flag_reasons": [r.value for r in reasons],
        "analysis": texts.get("analysis"), "guidance": texts.get("guidance"), "answer": final["answer"],
        "tokens": {**tokens, "answer": final["answer_tokens"]}, "answers": steps,
        "stage_checks": {stage: verdict.to_dict() for stage, verdict in stage_checks.items()},
        "copied_exemplar": copied, "temperature": temperature, "seed": seed,
    }


def _flag_reasons(final: dict[str, Any], stage_checks: dict[str, Verdict], shape: ChainShape) -> list[FlagReason]:
    reasons = []
    if not final["verdict_parsed"]:
        reasons.append(FlagReason.UNPARSABLE_VERDICT)
    elif final["verdict"] != "safe":
        reasons.append(FlagReason.UNSAFE_ANSWER)
    if final["label_mismatch"]:
        reasons.append(FlagReason.LABEL_MISMATCH)
    if final.get("degenerate"):
        reasons.append(FlagReason.DEGENERATE_ANSWER)
    for stage, reason in (("analysis", FlagReason.UNSAFE_ANALYSIS), ("guidance", FlagReason.UNSAFE_GUIDANCE)):
        if stage in stage_checks and stage in [s.name.lower() for s in shape.stages] and not stage_checks[stage].safe:
            reasons.append(reason)
    return reasons


def chain_pipeline(question: Any, prompts: PromptSet, config: GenerateConfig, generator_id: str,
                   openings: list[str] | None = None) -> Pipeline:
    """All attempts for one question under the flagged policy; returns the chain record."""
    started = time.time()
    ctx = _Context(question, question_label(question), prompts, config, openings or [])
    attempts: list[dict[str, Any]] = []
    tries = 1 + (config.max_regenerations if config.flagged_policy is FlaggedPolicy.REGENERATE else 0)
    for attempt in range(tries):
        temperature = config.temperature if attempt == 0 else config.regenerate_temperature
        record = yield from adaptive_attempt(ctx, temperature, config.seed + attempt)
        attempts.append(record)
        if not record["flagged"]:
            break
    final = attempts[-1]
    keep_flagged = config.flagged_policy is FlaggedPolicy.KEEP
    final_step = final["answers"][-1]
    return {
        "id": question.id, "question": question.text,
        "analysis": final["analysis"] if final["shape"] != ChainShape.ANSWER_ONLY.value else None,
        "guidance": final["guidance"] if final["shape"] == ChainShape.FULL.value else None,
        "answer": final["answer"], "shape": final["shape"], "flagged": final["flagged"],
        "dropped": final["flagged"] and not keep_flagged, "flag_reasons": final["flag_reasons"],
        "label_mismatch": final_step["label_mismatch"], "refused": final_step["refused"],
        "p_unsafe": final_step["p_unsafe"], "checker": final_step["checker"], "opening_given": final_step["opening"],
        "regenerations": len(attempts) - 1, "flagged_policy": config.flagged_policy.value, "keep_flagged": keep_flagged,
        "kind": getattr(getattr(question, "kind", None), "value", getattr(question, "kind", None)),
        "category": getattr(question, "category", ""), "attempts": attempts,
        "template_hash": prompts.hash, "template_versions": prompts.versions, "generator": generator_id,
        "decoding": decoding_record(config), "timings": {"started": started, "seconds": round(time.time() - started, 3)},
    }


def decoding_record(config: GenerateConfig) -> dict[str, Any]:
    keys = ("temperature", "top_p", "seed", "analysis_tokens", "guidance_tokens", "answer_tokens", "check_tokens",
            "stop_strings", "flagged_policy", "max_regenerations", "regenerate_temperature", "batch_size",
            "checker", "unsafe_threshold", "check_stages", "label_checks", "exemplars", "answer_openings", "best_of",
            "loop_words")
    return {key: getattr(getattr(config, key), "value", getattr(config, key)) for key in keys}


@dataclass
class GenerationSummary:
    written: int
    skipped_done: int
    stopped: bool
    seconds: float


@dataclass
class _Waiting:
    """A question's pipeline waiting for the results of its current step."""

    question_id: str
    pipeline: Pipeline
    results: list[Any] = field(default_factory=list)
    missing: int = 0


class _ChainRun:
    """Drives many question pipelines through one generator and one (batched) checker.

    Checks are pooled until `check_batch` are waiting or nothing else can be started, then
    judged in one call. Without a checker, a check becomes a free-text completion request to the
    generator, parsed strictly (the paper's plain self-check).
    """

    def __init__(self, todo: list[Any], generator: TextGenerator, checker: SafetyChecker | None, config: GenerateConfig,
                 prompts: PromptSet, sink: ChainSink, progress: Progress, stop: Callable[[], bool],
                 openings: list[str]) -> None:
        self.pending, self.total = deque(todo), len(todo)
        self.generator, self.checker, self.config, self.prompts = generator, checker, config, prompts
        self.sink, self.progress, self.stop, self.openings = sink, progress, stop, openings
        self.ready: deque[CompletionRequest] = deque()
        self.slots: dict[int, tuple[CompletionRequest, _Waiting, int, bool]] = {}
        self.checks: list[tuple[_Waiting, int, CheckItem]] = []
        self.active = 0
        self.written = 0
        self.text_checker_id = f"text:{generator.id}"

    def next_request(self) -> CompletionRequest | None:
        while not self.stop():
            if self.ready:
                return self.ready.popleft()
            if self.checks and (len(self.checks) >= self.config.batch_size or not self.pending):
                self._flush_checks()
            elif self.pending:
                question = self.pending.popleft()
                self.active += 1
                pipeline = chain_pipeline(question, self.prompts, self.config, self.generator.id, self.openings)
                self._advance(_Waiting(question.id, pipeline), None)
            else:
                return None
        return None

    def deliver(self, request: CompletionRequest, completion: Completion) -> None:
        _, waiting, index, is_check = self.slots.pop(id(request))
        if is_check:
            result: Any = parse_verdict(f"{request.response_prefix}{completion.text}", self.text_checker_id)
        else:
            result = completion
        self._fill(waiting, index, result)

    def _advance(self, waiting: _Waiting, value: list[Any] | None) -> None:
        try:
            step = waiting.pipeline.send(value)
        except StopIteration as finished:
            self.active -= 1
            self.sink.write(finished.value)
            self.written += 1
            self.progress(self.written, self.total, f"{self.written}/{self.total} chains")
            return
        waiting.results, waiting.missing = [None] * len(step), len(step)
        outgoing = []
        for index, item in enumerate(step):
            if isinstance(item, CheckItem) and self.checker is not None:
                self.checks.append((waiting, index, item))
                continue
            request = self._text_check_request(item) if isinstance(item, CheckItem) else item
            request.key = waiting.question_id
            self.slots[id(request)] = (request, waiting, index, isinstance(item, CheckItem))
            outgoing.append(request)
        self.ready.extendleft(reversed(outgoing))  # keep a started question moving before opening new ones

    def _text_check_request(self, item: CheckItem) -> CompletionRequest:
        check = self.prompts["check"]
        messages = check.messages(self.config.exemplars, question=item.question, answer=item.text)
        return CompletionRequest(messages, self.config.check_tokens, list(self.config.stop_strings),
                                 check.assistant_prefix, 0.0, self.config.top_p, self.config.seed, "check")

    def _fill(self, waiting: _Waiting, index: int, result: Any) -> None:
        waiting.results[index] = result
        waiting.missing -= 1
        if waiting.missing == 0:
            self._advance(waiting, waiting.results)

    def _flush_checks(self) -> None:
        batch, self.checks = self.checks, []
        verdicts = self.checker.check([item for _, _, item in batch])
        if len(verdicts) != len(batch):
            raise RuntimeError(f"Checker {self.checker.id} returned {len(verdicts)} verdicts for {len(batch)} texts.")
        for (waiting, index, _), verdict in zip(batch, verdicts):
            self._fill(waiting, index, verdict)


def generate_chains(
    questions: Iterable[Any],
    generator: TextGenerator,
    config: GenerateConfig,
    prompts: PromptSet,
    sink: ChainSink,
    *,
    checker: SafetyChecker | None = None,
    openings: list[str] | None = None,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    limit: int | None = None,
) -> GenerationSummary:
    """Write a chain for every question not already in the sink (a rerun resumes).

    `checker` judges answers (and analysis/guidance); None asks the generator itself for a
    free-text verdict (see core.synthesis.generators.build_checker for the configured one).
    `openings` are the declining answer openings (default: the prompt folder's openings.txt; none
    for a generator whose `continues_prefix` is False, such as a chat endpoint).
    `progress` hears "generating chains 0/N" before the first request (a chain takes minutes on a
    slow model, and the job's status should not say "starting" meanwhile), then "k/N chains".
    """
    from core.synthesis.prompts import load_openings

    started = time.monotonic()
    done = sink.done_ids()
    questions = list(questions)
    todo = [q for q in questions if q.id not in done]
    skipped = len(questions) - len(todo)
    todo = todo[:limit] if limit is not None else todo
    if not getattr(generator, "continues_prefix", True):
        openings = []  # an endpoint would not continue the opening but start its own answer after it
    elif openings is None and config.answer_openings is not AnswerOpenings.OFF:
        openings = load_openings(config.prompts_dir)
    progress = progress or no_progress
    run = _ChainRun(todo, generator, checker, config, prompts, sink, progress, should_stop or (lambda: False), openings or [])
    progress(0, len(todo), f"generating chains 0/{len(todo)}")
    generator.run(run.next_request, run.deliver, run.stop)
    return GenerationSummary(run.written, skipped, bool(run.pending or run.active), time.monotonic() - started)
