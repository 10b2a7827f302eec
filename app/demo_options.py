"""What a demo link shows and how much of the machine its visitors may use: the runs chosen by
the owner and the limits on prompts, tokens and concurrent chats.

Why a module of its own (no gradio): the CLI builds these options at start-up for every verb, and
the visitor gate and its tests use them without building a page.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoLimits:
    """How much one visitor, and all visitors together, may ask of the machine."""

    max_prompt_chars: int = 1000
    """A longer question gets a message asking to shorten it (it is never sent to a model)."""
    max_stage_tokens: int = 160
    """Tokens each stage may write; a larger request is lowered to this."""
    chats_per_visitor: int = 1
    """Chats one browser session may have running or waiting at once."""
    chats_at_once: int = 2
    """Chats decoding at the same time across all visitors; the others wait their turn."""
    waiting_chats: int = 8
    """Chats that may wait for a free slot; beyond that a visitor is told the demo is busy."""

    def __post_init__(self) -> None:
        for name in ("max_prompt_chars", "max_stage_tokens", "chats_per_visitor", "chats_at_once"):
            if getattr(self, name) < 1:
                raise ValueError(f"DemoLimits.{name}={getattr(self, name)} must be at least 1.")
        if self.waiting_chats < 0:
            raise ValueError(f"DemoLimits.waiting_chats={self.waiting_chats} must be 0 or more.")


@dataclass(frozen=True)
class DemoOptions:
    """A read-only demo: the runs to show (training job ids; None: every finished run with an
    export) and the visitors' limits."""

    run_job_ids: tuple[int, ...] | None = None
    limits: DemoLimits = field(default_factory=DemoLimits)


def parse_run_ids(text: str) -> tuple[int, ...]:
    """'3,7' -> (3, 7): the training job ids given to --demo-runs."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(f"--demo-runs {text!r}: expected training job ids separated by commas, e.g. --demo-runs 3,7 "
                         "(`python launch.py jobs list` shows them).")
    return tuple(dict.fromkeys(int(part) for part in parts))
