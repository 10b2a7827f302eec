"""build_demo(services, options) -> gr.Blocks: the read-only page a demo link serves.

Why a separate Blocks and not the full app with its buttons hidden: a hidden button still has
its API endpoint, and anyone holding the link can call it. This page wires only handlers that
read (chat with the chosen models, evaluation reports, chains, the run list), so starting,
cancelling, retrying, editing, deleting, importing or saving does not exist here at all.
Why the chat checks every model spec: the full chat loads whatever spec it is sent (a hub id, a
folder); a visitor may only talk to the base model and the runs the owner chose.
"""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import pandas as pd

from app.chart_images import gallery_items
from app.chat_runtime import ChatRuntime, PaneState, stream_panes
from app.demo_options import DemoLimits, DemoOptions
from app.errors import user_facing
from app.markdown_text import without_autolinks
from app.render import notice, render_pane
from app.services import ChatSubjectChoice, Services
from app.tables import jobs_table
from app.tabs.chat import PATHS
from app.tabs.data import DataActions
from app.visitor_gate import ChatRefused, VisitorGate
from core.decoding.chain_programs import GenerationSettings
from core.decoding.subjects import BASE_PREFIX
from core.stages import ChainShape
from jobs.kinds import JobKind, JobStatus
from jobs.queries import exported_runs
from jobs.views import TrainingRunSummary

PANES = 3
EMPTY = "Choose a model for this pane."
KEPT_TURNS = 20
WAIT_POLL_S = 0.5
#: Every endpoint this page has; tests hold the page to this list.
DEMO_ENDPOINTS = ("demo_subjects", "demo_chat", "demo_runs", "evaluation_reports", "evaluation_result",
                  "evaluation_samples", "chain_datasets", "browse_chains", "show_chain")
MOTE_IN_TWO_SENTENCES = (
    "MoTE (Mixture of insighTful Experts) trains a model to answer in reasoning stages: it first analyses the "
    "question, then writes guidance for a responsible reply, then the answer itself. Each stage is written by its "
    "own small LoRA expert, so the colours in a reply show which expert wrote which token.")
RESEARCH_NOTE = ("Answers come from research models and can be wrong, unsafe or odd; they are shown to study the "
                 "method, not as advice. This page is read-only: nothing you do here changes the owner's work.")


@dataclass(frozen=True)
class Turn:
    """One question of a visitor's conversation and the panes that answered it."""

    question: str
    panes: tuple[PaneState | None, ...]


class DemoSubjects:
    """The models a visitor may talk to: base models of the shown runs, then the runs the owner chose."""

    def __init__(self, services: Services, options: DemoOptions) -> None:
        self.services, self.options = services, options

    def runs(self) -> list[TrainingRunSummary]:
        runs = exported_runs(self.services.queue.sessions)
        chosen = self.options.run_job_ids
        return runs if chosen is None else [run for run in runs if run.job_id in chosen]

    def missing_runs(self) -> list[int]:
        """Chosen training job ids with no finished, exported run (the owner is told at start-up)."""
        shown = {run.job_id for run in self.runs()}
        return [job for job in self.options.run_job_ids or () if job not in shown]

    def choices(self) -> list[ChatSubjectChoice]:
        runs = self.runs()
        bases = list(dict.fromkeys([run.base_model for run in runs] or [self.services.default_model]))
        choices = [ChatSubjectChoice(f"base model: {Path(b).name if '/' in b else b}", BASE_PREFIX + b) for b in bases]
        choices += [ChatSubjectChoice(f"run {run.id} ({run.method}, job {run.job_id})", run.run_dir) for run in runs]
        return choices

    def check(self, specs: list[str]) -> None:
        allowed = {choice.spec for choice in self.choices()}
        for spec in specs:
            if spec not in allowed:
                raise ValueError("This demo shows only the models in the pane menus: pick one of them.")


def banner(subjects: DemoSubjects) -> str:
    """What the visitor sees: the models by name, MoTE in two sentences, and the research caveat."""
    names = ", ".join(choice.label for choice in subjects.choices())
    return (f"**MoTE Studio demo** — you can chat with **{names}** side by side and browse their evaluation "
            f"reports, training chains and run list.\n\n{MOTE_IN_TWO_SENTENCES}\n\n*{RESEARCH_NOTE}*")


def message(text: str) -> str:
    """A plain notice in the page (over a limit, busy, waiting): never an error badge."""
    return notice(text)


def history_html(turns: list[Turn], colour: bool) -> str:
    """The visitor's earlier questions (newest first), each with its panes side by side."""
    parts = []
    for turn in reversed(turns[:-1]):
        panes = "".join(f'<div style="flex: 1; min-width: 0">{render_pane(p, colour, EMPTY)}</div>'
                        for p in turn.panes if p is not None)
        parts.append(f'<div class="demo-turn"><p><b>You asked:</b> {html.escape(turn.question)}</p>'
                     f'<div style="display: flex; gap: 12px">{panes}</div></div>')
    return ("<h4>Earlier in this conversation</h4>" + "<hr>".join(parts)) if parts else ""


class DemoChat:
    """The demo's chat handler: limits first, then the shared chat runtime."""

    def __init__(self, subjects: DemoSubjects, runtime: ChatRuntime, gate: VisitorGate) -> None:
        self.subjects, self.runtime, self.gate = subjects, runtime, gate

    @property
    def limits(self) -> DemoLimits:
        return self.gate.limits

    def subject_menus(self) -> list[dict]:
        """Each pane's menu: base model, newest run, next run."""
        choices = [(c.label, c.spec) for c in self.subjects.choices()]
        runs = [spec for _, spec in choices if not spec.startswith(BASE_PREFIX)]
        defaults = [choices[0][1] if choices else None, *(runs[:2] + [None, None])[:2]]
        return [gr.update(choices=choices, value=value) for value in defaults]

    @user_facing
    def chat(self, subject_1: str | None, subject_2: str | None, subject_3: str | None, prompt: str, path: str,
             max_stage_tokens: float, self_check: bool, colour: bool, conversation: list[Turn] | None,
             request: gr.Request) -> Iterator[tuple]:
        turns = list(conversation or [])
        unchanged = (*(gr.update() for _ in range(PANES)), turns, gr.update())

        def say(text: str) -> tuple:
            return (*unchanged[:PANES], message(text), *unchanged[PANES:])

        question = (prompt or "").strip()
        problem = self._problem(question, path, [subject_1, subject_2, subject_3])
        if problem:
            yield say(problem)
            return
        chosen = [subject_1, subject_2, subject_3]
        tokens = min(int(max_stage_tokens or self.limits.max_stage_tokens), self.limits.max_stage_tokens)
        settings = GenerationSettings(max_stage_tokens=max(tokens, 1), min_stage_tokens=1, path=PATHS[path])
        try:
            with self.gate.admitted(getattr(request, "session_hash", None) or "anonymous") as ticket:
                wait_s = 0.0  # the first look does not wait, so a waiting visitor is told at once
                while not ticket.wait_for_slot(wait_s):
                    wait_s = WAIT_POLL_S
                    yield say(f"Waiting for a free slot: the models are answering other visitors "
                              f"({ticket.waiting_ahead()} question(s) waiting, yours included).")
                yield from self._stream(chosen, question, settings, self_check, colour, turns)
        except ChatRefused as refused:
            yield say(refused.message)

    def _problem(self, question: str, path: str, chosen: list[str | None]) -> str | None:
        """What stops this question (shown as a message), or None."""
        if not question:
            return "Type a question first."
        if len(question) > self.limits.max_prompt_chars:
            return (f"Your question is {len(question)} characters long; this demo takes at most "
                    f"{self.limits.max_prompt_chars}. Shorten it and send it again.")
        if path not in PATHS:
            return f"path={path!r} is not valid: use one of {list(PATHS)}."
        if not any(chosen):
            return "Choose a model in at least one pane."
        self.subjects.check([spec for spec in chosen if spec])
        return None

    def _stream(self, chosen: list[str | None], question: str, settings: GenerationSettings, self_check: bool,
                colour: bool, turns: list[Turn]) -> Iterator[tuple]:
        live = [spec for spec in chosen if spec]
        labels = {choice.spec: choice.label for choice in self.subjects.choices()}
        panes: list[PaneState | None] = []
        for states in stream_panes(self.runtime, live, question, settings, self_check=self_check):
            panes = _placed(chosen, states, labels)
            yield (*(render_pane(p, colour, EMPTY) for p in panes), message(""), turns, gr.update())
        turns = [*turns, Turn(question, tuple(panes))][-KEPT_TURNS:]
        yield (*(render_pane(p, colour, EMPTY) for p in turns[-1].panes), message(""), turns, history_html(turns, colour))

    @staticmethod
    def recolour(colour: bool, conversation: list[Turn] | None) -> tuple:
        turns = conversation or []
        panes = turns[-1].panes if turns else (None,) * PANES
        return (*(render_pane(p, colour, EMPTY) for p in panes), history_html(turns, colour))


def _placed(chosen: list[str | None], states: list[PaneState], labels: dict[str, str]) -> list[PaneState | None]:
    """The streamed states in their panes (an empty pane stays None), titled with the menu label:
    a loaded model's own label can hold the owner's folder paths, which visitors need not see."""
    live = iter(states)
    return [dataclasses.replace(next(live), title=labels.get(spec, "model")) if spec else None for spec in chosen]


class DemoViews:
    """Read-only views: the shown runs and the finished evaluations."""

    def __init__(self, services: Services, subjects: DemoSubjects) -> None:
        self.services, self.subjects = services, subjects

    def runs(self) -> pd.DataFrame:
        shown = {run.job_id for run in self.subjects.runs()}
        return jobs_table([row for row in self.services.jobs(JobKind.TRAIN, JobStatus.SUCCEEDED) if row.id in shown])

    def finished_evaluations(self) -> list[int]:
        return [j.id for j in self.services.evaluation.evaluation_jobs() if j.status is JobStatus.SUCCEEDED]

    def evaluation_reports(self) -> dict:
        jobs = self.finished_evaluations()
        return gr.update(choices=[(f"evaluation job {j}", j) for j in jobs], value=jobs[0] if jobs else None)

    @user_facing
    def evaluation_result(self, job: int | None, judge: str | None) -> tuple[str, list[tuple[str, str]], dict]:
        """A finished evaluation's tables and charts. Unlike the workbench's Evaluate tab, without
        the job's message: it names the owner's report folder."""
        if job is None:
            return "No finished evaluation yet.", [], gr.update(choices=[])
        report = self.services.evaluation.evaluation_report(self._finished(job))
        keep = judge if judge in report.judges else (report.judges[0] if report.judges else None)
        charts = gallery_items(report.charts)
        return without_autolinks(report.markdown or ""), charts, gr.update(choices=list(report.judges), value=keep)

    @user_facing
    def evaluation_samples(self, job: int | None, judge: str | None) -> pd.DataFrame:
        rows = self.services.evaluation.evaluation_samples(self._finished(job), judge) if job is not None else []
        return pd.DataFrame(rows)

    def _finished(self, job: int) -> int:
        if int(job) not in self.finished_evaluations():
            raise ValueError(f"Job {job} is not a finished evaluation: pick one from the list.")
        return int(job)


def build_demo(services: Services, options: DemoOptions) -> gr.Blocks:
    """The read-only demo page over `services` (only its reading methods are wired)."""
    subjects = DemoSubjects(services, options)
    for job_id in subjects.missing_runs():  # the owner reads this in the terminal; visitors never see it
        print(f"Demo: training job {job_id} has no finished, exported run; it is not shown (check "
              f"`python launch.py jobs list`).", flush=True)
    chat = DemoChat(subjects, ChatRuntime(services.home), VisitorGate(options.limits))
    views = DemoViews(services, subjects)
    with gr.Blocks(title="MoTE Studio demo", analytics_enabled=False) as demo:
        banner_view = gr.Markdown(elem_id="demo-banner")
        with gr.Tab("Chat", elem_id="tab-chat"):
            _chat_section(demo, chat)
        with gr.Tab("Evaluation reports", elem_id="tab-reports"):
            _reports_section(demo, views)
        with gr.Tab("Chains", elem_id="tab-chains"):
            _chains_section(demo, services)
        with gr.Tab("Runs", elem_id="tab-runs"):
            table = gr.Dataframe(label="Runs shown in this demo", interactive=False, wrap=True, elem_id="demo-runs")
        demo.load(lambda: banner(subjects), None, banner_view, api_visibility="private")
        demo.load(views.runs, None, table, api_name="demo_runs")
    demo.queue(max_size=4 * chat.gate.capacity)
    demo.visitor_gate = chat.gate  # the operator's handle on who is chatting (tests hold a slot through it)
    return demo


def _chat_section(demo: gr.Blocks, chat: DemoChat) -> None:
    limits = chat.limits
    menus, views = [], []
    with gr.Row(equal_height=False):
        for index in range(PANES):
            with gr.Column():
                menus.append(gr.Dropdown(label=f"model {index + 1}", elem_id=f"demo-subject-{index + 1}"))
                views.append(gr.HTML(render_pane(None, placeholder=EMPTY), elem_id=f"demo-pane-{index + 1}"))
    prompt = gr.Textbox(label=f"Question (sent to every pane; at most {limits.max_prompt_chars} characters)", lines=2,
                        elem_id="demo-prompt")
    send = gr.Button("Send", variant="primary", elem_id="demo-send")
    note = gr.HTML(elem_id="demo-message")
    with gr.Row():
        path = gr.Radio(list(PATHS), value="model's choice", label="path", elem_id="demo-path")
        tokens = gr.Slider(1, limits.max_stage_tokens, min(64, limits.max_stage_tokens), step=1,
                           label="max tokens per stage", elem_id="demo-max")
        check = gr.Checkbox(False, label="stage-4 self-check verdict", elem_id="demo-check")
        colour = gr.Checkbox(True, label="colour tokens by expert", elem_id="demo-colour")
    history = gr.HTML(elem_id="demo-history")
    conversation = gr.State([])
    demo.load(chat.subject_menus, None, menus, api_name="demo_subjects")
    gr.on([send.click, prompt.submit], chat.chat, [*menus, prompt, path, tokens, check, colour, conversation],
          [*views, note, conversation, history], api_name="demo_chat", show_progress="minimal",
          concurrency_limit=chat.gate.capacity)
    colour.change(chat.recolour, [colour, conversation], [*views, history], api_visibility="private")


def _reports_section(demo: gr.Blocks, views: DemoViews) -> None:
    job = gr.Dropdown(label="Evaluation", elem_id="demo-eval-job")
    report = gr.Markdown(elem_id="demo-eval-report")
    charts = gr.Gallery(label="charts (95% bootstrap intervals)", columns=4, height="auto", elem_id="demo-eval-charts")
    judge = gr.Dropdown(label="Drill-down: judge", elem_id="demo-eval-judge")
    samples = gr.Dataframe(label="per-sample answers and verdicts", wrap=True, max_height=420, interactive=False,
                           elem_id="demo-eval-samples")
    demo.load(views.evaluation_reports, None, job, api_name="evaluation_reports")
    job.change(views.evaluation_result, [job, judge], [report, charts, judge], api_name="evaluation_result")
    judge.change(views.evaluation_samples, [job, judge], samples, api_name="evaluation_samples")


def _chains_section(demo: gr.Blocks, services: Services) -> None:
    actions = DataActions(services)
    dataset = gr.Dropdown(label="Chain dataset", elem_id="demo-chain-dataset")
    filters = [gr.Dropdown(choices, value="any", label=label, elem_id=f"demo-filter-{label}")
               for label, choices in (("shape", ["any", *(shape.value for shape in ChainShape)]),
                                      ("flag", ["any", "flagged", "not flagged"]), ("category", ["any"]),
                                      ("kind", ["any"]))]
    table = gr.Dataframe(label="Chains (click a row to read it)", wrap=True, max_height=420, interactive=False,
                         elem_id="demo-chain-table")
    selected = gr.Number(None, visible=False)
    header = gr.Markdown(elem_id="demo-chain-header")
    with gr.Row():
        stages = [gr.Textbox(label=label, lines=6, interactive=False, elem_id=f"demo-chain-{name}")
                  for name, label in (("analysis", "Question Analysis"), ("guidance", "Answer Guidance"),
                                      ("answer", "Safe Answer"))]
    def datasets(current: int | None) -> dict:
        """The dataset menu only (the workbench's handler also reports the newest finished one)."""
        return actions.chain_datasets(current)[0]

    def browse(dataset_id: int | None, shape: str, flag: str, category: str, kind: str) -> tuple:
        """The first page of matching chains and the filter menus (the workbench's pages and count left out)."""
        return actions.browse_chains(dataset_id, shape, flag, category, kind)[:3]

    demo.load(datasets, dataset, dataset, api_name="chain_datasets")
    gr.on([dataset.change, *(f.change for f in filters)], browse, [dataset, *filters],
          [table, filters[2], filters[3]], api_name="browse_chains")
    table.select(_row_id, None, selected, api_visibility="private")
    selected.change(actions.show_chain, selected, [header, *stages], api_name="show_chain")


def _row_id(event: gr.SelectData) -> int:
    return int(event.row_value[0])
