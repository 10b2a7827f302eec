"""Chat subjects: one interface over every model that answers questions here.

Why: the OpenAI-compatible server, the evaluation runner and the Gradio chat all need "a model
that answers a question, stage by stage" without caring whether it is a plain base model, a MoTE
run or a baseline run. A subject streams `StageEvent`s (a plain model writes one ANSWER stage,
expert 'base') and fills a `SubjectReply` with stage texts, tokens per stage and the chosen chain
shape. Generation holds a lock per subject, so several threads may share one subject safely
(their requests run one after another: the model's weights are folded per stage while decoding).
"""
from __future__ import annotations

import abc
import dataclasses
import enum
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from core.decoding.scheduler import ChainJob, run_batched
from core.config import Method
from core.data.dataset import chat_prefix_suffix
from core.experts.export import MOTE_FILE, read_manifest
from core.decoding.chain_programs import (
    ChainOutput,
    ChainProgram,
    Feed,
    GenerationSettings,
    Sampler,
    StageEvent,
    chain_program,
    chain_prompt,
    drive,
    stream_chain,
)
from core.experts.model import MoteModel, cache_kwargs
from core.stages import QUESTION_STAGE_ID, ChainShape, Stage, shape_of

BASE_PREFIX = "base:"
BASE_EXPERT = "base"
#: What `load_subject` accepts, quoted in its errors.
ACCEPTED_SPECS = (
    "'base:<model>' (the bundled alias 'smollm2-135m-instruct', a local model folder or a hub id), "
    "a training run folder that holds export/mote.json, or that export/ folder itself"
)

#: A question, or OpenAI-style chat messages ({'role': ..., 'content': str}).
Prompt = str | Sequence[Mapping[str, Any]]
Say = Callable[[str], None]


class SubjectKind(str, enum.Enum):
    """What a subject is: a plain base model, a MoTE model, or a baseline / ablation run."""

    BASE = "base"
    MOTE = "mote"
    BASELINE = "baseline"


class PromptError(ValueError):
    """The prompt cannot be turned into a question (no user message, non-text content ...)."""


class SubjectSpecError(ValueError):
    """`load_subject` was given something it cannot load; the message lists what it accepts."""


@dataclass
class StageText:
    """One stage of a reply: who wrote it, its text and how many tokens it took (markers excluded)."""

    stage: Stage
    expert: str
    text: str = ""
    tokens: int = 0
    hit_limit: bool = False
    """The stage was closed by its token limit, not by the model."""


@dataclass
class SubjectReply:
    """A finished (or interrupted) reply: the stages in order, token counts and chain shape."""

    stages: list[StageText] = field(default_factory=list)
    shape: ChainShape | None = None
    """The chain shape written; None for models without stage markers (base models, SFT)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Every generated token, stage markers included."""

    @property
    def answer(self) -> str:
        return next((s.text for s in self.stages if s.stage is Stage.ANSWER), "")

    @property
    def reasoning(self) -> list[StageText]:
        """The stages before the answer (analysis, guidance)."""
        return [s for s in self.stages if s.stage is not Stage.ANSWER]

    @property
    def finish_reason(self) -> str:
        """'length' when the answer was cut by its token limit, else 'stop' (OpenAI's values)."""
        answer = next((s for s in self.stages if s.stage is Stage.ANSWER), None)
        return "length" if answer is not None and answer.hit_limit else "stop"

    def stage_texts(self) -> dict[str, str]:
        return {s.stage.name.lower(): s.text for s in self.stages}

    def stage_tokens(self) -> dict[str, int]:
        return {s.stage.name.lower(): s.tokens for s in self.stages}

    def observe(self, event: StageEvent) -> None:
        """Keep the stage texts up to date as events arrive (so an interrupted reply is usable)."""
        if event.kind == "start":
            self.stages.append(StageText(event.stage, event.expert))
        elif event.kind == "text":
            self.stages[-1].text += event.text
        elif event.kind == "end":
            self.stages[-1].text = event.text


def split_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[str, str | None]:
    """(question, system prompt) of chat messages: the last user message, the system messages.

    Earlier turns are not replayed: a MoTE chain answers one question (spec section 5).
    """
    system = [str(m.get("content") or "") for m in messages if m.get("role") in ("system", "developer")]
    users = [m for m in messages if m.get("role") == "user"]
    if not users:
        raise PromptError("The messages hold no message with role 'user': add the question as {'role': 'user', 'content': ...}.")
    content = users[-1].get("content")
    if not isinstance(content, str) or not content.strip():
        raise PromptError("The last user message has no text content: give it a non-empty string 'content'.")
    return content, ("\n\n".join(system) if system else None)


def _question_and_settings(prompt: Prompt, settings: GenerationSettings | None) -> tuple[str, GenerationSettings]:
    settings = settings or GenerationSettings()
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError("The question is empty: pass a non-empty question.")
        return prompt, settings
    question, system = split_messages(prompt)
    if system is not None:
        settings = dataclasses.replace(settings, system_prompt=system)
    return question, settings


class ChatSubject(abc.ABC):
    """A model that answers questions stage by stage; safe to share between threads."""

    label: str
    kind: SubjectKind

    def __init__(self) -> None:
        self._lock = threading.Lock()  # a Lock, not an RLock: a stream may resume on another thread

    def stream(self, prompt: Prompt, settings: GenerationSettings | None = None, *, reply: SubjectReply | None = None) -> Iterator[StageEvent]:
        """Yield the reply's StageEvents as tokens arrive; `reply` (if given) is filled as they go.

        The subject's lock is held from the first event until the iterator ends or is closed.
        """
        question, settings = _question_and_settings(prompt, settings)
        reply = reply if reply is not None else SubjectReply()
        return self._locked(question, settings, reply)

    def answer(self, prompt: Prompt, settings: GenerationSettings | None = None) -> SubjectReply:
        """The whole reply (non-streaming)."""
        reply = SubjectReply()
        for _ in self.stream(prompt, settings, reply=reply):
            pass
        return reply

    def answer_many(self, prompts: Sequence[Prompt], settings: GenerationSettings | None = None, *, batch_size: int = 8,
                    should_stop: Callable[[], bool] = lambda: False) -> Iterator[tuple[int, SubjectReply]]:
        """(index, reply) for every prompt, in the order they finish, `batch_size` decoded together
        (core.decoding.scheduler): each reply is what `answer` gives for that prompt alone, up to
        floating-point noise of the batched matmuls. Stops between steps when `should_stop()`
        (replies in flight are dropped). The subject's lock is held until the iterator ends."""
        parsed = [_question_and_settings(prompt, settings) for prompt in prompts]
        with self._lock:
            yield from self._answer_batched(parsed, batch_size, should_stop)

    def _answer_batched(self, parsed: list[tuple[str, GenerationSettings]], batch_size: int,
                        should_stop: Callable[[], bool]) -> Iterator[tuple[int, SubjectReply]]:
        """Without a batched form (see BatchingSubject): one prompt after another."""
        for index, (question, settings) in enumerate(parsed):
            if should_stop():
                return
            reply = SubjectReply()
            for _ in self._generate(question, settings, reply):
                pass
            yield index, reply

    def _locked(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        with self._lock:
            yield from self._generate(question, settings, reply)

    @abc.abstractmethod
    def _generate(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        """Yield events and keep `reply` complete, also when closed early (use try/finally)."""


class BatchingSubject(ChatSubject):
    """A subject whose replies can be decoded many at a time (core.decoding.scheduler)."""

    device: torch.device

    def _answer_batched(self, parsed: list[tuple[str, GenerationSettings]], batch_size: int,
                        should_stop: Callable[[], bool]) -> Iterator[tuple[int, SubjectReply]]:
        replies: dict[int, SubjectReply] = {}
        finishers: dict[int, Callable[[], None]] = {}

        def jobs() -> Iterator[ChainJob]:
            for index, (question, settings) in enumerate(parsed):
                replies[index] = SubjectReply()
                job, finishers[index] = self._chain_job(index, question, settings, replies[index])
                yield job

        for index in run_batched(self._batch_forward, jobs(), batch_size=batch_size, device=self.device, should_stop=should_stop):
            finishers.pop(index)()
            yield index, replies.pop(index)

    @abc.abstractmethod
    def _chain_job(self, key: int, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[ChainJob, Callable[[], None]]:
        """The batched form of one reply: its ChainJob and what fills the reply's counts at the end."""

    @abc.abstractmethod
    def _batch_forward(self, ids: torch.Tensor, stages: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor,
                       cache: DynamicCache) -> torch.Tensor:
        """One batched step for core.decoding.scheduler: logits (batch, vocab) after the last token."""


class MoteSubject(BatchingSubject):
    """A MoteModel: MoTE and every baseline the project trains (they are MoteModels too)."""

    def __init__(self, mote: MoteModel, *, label: str, method: Method | None = None) -> None:
        super().__init__()
        self.mote, self.label, self.method = mote, label, method
        if method is not None:
            self.kind = SubjectKind.MOTE if method is Method.MOTE else SubjectKind.BASELINE
        else:  # an export without a training record: judge by its experts
            layout = mote.layout
            self.kind = SubjectKind.MOTE if layout.step_experts and layout.shared_expert and mote.uses_markers else SubjectKind.BASELINE
        self.device = next(mote.model.parameters()).device

    def _generate(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        output = ChainOutput([], [], [], 0)
        try:
            for event in stream_chain(self.mote, question, settings, output=output):
                reply.observe(event)
                yield event
        finally:
            self._count(output, settings, reply)

    def _chain_job(self, key: int, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[ChainJob, Callable[[], None]]:
        prompt = chain_prompt(self.mote, question, settings)
        output = ChainOutput([], list(prompt), [QUESTION_STAGE_ID] * len(prompt), len(prompt))

        def start(logits: torch.Tensor) -> ChainProgram:
            return chain_program(self.mote, settings, Sampler(settings), logits, output)
        return ChainJob(key, prompt, QUESTION_STAGE_ID, start, reply.observe), lambda: self._count(output, settings, reply)

    def _batch_forward(self, ids, stages, mask, positions, cache) -> torch.Tensor:
        self.mote.model.eval()
        out = self.mote.forward(ids, stages, attention_mask=mask, position_ids=positions, cache=cache, logits_to_keep=1)
        return out.logits[:, -1].float()

    def _count(self, output: ChainOutput, settings: GenerationSettings, reply: SubjectReply) -> None:
        markers = set(self.mote.marker_ids.values())
        generated = list(zip(output.token_ids, output.stage_ids))[output.prompt_length:]
        counts = Counter(stage for token, stage in generated if token not in markers)
        for part in reply.stages:
            part.tokens = counts[int(part.stage)]
            part.hit_limit = part.tokens >= settings.limit(part.stage)
        reply.prompt_tokens, reply.completion_tokens = output.prompt_length, len(generated)
        stages = [s.stage for s in reply.stages]
        if self.mote.uses_markers and stages and stages[-1] is Stage.ANSWER:
            reply.shape = shape_of(stages)


class BaseSubject(BatchingSubject):
    """A plain causal LM with no experts and no markers: one ANSWER stage, expert 'base'.

    The prompt is built exactly as for MoTE models (same chat template and system prompt), so
    a base model and the runs trained from it are compared on equal terms. `settings.path` does
    not apply (there are no stages to force); the answer's token limit is `settings.limit(ANSWER)`.
    """

    kind = SubjectKind.BASE

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, label: str) -> None:
        super().__init__()
        self.model, self.tokenizer, self.label = model.eval(), tokenizer, label
        self.device = next(model.parameters()).device
        eos = model.generation_config.eos_token_id if model.generation_config is not None else None
        ends = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
        self.end_ids = sorted(i for i in ends if i is not None)

    def _prompt(self, question: str, settings: GenerationSettings) -> list[int]:
        prefix, _ = chat_prefix_suffix(self.tokenizer, question, settings.system_prompt)
        return self.tokenizer(prefix, add_special_tokens=False)["input_ids"]

    def _generate(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        prompt = self._prompt(question, settings)
        reply.prompt_tokens = len(prompt)
        body: list[int] = []
        cache = DynamicCache()
        with torch.no_grad():
            logits = self._feed(prompt, cache)
            program = self._program(settings, Sampler(settings), logits, body)
            try:
                for event in drive(program, lambda token, _stage: self._feed([token], cache)):
                    reply.observe(event)
                    yield event
            finally:
                self._count(reply, body, settings)

    def _program(self, settings: GenerationSettings, sampler: Sampler, logits: torch.Tensor, body: list[int]) -> ChainProgram:
        """One ANSWER stage: decode until an end-of-turn token or the answer's token limit."""
        yield StageEvent("start", Stage.ANSWER, expert=BASE_EXPERT)
        emitted = ""
        while len(body) < settings.limit(Stage.ANSWER):
            banned = self.end_ids if len(body) < settings.min_stage_tokens else []
            token = sampler.sample(logits, banned=banned)
            if token in self.end_ids:
                break
            body.append(token)
            text = self.tokenizer.decode(body, skip_special_tokens=True)
            if not text.endswith("\ufffd") and len(text) > len(emitted):  # wait for a split character's rest
                yield StageEvent("text", Stage.ANSWER, text[len(emitted):], BASE_EXPERT)
                emitted = text
            logits = yield Feed(token, int(Stage.ANSWER))
        yield StageEvent("end", Stage.ANSWER, self.tokenizer.decode(body, skip_special_tokens=True), BASE_EXPERT)

    def _count(self, reply: SubjectReply, body: list[int], settings: GenerationSettings) -> None:
        if reply.stages:
            part = reply.stages[-1]
            part.tokens = reply.completion_tokens = len(body)
            part.hit_limit = len(body) >= settings.limit(Stage.ANSWER)

    def _chain_job(self, key: int, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[ChainJob, Callable[[], None]]:
        prompt = self._prompt(question, settings)
        reply.prompt_tokens = len(prompt)
        body: list[int] = []

        def start(logits: torch.Tensor) -> ChainProgram:
            return self._program(settings, Sampler(settings), logits, body)
        return ChainJob(key, prompt, int(Stage.ANSWER), start, reply.observe), lambda: self._count(reply, body, settings)

    def _batch_forward(self, ids, stages, mask, positions, cache) -> torch.Tensor:
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1,
                         **cache_kwargs(self.model, cache))
        return out.logits[:, -1].float()

    def _feed(self, token_ids: list[int], cache: DynamicCache) -> torch.Tensor:
        ids = torch.tensor([token_ids], device=self.device)
        out = self.model(input_ids=ids, use_cache=True, logits_to_keep=1, **cache_kwargs(self.model, cache))
        return out.logits[0, -1].float()


def load_subject(spec: str, *, home: Path | None = None, say: Say = print) -> ChatSubject:
    """A subject from 'base:<model>' or a trained run folder (or its export folder)."""
    spec = str(spec).strip()
    if spec.startswith(BASE_PREFIX):
        name = spec[len(BASE_PREFIX):].strip()
        if not name:
            raise SubjectSpecError(f"'{spec}' names no model after 'base:'. Accepted: {ACCEPTED_SPECS}.")
        from core.model_source import inference_placement, load_base_model

        model, tokenizer = load_base_model(name, home, say=say, **inference_placement())
        return BaseSubject(model, tokenizer, label=spec)
    export = _export_folder(spec)
    from core.training.recipe import load_trained

    manifest = read_manifest(export)
    method = _recorded_method(manifest)
    mote = load_trained(export, home=home, say=say)
    run_name = export.parent.name if export.name == "export" else export.name
    return MoteSubject(mote, label=f"{method.value if method else manifest['method']}:{run_name}", method=method)


def _export_folder(spec: str) -> Path:
    folder = Path(spec).expanduser()
    if not folder.exists():
        raise SubjectSpecError(f"'{spec}' is neither 'base:<model>' nor an existing folder. Accepted: {ACCEPTED_SPECS}.")
    if not folder.is_dir():
        raise SubjectSpecError(f"'{spec}' is a file. Accepted: {ACCEPTED_SPECS}.")
    for candidate in (folder / "export", folder):
        if (candidate / MOTE_FILE).is_file():
            return candidate
    if (folder / "checkpoints").is_dir() or (folder / "config.yaml").is_file():
        raise SubjectSpecError(
            f"Run folder '{spec}' has no export/{MOTE_FILE}: its training has not finished. Wait for the "
            "run to finish (or resume it), then pass the run folder again."
        )
    raise SubjectSpecError(f"'{spec}' holds no {MOTE_FILE} (nor export/{MOTE_FILE}). Accepted: {ACCEPTED_SPECS}.")


def _recorded_method(manifest: Mapping[str, Any]) -> Method | None:
    value = (manifest.get("training") or {}).get("method")
    try:
        return Method(value) if value else None
    except ValueError:
        return None
