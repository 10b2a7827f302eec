"""build_ui(services) -> gr.Blocks: one tab per builder in TABS, over the services facade.

Adding a tab is one line in TABS: a title and a builder `(services, demo, tab) -> None`
Builders register their own events; each action has a named API endpoint. The timers a builder
creates are switched by app.live_timers: they tick only while their tab is shown and a job of the
kinds in WATCHES (any kind when a tab is not listed) is moving.
"""
from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from app.live_timers import LiveTab, timers_in, wire_live_timers
from app.render import notice
from app.services import Services
from app.tabs.chat import build_chat_tab
from app.tabs.data import build_data_tab
from app.tabs.evaluate import build_evaluate_tab
from app.tabs.jobs import build_jobs_tab
from app.tabs.runs import build_runs_tab
from app.tabs.system import build_system_tab
from app.tabs.train import build_train_tab
from jobs.kinds import JobKind

TabBuilder = Callable[[Services, gr.Blocks, gr.Tab], None]

#: (title, builder) in display order.
TABS: list[tuple[str, TabBuilder]] = [
    ("Data", build_data_tab),
    ("Train", build_train_tab),
    ("Runs", build_runs_tab),
    ("Evaluate", build_evaluate_tab),
    ("Chat", build_chat_tab),
    ("Jobs", build_jobs_tab),
    ("System", build_system_tab),
]

#: The job kinds whose progress a tab's timers show (tabs not listed: every kind).
WATCHES: dict[str, frozenset[JobKind]] = {
    "Data": frozenset({JobKind.GENERATE}),
    "Train": frozenset({JobKind.TRAIN}),
    "Evaluate": frozenset({JobKind.EVALUATE}),
}

INTRO = ("**MoTE Studio** — 1. **Data**: pick or import a question set and generate reasoning chains. "
         "2. **Train**: train MoTE experts (or a baseline) on them. 3. **Evaluate**: score runs and the base model "
         "with judges (or run the quick pipeline end to end). 4. **Chat**: compare the base model and your "
         "runs side by side. Long work runs as background jobs (**Jobs**); closing or reloading the page does not stop it.")


def build_ui(services: Services, tabs: list[tuple[str, TabBuilder]] | None = None) -> gr.Blocks:
    """The whole app; `tabs` overrides TABS (tests build a subset)."""
    with gr.Blocks(title="MoTE Studio", analytics_enabled=False) as demo:
        gr.Markdown(INTRO, elem_id="intro")
        banner = gr.HTML(elem_id="notices")
        live_tabs = []
        for title, builder in tabs or TABS:
            with gr.Tab(title, elem_id=f"tab-{title.lower()}") as tab:
                builder(services, demo, tab)
            live_tabs.append(LiveTab(tab, tuple(timers_in(tab)), WATCHES.get(title)))
        wire_live_timers(demo, live_tabs, services.kinds_in_motion)
        demo.load(lambda: "".join(notice(text) for text in services.notices), None, banner, api_visibility="private")
    return demo
