"""`<home>/dispatcher.pid`: at most one dispatcher per data directory.

Why a lock: two dispatchers on the same rows would start the same job twice. The CLI checks it
to decide whether to run its own dispatcher (no app running) or leave the job to the app's.
Why flock and not a pid alone: the kernel drops the lock when its holder dies, however it dies,
so a stale file never blocks the next start; the pid inside is for people and messages.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "dispatcher.pid"


class DispatcherLock:
    def __init__(self, home: Path) -> None:
        self.path = Path(home) / LOCK_FILE
        self._handle = None

    def acquire(self) -> None:
        """Take the lock or raise, naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RuntimeError(
                f"A MoTE Studio dispatcher (pid {holder}) already runs for {self.path.parent}: submit jobs "
                "through it (the app or `launch.py` commands do), or stop it first."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def dispatcher_pid(home: Path) -> int | None:
    """The pid of the live dispatcher for `home`, or None when none runs."""
    path = Path(home) / LOCK_FILE
    if not path.exists():
        return None
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
