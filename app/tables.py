"""The services' results as the tables and chart data the tabs show (pandas DataFrames).

Why separate from the tabs: the columns are part of the API (gradio_client callers get these
tables back), so they are defined once and tested without a browser.
"""
from __future__ import annotations

import pandas as pd

from app.system_info import GpuRow
from core.data.questions import ImportReport, Question
from core.stages import CHAIN_STAGES
from jobs.views import ChainView, JobRow, LossPoint, TrainingMonitor
from jobs.durations import format_duration

PREVIEW_ROWS = 200
QUESTION_COLUMNS = ["id", "kind", "category", "question"]
REJECTED_COLUMNS = ["row", "reason"]
CHAIN_COLUMNS = ["row id", "chain id", "shape", "flagged", "kind", "category", "question",
                 "analysis", "guidance", "answer", "verdict", "edited"]
JOB_COLUMNS = ["id", "kind", "status", "progress", "duration", "devices", "created", "note"]
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
    data = [[r.id, r.kind.value + (f" (retry of {r.retry_of})" if r.retry_of else ""), r.status.value,
             f"{r.progress:.0%}", format_duration(r.duration_seconds), r.devices,
             r.created.strftime("%Y-%m-%d %H:%M:%S"), r.note] for r in rows]
    return pd.DataFrame(data, columns=JOB_COLUMNS)


def gpus_table(rows: list[GpuRow]) -> pd.DataFrame:
    return pd.DataFrame([[g.index, g.name, g.memory, g.utilization, g.temperature, g.processes] for g in rows],
                        columns=GPU_COLUMNS)


def metric_frames(monitor: TrainingMonitor) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(loss per step, learning rate per step) for the two live charts."""
    loss = pd.DataFrame({"step": monitor.steps, "loss": monitor.losses})
    pairs = [(s, lr) for s, lr in zip(monitor.steps, monitor.learning_rates) if lr is not None]
    rate = pd.DataFrame(pairs, columns=["step", "learning rate"])
    return loss, rate


def loss_curves_table(points: list[LossPoint]) -> pd.DataFrame:
    """Long-format (run, step, loss) rows: one coloured line per run."""
    return pd.DataFrame([[p.run, p.step, p.loss] for p in points], columns=["run", "step", "loss"])


def key_values(values: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(values.items()), columns=["", "value"])
