"""The services' results as the tables and chart data the tabs show (pandas DataFrames).

Why separate from the tabs: the columns are part of the API (gradio_client callers get these
tables back), so they are defined once and tested without a browser.
"""
from __future__ import annotations

import pandas as pd

from app.chain_browser import ChainView
from app.job_views import JobRow, TrainingMonitor, format_duration
from app.system_info import GpuRow
from core.data.questions import ImportReport, Question

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


def chains_table(views: list[ChainView]) -> pd.DataFrame:
    rows = [[v.id, v.chain_id, v.shape, "yes" if v.flagged else "", v.kind, v.category, v.question,
             v.stages["analysis"], v.stages["guidance"], v.stages["answer"], v.verdict, "yes" if v.edited else ""]
            for v in views]
    return pd.DataFrame(rows, columns=CHAIN_COLUMNS)


def jobs_table(rows: list[JobRow]) -> pd.DataFrame:
    data = [[r.id, r.kind + (f" (retry of {r.retry_of})" if r.retry_of else ""), r.status, f"{r.progress:.0%}",
             format_duration(r.duration_seconds), r.devices, r.created.strftime("%Y-%m-%d %H:%M:%S"), r.message]
            for r in rows]
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


def key_values(values: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(values.items()), columns=["", "value"])
