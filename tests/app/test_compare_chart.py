"""The loss comparison charts (Evaluate tab's "Compare runs", Runs tab): what the plot component
sends the browser must colour by run as a category, one series and one colour per run, and the
empty chart before anything is chosen must carry the same types.

Why through LinePlot.postprocess: that is where Gradio turns the frame into the column types the
browser chart uses; a run column typed as a number is drawn as a colour gradient with no legend."""
from __future__ import annotations

import gradio as gr
import pytest

from app.services import Services
from app.tabs.evaluate import EvaluateActions
from app.tabs.runs import RunsActions
from jobs.lifecycle import new_job
from jobs.queue import JobQueue
from jobs.records import JobKind, JobStatus, Metric, TrainingRun


@pytest.fixture
def services(tmp_path) -> Services:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield Services(queue, default_model="tiny-model")
    queue.engine.dispose()


def _run_with_losses(services: Services, name: str, losses: list[float]) -> int:
    """A finished training job named `name` (a number, the case that drew a gradient) with its losses."""
    with services.queue.sessions.begin() as session:
        job = new_job(session, services.home, JobKind.TRAIN, {"mote": {"train": {"max_steps": len(losses)}}})
        job.name, job.status, job.run_dir = name, JobStatus.SUCCEEDED, f"/runs/{name}"
        run = TrainingRun(job_id=job.id, run_dir=f"/runs/{name}", method="mote", base_model="tiny",
                          total_steps=len(losses))
        session.add(run)
        session.flush()
        session.add_all(Metric(run_id=run.id, step=step, loss=loss) for step, loss in enumerate(losses, start=1))
        return job.id


def _plot(frame) -> dict:
    chart = gr.LinePlot(x="step", y="loss", color="run")
    return chart.postprocess(frame).model_dump()


def test_evaluate_compare_chart_has_one_nominal_series_and_one_colour_per_run(services):
    first = _run_with_losses(services, "1", [2.0, 1.5, 1.0])
    second = _run_with_losses(services, "2", [3.0, 2.5])
    actions = EvaluateActions(services.evaluation)
    frame, _ = actions.compare([second, first])
    plot = _plot(frame)
    assert plot["datatypes"] == {"run": "nominal", "step": "quantitative", "loss": "quantitative"}
    run_column = plot["columns"].index("run")
    series = list(dict.fromkeys(row[run_column] for row in plot["data"]))
    assert len(series) == 2 and all(isinstance(name, str) for name in series)
    assert list(frame["run"].cat.categories) == series  # the order chosen: second run first
    assert series[0].endswith(f"(job {second})") and series[1].endswith(f"(job {first})")
    colours = actions.curve_colours([second, first])["color_map"]
    assert list(colours) == series and len(set(colours.values())) == 2


def test_an_empty_comparison_already_has_the_chart_types(services):
    frame, _ = EvaluateActions(services.evaluation).compare([])
    assert _plot(frame)["datatypes"] == {"run": "nominal", "step": "quantitative", "loss": "quantitative"}
    assert EvaluateActions(services.evaluation).curve_colours([])["color_map"] == {}


def test_runs_tab_compare_chart_is_typed_the_same_way(services):
    first = _run_with_losses(services, "10", [1.0, 0.5])
    frame, *_ = RunsActions(services).compare([first])
    assert _plot(frame)["datatypes"]["run"] == "nominal"
    assert list(RunsActions(services).curve_colours([first])["color_map"]) == list(frame["run"].cat.categories)
