"""Runs tab (an experiments table, as in LlamaBoard or H2O LLM Studio): one row per training run
with its name, method, chains, steps, final loss, headline evaluation figures and status; click
rows (or pick them in the list) to compare them: overlaid loss curves, the settings that differ,
and their evaluations side by side. A run's name is edited here.

Why the comparison list is a dropdown fed by row clicks: a click toggles a run in or out, and
the dropdown shows (and lets the user remove) what is compared, on a phone as on a desktop.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.errors import user_facing
from app.services import Services
from app.tables import RUN_COLUMNS, evaluation_side_by_side, loss_curve_colours, loss_curves_table, runs_table, settings_diff

COMPARE_HINT = "Click runs in the table (or pick them here) to compare them."


class RunsActions:
    def __init__(self, services: Services) -> None:
        self.services = services

    def table(self, chosen: list[int] | None) -> tuple[pd.DataFrame, dict]:
        """The runs table and the compare list's choices (what was chosen stays chosen)."""
        rows = self.services.runs()
        ids = {row.job_id for row in rows}
        keep = [job for job in chosen or [] if job in ids]
        return runs_table(rows), gr.update(choices=[(row.label, row.job_id) for row in rows], value=keep)

    @staticmethod
    def toggle(chosen: list[int] | None, event: gr.SelectData) -> tuple[list[int], int]:
        """A click on a row adds its run to the comparison, or removes it when already there;
        it also makes the run the one the name field edits."""
        job = int(event.row_value[0])
        chosen = list(chosen or [])
        return ([j for j in chosen if j != job] if job in chosen else [*chosen, job]), job

    @user_facing
    def compare(self, chosen: list[int] | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
        comparison = self.services.compare_runs([int(j) for j in chosen or []])
        runs = list(comparison.runs)
        labels = {run.job_id: run.label for run in runs}
        note = COMPARE_HINT if not runs else (
            "" if comparison.curves else "No loss recorded yet for these runs: the curves appear after their first steps.")
        return (loss_curves_table(list(comparison.curves)), settings_diff(list(comparison.settings), labels),
                evaluation_side_by_side(runs), note)

    def curve_colours(self, chosen: list[int] | None) -> dict:
        """The chart's colour map, sent after its data: Gradio's plot builds its colour scale
        only when the colour map changes, from the data it holds at that moment (so the data
        must already be there), and a run without an entry would be drawn without colour."""
        curves = self.services.compare_runs([int(j) for j in chosen or []]).curves
        return gr.update(color_map=loss_curve_colours(list(curves)))

    def name_of(self, job: float | None) -> str:
        rows = {row.job_id: row.name for row in self.services.runs()}
        return rows.get(int(job), "") if job else ""

    def rename(self, job: float | None, name: str) -> tuple[str, str]:
        """Rename the run last clicked; a problem is said next to the name field."""
        if not job:
            return gr.skip(), "Click a run in the table first: the name field edits the run you clicked."
        try:
            stored = self.services.rename_job(int(job), name)
        except (ValueError, LookupError) as error:
            return gr.skip(), str(error)
        return stored, f"Renamed job {int(job)} to “{stored}”."


def build_runs_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = RunsActions(services)
    table = gr.Dataframe(headers=RUN_COLUMNS, label="Training runs (click rows to compare them)", interactive=False,
                         wrap=True, max_height=420, elem_id="runs-table")
    chosen = gr.Dropdown(multiselect=True, label="Compare", info=COMPARE_HINT, elem_id="runs-compare")
    with gr.Row(equal_height=True):
        job = gr.Number(None, label="Run (job)", precision=0, minimum=0, interactive=False, elem_id="runs-job",
                        min_width=100, scale=1)
        name = gr.Textbox(label="Name of the clicked run", elem_id="runs-name", scale=3, min_width=200)
        rename = gr.Button("Rename", elem_id="runs-rename", scale=1, min_width=100)
    rename_note = gr.Markdown(elem_id="runs-rename-note")
    note = gr.Markdown(COMPARE_HINT, elem_id="runs-note")
    curves = gr.LinePlot(x="step", y="loss", color="run", title="Training loss per step", label="loss",
                         elem_id="runs-curves", height=320)
    with gr.Row(equal_height=False):
        evaluation = gr.Dataframe(label="Evaluation side by side (headline figures of each run's newest evaluation)",
                                  interactive=False, wrap=True, elem_id="runs-evaluation", min_width=300)
        differ = gr.Dataframe(label="Settings that differ", interactive=False, wrap=True, max_height=360,
                              elem_id="runs-settings", min_width=300)
    refresh = gr.Button("Refresh", elem_id="runs-refresh")
    gr.on([demo.load, tab.select, refresh.click], actions.table, chosen, [table, chosen], api_name="runs",
          show_progress="hidden")
    table.select(actions.toggle, chosen, [chosen, job], api_visibility="private")
    chosen.change(actions.compare, chosen, [curves, differ, evaluation, note], api_name="compare_runs_side_by_side").then(
        actions.curve_colours, chosen, curves, api_visibility="private", show_progress="hidden")
    job.change(actions.name_of, job, name, api_visibility="private", show_progress="hidden")
    gr.on([rename.click, name.submit], actions.rename, [job, name], [name, rename_note], api_name="rename_run").then(
        actions.table, chosen, [table, chosen], api_visibility="private", show_progress="hidden")
