"""A deterministic fake text generator for tests: answers by stage from a script."""
from __future__ import annotations

from collections.abc import Callable

from core.synthesis.pipeline import Completion, CompletionRequest

Script = Callable[[CompletionRequest, int], str]


class ScriptedGenerator:
    """Answers each request with script(request, n), n = how many requests of that stage this
    question has seen; records every request. Pulls up to `batch` requests at a time."""

    def __init__(self, script: Script, batch: int = 3, crash_after: int | None = None) -> None:
        self.script, self.batch, self.crash_after = script, batch, crash_after
        self.id = "scripted"
        self.requests: list[CompletionRequest] = []
        self.seen: dict[tuple, int] = {}

    def run(self, next_request, deliver, should_stop) -> None:
        while not should_stop():
            pulled = []
            while len(pulled) < self.batch:
                request = next_request()
                if request is None:
                    break
                pulled.append(request)
            if not pulled:
                return
            for request in pulled:
                if self.crash_after is not None and len(self.requests) >= self.crash_after:
                    raise KeyboardInterrupt("killed mid-run")
                self.requests.append(request)
                key = (request.key, request.stage)
                count = self.seen.get(key, 0)
                self.seen[key] = count + 1
                deliver(request, Completion(self.script(request, count), tokens=3))
