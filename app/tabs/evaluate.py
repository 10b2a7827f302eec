"""Evaluate tab: models x question sets x judges -> an evaluate job; its comparison tables,
charts and per-sample drill-down; loss curves and settings of runs side by side; and the quick
pipeline (generate -> train MoTE and LoRA -> evaluate) and the CPU study (assets/studies/cpu.yaml)
in one click each."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.chart_images import gallery_items
from app.errors import user_facing
from app.evaluation_services import JOB_PREFIX, EvaluationServices
from app.markdown_text import without_autolinks
from app.services import Services
from app.tables import loss_curve_colours, loss_curves_table

JUDGES = ["heuristic refusal detector", "local LLM judge", "HTTP LLM judge", "local LLM judge, verdict first (small models)"]


class EvaluateActions:
    def __init__(self, services: EvaluationServices) -> None:
        self.services = services

    def choices(self) -> tuple[dict, dict, dict, dict]:
        subjects = self.services.evaluation_subjects()
        runs = [(label, int(spec[len(JOB_PREFIX):])) for label, spec in subjects if spec.startswith(JOB_PREFIX)]
        return (gr.update(choices=subjects), gr.update(choices=self.services.evaluation_sets()),
                self.job_choices(), gr.update(choices=runs))

    def job_choices(self) -> dict:
        """Evaluate jobs labelled with their status now; no value, so a timer never undoes a pick."""
        return gr.update(choices=[(f"job {j.id} · {j.status.value}", j.id) for j in self.services.evaluation_jobs()])

    @user_facing
    def launch(self, subjects: list[str], sets: list[str], limit: float, jailbreak_prompts: float, max_stage_tokens: float,
               judges: list[str], judge_model: str, judge_url: str, judge_model_name: str, judge_key_env: str,
               min_stage_tokens: float = 1) -> dict:
        chosen = []
        if JUDGES[0] in judges:
            chosen.append({"kind": "heuristic"})
        if JUDGES[1] in judges:
            chosen.append({"kind": "local", "model": judge_model or self.services.default_model, "max_new_tokens": 48})
        if JUDGES[3] in judges:
            chosen.append({"kind": "local", "model": judge_model or self.services.default_model, "verdict_first": True,
                           "max_new_tokens": 4})
        if JUDGES[2] in judges:
            chosen.append({"kind": "http", "url": judge_url, "model_name": judge_model_name, "api_key_env": judge_key_env or None})
        if not chosen:
            raise ValueError("Pick at least one judge.")
        settings = {"limit": int(limit) if limit else None, "jailbreak_prompts": int(jailbreak_prompts or 0),
                    "max_stage_tokens": int(max_stage_tokens), "min_stage_tokens": int(min_stage_tokens or 0)}
        job_id = self.services.launch_evaluation(subjects, sets, settings, chosen)
        gr.Info(f"Evaluate job {job_id} queued; pick it under Results when it has finished.")
        return {**self.job_choices(), "value": job_id}

    @user_facing
    def quick_pipeline(self) -> str:
        job_id = self.services.launch_quick_pipeline()
        return f"Quick pipeline queued as job {job_id}: follow its stages in the Jobs tab."

    @user_facing
    def cpu_study(self) -> str:
        job_id = self.services.launch_cpu_study()
        return (f"CPU study queued as job {job_id} (sweep -> MoTE, LoRA, SFT, MoTE without the shared expert -> "
                "evaluate; about 3 hours on 2 cores): follow its stages in the Jobs tab.")

    @user_facing
    def result(self, job: int | None, current_judge: str | None = None) -> tuple[str, list[tuple[str, str]], dict]:
        if job is None:
            return "No evaluation picked yet.", [], gr.update(choices=[])
        report = self.services.evaluation_report(int(job))
        head = f"**Job {report.job_id} {report.status.value}** — {report.message}\n\n"
        keep = current_judge if current_judge in report.judges else (report.judges[0] if report.judges else None)
        judges = gr.update(choices=list(report.judges), value=keep)
        charts = gallery_items(report.charts)
        body = head + (report.markdown or "The report appears here when the job has finished.")
        return without_autolinks(body), charts, judges

    @user_facing
    def samples(self, job: int | None, judge: str | None) -> pd.DataFrame:
        rows = self.services.evaluation_samples(int(job), judge) if job is not None else []
        return pd.DataFrame(rows)

    @user_facing
    def validation(self, judge: str | None) -> str:
        return without_autolinks(self.services.judge_validation(judge))

    @user_facing
    def validate_heuristic(self) -> str:
        return without_autolinks(self.services.validate_heuristic_judge())

    @user_facing
    def compare(self, jobs: list[int]) -> tuple[pd.DataFrame, str]:
        points, diff = self.services.compare_runs([int(j) for j in jobs or []])
        return loss_curves_table(points), diff

    def curve_colours(self, jobs: list[int] | None) -> dict:
        """The chart's colour map, sent after its data, as in the Runs tab (RunsActions.curve_colours):
        Gradio builds the colour scale only when the map changes, from the data it then holds."""
        points, _ = self.services.compare_runs([int(j) for j in jobs or []])
        return gr.update(color_map=loss_curve_colours(points))


def build_evaluate_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = EvaluateActions(services.evaluation)
    with gr.Row():
        subjects = gr.Dropdown(multiselect=True, label="Models to evaluate", elem_id="eval-subjects", scale=2)
        sets = gr.Dropdown(multiselect=True, label="Question sets (empty: the bundled eval sets)", elem_id="eval-sets", scale=2)
    with gr.Row():
        limit = gr.Number(8, label="questions per set", minimum=1, precision=0, elem_id="eval-limit")
        jailbreaks = gr.Number(2, label="harmful questions x every jailbreak wrapper", minimum=0, precision=0,
                               elem_id="eval-jailbreaks")
        tokens = gr.Number(48, label="tokens per stage", minimum=1, maximum=4096, precision=0, elem_id="eval-tokens")
        shortest = gr.Number(1, label="min tokens per stage (a stage cannot close sooner)", minimum=0, maximum=256,
                             precision=0, elem_id="eval-min-tokens")
    judges = gr.CheckboxGroup(JUDGES, value=JUDGES[:1], label="Judges", elem_id="eval-judges")
    with gr.Accordion("LLM judge settings", open=False), gr.Row():
        judge_model = gr.Textbox(services.default_model, label="local judge: model folder or alias")
        url = gr.Textbox(label="HTTP judge: base URL (ends in /v1)")
        name = gr.Textbox(label="HTTP judge: model name")
        key = gr.Textbox(label="HTTP judge: API key variable (name only)")
    with gr.Row():
        launch = gr.Button("Evaluate", variant="primary", elem_id="eval-launch")
        quick = gr.Button("Run the quick pipeline (generate -> MoTE + LoRA -> evaluate)", elem_id="eval-quick")
        study = gr.Button("Run the CPU study", elem_id="eval-cpu-study")
    quick_note = gr.Markdown(elem_id="eval-quick-note")
    gr.Markdown("### Results")
    job = gr.Dropdown(label="Evaluate job", elem_id="eval-job")
    report = gr.Markdown(elem_id="eval-report")
    charts = gr.Gallery(label="charts (95% bootstrap intervals)", columns=4, height="auto", elem_id="eval-charts")
    judge = gr.Dropdown(label="Drill-down: judge", elem_id="eval-judge")
    samples = gr.Dataframe(label="per-sample drill-down", wrap=True, max_height=420, elem_id="eval-samples")
    with gr.Accordion("Judge validation", open=False):
        validation = gr.Markdown(elem_id="eval-judge-validation")
        validate = gr.Button("Validate the heuristic judge", size="sm", elem_id="eval-validate-heuristic")
    gr.Markdown("### Compare runs")
    runs = gr.Dropdown(multiselect=True, label="Training jobs", elem_id="eval-compare-runs")
    curves = gr.LinePlot(x="step", y="loss", color="run", label="loss", elem_id="eval-curves")
    diff = gr.Markdown(elem_id="eval-diff")
    gr.on([demo.load, tab.select], actions.choices, None, [subjects, sets, job, runs], api_name="evaluation_choices")
    launch.click(actions.launch, [subjects, sets, limit, jailbreaks, tokens, judges, judge_model, url, name, key, shortest], job,
                 api_name="evaluate")
    quick.click(actions.quick_pipeline, None, quick_note, api_name="quick_pipeline")
    study.click(actions.cpu_study, None, quick_note, api_name="cpu_study")
    gr.Timer(5.0).tick(actions.job_choices, None, job, api_visibility="private", show_progress="hidden")
    gr.on([job.change, gr.Timer(5.0).tick], actions.result, [job, judge], [report, charts, judge], api_name="evaluation_result",
          show_progress="hidden")
    gr.on([judge.change], actions.samples, [job, judge], samples, api_name="evaluation_samples")
    gr.on([judge.change], actions.validation, judge, validation, api_name="judge_validation")
    validate.click(actions.validate_heuristic, None, validation, api_name="validate_heuristic_judge")
    runs.change(actions.compare, runs, [curves, diff], api_name="compare_runs").then(
        actions.curve_colours, runs, curves, api_visibility="private", show_progress="hidden")
