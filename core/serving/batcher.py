"""Continuous batching for the server: concurrent requests decode together, one forward per step.

Why: one request at a time lets a long reply hold every other client for minutes while the
model reads all its weights for a single token per step. As in vLLM and text-generation-inference,
one decode thread owns the model and runs the one scheduler loop (core.decoding.scheduler); a
request handler submits its reply as a DecodeJob and reads its StageEvents from a queue. A new
request joins the running batch at the next step (its prompt is prefilled and spliced into the
KV cache), up to `batch_size` rows; more wait for a free row. The thread sleeps on a condition
when there is nothing to do, and holds the subject (`ChatSubject.decoding`) only while it decodes.

A lone row runs the forward `ChatSubject.stream` runs (MoTE: its stage's experts folded), so a
reply served alone is exactly the reply `answer` gives. Rows decoded together run the batched
forward (left-padded, the common gate folded); for greedy decoding their tokens may in principle
differ where two logits are within float rounding of each other.

A reader that closes its events (the client left, a stop string was hit) ends its own row at the
next step; the others go on. When `stopping` is set (SIGTERM) or the batcher is closed, every row
ends between two steps and its reader gets GenerationStopped.
"""
from __future__ import annotations

import enum
import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from core.decoding.chain_programs import GenerationSettings, StageEvent
from core.decoding.scheduler import DecodeJob, DecodeProgram, DecodeStep, decode_steps
from core.decoding.subjects import BatchingSubject, Prompt, SubjectReply

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8


class GenerationStopped(RuntimeError):
    """The server is stopping (or the batcher was closed): the reply was cut off between two steps."""


class _Ending(enum.Enum):
    FINISHED = "finished"
    CANCELLED = "cancelled"
    """Its reader closed it (client gone, stop string)."""
    STOPPED = "stopped"
    """The server is stopping."""
    FAILED = "failed"
    """The decode loop raised; the error goes to the reader."""


@dataclass(frozen=True)
class _End:
    """The last item of a reply's queue."""

    ending: _Ending
    error: BaseException | None = None


@dataclass(frozen=True)
class BatcherStats:
    """What the batcher has done so far: how many rows each forward ran, how replies ended."""

    forwards: int
    """Forwards run (prefills and decoding steps)."""
    max_rows: int
    """Most rows any one forward ran: >= 2 means requests were decoded together."""
    rows_now: int
    """Replies decoding right now."""
    waiting: int
    """Replies submitted and not yet given a row."""
    finished: int
    cancelled: int
    stopped: int


@dataclass
class _Counters:
    forwards: int = 0
    max_rows: int = 0
    endings: dict[_Ending, int] = field(default_factory=lambda: {ending: 0 for ending in _Ending})


class ReplyEvents(Iterator[StageEvent]):
    """One reply's StageEvents as the decode thread writes them; the reply is submitted on the
    first `next()` (so a request refused by a limit never takes a row). `close()` ends its row at
    the next step; it is safe from any thread, also while another thread waits in `next()`."""

    def __init__(self, batcher: ServingBatcher, job: DecodeJob, finish: Callable[[], None]) -> None:
        self.job, self.finish = job, finish
        self.cancelled = threading.Event()
        self._batcher = batcher
        self._items: queue.SimpleQueue[StageEvent | _End] = queue.SimpleQueue()
        self._submitted = False
        self._end: _End | None = None

    def __next__(self) -> StageEvent:
        if self._end is None and not self._submitted:
            self._submitted = True
            self._batcher._submit(self)
        if self._end is None:
            item = self._items.get()
            if isinstance(item, StageEvent):
                return item
            self._end = item
        if self._end.ending is _Ending.STOPPED:
            raise GenerationStopped("The server is stopping: the generation was stopped between two steps.")
        if self._end.error is not None:
            raise self._end.error
        raise StopIteration

    def close(self) -> None:
        """Stop generating this reply (its row ends at the next step); reading it ends too."""
        self.cancelled.set()
        if self._submitted:
            self._batcher._withdraw(self)
        elif self._end is None:
            self._end = _End(_Ending.CANCELLED)

    def _put(self, item: StageEvent | _End) -> None:
        self._items.put(item)


class ServingBatcher:
    """Decodes every submitted reply of `subject` on one background thread, `batch_size` at a time."""

    def __init__(self, subject: BatchingSubject, *, batch_size: int = DEFAULT_BATCH_SIZE,
                 stopping: threading.Event | None = None) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is out of range: use an integer >= 1 (serve --batch-size).")
        self.subject, self.batch_size = subject, batch_size
        self.stopping = stopping or threading.Event()
        self._wake = threading.Condition()
        self._waiting: deque[ReplyEvents] = deque()
        self._rows: dict[int, ReplyEvents] = {}
        self._keys = itertools.count()
        self._counters = _Counters()
        self._closed = False
        self._thread: threading.Thread | None = None

    def open(self, prompt: Prompt, settings: GenerationSettings | None = None, *, reply: SubjectReply) -> ReplyEvents:
        """The reply's events, as `ChatSubject.stream` gives them: PromptError raises here, and
        nothing runs until the first `next()`. `reply` is filled as the events arrive."""
        job, finish = self.subject.reply_job(prompt, settings, reply=reply, key=next(self._keys))
        return ReplyEvents(self, job, finish)

    def stats(self) -> BatcherStats:
        with self._wake:
            endings = self._counters.endings
            return BatcherStats(self._counters.forwards, self._counters.max_rows, len(self._rows), len(self._waiting),
                                endings[_Ending.FINISHED], endings[_Ending.CANCELLED], endings[_Ending.STOPPED])

    def close(self, timeout: float = 10.0) -> None:
        """End every reply (readers get GenerationStopped) and the decode thread."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # ---- the handler side ------------------------------------------------------------------------
    def _submit(self, events: ReplyEvents) -> None:
        with self._wake:
            if self._closed or self.stopping.is_set():
                self._end(events, _End(_Ending.STOPPED))
                return
            self._waiting.append(events)
            if self._thread is None:
                self._thread = threading.Thread(target=self._decode_forever, name="mote-serve-decode", daemon=True)
                self._thread.start()
            self._wake.notify()

    # ---- the decode thread -----------------------------------------------------------------------
    def _decode_forever(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    self._end_all(_End(_Ending.STOPPED))
                    return
            try:
                self._decode_session()
            except Exception as error:  # e.g. the model could not be held: tell the readers, keep serving
                log.exception("the serving decode session failed")
                self._end_all(_End(_Ending.FAILED, error))

    def _decode_session(self) -> None:
        """Decode until nobody waits and every row left has ended or been closed by its reader,
        holding the subject meanwhile. The last replies are handed over after the subject is
        released, so a client that got its answer finds the model free."""
        last: list[ReplyEvents] = []
        with self.subject.decoding():
            steps = decode_steps(self._forward(), self._next_job, batch_size=self.batch_size,
                                 device=self.subject.device, should_stop=self._should_stop)
            try:
                for ended in steps:
                    with self._wake:
                        ended_rows = [self._rows.pop(key) for key in ended]
                        # rows whose reader left need not run another step: they end with the session
                        drained = not self._waiting and all(events.cancelled.is_set() for events in self._rows.values())
                    for events in ended_rows:
                        events.finish()
                        if drained:
                            last.append(events)
                        else:
                            self._end(events, self._ending_of(events))
                    if drained:
                        break
            except Exception as error:  # a bug in a program or the model: the replies decoding get it
                log.exception("the serving decode loop failed")
                self._end_rows(_End(_Ending.FAILED, error))
            finally:
                steps.close()
                if self._should_stop():  # rows dropped between two steps, and every waiting reply
                    self._end_all(_End(_Ending.STOPPED))
                else:  # rows left by a drained session were all closed by their readers
                    self._end_rows(_End(_Ending.CANCELLED))
        for events in last:
            self._end(events, self._ending_of(events))

    def _forward(self) -> Callable[[DecodeStep], torch.Tensor]:
        """The lone-row forward for one row (exact: what `stream` runs), the batched one for more."""
        lone, batched = self.subject.step_forward(lone=True), self.subject.step_forward(lone=False)

        def forward(step: DecodeStep) -> torch.Tensor:
            rows = step.input_ids.shape[0]
            with self._wake:
                self._counters.forwards += 1
                self._counters.max_rows = max(self._counters.max_rows, rows)
            return (lone if rows == 1 else batched)(step)
        return forward

    def _next_job(self) -> DecodeJob | None:
        """The scheduler's job source: the next waiting reply not already closed, else None."""
        with self._wake:
            while self._waiting:
                events = self._waiting.popleft()
                if events.cancelled.is_set():
                    self._end(events, _End(_Ending.CANCELLED))
                    continue
                self._rows[events.job.key] = events
                return self._row_job(events)
        return None

    def _should_stop(self) -> bool:
        return self._closed or self.stopping.is_set()

    @staticmethod
    def _row_job(events: ReplyEvents) -> DecodeJob:
        job = events.job

        def on_event(event: StageEvent) -> None:
            if job.on_event is not None:
                job.on_event(event)  # fills the reply before the reader sees the event
            events._put(event)

        def start(logits: torch.Tensor) -> DecodeProgram:
            return _until_cancelled(job.start(logits), events.cancelled)
        return DecodeJob(job.key, job.prompt, job.prompt_stage, start, on_event)

    @staticmethod
    def _ending_of(events: ReplyEvents) -> _End:
        return _End(_Ending.CANCELLED if events.cancelled.is_set() else _Ending.FINISHED)

    def _end(self, events: ReplyEvents, end: _End) -> None:
        with self._wake:  # the Condition's lock is an RLock: callers may hold it already
            self._counters.endings[end.ending] += 1
        events._put(end)

    def _end_rows(self, end: _End) -> None:
        """End every reply holding a row (its counts filled first)."""
        with self._wake:
            rows = list(self._rows.values())
            self._rows.clear()
        for events in rows:
            events.finish()
            self._end(events, end)

    def _end_all(self, end: _End) -> None:
        """End every reply holding a row or waiting for one."""
        self._end_rows(end)
        with self._wake:
            waiting = list(self._waiting)
            self._waiting.clear()
        for events in waiting:
            self._end(events, end)

    def _withdraw(self, events: ReplyEvents) -> None:
        """A reply closed before it got a row leaves the queue at once."""
        with self._wake:
            if events in self._waiting:
                self._waiting.remove(events)
                self._end(events, _End(_Ending.CANCELLED))


def _until_cancelled(program: DecodeProgram, cancelled: threading.Event) -> DecodeProgram:
    """`program`, ended before its next step once `cancelled` is set (the row is then freed)."""
    reply: torch.Tensor | None = None
    try:
        while not cancelled.is_set():
            try:
                item = program.send(reply)
            except StopIteration:
                return
            reply = yield item
    finally:
        program.close()
