"""The one progress protocol every long core phase reports through: `progress(done, total, what)`.

Why one callable and nothing more: training, chain synthesis, answering and judging all have the
same three things to say — how much is done, out of how much (in the phase's own unit: steps,
chains, answers, verdicts), and a short human status line ("step 4/28 · loss 2.31",
"12/320 chains", "judging safety with heuristic 32/64"). The jobs layer writes exactly that to
the job row (bar, ETA, message), the CLI prints it; one shape means one adapter, not four.

A status before any work exists ("loading model X") is the same call with `total` 0
(UNKNOWN_TOTAL): it says what the phase is doing without moving a bar. Training's per-step
metrics (loss, learning rate, speed) are records, not progress: they go to the training loop's
StepMetricsSink, while its progress goes through this protocol like every other phase.
"""
from __future__ import annotations

from typing import Protocol

UNKNOWN_TOTAL = 0
"""`total` of a status sent before the amount of work is known (the bar stays where it is)."""


class Progress(Protocol):
    """Told after each unit of work (and once before the first): `done` of `total`, and `what`
    the phase is doing, as one short line a person reads."""

    def __call__(self, done: int, total: int, what: str) -> None: ...


def no_progress(done: int, total: int, what: str) -> None:
    """The default reporter: says nothing (library calls and tests that watch no progress)."""


def announce(progress: Progress, what: str) -> None:
    """Say what a phase is doing before it can count anything (e.g. while a model loads)."""
    progress(0, UNKNOWN_TOTAL, what)


def labelled(progress: Progress, label: str) -> Progress:
    """The same reporter with `label` in front of every status line (e.g. an evaluation's subject)."""

    def report(done: int, total: int, what: str) -> None:
        progress(done, total, f"{label}: {what}")

    return report


def shifted(progress: Progress, before: int, overall: int, width: int | None = None) -> Progress:
    """Counts of one part of a larger job reported as counts of the whole: `before` units came
    before this part and the whole has `overall` units (its status line is passed on unchanged).
    With `width`, the part fills that many units whatever its own unit (e.g. verdicts placed on
    a bar counted in answers); without, one of its units is one of the whole's."""

    def report(done: int, total: int, what: str) -> None:
        if total == UNKNOWN_TOTAL:
            progress(done, total, what)
        elif width is None:
            progress(before + done, overall, what)
        else:
            progress(before + width * min(done, total) // total, overall, what)

    return report
