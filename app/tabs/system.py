"""System tab: GPUs through NVML (memory, utilisation, temperature, processes mapped to jobs),
CPU, RAM, disk and the database, with a clear note when there is no GPU."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.render import notice
from app.services import Services
from app.tables import gpus_table, key_values


def system_view(services: Services) -> tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    report = services.system()
    head = f"**GPUs:** {report.gpu_message}" + (f"\n\n{notice(report.no_gpu_note)}" if report.no_gpu_note else "")
    return (head, gpus_table(report.gpus), key_values(report.cpu), key_values(report.memory),
            key_values(report.disk), key_values(report.database))


def build_system_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    head = gr.Markdown(elem_id="system-gpu-note")
    gpus = gr.Dataframe(label="GPUs", interactive=False, elem_id="system-gpus")
    with gr.Row():
        cpu = gr.Dataframe(label="CPU", interactive=False, elem_id="system-cpu")
        memory = gr.Dataframe(label="RAM", interactive=False, elem_id="system-ram")
    with gr.Row():
        disk = gr.Dataframe(label="Disk", interactive=False, elem_id="system-disk")
        database = gr.Dataframe(label="Database", interactive=False, elem_id="system-db")
    refresh = gr.Button("Refresh", elem_id="system-refresh")

    def system() -> tuple:
        return system_view(services)

    gr.on([demo.load, tab.select, refresh.click, gr.Timer(5.0).tick], system, None,
          [head, gpus, cpu, memory, disk, database], api_name="system", show_progress="hidden")
