"""Train tab: preset or saved config, method, the hyperparameter form with valid ranges, the
equivalent YAML and CLI command, save / load, a warning when the chosen dataset's data-quality
report says it does not teach safety, launch, and a live view of a run (loss and
learning-rate charts, progress with ETA, log tail, "new run from this one")."""
from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from app.errors import user_facing
from app.form_fields import build_form
from app.render import progress_bar
from app.services import Services
from app.tables import metric_frames
from app.tabs.data_quality import train_warning
from app.train_form import (
    DATASET_PREFIX,
    SAMPLE_SOURCE,
    ChainSource,
    config_from_values,
    form_values,
    with_named_parameters,
)
from jobs.kinds import JobStatus

DEFAULT_PRESET = "quick"
DEFAULT_CONFIG_NAME = "my-run"


class TrainActions:
    """The Train tab's event handlers (each one a named API endpoint)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def config_names(self) -> list[str]:
        return [*self.services.presets(), *self.services.saved_configs()]

    def chain_sources(self, current: str | None, chosen_by_user: bool) -> dict:
        """Datasets (newest first), then the sample chains; until the user picks one, the newest
        dataset is preselected, so chains generated a minute ago are what Train trains on."""
        datasets = [(f"dataset {d.label}", f"{DATASET_PREFIX}{d.id}") for d in self.services.chain_datasets()]
        choices = [*datasets, ("bundled sample chains", SAMPLE_SOURCE)]
        value = current if chosen_by_user or not datasets else datasets[0][1]
        return gr.update(choices=choices, value=value or SAMPLE_SOURCE)

    def dataset_warning(self, source: str | None) -> str:
        """Beside the dataset picker, before launch: why the chosen dataset may not teach safety
        (empty for the sample chains, a file, or a dataset whose report gives no reason)."""
        try:
            chosen = ChainSource.parse(source)
            return train_warning(self.services.dataset_quality(chosen.dataset_id)) if chosen.dataset_id else ""
        except (ValueError, LookupError):  # a half-typed path or a deleted dataset: launch says what is wrong
            return ""

    @user_facing
    def load_config(self, name: str) -> list[Any]:
        config = self.services.load_config(name)
        return [*form_values(config), config.to_dict()]

    @user_facing
    def preview(self, source: str, name: str, *values: Any) -> tuple[str, str]:
        *fields, base = values
        return self.services.train_preview(config_from_values(fields, base), ChainSource.parse(source), name)

    @user_facing
    def save(self, name: str, *values: Any) -> dict:
        *fields, base = values
        path = self.services.save_config(config_from_values(fields, base), name)
        gr.Info(f"Saved {path}.")
        return gr.update(choices=self.config_names(), value=name)

    def launch(self, source: str | None, run_name: str, *values: Any) -> tuple[dict, str]:
        """Check what will run, queue it, and say in one line what was queued; a problem is
        said next to the Train button (not as a red mark on every field) and nothing is queued."""
        *fields, base = values
        try:
            chain_source = self._chosen_source(source)
            config = config_from_values(fields, base)
            job_id = self.services.launch_training(config, chain_source, run_name)
        except (ValueError, LookupError) as error:
            return gr.skip(), f"**Not queued:** {error}"
        name = (run_name or "").strip() or self.services.default_run_name(config, chain_source)
        length = f"{config.train.max_steps} steps" if config.train.max_steps else f"{config.train.epochs:g} epochs"
        summary = (f"Queued **{name}** as job {job_id}: {config.method.value} on {config.model}, {length}, "
                   f"batch {config.train.batch_size}, learning rate {config.train.learning_rate:g}.")
        return self.runs(job_id), summary

    def _chosen_source(self, source: str | None) -> ChainSource:
        if not (source or "").strip():
            raise ValueError("Choose the chains to train on in 'Chains to train on' (it is empty).")
        chosen = ChainSource.parse(source)
        if chosen.dataset_id is not None and chosen.dataset_id not in {d.id for d in self.services.chain_datasets()}:
            raise LookupError(f"Dataset {chosen.dataset_id} no longer exists: choose another in 'Chains to train on'.")
        return chosen

    def default_name(self, source: str | None, *values: Any) -> dict:
        """The name field's placeholder: what the run is called when no name is typed."""
        *fields, base = values
        try:
            return gr.update(placeholder=self.services.default_run_name(config_from_values(fields, base),
                                                                        ChainSource.parse(source)))
        except (ValueError, LookupError):
            return gr.update()

    def run_choices(self) -> dict:
        """The run list only: a timer must not set the value (its input may be older than a launch)."""
        return gr.update(choices=[(f"{j.label} · {j.status.value}", j.id) for j in self.services.training_jobs()])

    def runs(self, current: int | None = None) -> dict:
        """The run list and the run to show: `current` if it exists, else the running (or newest) one."""
        update = self.run_choices()
        ids = [value for _, value in update["choices"]]
        return {**update, "value": current if current in ids else self.services.watched_training_job()}

    @user_facing
    def status(self, job: int | None) -> tuple[str, pd.DataFrame, pd.DataFrame, str]:
        if job is None:
            return progress_bar(0.0, "No training run yet: fill the form and press Train."), *metric_frames(None), ""
        m = self.services.training_monitor(int(job))
        step = f"step {m.steps[-1]}/{m.total_steps or '?'}" if m.steps else (m.message.strip() or "no step yet")
        eta = f" · ETA {m.eta_seconds:.0f} s" if m.eta_seconds is not None and m.status is JobStatus.RUNNING else ""
        loss = f" · loss {m.losses[-1]:.4f}" if m.losses else ""
        tail = " · export ready: chat with it in the Chat tab" if m.export_path else ""
        error = f" · {m.error.strip().splitlines()[0]}" if m.error and m.status is not JobStatus.SUCCEEDED else ""
        text = f"Job {m.job_id} {m.status.value} — {step} ({m.progress:.0%}){eta}{loss}{tail}{error}"
        return (progress_bar(m.progress, text), *metric_frames(m), m.log)

    @user_facing
    def new_run_from(self, job: int | None) -> list[Any]:
        if job is None:
            raise ValueError("Pick a run first: choose one in the run list.")
        config, source = self.services.run_settings(int(job))
        value = f"{DATASET_PREFIX}{source.dataset_id}" if source.dataset_id else (source.file or SAMPLE_SOURCE)
        return [*form_values(config), config.to_dict(), value, True]  # True: the source is now chosen


def build_train_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = TrainActions(services)
    start = services.load_config(DEFAULT_PRESET)
    start.model = services.default_model
    with gr.Row():
        preset = gr.Dropdown(actions.config_names(), value=DEFAULT_PRESET, label="Start from (preset or saved config)",
                             elem_id="train-preset")
        load = gr.Button("Load", elem_id="train-load")
        source = gr.Dropdown([("bundled sample chains", SAMPLE_SOURCE)], value=SAMPLE_SOURCE, allow_custom_value=True,
                             label="Chains to train on (or type a .jsonl path)", elem_id="train-source")
    dataset_warning = gr.Markdown(elem_id="train-dataset-warning")
    base = gr.State(start.to_dict())
    fields = build_form(form_values(start))
    with gr.Accordion("Equivalent YAML and command line", open=False):
        cli_view = gr.Code(language="shell", label="command line (headless twin; Save config writes the file)",
                           elem_id="train-cli", wrap_lines=True)
        yaml_view = gr.Code(language="yaml", label="config YAML", elem_id="train-yaml", max_lines=40)
    with gr.Row():
        name = gr.Textbox(DEFAULT_CONFIG_NAME, label="Config name", elem_id="train-config-name")
        save = gr.Button("Save config", elem_id="train-save")
    with gr.Row(equal_height=True):
        run_name = gr.Textbox(label="Run name (empty: the name shown in grey)", elem_id="train-run-name", scale=3)
        launch = gr.Button("Train", variant="primary", elem_id="train-launch", scale=1)
    launch_note = gr.Markdown(elem_id="train-launch-note")
    gr.Markdown("### Runs")
    with gr.Row():
        run = gr.Dropdown(label="Run", elem_id="train-run", scale=3)
        again = gr.Button("New run from this one", elem_id="train-again", scale=1)
    progress = gr.HTML(elem_id="train-progress")
    with gr.Row():
        loss = gr.LinePlot(x="step", y="loss", label="loss", title="Training loss per step", elem_id="train-loss",
                           min_width=300)
        rate = gr.LinePlot(x="step", y="learning rate", label="learning rate", title="Learning rate per step",
                           elem_id="train-lr", min_width=300)
    log = gr.Textbox(label="log (last lines)", lines=10, max_lines=10, autoscroll=True, elem_id="train-log")
    load.click(actions.load_config, preset, [*fields, base], api_name="load_config")
    preview = with_named_parameters(actions.preview, ["chain_source", "config_name"], ["base"])
    gr.on([demo.load, source.change, name.change, *(f.change for f in fields)], preview, [source, name, *fields, base],
          [yaml_view, cli_view], api_name="preview_config", show_progress="hidden", trigger_mode="always_last")
    save.click(with_named_parameters(actions.save, ["config_name"], ["base"]), [name, *fields, base], preset,
               api_name="save_config")
    launch.click(with_named_parameters(actions.launch, ["chain_source", "run_name"], ["base"]),
                 [source, run_name, *fields, base], [run, launch_note], api_name="train")
    gr.on([demo.load, source.change, *(f.change for f in fields)],
          with_named_parameters(actions.default_name, ["chain_source"], ["base"]), [source, *fields, base], run_name,
          api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    gr.on([source.change, tab.select], actions.dataset_warning, source, dataset_warning, api_name="dataset_warning",
          show_progress="hidden")
    chosen_by_user = gr.State(False)
    source.input(lambda: True, None, chosen_by_user, api_visibility="private")
    gr.on([demo.load, tab.select], actions.chain_sources, [source, chosen_by_user], source, api_visibility="private")
    gr.on([demo.load, tab.select], actions.runs, run, run, api_name="training_runs", show_progress="hidden")
    gr.Timer(5.0).tick(actions.run_choices, None, run, api_visibility="private", show_progress="hidden")
    gr.on([run.change, gr.Timer(2.0).tick], actions.status, run, [progress, loss, rate, log], api_name="training_status",
          show_progress="hidden")
    again.click(actions.new_run_from, run, [*fields, base, source, chosen_by_user], api_name="new_run_from")
