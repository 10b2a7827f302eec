"""Chat tab: two or three panes side by side (base model, any run's MoTE model or a baseline),
one prompt to all, streamed as collapsible stage blocks labelled with stage and active expert,
token colouring by expert, a forced-path selector, the optional stage-4 self-check, sampling."""
from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from app.chat_runtime import ChatRuntime, PaneState, stream_panes
from app.errors import user_facing
from app.render import render_pane
from app.services import Services
from core.decoding.chain_programs import GenerationSettings
from core.stages import ChainShape
from core.decoding.subjects import BASE_PREFIX

PANES = 3
PATHS = {"model's choice": None, "answer only": ChainShape.ANSWER_ONLY,
         "analysis -> answer": ChainShape.ANALYSIS_ANSWER, "full chain": ChainShape.FULL}
EMPTY = "Choose a model for this pane."


class ChatActions:
    def __init__(self, services: Services, runtime: ChatRuntime) -> None:
        self.services, self.runtime = services, runtime

    def subjects(self, subject_1: str | None, subject_2: str | None, subject_3: str | None) -> list[dict]:
        """Refresh the model lists; keep each pane's choice, else base model, newest run, next run."""
        current = (subject_1, subject_2, subject_3)
        choices = [(c.label, c.spec) for c in self.services.chat_subjects()]
        specs = [spec for _, spec in choices]
        runs = [s for s in specs if not s.startswith(BASE_PREFIX)]
        defaults = [specs[0] if specs else None, *(runs[:2] + [None, None])[:2]]
        return [gr.update(choices=choices, value=value if value in specs else default)
                for value, default in zip(current, defaults)]

    @user_facing
    def chat(self, panes: int, subject_1: str | None, subject_2: str | None, subject_3: str | None, prompt: str,
             path: str, temperature: float, top_p: float, top_k: float, max_stage_tokens: float,
             min_stage_tokens: float, seed: float | None, self_check: bool, colour: bool) -> Iterator[tuple]:
        if not (prompt or "").strip():
            raise ValueError("Type a question first.")
        if path not in PATHS:
            raise ValueError(f"path={path!r} is not valid: use one of {list(PATHS)}.")
        chosen = [s for s in (subject_1, subject_2, subject_3)[: int(panes)]]
        if not any(chosen):
            raise ValueError("Choose a model in at least one pane.")
        settings = GenerationSettings(max_stage_tokens=int(max_stage_tokens), min_stage_tokens=int(min_stage_tokens),
                                      temperature=float(temperature), top_p=float(top_p), top_k=int(top_k),
                                      seed=int(seed) if seed else None, path=PATHS[path])
        live = [s for s in chosen if s]
        states: list[PaneState] = []
        for states in stream_panes(self.runtime, live, prompt.strip(), settings, self_check=self_check):
            yield self._render(chosen, states, colour)
        for pane in states:
            if pane.error:
                gr.Warning(f"{pane.title or pane.spec}: {pane.error}")

    def recolour(self, colour: bool, panes: list[PaneState | None]) -> tuple:
        return tuple(render_pane(p, colour, EMPTY) for p in (panes or [None] * PANES))

    @staticmethod
    def _render(chosen: list[str | None], states: list[PaneState], colour: bool) -> tuple:
        live = iter(states)
        panes = [next(live) if spec else None for spec in chosen] + [None] * (PANES - len(chosen))
        return (*(render_pane(p, colour, EMPTY) for p in panes), panes)


def build_chat_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = ChatActions(services, ChatRuntime(services.home))
    with gr.Row():
        panes = gr.Radio([2, 3], value=2, label="panes", elem_id="chat-panes", scale=1)
        refresh = gr.Button("Refresh model lists", elem_id="chat-refresh", scale=1)
    subjects, views, columns = [], [], []
    with gr.Row(equal_height=False):
        for index in range(PANES):
            with gr.Column(visible=index < 2, elem_id=f"chat-column-{index + 1}") as column:
                subjects.append(gr.Dropdown(label=f"model {index + 1}", elem_id=f"chat-subject-{index + 1}"))
                views.append(gr.HTML(render_pane(None, placeholder=EMPTY), elem_id=f"chat-pane-{index + 1}"))
            columns.append(column)
    prompt = gr.Textbox(label="Question (sent to every pane)", lines=2, elem_id="chat-prompt")
    send = gr.Button("Send", variant="primary", elem_id="chat-send")
    with gr.Accordion("Path, self-check and sampling", open=False):
        with gr.Row():
            path = gr.Radio(list(PATHS), value="model's choice", label="path", elem_id="chat-path")
            check = gr.Checkbox(False, label="stage-4 self-check verdict", elem_id="chat-check")
            colour = gr.Checkbox(False, label="colour tokens by expert", elem_id="chat-colour")
        with gr.Row():
            temperature = gr.Slider(0.0, 2.0, 0.0, step=0.05, label="temperature (0: greedy)")
            top_p = gr.Slider(0.05, 1.0, 1.0, step=0.05, label="top p")
            top_k = gr.Number(0, precision=0, minimum=0, label="top k (0: off)")
            longest = gr.Number(160, precision=0, minimum=1, maximum=4096, label="max tokens per stage", elem_id="chat-max")
            shortest = gr.Number(8, precision=0, minimum=1, maximum=512, label="min tokens per stage", elem_id="chat-min")
            seed = gr.Number(0, precision=0, minimum=0, label="seed (0: a fresh random seed)")
    state = gr.State([None] * PANES)
    gr.on([demo.load, tab.select, refresh.click], actions.subjects, subjects, subjects, api_name="chat_subjects")
    panes.change(lambda n: [gr.update(visible=i < int(n)) for i in range(PANES)], panes, columns, api_visibility="private")
    inputs = [panes, *subjects, prompt, path, temperature, top_p, top_k, longest, shortest, seed, check, colour]
    gr.on([send.click, prompt.submit], actions.chat, inputs, [*views, state], api_name="chat", show_progress="minimal")
    colour.change(actions.recolour, [colour, state], views, api_visibility="private")
