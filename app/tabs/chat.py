"""Chat tab: two or three panes side by side (base model, any run's MoTE model or a baseline, or a
prompting pipeline over the base model: "aligncot prompting · base model: ..."),
one prompt to all, streamed as collapsible stage blocks labelled with stage and active expert;
a conversation of several turns (every turn's stage blocks kept) with Stop and Clear; token
colouring by expert with its legend, a forced-path selector, the stage-4 self-check, sampling.

Why the prompt sits above the panes: on a phone the panes stack, and a prompt below them would
be two answers' scroll away. Why input problems go to a message line and not gr.Error: an error
raised by the handler marks every output (the panes) as failed, although only the prompt or a
model choice needs changing.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator

import gradio as gr

from app.chat_runtime import ChatRuntime, ChatTurn, PaneState, history_messages, stream_panes
from app.render import expert_legend, render_conversation
from app.services import Services, with_prompting_pipelines
from core.decoding.chain_programs import GenerationSettings
from core.decoding.subject_ref import SubjectRef, SubjectRefKind
from core.stages import ChainShape

PANES = 3
PATHS = {"model's choice": None, "answer only": ChainShape.ANSWER_ONLY,
         "analysis -> answer": ChainShape.ANALYSIS_ANSWER, "full chain": ChainShape.FULL}
EMPTY = "Choose a model for this pane."
PROMPT_HELP = "Enter sends · Shift+Enter starts a new line"


class ChatActions:
    def __init__(self, services: Services, runtime: ChatRuntime) -> None:
        self.services, self.runtime = services, runtime
        self._stops: dict[str, threading.Event] = {}
        """The running conversation's stop switch, per browser session."""

    def subjects(self, subject_1: str | None, subject_2: str | None, subject_3: str | None) -> list[dict]:
        """Refresh the model lists (base models, runs, then the prompting pipelines over each base
        model); keep each pane's choice, else base model, newest run, next run."""
        current = (subject_1, subject_2, subject_3)
        choices = [(c.label, c.spec) for c in with_prompting_pipelines(self.services.chat_subjects())]
        specs = [spec for _, spec in choices]
        runs = [s for s in specs if SubjectRef.parse(s).kind is SubjectRefKind.RUN_DIR]
        defaults = [specs[0] if specs else None, *(runs[:2] + [None, None])[:2]]
        return [gr.update(choices=choices, value=value if value in specs else default)
                for value, default in zip(current, defaults)]

    def chat(self, panes: int, subject_1: str | None, subject_2: str | None, subject_3: str | None, prompt: str,
             path: str, temperature: float, top_p: float, top_k: float, max_stage_tokens: float,
             min_stage_tokens: float, seed: float | None, self_check: bool, colour: bool,
             turns: list[ChatTurn] | None, request: gr.Request) -> Iterator[tuple]:
        """Add one turn to the conversation; yields (pane views..., turns, prompt, message)."""
        turns = list(turns or [])
        chosen = list((subject_1, subject_2, subject_3)[: int(panes)])
        problem = self._problem(prompt, path, chosen)
        if problem:
            yield (*[gr.skip()] * PANES, gr.skip(), gr.skip(), problem)
            return
        settings = GenerationSettings(max_stage_tokens=int(max_stage_tokens), min_stage_tokens=int(min_stage_tokens),
                                      temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                                      seed=int(seed) if seed else None, path=PATHS[path])
        live = [index for index, spec in enumerate(chosen) if spec]
        stop = self._stops[request.session_hash] = threading.Event()
        histories = [history_messages(turns, index) for index in live]
        question, cleared = prompt.strip(), ""
        for states in stream_panes(self.runtime, [chosen[i] for i in live], question, settings,
                                   self_check=self_check, stop=stop, histories=histories):
            turn = ChatTurn(question, self._placed(live, states))
            yield (*self._views([*turns, turn], colour), [*turns, turn], cleared, "")
            cleared = gr.skip()  # the prompt is emptied once; what the user types meanwhile stays

    def stop(self, request: gr.Request) -> None:
        """End the running turn in every pane (each keeps what it wrote so far)."""
        stop = self._stops.get(request.session_hash)
        if stop is not None:
            stop.set()

    def clear(self, request: gr.Request) -> tuple:
        """Stop, and start a new conversation."""
        self.stop(request)
        return (*self._views([], False), [], "")

    def recolour(self, colour: bool, turns: list[ChatTurn] | None) -> tuple:
        return (*self._views(turns or [], colour), gr.update(visible=bool(colour)))

    @staticmethod
    def _problem(prompt: str, path: str, chosen: list[str | None]) -> str:
        if not (prompt or "").strip():
            return "Type a question in the box above first."
        if path not in PATHS:
            return f"Path {path!r} is not one of {list(PATHS)}: pick one under 'Path, self-check and sampling'."
        if not any(chosen):
            return "Choose a model in at least one pane (the model lists above the panes)."
        return ""

    @staticmethod
    def _placed(live: list[int], states: list[PaneState]) -> list[PaneState | None]:
        panes: list[PaneState | None] = [None] * PANES
        for index, state in zip(live, states):
            panes[index] = state
        return panes

    @staticmethod
    def _views(turns: list[ChatTurn], colour: bool) -> tuple[str, ...]:
        return tuple(render_conversation(turns, index, colour, EMPTY) for index in range(PANES))


def build_chat_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = ChatActions(services, ChatRuntime(services.home))
    with gr.Row():
        panes = gr.Radio([2, 3], value=2, label="panes", elem_id="chat-panes", scale=1)
        refresh = gr.Button("Refresh model lists", elem_id="chat-refresh", scale=1)
    with gr.Row(equal_height=False):
        subjects = [gr.Dropdown(label=f"model {index + 1}", elem_id=f"chat-subject-{index + 1}", visible=index < 2,
                                min_width=160) for index in range(PANES)]
    prompt = gr.Textbox(label="Question (sent to every pane)", info=PROMPT_HELP, lines=1, max_lines=8,
                        placeholder="Ask something; " + PROMPT_HELP, elem_id="chat-prompt")
    with gr.Row():
        send = gr.Button("Send", variant="primary", elem_id="chat-send", min_width=80)
        stop = gr.Button("Stop", variant="stop", elem_id="chat-stop", min_width=80)
        clear = gr.Button("Clear conversation", elem_id="chat-clear", min_width=80)
    message = gr.Markdown(elem_id="chat-message")
    legend = gr.HTML(expert_legend(), visible=False, elem_id="chat-legend")
    with gr.Row(equal_height=False):
        views = [gr.HTML(render_conversation([], index, placeholder=EMPTY), elem_id=f"chat-pane-{index + 1}",
                         visible=index < 2, min_width=300) for index in range(PANES)]
    with gr.Accordion("Path, self-check and sampling", open=False):
        with gr.Row():
            path = gr.Radio(list(PATHS), value="model's choice", label="path", elem_id="chat-path")
            check = gr.Checkbox(False, label="stage-4 self-check verdict", elem_id="chat-check")
            colour = gr.Checkbox(False, label="colour tokens by expert", elem_id="chat-colour")
        with gr.Row():
            temperature = gr.Slider(0.0, 2.0, 0.0, step=0.05, label="temperature (0: greedy)", elem_id="chat-temperature")
            top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="top p")
            top_k = gr.Number(0, precision=0, minimum=0, label="top k (0: off)")
            longest = gr.Number(160, precision=0, minimum=1, maximum=4096, label="max tokens per stage", elem_id="chat-max")
            shortest = gr.Number(8, precision=0, minimum=1, maximum=512, label="min tokens per stage", elem_id="chat-min")
            seed = gr.Number(0, precision=0, minimum=0, label="seed (0: a fresh random seed)", elem_id="chat-seed")
    turns = gr.State([])
    gr.on([demo.load, tab.select, refresh.click], actions.subjects, subjects, subjects, api_name="chat_subjects")
    panes.change(lambda n: [gr.update(visible=i < int(n)) for i in range(PANES) for _ in (0, 1)], panes,
                 [c for pair in zip(subjects, views) for c in pair], api_visibility="private")
    inputs = [panes, *subjects, prompt, path, temperature, top_p, top_k, longest, shortest, seed, check, colour, turns]
    chatting = gr.on([send.click, prompt.submit], actions.chat, inputs, [*views, turns, prompt, message], api_name="chat",
                     show_progress="minimal")
    stop.click(actions.stop, None, None, api_name="chat_stop", concurrency_limit=None)
    clear.click(actions.clear, None, [*views, turns, message], api_name="chat_clear", concurrency_limit=None,
                cancels=[chatting])
    colour.change(actions.recolour, [colour, turns], [*views, legend], api_visibility="private")
