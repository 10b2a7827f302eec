"""Fair sharing of the machine between demo visitors: a per-visitor limit on chats, a bounded
waiting line, and a fixed number of chats decoding at once.

Why our own gate and not only Gradio's queue: a visitor over a limit must get a plain message
("your previous question is still being answered", "the demo is busy") in the page, not an error
badge or a queue that grows without end; and while a chat waits, the page says so.
"""
from __future__ import annotations

import enum
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from app.demo_options import DemoLimits


class Refusal(str, enum.Enum):
    VISITOR_BUSY = "visitor busy"
    DEMO_FULL = "demo full"


class ChatRefused(Exception):
    """A chat the gate does not let in; `message` is what the visitor reads."""

    def __init__(self, reason: Refusal, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass
class Ticket:
    """An admitted chat: it waits for a decoding slot with `wait_for_slot`, then holds it."""

    gate: VisitorGate
    started: bool = False

    def wait_for_slot(self, timeout: float) -> bool:
        """True once this chat holds a decoding slot; False if none freed within `timeout` s."""
        if not self.started:
            self.started = self.gate._slots.acquire(timeout=timeout)
        return self.started

    def waiting_ahead(self) -> int:
        """Chats admitted beyond the decoding slots (this one included), for the 'waiting' message."""
        return self.gate.waiting()


class VisitorGate:
    """Admits a visitor's chat if the visitor and the demo are under their limits."""

    def __init__(self, limits: DemoLimits) -> None:
        self.limits = limits
        self._guard = threading.Lock()
        self._per_visitor: Counter[str] = Counter()
        self._admitted = 0
        self._slots = threading.BoundedSemaphore(limits.chats_at_once)

    @property
    def capacity(self) -> int:
        """Chats admitted at most at once (decoding plus waiting)."""
        return self.limits.chats_at_once + self.limits.waiting_chats

    def waiting(self) -> int:
        with self._guard:
            return max(0, self._admitted - self.limits.chats_at_once)

    @contextmanager
    def admitted(self, visitor: str) -> Iterator[Ticket]:
        """Hold a place for `visitor`'s chat; raises ChatRefused with the visitor's message."""
        self._admit(visitor)
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            if ticket.started:
                self._slots.release()
            with self._guard:
                self._admitted -= 1
                self._per_visitor[visitor] -= 1
                if self._per_visitor[visitor] <= 0:
                    del self._per_visitor[visitor]

    def _admit(self, visitor: str) -> None:
        with self._guard:
            if self._per_visitor[visitor] >= self.limits.chats_per_visitor:
                raise ChatRefused(Refusal.VISITOR_BUSY, "Your previous question is still being answered: wait for it "
                                  "to finish, then send the next one.")
            if self._admitted >= self.capacity:
                raise ChatRefused(Refusal.DEMO_FULL, "The demo is busy: many visitors are chatting right now. "
                                  "Try again in a minute.")
            self._admitted += 1
            self._per_visitor[visitor] += 1
