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
import contextlib
import dataclasses
import enum
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from core.config import Method
from core.decoding.chain_programs import (
    ChainOutput,
    GenerationSettings,
    StageEvent,
    StageEventKind,
    chain_job,
    stream_chain,
)
from core.decoding.completions import PlainText, plain_text_program
from core.decoding.scheduler import BatchForward, DecodeJob, DecodeProgram, causal_lm_forward, mote_forward, run_batched, stream_one
from core.decoding.subject_ref import BASE_PREFIX, SubjectRef, SubjectRefKind, SubjectSpecError  # noqa: F401 - BASE_PREFIX, SubjectSpecError re-exported
from core.decoding.text import end_of_turn_ids, question_prompt_ids
from core.experts.export import MOTE_FILE, read_manifest
from core.experts.model import MoteModel
from core.stages import CHAIN_STAGES, ChainShape, Stage, shape_of

BASE_EXPERT = "base"
#: What `load_subject` accepts, quoted in its errors.
ACCEPTED_SPECS = (
    "'base:<model>' (the bundled alias 'smollm2-135m-instruct', a local model folder or a hub id), "
    "a training run folder that holds export/mote.json, or that export/ folder itself"
)

#: A question, or OpenAI-style chat messages ({'role': ..., 'content': str}).
Prompt = str | Sequence[Mapping[str, Any]]
Say = Callable[[str], None]


#: Start and end marker of each stage a chain model writes.
MARKERS_PER_STAGE = 2

class SubjectKind(str, enum.Enum):
    """What a subject is: a plain base model, a MoTE model, or a baseline / ablation run."""

    BASE = "base"
    MOTE = "mote"
    BASELINE = "baseline"


class PromptError(ValueError):
    """The prompt cannot be turned into a question (no user message, non-text content ...)."""


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
    seed: int | None = None
    """The sampling seed used (pass it back in the settings to reproduce the reply)."""

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
        if event.kind is StageEventKind.START:
            self.stages.append(StageText(event.stage, event.expert))
        elif event.kind is StageEventKind.TEXT:
            self.stages[-1].text += event.text
        elif event.kind is StageEventKind.END:
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

    def completion_budget(self, settings: GenerationSettings) -> int:
        """The most tokens one reply may generate under `settings`: every stage it may write, at its
        limit, plus its markers (a base model writes the answer stage alone). A server checks a
        request's total against it before any token is spent."""
        if self.kind is SubjectKind.BASE:
            return settings.limit(Stage.ANSWER)
        stages = settings.path.stages if settings.path is not None else CHAIN_STAGES
        return sum(settings.limit(stage) + MARKERS_PER_STAGE for stage in stages)

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
    """A subject whose replies run on core.decoding.scheduler: many at a time (answer_many) or
    one as a batch of one (stream)."""

    device: torch.device

    def _answer_batched(self, parsed: list[tuple[str, GenerationSettings]], batch_size: int,
                        should_stop: Callable[[], bool]) -> Iterator[tuple[int, SubjectReply]]:
        replies: dict[int, SubjectReply] = {}
        finishers: dict[int, Callable[[], None]] = {}

        def jobs() -> Iterator[DecodeJob]:
            for index, (question, settings) in enumerate(parsed):
                replies[index] = SubjectReply()
                job, finishers[index] = self._reply_job(index, question, settings, replies[index])
                yield job

        source = jobs()
        for index in run_batched(self._batch_forward(), lambda: next(source, None), batch_size=batch_size,
                                 device=self.device, should_stop=should_stop):
            finishers.pop(index)()
            yield index, replies.pop(index)

    def reply_job(self, prompt: Prompt, settings: GenerationSettings | None = None, *, reply: SubjectReply,
                  key: Any = None) -> tuple[DecodeJob, Callable[[], None]]:
        """One reply as a scheduler job, for a caller that runs its own decode loop (the server's
        batcher, core.serving.batcher); run it inside `decoding()`. Its events fill `reply`; call
        the returned function once it has ended or been dropped, to fill the reply's counts.
        Raises PromptError when the prompt holds no question."""
        question, settings = _question_and_settings(prompt, settings)
        return self._reply_job(key, question, settings, reply)

    def step_forward(self, *, lone: bool) -> BatchForward:
        """The model's step for an outside decode loop: with `lone`, the forward `stream` runs (a
        lone reply is then exactly what `answer` gives); else the one `answer_many` runs."""
        return self._batch_forward()

    @contextlib.contextmanager
    def decoding(self) -> Iterator[None]:
        """Hold the model for an outside decode loop (no stream, answer or answer_many runs
        meanwhile); on leaving, no folded weights are left behind for later plain calls."""
        with self._lock:
            try:
                yield
            finally:
                self._after_decoding()

    def _after_decoding(self) -> None:
        """Undo what batched steps left in the model (nothing for a plain model)."""

    @abc.abstractmethod
    def _reply_job(self, key: int, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[DecodeJob, Callable[[], None]]:
        """One reply as a scheduler job (its events fill `reply`), and what fills the reply's
        counts once it has ended or been interrupted."""

    @abc.abstractmethod
    def _batch_forward(self) -> BatchForward:
        """The model's step for core.decoding.scheduler when rows are decoded together."""


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
        """stream_chain: a batch of one with the active stage's experts folded into the weights."""
        output = ChainOutput([], [], [], 0)
        try:
            for event in stream_chain(self.mote, question, settings, output=output):
                reply.observe(event)
                yield event
        finally:
            self._count(output, settings, reply)

    def _reply_job(self, key: int, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[DecodeJob, Callable[[], None]]:
        output = ChainOutput([], [], [], 0)
        job = chain_job(self.mote, question, settings, output, key=key, on_event=reply.observe)
        return job, lambda: self._count(output, settings, reply)

    def _answer_batched(self, parsed: list[tuple[str, GenerationSettings]], batch_size: int,
                        should_stop: Callable[[], bool]) -> Iterator[tuple[int, SubjectReply]]:
        """Batched steps keep the shared expert folded (core.decoding.scheduler.mote_forward); it
        is unfolded afterwards (buffers kept for the next run), so no later plain call of the
        wrapped model sees folded weights."""
        try:
            yield from super()._answer_batched(parsed, batch_size, should_stop)
        finally:
            self.mote.router.unfold(release=False)

    def _batch_forward(self) -> BatchForward:
        self.mote.model.eval()
        return mote_forward(self.mote)

    def step_forward(self, *, lone: bool) -> BatchForward:
        """A lone row folds its stage's experts into the weights, as stream_chain does."""
        self.mote.model.eval()
        return mote_forward(self.mote, fold=lone)

    def _after_decoding(self) -> None:
        self.mote.router.unfold(release=False)  # buffers kept: the next chain folds into them

    def _count(self, output: ChainOutput, settings: GenerationSettings, reply: SubjectReply) -> None:
        markers = set(self.mote.marker_ids.values())
        generated = list(zip(output.token_ids, output.stage_ids))[output.prompt_length:]
        counts = Counter(stage for token, stage in generated if token not in markers)
        for part in reply.stages:
            part.tokens = counts[int(part.stage)]
            part.hit_limit = part.tokens >= settings.limit(part.stage)
        reply.prompt_tokens, reply.completion_tokens, reply.seed = output.prompt_length, len(generated), output.seed
        stages = [s.stage for s in reply.stages]
        if self.mote.uses_markers and stages and stages[-1] is Stage.ANSWER:
            reply.shape = shape_of(stages)


class BaseSubject(BatchingSubject):
    """A plain causal LM with no experts and no markers: one ANSWER stage, expert 'base'.

    The prompt is built exactly as for MoTE models (same chat template and system prompt), so
    a base model and the runs trained from it are compared on equal terms. `settings.path` does
    not apply (there are no stages to force); the answer's token limit is `settings.limit(ANSWER)`.
    The answer is core.decoding.completions' plain-text program, ended by any end-of-turn id.
    """

    kind = SubjectKind.BASE

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, label: str) -> None:
        super().__init__()
        self.model, self.tokenizer, self.label = model.eval(), tokenizer, label
        self.device = next(model.parameters()).device
        self.end_ids = end_of_turn_ids(model, tokenizer)

    def _generate(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        """A batch of one on the scheduler (a plain model has nothing to fold: it costs nothing)."""
        job, finish = self._reply_job(None, question, settings, reply)
        try:
            yield from stream_one(self._batch_forward(), job, device=self.device)
        finally:
            finish()

    def _reply_job(self, key: int | None, question: str, settings: GenerationSettings,
                   reply: SubjectReply) -> tuple[DecodeJob, Callable[[], None]]:
        prompt = question_prompt_ids(self.tokenizer, question, settings.system_prompt)
        reply.prompt_tokens = len(prompt)
        sampler = settings.sampler()
        reply.seed = sampler.seed
        result = PlainText()

        def start(logits: torch.Tensor) -> DecodeProgram:
            return plain_text_program(self.tokenizer, sampler, logits, result, end_ids=self.end_ids,
                                      max_tokens=settings.limit(Stage.ANSWER), min_tokens=settings.min_stage_tokens,
                                      expert=BASE_EXPERT)
        return DecodeJob(key, prompt, int(Stage.ANSWER), start, reply.observe), lambda: self._count(reply, result, settings)

    def _count(self, reply: SubjectReply, result: PlainText, settings: GenerationSettings) -> None:
        if reply.stages:
            part = reply.stages[-1]
            part.tokens = reply.completion_tokens = len(result.tokens)
            part.hit_limit = len(result.tokens) >= settings.limit(Stage.ANSWER)

    def _batch_forward(self) -> BatchForward:
        return causal_lm_forward(self.model)


def load_subject(spec: str | SubjectRef, *, home: Path | None = None, say: Say = print) -> ChatSubject:
    """A subject from 'base:<model>' or a trained run folder (or its export folder). A 'job:<id>'
    reference must be resolved to its run folder by jobs/ first (core cannot read the queue)."""
    ref = spec if isinstance(spec, SubjectRef) else SubjectRef.parse(spec)
    if ref.kind is SubjectRefKind.JOB:
        raise SubjectSpecError(f"'{ref}' names a training job: resolve it to the job's run folder first "
                               f"(jobs/ does this for evaluate jobs). Accepted here: {ACCEPTED_SPECS}.")
    if ref.kind is SubjectRefKind.PROMPT:  # the templates live in core.synthesis, which builds on this module
        raise SubjectSpecError(f"'{ref}' names a prompting pipeline: load it with "
                               "core.synthesis.prompting_subject.load_any_subject (the evaluate job does).")
    if ref.kind is SubjectRefKind.BASE:
        from core.model_source import inference_placement, load_base_model

        model, tokenizer = load_base_model(ref.value, home, say=say, **inference_placement())
        return BaseSubject(model, tokenizer, label=str(ref))
    export = _export_folder(ref.value)
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
