"""Gradio components for the Train tab's hyperparameter form (one per app.train_form.FieldSpec).

Why generated: the form lists MoteConfig's fields with their ranges and docstrings; building the
components from the same specs keeps the widgets, the limits and the help text in step.
"""
from __future__ import annotations

from typing import Any

import gradio as gr

from app.train_form import FIELDS, FieldKind, FieldSpec, field_help

SECTIONS = (("", "Model and method"), ("experts", "Experts (LoRA)"), ("data", "Data"), ("train", "Training loop"))


def field_component(spec: FieldSpec, value: Any) -> gr.components.Component:
    common = {"label": spec.label, "info": field_help(spec), "elem_id": f"train-{spec.name}"}
    if spec.kind is FieldKind.INT:  # an optional field reads 0 as empty (Gradio shows an empty number as 0)
        low = 0 if spec.optional else spec.minimum
        return gr.Number(value, precision=0, minimum=low, maximum=spec.maximum, **common)
    if spec.kind is FieldKind.FLOAT:
        return gr.Number(value, minimum=spec.minimum, maximum=spec.maximum, step=0.0001, **common)
    if spec.kind is FieldKind.BOOL:
        return gr.Checkbox(value, **common)
    if spec.kind is FieldKind.CHOICE:
        return gr.Dropdown(list(spec.choices), value=value, **common)
    return gr.Textbox(value, **common)


def build_form(values: list[Any]) -> list[gr.components.Component]:
    """All form components in FIELDS order, grouped in one accordion per config section."""
    components: dict[str, gr.components.Component] = {}
    for section, title in SECTIONS:
        specs = [(i, s) for i, s in enumerate(FIELDS) if s.path.rpartition(".")[0] == section]
        with gr.Accordion(title, open=section in ("", "train")), gr.Row(equal_height=False):
            for index, spec in specs:
                with gr.Column(min_width=220):
                    components[spec.name] = field_component(spec, values[index])
    return [components[spec.name] for spec in FIELDS]
