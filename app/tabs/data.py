"""Data tab: question sets (show, import with preview and rejected rows), chain generation, and
the chain browser (the dataset's data-quality report and flagged-chain policy, a column per
stage, filters, flag / edit / delete, export)."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.chain_browser import ANY, FlagChoice, chain_filter
from app.errors import user_facing
from app.services import Services
from app.tabs.data_quality import quality_panel
from app.tables import chains_table, questions_table, rejected_table
from core.config import FlaggedPolicy
from core.data.questions import QuestionKind
from core.stages import CHAIN_STAGES, ChainShape, Stage
from jobs.kinds import JobKind

FLAG_CHOICES = [c.value for c in FlagChoice]
IMPORT_TYPES = [".jsonl", ".json", ".csv", ".tsv", ".parquet"]
#: row id, chain id, shape, flagged, kind, category, question, analysis, guidance, answer, verdict, edited
#: Together about 1330 px: every column, answer, verdict and edited included, fits a 1400 px window.
CHAIN_COLUMN_WIDTHS = ["48px", "80px", "110px", "56px", "64px", "80px", "170px", "200px", "200px", "200px", "64px", "56px"]
PAGE_SIZE = 100


class DataActions:
    """The Data tab's event handlers (each one a named API endpoint)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def set_names(self) -> list[str]:
        return [ref.name for ref in self.services.question_sets()]

    @user_facing
    def question_set(self, question_set: str) -> pd.DataFrame:
        return questions_table(self.services.question_set_rows(question_set))

    @user_facing
    def preview_import(self, file: str | None, question_column: str) -> tuple[str, pd.DataFrame, pd.DataFrame]:
        if not file:
            raise ValueError("Choose a file to preview first (.jsonl, .json, .csv, .tsv or .parquet).")
        report = self.services.preview_import(file, question_column)
        return report.summary(), questions_table(report.questions), rejected_table(report)

    def import_questions(self, file: str | None, name: str, question_column: str) -> tuple[str, dict]:
        """Import, and say the result under the import form. A failed import says why there,
        once, and leaves the question-set picker as it was (no error mark on a control that
        did not fail, so no gr.Error: it would mark every output)."""
        if not file:
            return "**Not imported:** choose a file first (.jsonl, .json, .csv, .tsv or .parquet).", gr.skip()
        try:
            ref, report = self.services.import_question_set(file, name, question_column)
        except (ValueError, LookupError, FileNotFoundError) as error:
            return f"**Not imported:** {error}", gr.skip()
        return f"Saved as **{ref.name}**: {report.summary()}", gr.update(choices=self.set_names(), value=ref.name)

    @user_facing
    def generate_chains(self, question_set: str, model: str, limit: float | None, analysis_tokens: float,
                        guidance_tokens: float, answer_tokens: float, check_tokens: float, batch_size: float,
                        temperature: float, flagged_policy: str, dataset_name: str) -> str:
        settings = {"analysis_tokens": int(analysis_tokens), "guidance_tokens": int(guidance_tokens),
                    "answer_tokens": int(answer_tokens), "check_tokens": int(check_tokens),
                    "batch_size": int(batch_size), "temperature": float(temperature), "flagged_policy": flagged_policy}
        job_id = self.services.launch_generation(question_set, model=model.strip(), limit=int(limit) if limit else None,
                                                 dataset_name=dataset_name, settings=settings)
        gr.Info(f"Generate job {job_id} queued.")
        return self.generation_status()

    def generation_status(self) -> str:
        rows = self.services.jobs(kind=JobKind.GENERATE)
        if not rows:
            return "No generation yet: pick a question set and press **Generate chains**."
        job = rows[0]
        return f"Latest generation: job {job.id} **{job.status.value}** ({job.progress:.0%}) {job.note}"

    def dataset_choices(self) -> dict:
        """The dataset list only: a timer must not set the value (its input may be older than a pick)."""
        return gr.update(choices=[(d.label, d.id) for d in self.services.chain_datasets()])

    def chain_datasets(self, current: int | None) -> tuple[dict, int]:
        """The dataset list, the one to show (`current` if it exists, else the newest) and the
        newest finished one now (what follow_finished compares against)."""
        update = self.dataset_choices()
        ids = [value for _, value in update["choices"]]
        return {**update, "value": current if current in ids else (ids[0] if ids else None)}, self._newest_finished()

    def follow_finished(self, seen: int | None) -> tuple[dict, int]:
        """The dataset list; when a generation has finished since the page last looked, its
        dataset is shown (the page promises its chains "appear in the browser below")."""
        update, newest = self.dataset_choices(), self._newest_finished()
        if newest > (seen or 0):
            return {**update, "value": newest}, newest
        return update, seen or 0

    def _newest_finished(self) -> int:
        finished = {job.id for job in self.services.jobs(kind=JobKind.GENERATE) if job.status.finished}
        return max((d.id for d in self.services.chain_datasets() if d.job_id in finished), default=0)

    @user_facing
    def dataset_quality(self, dataset: int | None) -> str:
        """The selected dataset's data-quality report: does it teach safety, before training on it?"""
        if dataset is None:
            return ""
        return quality_panel(self.services.dataset_quality(int(dataset)))

    @user_facing
    def browse_chains(self, dataset: int | None, shape: str, flag: str, category: str, kind: str,
                      page: float | None = 1) -> tuple:
        """One page of the matching chains, the filter menus, and how many match in all."""
        if dataset is None:
            return chains_table([]), gr.update(), gr.update(), "No chain dataset yet: generate chains above."
        views = self.services.chains(int(dataset), chain_filter(shape, flag, category, kind), limit=None)
        pages = max(1, -(-len(views) // PAGE_SIZE))
        current = min(max(1, int(page or 1)), pages)
        facets = self.services.chain_facets(int(dataset))
        kinds = sorted({k.value for k in (*facets.kinds, *QuestionKind)})
        shown = views[(current - 1) * PAGE_SIZE: current * PAGE_SIZE]
        count = f"{len(views)} chains match · page {current} of {pages} ({PAGE_SIZE} per page)"
        return (chains_table(shown), gr.update(choices=[ANY, *facets.categories]), gr.update(choices=[ANY, *kinds]),
                count)

    @user_facing
    def show_chain(self, chain: float | None) -> tuple[str, str, str, str]:
        if not chain:
            return "", "", "", ""
        record = self.services.chain(_chain_id(chain)).record
        flag = " · **flagged**" if record.flagged else ""
        verdict = record.last_verdict.value if record.last_verdict else "-"
        head = f"**{record.id}** · {record.shape.value}{flag} · verdict {verdict}\n\n> {record.question}"
        return head, *(record.stage_text(stage) or "" for stage in CHAIN_STAGES)

    @user_facing
    def flag_chain(self, chain: float | None) -> None:
        view = self.services.chain(_chain_id(chain))
        self.services.flag_chain(view.id, not view.record.flagged)
        gr.Info(f"Chain {view.record.id} {'unflagged' if view.record.flagged else 'flagged'}.")

    @user_facing
    def edit_chain(self, chain: float | None, analysis: str, guidance: str, answer: str) -> None:
        texts = {Stage.ANALYSIS: analysis, Stage.GUIDANCE: guidance, Stage.ANSWER: answer}
        record = self.services.edit_chain(_chain_id(chain), texts).record
        gr.Info(f"Chain {record.id} saved ({record.shape.value}).")

    @user_facing
    def delete_chain(self, chain: float | None) -> None:
        self.services.delete_chain(_chain_id(chain))
        gr.Info("Chain deleted from the dataset (training no longer sees it).")

    @user_facing
    def export_chains(self, dataset: int | None) -> str:
        if dataset is None:
            raise ValueError("Pick a chain dataset to export first.")
        return str(self.services.export_chains(int(dataset)))


def _chain_id(chain: float | None) -> int:
    if not chain:  # an empty number field reads as 0: no row is selected
        raise ValueError("Select a chain first: click a row of the chain table.")
    return int(chain)


def build_data_tab(services: Services, demo: gr.Blocks, tab: gr.Tab) -> None:
    actions = DataActions(services)
    chosen = _question_set_section(actions, demo)
    _generation_section(actions, services, chosen)
    _chain_browser_section(actions, demo, tab)


def _question_set_section(actions: DataActions, demo: gr.Blocks) -> gr.Dropdown:
    gr.Markdown("### Question sets")
    with gr.Row():
        chosen = gr.Dropdown(actions.set_names(), value="train", label="Question set", elem_id="data-set", scale=3)
        show = gr.Button("Show questions", elem_id="data-show-set", scale=1)
    questions = gr.Dataframe(label="Questions (first 200)", wrap=True, max_height=260, interactive=False)
    with gr.Accordion("Import a question set", open=False, elem_id="import-accordion"):
        upload = gr.File(label="File", file_types=IMPORT_TYPES, elem_id="import-file")
        with gr.Row():
            column = gr.Textbox(label="Question column (empty: auto-detect)", elem_id="import-column")
            name = gr.Textbox(label="Name of the new set", elem_id="import-name")
        with gr.Row():
            preview = gr.Button("Preview", elem_id="import-preview")
            do_import = gr.Button("Import", variant="primary", elem_id="import-save")
        summary = gr.Markdown(elem_id="import-summary")
        with gr.Row():
            kept = gr.Dataframe(label="Questions to import", wrap=True, max_height=240, interactive=False)
            rejected = gr.Dataframe(label="Rejected rows", wrap=True, max_height=240, interactive=False,
                                    elem_id="import-rejected")
    gr.on([show.click, chosen.change, demo.load], actions.question_set, chosen, questions, api_name="question_set")
    preview.click(actions.preview_import, [upload, column], [summary, kept, rejected], api_name="preview_import")
    do_import.click(actions.import_questions, [upload, name, column], [summary, chosen], api_name="import_questions")
    return chosen


def _generation_section(actions: DataActions, services: Services, chosen: gr.Dropdown) -> None:
    defaults = services.generate_defaults()
    gr.Markdown("### Generate chains\nThe model answers each question stage by stage and checks its own answer "
                "(adaptive length). The job runs in the background; its chains appear in the browser below.")
    with gr.Row():
        model = gr.Textbox(services.default_model, label="Model (bundled alias, local folder or hub id)", elem_id="gen-model")
        limit = gr.Number(8, precision=0, minimum=1, label="Questions (empty: the whole set)", elem_id="gen-limit")
        name = gr.Textbox(label="Dataset name (optional)", elem_id="gen-name")
    with gr.Row():
        tokens = [gr.Number(getattr(defaults, f"{stage}_tokens"), precision=0, minimum=1, maximum=8192,
                            label=f"{stage} tokens", elem_id=f"gen-{stage}-tokens")
                  for stage in ("analysis", "guidance", "answer", "check")]
    with gr.Row():
        batch = gr.Number(defaults.batch_size, precision=0, minimum=1, maximum=1024, label="batch size")
        temperature = gr.Slider(0.0, 5.0, defaults.temperature, step=0.05, label="temperature")
        policy = gr.Dropdown([p.value for p in FlaggedPolicy], value=defaults.flagged_policy.value,
                             label="flagged chains (still unsafe after all stages)", elem_id="gen-policy")
    go = gr.Button("Generate chains", variant="primary", elem_id="gen-launch")
    status = gr.Markdown(actions.generation_status(), elem_id="gen-status")
    go.click(actions.generate_chains, [chosen, model, limit, *tokens, batch, temperature, policy, name], status,
             api_name="generate_chains")
    gr.on([gr.Timer(2.0).tick], actions.generation_status, None, status, api_name="generation_status",
          show_progress="hidden")


def _chain_browser_section(actions: DataActions, demo: gr.Blocks, tab: gr.Tab) -> None:
    gr.Markdown("### Chain browser")
    with gr.Row():
        dataset = gr.Dropdown(label="Chain dataset", elem_id="chain-dataset", scale=3)
        refresh = gr.Button("Refresh", elem_id="chain-refresh", scale=1)
    with gr.Accordion("Data-quality report of this dataset", open=True, elem_id="chain-quality-accordion"):
        quality = gr.Markdown(elem_id="chain-quality")
    with gr.Row():
        shape = gr.Dropdown([ANY, *(s.value for s in ChainShape)], value=ANY, label="shape", elem_id="filter-shape")
        flag = gr.Dropdown(FLAG_CHOICES, value=ANY, label="flag", elem_id="filter-flag")
        category = gr.Dropdown([ANY], value=ANY, label="category", elem_id="filter-category")
        kind = gr.Dropdown([ANY], value=ANY, label="kind", elem_id="filter-kind")
    with gr.Row(equal_height=True):
        count = gr.Markdown(elem_id="chain-count")
        page = gr.Number(1, label="page", precision=0, minimum=1, elem_id="chain-page", min_width=90, scale=0)
    table = gr.Dataframe(label="Chains (one column per stage; click a row to edit it)", wrap=True, max_height=420,
                         interactive=False, elem_id="chain-table", column_widths=CHAIN_COLUMN_WIDTHS)
    selected = gr.Number(None, label="Selected chain (row id; click a row)", precision=0, minimum=0,
                         elem_id="chain-selected", placeholder="click a row of the table")
    header = gr.Markdown(elem_id="chain-header")
    with gr.Row():
        stages = [gr.Textbox(label=label, lines=6, elem_id=f"chain-{name}") for name, label in
                  (("analysis", "Question Analysis"), ("guidance", "Answer Guidance"), ("answer", "Safe Answer"))]
    with gr.Row():
        flag_button = gr.Button("Flag / unflag", elem_id="chain-flag")
        save = gr.Button("Save edits", variant="primary", elem_id="chain-save")
        delete = gr.Button("Delete chain", variant="stop", elem_id="chain-delete")
        export = gr.Button("Export kept chains (JSONL)", elem_id="chain-export")
    exported = gr.File(label="Exported chains", height=90, elem_id="chain-exported")
    filters = [dataset, shape, flag, category, kind]
    seen = gr.State(0)
    gr.on([refresh.click, demo.load, tab.select], actions.chain_datasets, dataset, [dataset, seen],
          api_name="chain_datasets", show_progress="hidden")
    gr.Timer(5.0).tick(actions.follow_finished, seen, [dataset, seen], api_visibility="private", show_progress="hidden")
    browse = {"fn": actions.browse_chains, "inputs": [*filters, page], "outputs": [table, category, kind, count]}
    gr.on([dataset.change, shape.change, flag.change, category.change, kind.change, page.change, refresh.click], **browse,
          api_name="browse_chains")
    gr.on([dataset.change, refresh.click], actions.dataset_quality, dataset, quality, api_name="dataset_quality",
          show_progress="hidden")
    table.select(_row_id, None, selected, api_visibility="private")
    selected.change(actions.show_chain, selected, [header, *stages], api_name="show_chain")
    flag_button.click(actions.flag_chain, selected, None, api_name="flag_chain").then(**browse, api_visibility="private").then(
        actions.show_chain, selected, [header, *stages], api_visibility="private")  # the header says flagged or not
    save.click(actions.edit_chain, [selected, *stages], None, api_name="edit_chain").then(**browse, api_visibility="private")
    delete.click(actions.delete_chain, selected, None, api_name="delete_chain").then(**browse, api_visibility="private")
    export.click(actions.export_chains, dataset, exported, api_name="export_chains")


def _row_id(event: gr.SelectData) -> int:
    return int(event.row_value[0])
