"""Timers that tick only where someone looks, and only while what they show can change.

Why: every tick is a request the app serves and a database query, and while a worker trains on
a small machine each one waits for the CPU. A tab's gr.Timers therefore start inactive and run
only while their tab is selected and a job they show is queued, running or just ended (the grace
lets the last refresh show how it ended); a page with nothing running asks one cheap question
every `idle_check_s` seconds (did a job start, e.g. from the CLI?) and nothing else.

What turns a tab's timers on: selecting the tab (when a watched job moves), any button of the
tab (a launch, a retry: the next tick decides whether to keep going), and the idle check. What
turns them off: selecting another tab, and a tick that finds nothing of theirs moving.
The tabs need not know: `wire_live_timers` finds every gr.Timer inside each tab.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gradio as gr

from jobs.kinds import JobKind

#: Seconds between the idle checks of a page (its only request while nothing runs).
IDLE_CHECK_S = 20.0
#: A job that ended this recently still counts as moving: the tab shows its final state.
ENDED_GRACE_S = 10.0

KindsInMotion = Callable[[float], frozenset[JobKind]]


@dataclass(frozen=True)
class LiveTab:
    """One tab, the timers inside it and the job kinds whose progress it shows (None: any)."""

    tab: gr.Tab
    timers: tuple[gr.Timer, ...]
    watches: frozenset[JobKind] | None = None

    def moving(self, kinds: frozenset[JobKind]) -> bool:
        return bool(kinds) if self.watches is None else bool(kinds & self.watches)


def timers_in(block: gr.blocks.Block) -> Iterator[gr.Timer]:
    """Every gr.Timer inside `block` (rows, columns and accordions included)."""
    for child in getattr(block, "children", []):
        if isinstance(child, gr.Timer):
            yield child
        yield from timers_in(child)


def buttons_in(block: gr.blocks.Block) -> Iterator[gr.Button]:
    for child in getattr(block, "children", []):
        if isinstance(child, gr.Button):
            yield child
        yield from buttons_in(child)


def _switch(active: bool) -> gr.Timer:
    return gr.Timer(active=active)


def wire_live_timers(demo: gr.Blocks, tabs: list[LiveTab], kinds_in_motion: KindsInMotion, *,
                     idle_check_s: float = IDLE_CHECK_S, ended_grace_s: float = ENDED_GRACE_S) -> None:
    """Make every timer of `tabs` inactive, and wire the events that switch them (module docstring).
    `kinds_in_motion(grace_s)`: the kinds of jobs queued, running or ended within grace_s seconds."""
    all_timers = [timer for live in tabs for timer in live.timers]
    if not all_timers:
        return
    for timer in all_timers:
        timer.active = False
    selected = gr.State(0)  # the first tab is shown when the page loads

    def states(shown: int, moving: bool) -> list[gr.Timer]:
        """Active for the shown tab's timers when something of theirs moves; off everywhere else."""
        return [_switch(index == shown and moving) for index, live in enumerate(tabs) for _ in live.timers]

    def on_select(index: int) -> Callable[[], list]:
        def select() -> list:
            return [index, *states(index, tabs[index].moving(kinds_in_motion(ended_grace_s)))]
        return select

    def watch(shown: int) -> list:
        """The idle check: switch the shown tab's timers on when one of its jobs moves."""
        if not tabs[shown].moving(kinds_in_motion(ended_grace_s)):
            return [gr.skip() for _ in all_timers]
        return [_switch(True) if index == shown else gr.skip() for index, live in enumerate(tabs) for _ in live.timers]

    private = {"api_visibility": "private", "show_progress": "hidden", "queue": False}
    for index, live in enumerate(tabs):
        live.tab.select(on_select(index), None, [selected, *all_timers], **private)
        if live.timers:
            _wire_tab(live, kinds_in_motion, ended_grace_s, private)
    demo.load(watch, selected, all_timers, **private)
    gr.Timer(idle_check_s).tick(watch, selected, all_timers, **private)


def _wire_tab(live: LiveTab, kinds_in_motion: KindsInMotion, ended_grace_s: float, private: dict) -> None:
    """The fastest timer's tick switches the tab's timers off once nothing of theirs moves; any
    button of the tab switches them on (its next tick decides whether they stay on)."""
    timers = list(live.timers)

    def keep() -> list:
        if live.moving(kinds_in_motion(ended_grace_s)):
            return [gr.skip() for _ in timers]
        return [_switch(False) for _ in timers]

    min(timers, key=lambda timer: timer.value).tick(keep, None, timers, **private)
    for button in buttons_in(live.tab):
        button.click(lambda: [_switch(True) for _ in timers], None, timers, **private)
