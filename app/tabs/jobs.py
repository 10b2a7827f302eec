"""Jobs tab: the history table (filters, sorting, status, progress, duration, devices), a job's
details and log, cancel and retry. Everything is read from the database on a timer, so a
reloaded page shows running jobs as they are (re-attached)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.errors import user_facing
from app.services import Services
from app.tables import jobs_table
from jobs.kinds import JobKind, JobStatus
from jobs.views import JobSort

ANY = "any"


class JobsActions:
    def __init__(self, services: Services) -> None:
        self.services = services

    @user_facing
    def jobs(self, kind: str, status: str, sort: str) -> pd.DataFrame:
        rows = self.services.jobs(None if kind == ANY else JobKind(kind), None if status == ANY else JobStatus(status),
                                  JobSort(sort))
        return jobs_table(rows)

    @user_facing
    def job_detail(self, job: float | None) -> tuple[str, str]:
        if not job:  # an empty number field reads as 0
            return "Select a job: click a row of the table or type its id.", ""
        return self.services.job_detail_text(int(job)), self.services.job_log(int(job))

    @user_facing
    def cancel_job(self, job: float | None) -> None:
        status = self.services.cancel_job(_job_id(job))
        gr.Info(f"Job {int(job)}: " + ("cancel requested; the worker saves its progress and stops."
                                       if status is JobStatus.RUNNING else f"{status.value}."))

    @user_facing
    def retry_job(self, job: float | None) -> int:
        new_id = self.services.retry_job(_job_id(job))
        gr.Info(f"Job {int(job)} retried as job {new_id}; it resumes from the saved progress.")
        return new_id


def _job_id(job: float | None) -> int:
    if not job:
        raise ValueError("Select a job first: click a row of the table or type its id.")
    return int(job)


def _row_id(event: gr.SelectData) -> int:
    return int(event.row_value[0])


def build_jobs_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = JobsActions(services)
    with gr.Row():
        kind = gr.Dropdown([ANY, *(k.value for k in JobKind)], value=ANY, label="kind", elem_id="jobs-kind")
        status = gr.Dropdown([ANY, *(s.value for s in JobStatus)], value=ANY, label="status", elem_id="jobs-status")
        sort = gr.Dropdown([s.value for s in JobSort], value=JobSort.NEWEST.value, label="sort", elem_id="jobs-sort")
        refresh = gr.Button("Refresh", elem_id="jobs-refresh")
    table = gr.Dataframe(label="Jobs (click a row for details)", interactive=False, wrap=True, max_height=420,
                         elem_id="jobs-table")
    with gr.Row():
        job = gr.Number(None, label="Job id", precision=0, minimum=0, elem_id="jobs-selected")
        cancel = gr.Button("Cancel", variant="stop", elem_id="jobs-cancel")
        retry = gr.Button("Retry", elem_id="jobs-retry")
    with gr.Row():
        detail = gr.Textbox(label="details", lines=16, max_lines=16, elem_id="jobs-detail")
        log = gr.Textbox(label="log (last lines)", lines=16, max_lines=16, autoscroll=True, elem_id="jobs-log")
    timer = gr.Timer(2.0)
    gr.on([demo.load, tab.select, refresh.click, kind.change, status.change, sort.change, timer.tick], actions.jobs,
          [kind, status, sort], table, api_name="jobs", show_progress="hidden")
    table.select(_row_id, None, job, api_visibility="private")
    gr.on([job.change, timer.tick], actions.job_detail, job, [detail, log], api_name="job_detail", show_progress="hidden")
    cancel.click(actions.cancel_job, job, None, api_name="cancel_job")
    retry.click(actions.retry_job, job, job, api_name="retry_job")
