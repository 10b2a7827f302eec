"""The services' results as the tables and chart data the tabs show (pandas DataFrames).

Why separate from the tabs: the columns are part of the API (gradio_client callers get these
tables back), so they are defined once and tested without a browser.
"""
from __future__ import annotations

import pandas as pd

from app.system_info import GpuRow
from core.data.questions import ImportReport, Question
from core.stages import CHAIN_STAGES
import json

from jobs.run_queries import headline_labels
from jobs.views import ChainView, JobRow, LossPoint, RunRow, RunSettings, TrainingMonitor
from jobs.durations import format_duration

PREVIEW_ROWS = 200
QUESTION_COLUMNS = ["id", "kind", "category", "question"]
REJECTED_COLUMNS = ["row", "reason"]
CHAIN_COLUMNS = ["row id", "chain id", "shape", "flagged", "kind", "category", "question",
                 "analysis", "guidance", "answer", "verdict", "edited"]
JOB_COLUMNS = ["id", "name", "kind", "status", "progress", "duration", "devices", "created", "note"]
RUN_COLUMNS = ["job", "name", "method", "chains", "steps", "final loss", *headline_labels(), "status"]
GPU_COLUMNS = ["index", "name", "memory", "utilisation", "temperature", "processes (pid: job)"]


def questions_table(questions: list[Question], limit: int = PREVIEW_ROWS) -> pd.DataFrame:
    rows = [[q.id, q.kind.value if q.kind else "", q.category, q.text] for q in questions[:limit]]
    return pd.DataFrame(rows, columns=QUESTION_COLUMNS)


def rejected_table(report: ImportReport) -> pd.DataFrame:
    return pd.DataFrame([[r.row, r.reason] for r in report.rejected], columns=REJECTED_COLUMNS)


def _chain_row(view: ChainView) -> list:
    r = view.record
    return [view.id, r.id, r.shape.value, "yes" if r.flagged else "", r.kind.value if r.kind else "", r.category,
            r.question, *(r.stage_text(stage) or "" for stage in CHAIN_STAGES),
            r.last_verdict.value if r.last_verdict else "", "yes" if r.edited else ""]


def chains_table(views: list[ChainView]) -> pd.DataFrame:
    return pd.DataFrame([_chain_row(v) for v in views], columns=CHAIN_COLUMNS)


def jobs_table(rows: list[JobRow]) -> pd.DataFrame:
    data = [[r.id, r.name, r.kind.value + (f" (retry of {r.retry_of})" if r.retry_of else ""), r.status.value,
             f"{r.progress:.0%}", format_duration(r.duration_seconds), r.devices,
             r.created.strftime("%Y-%m-%d %H:%M:%S"), r.note] for r in rows]
    return pd.DataFrame(data, columns=JOB_COLUMNS)


def gpus_table(rows: list[GpuRow]) -> pd.DataFrame:
    return pd.DataFrame([[g.index, g.name, g.memory, g.utilization, g.temperature, g.processes] for g in rows],
                        columns=GPU_COLUMNS)


def plot_frame(rows: list[list], columns: dict[str, str | pd.CategoricalDtype]) -> pd.DataFrame:
    """A chart's data with its column types fixed, empty or not.

    Why: Gradio's plots take each column's type (quantitative or nominal) from the frame; an
    empty frame has untyped (object) columns, read as nominal, and a chart that once got one
    keeps drawing later data with those types: no lines, an empty legend. So every frame a
    chart gets, including the empty one before anything is chosen, carries the real types."""
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype(columns) if rows else pd.DataFrame({name: pd.Series(dtype=kind) for name, kind in columns.items()})


def metric_frames(monitor: TrainingMonitor | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss per step, learning rate per step) for the two live charts (empty for no run)."""
    steps = monitor.steps if monitor else ()
    loss = plot_frame([[s, v] for s, v in zip(steps, monitor.losses)] if monitor else [], {"step": "int64", "loss": "float64"})
    pairs = [[s, lr] for s, lr in zip(steps, monitor.learning_rates) if lr is not None] if monitor else []
    return loss, plot_frame(pairs, {"step": "int64", "learning rate": "float64"})


#: Line colours for overlaid runs (Tableau 10: distinct and readable on light and dark themes).
SERIES_COLOURS = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac")


def series_colours(names: list[str]) -> dict[str, str]:
    """A colour per series, in order. Why given explicitly: Gradio's plot builds its colour
    scale when the chart is first drawn and rebuilds it only when its colour map changes; runs
    added to a comparison later would otherwise get no colour (lines drawn invisible). See
    app.tabs.runs.RunsActions.curve_colours."""
    return {name: SERIES_COLOURS[i % len(SERIES_COLOURS)] for i, name in enumerate(names)}


def series_names(points: list[LossPoint]) -> list[str]:
    """The runs of a comparison, once each, in the order they first appear."""
    return list(dict.fromkeys(p.run for p in points))


def loss_curves_table(points: list[LossPoint]) -> pd.DataFrame:
    """Long-format (run, step, loss) rows: one coloured line per run.

    Why the run column is categorical: the chart colours by it, and only a nominal column gets
    one colour per run and a legend (a numeric-looking one is drawn as a colour gradient). The
    categories keep the order the runs were chosen in, so colours and legend follow that order."""
    run = pd.CategoricalDtype(series_names(points))
    return plot_frame([[p.run, p.step, p.loss] for p in points], {"run": run, "step": "int64", "loss": "float64"})


def loss_curve_colours(points: list[LossPoint]) -> dict[str, str]:
    """The colour map of a loss comparison chart: one colour per run (see series_colours)."""
    return series_colours(series_names(points))


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _chains_cell(row: RunRow) -> str:
    """The chains a run learns from, with its dataset's flagged-chain policy (keep: flagged chains trained on)."""
    return f"{row.dataset} (flagged chains: {row.flagged_policy.value})" if row.flagged_policy else row.dataset


def runs_table(rows: list[RunRow]) -> pd.DataFrame:
    """One row per run; evaluation figures stay empty until the run has been evaluated."""
    data = [[r.job_id, r.name, r.method, _chains_cell(r),
             f"{r.steps_done or 0}/{r.total_steps or '?'}", _figure(r.final_loss),
             *(_figure(r.evaluation.get(label)) for label in headline_labels()), r.status.value] for r in rows]
    return pd.DataFrame(data, columns=RUN_COLUMNS)


def evaluation_side_by_side(runs: list[RunRow]) -> pd.DataFrame:
    """Metrics as rows, the chosen runs as columns (empty where a run was not evaluated)."""
    data = [[label, *(_figure(r.evaluation.get(label)) for r in runs)] for label in headline_labels()]
    data.append(["evaluated by", *(f"job {r.evaluated_by}" if r.evaluated_by else "not evaluated" for r in runs)])
    return pd.DataFrame(data, columns=["metric", *(r.label for r in runs)])


def settings_diff(settings: list[RunSettings], labels: dict[int, str]) -> pd.DataFrame:
    """The settings (dotted names) whose values differ between runs; runs as columns."""
    keys = sorted({k for run in settings for k in run.settings})
    differing = [k for k in keys if len({json.dumps(run.settings.get(k), sort_keys=True, default=str) for run in settings}) > 1]
    data = [[k, *(str(run.settings.get(k, "")) for run in settings)] for k in differing]
    return pd.DataFrame(data, columns=["setting", *(labels.get(run.job_id, f"job {run.job_id}") for run in settings)])


def key_values(values: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(values.items()), columns=["", "value"])
