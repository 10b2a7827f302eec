"""Reading a job's log file: the last lines, as a page or the CLI shows them.

Why from the end: a training log grows for hours and the page polls every two seconds; reading
only its last bytes keeps each poll cheap whatever the log's size.
"""
from __future__ import annotations

from pathlib import Path

LOG_TAIL_BYTES = 64_000


def log_tail(path: str | Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a log, each progress-bar line in its last state."""
    if not path or not Path(path).exists():
        return "(no log yet)"
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - LOG_TAIL_BYTES))
        text = handle.read().decode("utf-8", errors="replace")
    # progress bars rewrite a line with '\r': keep only the last state of each line
    cleaned = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.rstrip("\n").split("\n")]
    return "\n".join(cleaned[-lines:])
