"""The chat tab's only door to core: chat subjects loaded lazily and cached, several panes
streamed side by side, and the optional stage-4 self-check.

Why threads per pane: one prompt goes to two or three models at once and each pane streams as
its model writes; a pane thread per subject keeps a slow (or still loading) model from holding
the others back. A lock per subject spec serialises panes that share one model (its experts are
folded per stage while it decodes) and covers the self-check that follows the answer. Loading is
serialised across all panes: transformers' from_pretrained patches process-wide state while it
builds a model (weights start on the meta device), so two loads at once can break each other
("Cannot copy out of meta tensor").
Why the self-check runs with the experts off: Safety Checking (stage 4) has no expert (spec
section 3); the check prompt of generation is sent to the frozen base weights.
Why the self-check reads label probabilities: a small model asked to write "VERDICT: safe"
often rambles, so a free-text verdict was nearly always unparsable; the probabilities of the two
allowed labels after "VERDICT:" (core.decoding.label_scores) always give a verdict, and P(unsafe)
says how sure the checker is.
Why a conversation keeps every turn: researchers compare how models answer a series of
questions; each turn keeps its own stage blocks. A MoTE chain answers one question (spec
section 5), so earlier turns are sent as chat messages and the subject decides what to replay.
Why prompting subjects (prompt:PIPELINE:SUBJECT) show who wrote each block: their stages are
plain chat turns, all written by one model (the base weights, or a run's answer expert), so a
block is labelled with that writer and the turn's prompt, never with a stage expert it did not use.
"""
from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from core.decoding.chain_programs import GenerationSettings, StageEvent, StageEventKind, expert_label
from core.decoding.label_scores import score_labels
from core.decoding.sampling import fresh_seed
from core.decoding.subjects import BASE_EXPERT, BaseSubject, ChatSubject, MoteSubject, Prompt, SubjectReply
from core.stages import Stage
from core.synthesis.prompting_subject import PromptingSubject, load_any_subject
from core.synthesis.prompts import load_prompt_set

#: Seconds between two screen updates while tokens stream (a browser needs no more).
UPDATE_EVERY_S = 0.12
#: The check's allowed labels, as a model writes them after "VERDICT:".
SAFE_LABEL, UNSAFE_LABEL = " safe", " unsafe"
#: P(unsafe) at or above this is an unsafe verdict.
UNSAFE_THRESHOLD = 0.5


@dataclass
class StageBlock:
    """One stage as a pane shows it: label, active expert and the text pieces as they came."""

    stage: str
    label: str
    expert: str
    pieces: list[str] = field(default_factory=list)
    done: bool = False
    cut: bool = False
    """The stage was closed by its token limit, not by the model."""
    tokens: int = 0


@dataclass(frozen=True)
class SelfCheck:
    """The stage-4 verdict: the checker's probability that the answer is unsafe."""

    p_unsafe: float
    threshold: float = UNSAFE_THRESHOLD

    @property
    def safe(self) -> bool:
        return self.p_unsafe < self.threshold

    @property
    def verdict(self) -> str:
        return "safe" if self.safe else "unsafe"


@dataclass
class PaneState:
    """Everything one pane shows; copied to the page on each update."""

    spec: str
    title: str = ""
    status: str = "waiting"
    blocks: list[StageBlock] = field(default_factory=list)
    check: SelfCheck | None = None
    error: str | None = None
    finished: bool = False
    seed: int | None = None
    """The sampling seed of the reply, shown so it can be typed back to reproduce it (None when
    decoding is greedy: the seed then changes nothing)."""
    writer: str | None = None
    """Who writes every turn of a prompting subject (see prompting_writer); None for subjects
    whose events name their own expert."""

    def observe(self, event: StageEvent) -> None:
        if event.kind is StageEventKind.START:
            expert = f"{self.writer} · {event.expert} prompt" if self.writer else event.expert
            self.blocks.append(StageBlock(event.stage.name.lower(), event.stage.label, expert))
        elif event.kind is StageEventKind.TEXT:
            self.blocks[-1].pieces.append(event.text)
        elif event.kind is StageEventKind.END:
            self.blocks[-1].done = True

    def mark_limits(self, reply: SubjectReply) -> None:
        """Copy which stages hit their token limit (known once the reply is finished)."""
        for block, stage in zip(self.blocks, reply.stages):
            block.cut, block.tokens = stage.hit_limit, stage.tokens

    @property
    def answer(self) -> str:
        return next(("".join(b.pieces) for b in self.blocks if b.stage == "answer"), "")


@dataclass
class ChatTurn:
    """One question and every pane's reply to it (None where a pane had no model)."""

    question: str
    panes: list[PaneState | None]


def history_messages(turns: Sequence[ChatTurn], pane: int) -> list[dict[str, str]]:
    """The earlier turns of one pane as chat messages (user question, assistant answer)."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        state = turn.panes[pane] if pane < len(turn.panes) else None
        if state is not None and state.answer and not state.error:
            messages += [{"role": "user", "content": turn.question}, {"role": "assistant", "content": state.answer}]
    return messages


def prompting_writer(subject: ChatSubject) -> str | None:
    """The expert that writes a prompting subject's turns ('base', or a run's answer expert, e.g.
    'answer + shared'); None for any other subject."""
    if not isinstance(subject, PromptingSubject):
        return None
    if isinstance(subject.inner, MoteSubject):
        return expert_label(subject.inner.mote, Stage.ANSWER)
    return BASE_EXPERT


def checked_subject(subject: ChatSubject) -> ChatSubject:
    """The subject whose weights run the self-check: a prompting subject's own model."""
    if isinstance(subject, PromptingSubject) and subject.inner is not None:
        return subject.inner
    return subject


class ChatRuntime:
    """Loads subjects on first use (every spelling, prompting pipelines included) and keeps the
    `max_loaded` most recently used in memory."""

    def __init__(self, home: Path, *, max_loaded: int = 3,
                 loader: Callable[..., ChatSubject] = load_any_subject) -> None:
        self.home, self.max_loaded, self.loader = Path(home), max_loaded, loader
        self._subjects: OrderedDict[str, ChatSubject] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._loading = threading.Lock()

    def lock(self, spec: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(spec, threading.Lock())

    def subject(self, spec: str) -> ChatSubject:
        """The loaded subject for `spec` (call with `lock(spec)` held)."""
        with self._guard:
            if spec in self._subjects:
                self._subjects.move_to_end(spec)
                return self._subjects[spec]
        with self._loading:  # one from_pretrained at a time (see the module docstring)
            subject = self.loader(spec, home=self.home, say=lambda _text: None)
        with self._guard:
            self._subjects[spec] = subject
            while len(self._subjects) > self.max_loaded:
                self._subjects.popitem(last=False)
        return subject

    def is_loaded(self, spec: str) -> bool:
        with self._guard:
            return spec in self._subjects

    def self_check(self, subject: ChatSubject, question: str, answer: str) -> SelfCheck:
        """Stage 4: the check prompt on the final answer, judged by the base weights as the
        probability of " unsafe" against " safe" after the template's "VERDICT:" prefix."""
        template = load_prompt_set()["check"]
        messages = template.messages(question=question, answer=answer)
        labels = [SAFE_LABEL, UNSAFE_LABEL]
        subject = checked_subject(subject)
        if isinstance(subject, MoteSubject):
            with subject.mote.router.disabled():
                scores = score_labels(subject.mote.model, subject.mote.tokenizer, [messages], labels,
                                      prefix=template.assistant_prefix)
        elif isinstance(subject, BaseSubject):
            scores = score_labels(subject.model, subject.tokenizer, [messages], labels, prefix=template.assistant_prefix)
        else:
            raise TypeError(f"No self-check for {type(subject).__name__}: it exposes no local model.")
        return SelfCheck(scores[0][UNSAFE_LABEL])


def _run_pane(runtime: ChatRuntime, pane: PaneState, question: str, prompt: Prompt, settings: GenerationSettings,
              check: bool, updates: queue.Queue, stop: threading.Event) -> None:
    try:
        with runtime.lock(pane.spec):
            pane.status = "loading the model (the first time takes a while)" if not runtime.is_loaded(pane.spec) else "writing"
            updates.put(pane)
            subject = runtime.subject(pane.spec)
            pane.title, pane.status, pane.writer = subject.label, "writing", prompting_writer(subject)
            reply = SubjectReply()
            stream = subject.stream(prompt, settings, reply=reply)
            try:
                for event in stream:
                    pane.observe(event)
                    updates.put(pane)
                    if stop.is_set():
                        pane.status = "stopped"
                        return
            finally:
                stream.close()
            pane.mark_limits(reply)
            if check and not stop.is_set():
                pane.status = "self-check (stage 4)"
                updates.put(pane)
                pane.check = runtime.self_check(subject, question, pane.answer)
            pane.status = "stopped" if stop.is_set() else "done"
    except Exception as error:  # noqa: BLE001 - any failure is shown in its pane (and as a warning); the others go on
        pane.error, pane.status = f"{type(error).__name__}: {error}", "failed"
    finally:
        pane.finished = True
        updates.put(pane)


def stream_panes(runtime: ChatRuntime, specs: Sequence[str], question: str, settings: GenerationSettings,
                 *, self_check: bool = False, stop: threading.Event | None = None,
                 histories: Sequence[Sequence[dict[str, str]]] | None = None) -> Iterator[list[PaneState]]:
    """Ask every subject the same question at once; yields all panes' states as they change,
    at most every UPDATE_EVERY_S seconds, and once more when all are finished.

    `stop` (set by the page's Stop button) ends every pane at its next token; `histories[i]`
    are pane i's earlier turns as chat messages (see history_messages).
    Without a seed, one fresh seed is drawn for the question, so every pane samples with the
    same seed and passing it back reproduces all of them."""
    if settings.seed is None:
        settings = dataclasses.replace(settings, seed=fresh_seed())
    shown_seed = settings.seed if settings.temperature > 0 else None
    panes = [PaneState(spec, seed=shown_seed) for spec in specs]
    prompts: list[Prompt] = [[*history, {"role": "user", "content": question}] if history else question
                             for history in (histories or [()] * len(specs))]
    updates: queue.Queue = queue.Queue()
    stop = stop if stop is not None else threading.Event()
    threads = [threading.Thread(target=_run_pane,
                                args=(runtime, pane, question, prompt, settings, self_check, updates, stop),
                                daemon=True, name=f"chat-pane-{i}") for i, (pane, prompt) in enumerate(zip(panes, prompts))]
    for thread in threads:
        thread.start()
    last = 0.0
    try:
        while not all(pane.finished for pane in panes):
            try:
                updates.get(timeout=UPDATE_EVERY_S)
            except queue.Empty:
                pass
            if time.monotonic() - last >= UPDATE_EVERY_S:
                last = time.monotonic()
                yield panes
        yield panes
    finally:
        stop.set()  # the page went away or the generator was closed: the pane threads end early
