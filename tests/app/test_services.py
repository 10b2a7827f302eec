"""The services facade and the modules behind it, without a browser: question sets, the chain
browser, the training form (ranges checked against core), previews, configs, job views, the
system report, chat subjects and the launcher (the `ui` verb's flags: tests/cli/test_ui_verb.py)."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

import launch
from app.chain_browser import chain_filter
from app.launcher import ServeOptions
from app.services import Services
from app.system_info import system_report
from app.train_form import (
    FIELDS,
    ChainSource,
    FieldKind,
    config_from_values,
    form_values,
    with_named_parameters,
)
from cli.options import mote_config
from core.data.chains import load_chains_jsonl
from core.config import MoteConfig, load_preset, preset_names
from core.data.questions import QuestionKind
from core.stages import ChainShape, Stage
from jobs.gpus import GpuInfo, GpuProcess, GpuStatus
from jobs.lifecycle import new_job
from jobs.logs import log_tail
from jobs.queue import JobQueue
from jobs.records import Chain, ChainDataset, Job, JobKind, JobStatus, TrainingRun
from jobs.specs import JobConfigError
from jobs.views import ChainFacets, ChainFilter, JobSort
from tests.app.conftest import chain_record, write_questions_csv
from tests.hub_cache import use_hub_cache


@pytest.fixture
def services(tmp_path) -> Services:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield Services(queue, default_model="tiny-model")
    queue.engine.dispose()


@pytest.fixture
def dataset(services) -> int:
    """A stored chain dataset of five chains: every shape, flagged and not, two kinds and categories."""
    with services.queue.sessions.begin() as session:
        job = new_job(session, services.home, JobKind.GENERATE, {})
        row = ChainDataset(name="demo set", job_id=job.id, path=str(services.home / "runs" / "demo"))
        session.add(row)
        session.flush()
        records = [chain_record("c1", "answer"), chain_record("c2", "analysis->answer", flagged=True),
                   chain_record("c3", "analysis->guidance->answer"),
                   chain_record("c4", "answer", kind="helpful", category="cooking"),
                   chain_record("c5", "analysis->answer", kind="benign", category="pets")]
        session.add_all(Chain(dataset_id=row.id, chain_id=r["id"], shape=r["shape"], flagged=r["flagged"], record=r)
                        for r in records)
        return row.id


# ---- question sets ---------------------------------------------------------------------------

def test_preview_lists_kept_questions_and_rejected_rows_with_reasons(services, tmp_path):
    report = services.preview_import(write_questions_csv(tmp_path / "q.csv"))
    assert [q.id for q in report.questions] == ["a1", "a2", "a4", "a7"]
    reasons = {r.row: r.reason for r in report.rejected}
    assert set(reasons) == {4, 6, 7}
    assert "empty question" in reasons[4] and "duplicate" in reasons[6] and "invalid kind" in reasons[7]
    assert services.question_sets()[0].bundled and "my-set" not in [s.name for s in services.question_sets()]


def test_import_saves_a_set_that_generation_can_use(services, tmp_path, monkeypatch):
    use_hub_cache(monkeypatch, tmp_path / "hub", "tiny-model")  # the default model, as if downloaded
    ref, report = services.import_question_set(write_questions_csv(tmp_path / "q.csv"), "my-set")
    assert not ref.bundled and Path(ref.source).is_file() and len(report.rejected) == 3
    assert "my-set" in [s.name for s in services.question_sets()]
    assert [q.id for q in services.question_set_rows("my-set")] == ["a1", "a2", "a4", "a7"]
    job_id = services.launch_generation("my-set", limit=2, settings={"answer_tokens": 4})
    job = services.queue.get(job_id)
    assert job.status is JobStatus.QUEUED and job.config["questions"] == ref.source
    assert job.config["model"] == "tiny-model" and job.config["generate"]["answer_tokens"] == 4


@pytest.mark.parametrize("name, message", [("train", "bundled set"), ("bad name!", "not usable"), ("", "not usable")])
def test_import_refuses_unusable_names(services, tmp_path, name, message):
    with pytest.raises(ValueError, match=message):
        services.import_question_set(write_questions_csv(tmp_path / "q.csv"), name)


def test_import_of_a_file_with_no_usable_row_says_why(services, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text('{"question": ""}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="No usable question.*row 1 empty question"):
        services.import_question_set(path, "empty")


def test_generation_of_an_unknown_set_names_the_known_ones(services):
    with pytest.raises(LookupError, match="no question set named 'nope'.*train"):
        services.launch_generation("nope")


# ---- chain browser ---------------------------------------------------------------------------

def test_chain_filters_by_shape_flag_category_and_kind(services, dataset):
    ids = lambda **f: [v.record.id for v in services.chains(dataset, ChainFilter(**f))]
    assert ids() == ["c1", "c2", "c3", "c4", "c5"]
    assert ids(shape=ChainShape.ANSWER_ONLY) == ["c1", "c4"]
    assert ids(flagged=True) == ["c2"] and ids(flagged=False) == ["c1", "c3", "c4", "c5"]
    assert ids(category="pets") == ["c5"] and ids(kind=QuestionKind.HELPFUL) == ["c4"]
    assert ids(shape=ChainShape.ANALYSIS_ANSWER, kind=QuestionKind.HARMFUL) == ["c2"]
    assert services.chain_facets(dataset) == ChainFacets(("cooking", "crime", "pets"), tuple(sorted(QuestionKind)))
    full = next(v.record for v in services.chains(dataset) if v.record.id == "c3")
    assert [full.analysis, full.guidance, full.answer] == ["analysis of c3", "guidance of c3", "answer of c3"]
    assert full.kind is QuestionKind.HARMFUL and full.last_verdict.value == "safe"
    summary = services.chain_datasets()[0]
    assert (summary.kept, summary.flagged, summary.dropped) == (5, 1, 0)


def test_flag_edit_and_delete_change_what_training_reads(services, dataset):
    from jobs.results import chain_records

    first = services.chains(dataset)[0]
    assert services.flag_chain(first.id, True).record.flagged
    edited = services.edit_chain(first.id, {Stage.ANALYSIS: "it asks for harm", Stage.ANSWER: "I can't help with that."})
    record = edited.record
    assert record.shape is ChainShape.ANALYSIS_ANSWER and record.edited and record.analysis == "it asks for harm"
    services.delete_chain(services.chains(dataset)[1].id)
    with services.queue.sessions() as session:
        kept = chain_records(session, dataset)
    assert [r["id"] for r in kept] == ["c1", "c3", "c4", "c5"]
    assert kept[0]["answer"] == "I can't help with that." and kept[0]["flagged"] is True
    assert services.chain_datasets()[0].dropped == 1


def test_an_edit_that_breaks_the_chain_is_refused_and_nothing_changes(services, dataset):
    chain = services.chains(dataset, ChainFilter(shape=ChainShape.FULL))[0]
    with pytest.raises(ValueError, match="no answer stage.*Fill in the Safe Answer"):
        services.edit_chain(chain.id, {Stage.ANSWER: "  "})
    assert services.chain(chain.id) == chain
    with pytest.raises(LookupError, match="no chain 999"):
        services.flag_chain(999, True)


def test_the_browser_menus_become_a_typed_filter_and_unknown_words_are_named():
    assert chain_filter("any", "any", "any", "any") == ChainFilter()
    assert chain_filter("answer", "not flagged", "pets", "benign") == ChainFilter(
        ChainShape.ANSWER_ONLY, False, "pets", QuestionKind.BENIGN)
    with pytest.raises(ValueError, match="'spiral' is not a chain shape: use 'any' or one of answer"):
        chain_filter(shape="spiral")


def test_export_writes_the_kept_chains_as_trainable_jsonl(services, dataset):
    services.delete_chain(services.chains(dataset)[0].id)
    path = services.export_chains(dataset)
    chains = load_chains_jsonl(path)
    assert [c.id for c in chains] == ["c2", "c3", "c4", "c5"]
    assert chains[1].shape.value == "analysis->guidance->answer"


# ---- training form -----------------------------------------------------------------------------

def _set(config: dict, path: str, value) -> dict:
    *parents, leaf = path.split(".")
    target = config
    for key in parents:
        target = target[key]
    target[leaf] = value
    return config


@pytest.mark.parametrize("spec", [s for s in FIELDS if s.kind in (FieldKind.INT, FieldKind.FLOAT)],
                         ids=lambda s: s.path)
def test_every_range_the_form_shows_is_the_one_core_enforces(spec):
    assert spec.minimum is not None, f"{spec.path}: the form shows no range"
    base = MoteConfig().to_dict()
    if spec.path in ("train.batch_size", "train.micro_batch_size"):  # one must divide the other
        base["train"]["batch_size"] = base["train"]["micro_batch_size"] = 1
    for inside in [v for v in (spec.minimum, spec.maximum) if v is not None]:
        MoteConfig.from_dict(_set(base, spec.path, inside))
    step = 1 if spec.kind is FieldKind.INT else max(abs(spec.minimum) * 1e-3, 1e-9)
    with pytest.raises(ValueError, match=spec.path.split(".")[-1]):
        MoteConfig.from_dict(_set(base, spec.path, spec.minimum - step))
    if spec.maximum is not None:
        with pytest.raises(ValueError, match=spec.path.split(".")[-1]):
            MoteConfig.from_dict(_set(base, spec.path, spec.maximum + step))


@pytest.mark.parametrize("preset", preset_names())
def test_form_values_round_trip_every_preset(preset):
    config = load_preset(preset)
    assert config_from_values(form_values(config), config.to_dict()) == config


def test_form_keeps_settings_it_does_not_show_and_names_bad_fields():
    base = MoteConfig().to_dict()
    base["data"]["system_prompt"] = "Be careful."
    values = form_values(MoteConfig.from_dict(base))
    index = {s.path: i for i, s in enumerate(FIELDS)}
    values[index["train.max_steps"]] = None
    values[index["experts.target_modules"]] = "q_proj, v_proj"
    config = config_from_values(values, base)
    assert config.data.system_prompt == "Be careful." and config.train.max_steps is None
    assert config.experts.target_modules == ["q_proj", "v_proj"]
    values[index["train.batch_size"]] = 3
    with pytest.raises(ValueError, match="batch_size=3 is not a multiple of micro_batch_size"):
        config_from_values(values, base)
    values[index["train.batch_size"]] = 4
    values[index["train.weight_decay"]] = -0.1
    with pytest.raises(ValueError, match="weight_decay=-0.1 is out of range: use >= 0"):
        config_from_values(values, base)


def test_named_parameters_are_the_field_names():
    import inspect

    wrapped = with_named_parameters(lambda *values: values, ["chain_source"], ["base"])
    names = list(inspect.signature(wrapped).parameters)
    assert names[0] == "chain_source" and names[-1] == "base" and "train_learning_rate" in names
    assert len(names) == len(FIELDS) + 2 and wrapped(1, 2) == (1, 2)


def test_preview_yaml_is_the_config_and_the_cli_twin_parses(services, dataset):
    config = load_preset("quick")
    config.train.max_steps = 7
    text, command = services.train_preview(config, ChainSource(dataset_id=dataset), "try-1")
    assert MoteConfig.from_dict(yaml.safe_load(text)) == config
    words = shlex.split(command)
    assert words[:2] == ["python", "launch.py"]
    args = launch.build_parser().parse_args(words[2:])
    assert args.verb == "train" and args.chain_dataset == dataset and args.home == str(services.home)
    assert args.config == str(services.home / "configs" / "try-1.yaml")
    services.save_config(config, "try-1")
    assert mote_config(args) == config  # the saved file is exactly what the command trains


def test_configs_save_and_load_and_presets_are_protected(services):
    config = load_preset("quick")
    config.experts.rank = 4
    services.save_config(config, "small")
    assert "small" in services.saved_configs() and services.load_config("small") == config
    assert services.load_config("paper") == load_preset("paper")
    with pytest.raises(ValueError, match="bundled preset"):
        services.save_config(config, "quick")
    with pytest.raises(ValueError, match="Unknown preset 'nothing'"):
        services.load_config("nothing")


def test_launch_training_checks_the_source_and_new_run_from_reads_it_back(services, dataset, tmp_path):
    with pytest.raises(JobConfigError, match="chain_dataset_id=99 does not exist"):
        services.launch_training(MoteConfig(), ChainSource(dataset_id=99))
    with pytest.raises(ValueError, match="neither 'sample', 'dataset:ID' nor an existing"):
        ChainSource.parse(str(tmp_path / "missing.jsonl"))
    config = load_preset("quick")
    job_id = services.launch_training(config, ChainSource.parse(f"dataset:{dataset}"))
    assert services.run_settings(job_id) == (config, ChainSource(dataset_id=dataset))
    assert services.watched_training_job() == job_id


# ---- jobs --------------------------------------------------------------------------------------

def test_job_rows_filter_and_sort(services):
    with services.queue.sessions.begin() as session:
        rows = [new_job(session, services.home, kind, {}) for kind in (JobKind.TRAIN, JobKind.GENERATE, JobKind.TRAIN)]
        rows[0].status, rows[1].status = JobStatus.SUCCEEDED, JobStatus.RUNNING
        from datetime import timedelta

        from jobs.records import utcnow
        rows[0].started_at, rows[0].finished_at, rows[0].gpus = utcnow() - timedelta(hours=1), utcnow(), []
        rows[1].started_at, rows[1].gpus = utcnow() - timedelta(seconds=5), [0, 1]
        ids = [r.id for r in rows]
    assert [r.id for r in services.jobs()] == ids[::-1]
    assert [r.id for r in services.jobs(kind=JobKind.TRAIN)] == [ids[2], ids[0]]
    assert [r.id for r in services.jobs(status=JobStatus.RUNNING)] == [ids[1]]
    assert [r.id for r in services.jobs(sort=JobSort.LONGEST)][:2] == [ids[0], ids[1]]
    assert [r.id for r in services.jobs(sort=JobSort.OLDEST)] == ids
    assert [r.status for r in services.jobs(sort=JobSort.STATUS)] == ["queued", "running", "succeeded"]
    devices = {r.id: r.devices for r in services.jobs()}
    assert devices == {ids[0]: "CPU", ids[1]: "GPU 0,1", ids[2]: "-"}


def test_log_tail_keeps_the_last_lines_and_the_last_state_of_progress_lines(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)) + "bar 10%\rbar 50%\rbar 90%\n", encoding="utf-8")
    assert log_tail(log, 3).splitlines() == ["line 98", "line 99", "bar 90%"]
    assert log_tail(tmp_path / "missing.log") == "(no log yet)"


def test_cancel_and_retry_go_through_the_queue(services):
    job_id = services.launch_training(MoteConfig(), ChainSource())
    assert services.cancel_job(job_id) is JobStatus.CANCELLED
    retry = services.retry_job(job_id)
    assert services.queue.get(retry).retry_of == job_id
    detail = services.job_detail_text(retry).splitlines()
    assert detail[0].split() == ["job", str(retry), "(train)"]
    assert ["retry", "of", str(job_id)] in [line.split() for line in detail]
    with pytest.raises(ValueError, match="already cancelled"):
        services.cancel_job(job_id)


# ---- system, chat subjects ---------------------------------------------------------------------

def test_system_report_maps_gpu_processes_to_jobs(services, monkeypatch):
    import os

    with services.queue.sessions.begin() as session:
        job = new_job(session, services.home, JobKind.TRAIN, {})
        job.status, job.pid = JobStatus.RUNNING, os.getpid()
        job_id = job.id
    gpu = GpuInfo(0, "Test GPU", 80000.0, 1000.0, 37.0, 55.0, (GpuProcess(os.getpid(), 900.0), GpuProcess(999999, 10.0)))
    monkeypatch.setattr("app.system_info.list_gpus", lambda: GpuStatus([gpu], "1 GPU found: 0: Test GPU"))
    report = system_report(services.queue)
    assert report.no_gpu_note == "" and report.gpus[0].memory == "1000 / 80000 MiB"
    assert f"{os.getpid()} (job {job_id}, 900 MiB)" in report.gpus[0].processes and "999999 (not ours" in report.gpus[0].processes
    monkeypatch.setattr("app.system_info.list_gpus", lambda: GpuStatus([], "no GPU found, using CPU", "no driver"))
    report = services.system()
    assert report.gpus == [] and "No GPU found" in report.no_gpu_note and "no driver" in report.no_gpu_note
    assert report.database["jobs"] == "1" and report.database["backend"] == "sqlite"
    assert set(report.cpu) >= {"cores", "usage"} and "free" in report.disk and "total" in report.memory


def test_chat_subjects_are_base_models_then_exported_runs(services):
    with services.queue.sessions.begin() as session:
        job = new_job(session, services.home, JobKind.TRAIN, {})
        session.add_all([TrainingRun(job_id=job.id, run_dir="/runs/a", method="mote", base_model="/models/tiny",
                                     export_path="/runs/a/export"),
                         TrainingRun(job_id=job.id, run_dir="/runs/b", method="lora", base_model="tiny-model")])
    choices = services.chat_subjects()
    assert [c.spec for c in choices] == ["base:tiny-model", "base:/models/tiny", "/runs/a"]
    assert choices[2].label == f"mote · sample chains · 3 epochs (job {job.id})"  # the one label of a run


def _train_job(services: Services, config: dict, **columns) -> int:
    with services.queue.sessions.begin() as session:
        job = new_job(session, services.home, JobKind.TRAIN, config)
        for name, value in columns.items():
            setattr(job, name, value)
        return job.id


def test_runs_have_readable_default_names_that_can_be_changed_and_retries_keep_them(services, dataset):
    steps = _train_job(services, {"mote": {"method": "lora", "train": {"max_steps": 28}}, "chain_dataset_id": dataset})
    epochs = _train_job(services, {"mote": {"train": {"epochs": 1.0}}})
    retry = _train_job(services, {"mote": {"train": {"epochs": 1.0}}}, retry_of=epochs)
    names = {row.id: row.name for row in services.jobs(kind=JobKind.TRAIN)}
    assert names == {steps: "lora · demo set · 28 steps", epochs: "mote · sample chains · 1 epoch",
                     retry: "mote · sample chains · 1 epoch"}
    assert services.rename_job(retry, "  my   first run ") == "my first run"  # one line, trimmed
    assert {row.id: row.label for row in services.jobs(kind=JobKind.TRAIN) if row.id != steps} == {
        epochs: f"my first run (job {epochs})", retry: f"my first run (job {retry})"}  # one run, one name
    services.rename_dataset(dataset, "cleaned set")
    assert services.jobs(kind=JobKind.TRAIN)[-1].name == "lora · cleaned set · 28 steps"
    with pytest.raises(ValueError, match="The name is empty"):
        services.rename_job(steps, "   ")
    with pytest.raises(LookupError, match="no job 999"):
        services.rename_job(999, "x")
    assert services.default_run_name(load_preset("quick"), ChainSource(dataset_id=dataset)).startswith("mote · cleaned set · ")


def test_the_runs_view_lists_each_run_once_with_its_loss_and_evaluation(services, tmp_path):
    import json

    from jobs.records import Metric

    first = _train_job(services, {"mote": {"train": {"max_steps": 4}}}, status=JobStatus.FAILED, run_dir="/runs/r")
    retry = _train_job(services, {"mote": {"train": {"max_steps": 4}}}, retry_of=first, status=JobStatus.SUCCEEDED,
                       run_dir="/runs/r")
    other = _train_job(services, {"mote": {"method": "lora", "train": {"max_steps": 2}}})
    with services.queue.sessions.begin() as session:
        run = TrainingRun(job_id=first, run_dir="/runs/r", method="mote", base_model="tiny", total_steps=4)
        session.add(run)
        session.flush()
        session.add_all([Metric(run_id=run.id, step=s, loss=loss) for s, loss in ((1, 2.0), (2, 1.5), (4, 0.75))])
        report = tmp_path / "report"
        report.mkdir()
        metrics = {"harm": {"name": "harm", "value": 80.0, "low": None, "high": None, "n": 5}}
        (report / "summary.json").write_text(json.dumps({"tables": {"heuristic": {"mine": {"metrics": metrics}}}}))
        new_job(session, services.home, JobKind.EVALUATE, {"subjects": [{"label": "mine", "train_job": first}],
                                                            "out": str(report)}).status = JobStatus.SUCCEEDED
    rows = services.runs()
    assert [row.job_id for row in rows] == [other, retry]  # the failed job shows as its retry
    mine = rows[1]
    assert (mine.steps_done, mine.total_steps, mine.final_loss, mine.status) == (4, 4, 0.75, JobStatus.SUCCEEDED)
    assert mine.evaluation["Harm"] == 80.0 and mine.evaluation["Help"] is None and mine.evaluated_by is not None
    assert rows[0].evaluation == {} and rows[0].steps_done is None and rows[0].total_steps == 2
    comparison = services.compare_runs([retry, other, 12345])
    assert [r.job_id for r in comparison.runs] == [retry, other]
    assert [(p.step, p.loss) for p in comparison.curves] == [(1, 2.0), (2, 1.5), (4, 0.75)]
    assert {p.run for p in comparison.curves} == {f"mote · sample chains · 4 steps (job {retry})"}


# ---- the launcher ----------------------------------------------------------------

def test_evaluate_job_list_shows_each_jobs_status_now(services):
    """The Evaluate tab's job list is refreshed by a timer: its labels follow the stored status."""
    from app.tabs.evaluate import EvaluateActions

    with services.queue.sessions.begin() as session:
        job_id = new_job(session, services.home, JobKind.EVALUATE, {}).id
    actions = EvaluateActions(services.evaluation)
    assert actions.job_choices()["choices"] == [(f"job {job_id} · queued", job_id)]
    assert "value" not in actions.job_choices()  # a timer tick must not undo the user's pick
    with services.queue.sessions.begin() as session:
        session.get(Job, job_id).status = JobStatus.SUCCEEDED
    assert actions.job_choices()["choices"] == [(f"job {job_id} · succeeded", job_id)]


def test_share_link_failure_keeps_serving_locally_and_says_so(services, monkeypatch):
    """No internet here: Gradio's tunnel fails; the app must say so and still answer locally."""
    import gradio.networking
    import httpx

    from app.launcher import start_app
    from jobs.processes import free_port

    def unreachable(*_args, **_kwargs):
        raise RuntimeError("share server unreachable")

    monkeypatch.setattr(gradio.networking, "setup_tunnel", unreachable)
    running = start_app(services, ServeOptions(port=free_port(), share=True, auth=[("u", "p")]), quiet=True)
    try:
        assert running.share_url is None and "could not be created" in running.notices[0]
        assert running.notices[0] in services.notices
        assert httpx.get(running.local_url, timeout=10).status_code == 200  # the login page, served locally
    finally:
        running.demo.close()


def test_user_errors_reach_the_page_as_messages_and_bugs_stay_bugs():
    import inspect

    import gradio as gr

    from app.errors import user_facing

    @user_facing
    def plain(job: int) -> int:
        if job < 0:
            raise LookupError(f"There is no job {job}: pick one from the table.")
        return 1 // job

    @user_facing
    def stream(prompt: str):
        yield "first"
        raise ValueError("Type a question first.")

    assert list(inspect.signature(plain).parameters) == ["job"] and inspect.isgeneratorfunction(stream)
    with pytest.raises(gr.Error, match="There is no job -1: pick one"):
        plain(-1)
    with pytest.raises(ZeroDivisionError):
        plain(0)
    chunks = stream("x")
    assert next(chunks) == "first"
    with pytest.raises(gr.Error, match="Type a question first"):
        next(chunks)


def test_the_cpu_study_button_queues_the_preset_or_names_the_missing_chains(services):
    from jobs.pipelines import SHIPPED_CHAINS
    from jobs.specs import JobConfigError

    if not SHIPPED_CHAINS.is_file():
        with pytest.raises(JobConfigError, match="smollm2_safe_chains.jsonl does not exist.*--regenerate"):
            services.evaluation.launch_cpu_study()
        return
    config = services.queue.get(services.evaluation.launch_cpu_study()).config  # queued, not started: no dispatcher
    assert config["sweep"]["setting"] == "train.learning_rate"
    assert list(config["stages"])[:2] == ["sweep", "train:mote"] and "train:mote_no_shared" in config["stages"]
