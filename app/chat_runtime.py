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

from core.decoding.completions import CompletionRequest, LocalGenerator, complete_all
from core.decoding.sampling import fresh_seed
from core.synthesis.pipeline import Verdict, parse_verdict
from core.decoding.chain_programs import GenerationSettings, StageEvent, StageEventKind
from core.synthesis.prompts import load_prompt_set
from core.decoding.subjects import BaseSubject, ChatSubject, MoteSubject, load_subject

#: Seconds between two screen updates while tokens stream (a browser needs no more).
UPDATE_EVERY_S = 0.12
CHECK_TOKENS = 8


@dataclass
class StageBlock:
    """One stage as a pane shows it: label, active expert and the text pieces as they came."""

    stage: str
    label: str
    expert: str
    pieces: list[str] = field(default_factory=list)
    done: bool = False


@dataclass
class PaneState:
    """Everything one pane shows; copied to the page on each update."""

    spec: str
    title: str = ""
    status: str = "waiting"
    blocks: list[StageBlock] = field(default_factory=list)
    verdict: str | None = None
    check_text: str = ""
    """What the self-check wrote (the verdict is parsed from it)."""
    error: str | None = None
    finished: bool = False
    seed: int | None = None
    """The sampling seed of the reply, shown so it can be typed back to reproduce it (None when
    decoding is greedy: the seed then changes nothing)."""

    def observe(self, event: StageEvent) -> None:
        if event.kind is StageEventKind.START:
            self.blocks.append(StageBlock(event.stage.name.lower(), event.stage.label, event.expert))
        elif event.kind is StageEventKind.TEXT:
            self.blocks[-1].pieces.append(event.text)
        elif event.kind is StageEventKind.END:
            self.blocks[-1].done = True


class ChatRuntime:
    """Loads subjects on first use and keeps the `max_loaded` most recently used in memory."""

    def __init__(self, home: Path, *, max_loaded: int = 3,
                 loader: Callable[..., ChatSubject] = load_subject) -> None:
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

    def self_check(self, subject: ChatSubject, question: str, answer: str, max_tokens: int = CHECK_TOKENS) -> Verdict:
        """Stage 4: the check prompt on the final answer, judged by the base weights."""
        template = load_prompt_set()["check"]
        request = CompletionRequest(template.messages(question=question, answer=answer), max_tokens,
                                    response_prefix=template.assistant_prefix)
        if isinstance(subject, MoteSubject):
            with subject.mote.router.disabled():
                done = complete_all(LocalGenerator(subject.mote.model, subject.mote.tokenizer, batch_size=1), [request])
        elif isinstance(subject, BaseSubject):
            done = complete_all(LocalGenerator(subject.model, subject.tokenizer, batch_size=1), [request])
        else:
            raise TypeError(f"No self-check for {type(subject).__name__}: it exposes no local model.")
        return parse_verdict(f"{template.assistant_prefix}{done[0].text}")


def _run_pane(runtime: ChatRuntime, pane: PaneState, question: str, settings: GenerationSettings,
              check: bool, updates: queue.Queue, stop: threading.Event) -> None:
    try:
        with runtime.lock(pane.spec):
            pane.status = "loading the model (the first time takes a while)" if not runtime.is_loaded(pane.spec) else "writing"
            updates.put(pane)
            subject = runtime.subject(pane.spec)
            pane.title, pane.status = subject.label, "writing"
            stream = subject.stream(question, settings)
            try:
                for event in stream:
                    pane.observe(event)
                    updates.put(pane)
                    if stop.is_set():
                        pane.status = "stopped"
                        return
            finally:
                stream.close()
            if check and not stop.is_set():
                pane.status = "self-check (stage 4)"
                updates.put(pane)
                answer = next(("".join(b.pieces) for b in pane.blocks if b.stage == "answer"), "")
                verdict = runtime.self_check(subject, question, answer)
                pane.verdict = ("safe" if verdict.safe else "unsafe") if verdict.parsed else "unparsable (counts as unsafe)"
                pane.check_text = verdict.raw.strip()
            pane.status = "done"
    except Exception as error:  # noqa: BLE001 - any failure is shown in its pane (and as a warning); the others go on
        pane.error, pane.status = f"{type(error).__name__}: {error}", "failed"
    finally:
        pane.finished = True
        updates.put(pane)


def stream_panes(runtime: ChatRuntime, specs: Sequence[str], question: str, settings: GenerationSettings,
                 *, self_check: bool = False) -> Iterator[list[PaneState]]:
    """Ask every subject the same question at once; yields all panes' states as they change,
    at most every UPDATE_EVERY_S seconds, and once more when all are finished.

    Without a seed, one fresh seed is drawn for the question, so every pane samples with the
    same seed and passing it back reproduces all of them."""
    if settings.seed is None:
        settings = dataclasses.replace(settings, seed=fresh_seed())
    shown_seed = settings.seed if settings.temperature > 0 else None
    panes = [PaneState(spec, seed=shown_seed) for spec in specs]
    updates: queue.Queue = queue.Queue()
    stop = threading.Event()
    threads = [threading.Thread(target=_run_pane, args=(runtime, pane, question, settings, self_check, updates, stop),
                                daemon=True, name=f"chat-pane-{i}") for i, pane in enumerate(panes)]
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
