"""Every named endpoint through gradio_client against the real app (worker processes, the tiny
model): question sets, generation, the chain browser, training with its live status, chat,
jobs (cancel, retry) and the system report. The tests share one app per module, but no test
depends on another: what a test needs (a generated dataset, a trained run) comes from a fixture,
so any single test passes when run alone."""
from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from app.train_form import FIELD_NAMES, form_values
from core.config import load_preset
from jobs.records import JobStatus
from tests.app.conftest import GENERATE_TOKENS, wait_job, write_questions_csv

ENDPOINTS = {"/question_set", "/preview_import", "/import_questions", "/generate_chains", "/generation_status",
             "/chain_datasets", "/browse_chains", "/show_chain", "/flag_chain", "/edit_chain", "/delete_chain",
             "/export_chains", "/load_config", "/preview_config", "/save_config", "/train", "/training_runs",
             "/training_status", "/new_run_from", "/chat_subjects", "/chat", "/jobs", "/job_detail", "/cancel_job",
             "/retry_job", "/system", "/evaluation_choices", "/evaluate", "/quick_pipeline", "/evaluation_result",
             "/evaluation_samples", "/compare_runs", "/chat_stop", "/chat_clear", "/runs", "/compare_runs_side_by_side",
             "/rename_run", "/cpu_study"}


@pytest.fixture(scope="module")
def client(studio) -> Client:
    return Client(studio.url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def generated(client, studio, tmp_path_factory) -> dict:
    """A question set imported and a chain dataset generated from it through the API, once per module."""
    upload = handle_file(str(write_questions_csv(tmp_path_factory.mktemp("questions") / "mine.csv")))
    client.predict(upload, "mine", "", api_name="/import_questions")
    status = client.predict("mine", str(studio.tiny_dir), 3, *GENERATE_TOKENS.values(), 4, 0.0, "keep", "api set",
                            api_name="/generate_chains")
    job_id = int(status.split("job ")[1].split()[0])
    job = wait_job(studio.queue, job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    return {"job": job_id, "dataset": value(client.predict(None, api_name="/chain_datasets"))}


@pytest.fixture(scope="module")
def trained(client, studio, generated) -> int:
    """A run trained through /train on the generated dataset (quick preset shrunk to the tiny model)."""
    run, note = client.predict(chain_source=f"dataset:{generated['dataset']}", run_name="api run", api_name="/train",
                               **tiny_form(studio))
    job_id = value(run)
    assert note.startswith(f"Queued **api run** as job {job_id}: mote on ") and "3 steps" in note
    job = wait_job(studio.queue, job_id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    return job_id


def rows(table: dict) -> list[list]:
    return table["data"]


def value(output):
    """An output that refreshes a list comes back as an update {'choices', 'value', '__type__'}."""
    return output["value"] if isinstance(output, dict) and output.get("__type__") == "update" else output


def tiny_form(studio, **changes) -> dict:
    """Keyword arguments for /train and /preview_config: the quick preset on the tiny model."""
    values = dict(zip(FIELD_NAMES, form_values(load_preset("quick"))))
    values.update(model=str(studio.tiny_dir), experts_rank=4, experts_lora_alpha=8.0, data_max_length=256,
                  train_max_steps=3, train_batch_size=2, train_micro_batch_size=1, train_checkpoint_every=0,
                  train_mixed_precision="no", train_warmup_ratio=0.0)
    values.update(changes)
    return values


def test_every_action_is_a_named_endpoint(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert ENDPOINTS <= named, ENDPOINTS - named


def test_question_sets_preview_and_import(client, tmp_path):
    questions = rows(client.predict("eval_harmful", api_name="/question_set"))
    assert len(questions) == 110 and questions[0][1] == "harmful"
    upload = handle_file(str(write_questions_csv(tmp_path / "mine.csv")))
    summary, kept, rejected = client.predict(upload, "", api_name="/preview_import")
    assert summary.startswith("4 questions imported, 3 rows rejected")
    assert [r[0] for r in rows(kept)] == ["a1", "a2", "a4", "a7"]
    assert [r[0] for r in rows(rejected)] == [4, 6, 7] and "empty question" in rows(rejected)[0][1]
    message, chosen = client.predict(upload, "mine-too", "", api_name="/import_questions")
    assert "Saved as **mine-too**" in message and value(chosen) == "mine-too" and ["mine-too", "mine-too"] in chosen["choices"]
    message, _ = client.predict(upload, "train", "", api_name="/import_questions")
    assert message.startswith("**Not imported:**") and "bundled set" in message


def test_generate_then_browse_flag_edit_delete_export(client, studio, generated):
    assert f"job {generated['job']} **succeeded**" in client.predict(api_name="/generation_status")
    dataset = generated["dataset"]
    table, _category, _kind, count = client.predict(dataset, "any", "any", "any", "any", 1, api_name="/browse_chains")
    assert count.startswith(f"{len(rows(table))} chains match · page 1 of 1")
    chains = rows(table)
    assert len(chains) == 3 and {c[4] for c in chains} <= {"harmful", "helpful", "benign"}
    first = chains[0][0]
    header, *stages = client.predict(first, api_name="/show_chain")
    assert chains[0][1] in header and stages[2] == chains[0][9]
    client.predict(first, api_name="/flag_chain")
    client.predict(first, "a fixed analysis", "", "a fixed answer", api_name="/edit_chain")
    table, *_ = client.predict(dataset, "analysis->answer", "any", "any", "any", 1, api_name="/browse_chains")
    edited = next(c for c in rows(table) if c[0] == first)
    assert edited[7:10] == ["a fixed analysis", "", "a fixed answer"] and edited[11] == "yes"
    assert edited[3] != chains[0][3]  # /flag_chain toggled the flag
    with pytest.raises(AppError, match="no answer stage"):
        client.predict(first, "", "", "", api_name="/edit_chain")
    client.predict(chains[1][0], api_name="/delete_chain")
    table, *_ = client.predict(dataset, "any", "any", "any", "any", api_name="/browse_chains")
    assert [c[0] for c in rows(table)] == [first, chains[2][0]]
    exported = client.predict(dataset, api_name="/export_chains")
    lines = Path(exported["path"] if isinstance(exported, dict) else exported).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and "a fixed answer" in lines[0]


def test_config_preview_save_train_and_live_status(client, studio, generated, trained):
    loaded = client.predict("quick", api_name="/load_config")
    assert list(loaded[:3]) == ["smollm2-135m-instruct", "mote", 8]
    form = tiny_form(studio)
    source = f"dataset:{generated['dataset']}"
    text, command = client.predict(chain_source=source, config_name="api-run", api_name="/preview_config", **form)
    assert "max_steps: 3" in text and f"--chain-dataset {generated['dataset']}" in command
    assert value(client.predict(config_name="api-run", api_name="/save_config", **form)) == "api-run"
    assert "api-run" in studio.services.saved_configs()
    job_id = trained
    progress, loss, rate, log = client.predict(job_id, api_name="/training_status")
    assert f"Job {job_id} succeeded" in progress and "step 3/3" in progress and "export ready" in progress
    assert [r[0] for r in loss["data"]] == [1, 2, 3] and len(rate["data"]) == 3 and "succeeded" in log
    assert value(client.predict(None, api_name="/training_runs")) == job_id
    again = client.predict(job_id, api_name="/new_run_from")
    assert again[0] == str(studio.tiny_dir) and again[-1] == source
    _, note = client.predict(chain_source=source, run_name="", api_name="/train",
                             **tiny_form(studio, train_batch_size=3, train_micro_batch_size=2))
    assert note.startswith("**Not queued:**") and "batch_size=3 is not a multiple of micro_batch_size=2" in note


def test_chat_streams_stage_blocks_side_by_side(client, studio, trained):
    subjects = [value(s) for s in client.predict(None, None, None, api_name="/chat_subjects")]
    assert subjects[0] == f"base:{studio.tiny_dir}" and subjects[1].endswith(f"job-{trained}")
    first, second, third, prompt, message = client.predict(
        2, subjects[0], subjects[1], None, "How do I pick a lock?", "full chain", 0.0, 1.0, 0, 4, 2, None, True, False,
        api_name="/chat")
    assert "Safe Answer · expert <code>base</code>" in first
    for label, expert in (("Question Analysis", "analysis"), ("Answer Guidance", "guidance"), ("Safe Answer", "answer")):
        assert f"{label} · expert <code>{expert} + shared</code>" in second
    assert "Safety Checking" in second and "P(unsafe) = " in second and "Choose a model" in third
    assert message == ""  # no problem to report (the prompt was emptied by the first update)
    *_, message = client.predict(2, subjects[0], None, None, " ", "full chain", 0.0, 1.0, 0, 4, 2, None, False, False,
                                 api_name="/chat")
    assert "Type a question" in message


def test_evaluate_results_drilldown_compare_and_quick_pipeline(client, studio, trained):
    subjects, sets, _jobs, runs = client.predict(api_name="/evaluation_choices")
    specs = [spec for _, spec in subjects["choices"]]
    assert specs[0] == f"base:{studio.tiny_dir}" and f"job:{trained}" in specs
    assert sets["choices"][0][0].startswith("eval_") and [r[1] for r in runs["choices"]] == [trained]
    judges = ["heuristic refusal detector"]
    with pytest.raises(AppError, match="Pick at least one model"):
        client.predict([], [], 2, 1, 3, judges, "", "", "", "", api_name="/evaluate")
    picked = value(client.predict([specs[0], f"job:{trained}"], ["eval_harmful"], 2, 1, 3, judges, "", "", "", "",
                                  api_name="/evaluate"))
    assert wait_job(studio.queue, picked, timeout=300).status is JobStatus.SUCCEEDED
    report, charts, judge = client.predict(picked, None, api_name="/evaluation_result")
    assert "Evaluation comparison" in report and "heuristic-refusal" in report
    assert charts or "are degenerate" in report  # 3-token answers of the tiny model may all be degenerate: no bars
    assert value(judge) == "heuristic-refusal"
    samples = client.predict(picked, "heuristic-refusal", api_name="/evaluation_samples")
    assert len(rows(samples)) == 2 * (2 + 15)  # 2 subjects x (2 questions + 1 question in 15 wrappers)
    _curves, diff = client.predict([trained], api_name="/compare_runs")
    assert "two or more" in diff
    from jobs.pipelines import SHIPPED_CHAINS

    if not SHIPPED_CHAINS.is_file():  # the quick pipeline trains on the shipped chains: refused, naming them
        with pytest.raises(Exception, match="smollm2_safe_chains.jsonl does not exist"):
            client.predict(api_name="/quick_pipeline")
        return
    note = client.predict(api_name="/quick_pipeline")
    pipeline = int(note.split("job ")[1].split(":")[0])
    assert studio.queue.get(pipeline).config["methods"] == ["mote", "lora"]
    client.predict(pipeline, api_name="/cancel_job")
    assert wait_job(studio.queue, pipeline).status is JobStatus.CANCELLED


def test_jobs_table_detail_cancel_and_retry(client, studio):
    # max_length fits the bundled sample chains in the tiny byte-level tokenizer: at 256 every chain
    # is rejected and the job fails on its own, racing the cancel below.
    form = tiny_form(studio, train_max_steps=500, data_max_length=4096)
    job_id = value(client.predict(chain_source="sample", run_name="", api_name="/train", **form)[0])
    wait_job(studio.queue, job_id, lambda j: j.status is JobStatus.RUNNING, what="to start")
    table = client.predict("train", "running", "newest first", api_name="/jobs")
    assert [r[0] for r in rows(table)] == [job_id] and rows(table)[0][6] == "CPU"
    assert rows(table)[0][1] == "mote · sample chains · 500 steps"
    detail, _log = client.predict(job_id, api_name="/job_detail")
    assert detail.splitlines()[1].split() == ["status", "running"]
    client.predict(job_id, api_name="/cancel_job")
    assert wait_job(studio.queue, job_id).status is JobStatus.CANCELLED
    retry = client.predict(job_id, api_name="/retry_job")
    assert studio.queue.get(retry).retry_of == job_id
    client.predict(retry, api_name="/cancel_job")
    assert wait_job(studio.queue, retry).status is JobStatus.CANCELLED
    ordered = [r[0] for r in rows(client.predict("any", "any", "oldest first", api_name="/jobs"))]
    assert ordered == sorted(ordered) and {job_id, retry} <= set(ordered)
    with pytest.raises(AppError, match="already cancelled"):
        client.predict(job_id, api_name="/cancel_job")


def test_system_report(client):
    head, gpus, cpu, ram, disk, database = client.predict(api_name="/system")
    assert head.startswith("**GPUs:**")
    assert ("No GPU found" in head) == (not rows(gpus))
    assert {r[0] for r in rows(database)} >= {"url", "jobs", "chains", "dispatcher"}
    assert rows(cpu)[0][0] == "cores" and rows(disk)[0][0] == "data directory" and rows(ram)
