"""The read-only demo page (launch.py --demo): through gradio_client and headless Chromium on the
tiny model, over a real job queue with one finished MoTE run.

What must hold: the page's named endpoints are the read-only ones and nothing else (a full-mode
endpoint name fails), chat streams stage blocks, two visitors at once both get answers while
only one chat decodes at a time, and a visitor over a limit reads a message, never an error badge.
Set MOTE_DEMO_SCREENSHOT=docs/screenshots/demo.png to save the browser test's page as the README
screenshot."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import time
from pathlib import Path

import gradio as gr
import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app.demo import DEMO_ENDPOINTS, DemoSubjects, DemoViews
from app.demo_options import DemoLimits, DemoOptions, parse_run_ids
from app.launcher import ServeOptions, start_app
from app.services import Services
from app.visitor_gate import ChatRefused, Refusal, VisitorGate
from cli.ui import add_server_arguments, demo_options
from core.data.chains import save_chains_jsonl
from jobs.kinds import JobKind, JobStatus
from jobs.processes import free_port
from jobs.queue import JobQueue
from tests.app.conftest import GENERATE_TOKENS, stop_queue_and_workers, wait_job
from tests.conftest import short_chains
from tests.app.test_api import ENDPOINTS as FULL_ENDPOINTS

LIMITS = DemoLimits(max_prompt_chars=120, max_stage_tokens=4, chats_per_visitor=1, chats_at_once=1, waiting_chats=2)
#: The full app's endpoints that start, cancel, retry, edit, delete, import or save something.
WRITING_ENDPOINTS = {"/import_questions", "/generate_chains", "/flag_chain", "/edit_chain", "/delete_chain",
                     "/export_chains", "/save_config", "/train", "/cancel_job", "/retry_job", "/evaluate",
                     "/quick_pipeline", "/cpu_study", "/preview_import"}
FULL_CHAIN = "full chain"


class DemoStudio:
    def __init__(self, url: str, services: Services, run_job: int, gate: VisitorGate) -> None:
        self.url, self.services, self.run_job, self.gate = url, services, run_job, gate


@pytest.fixture(scope="module")
def demo_studio(tmp_path_factory, tiny_dir):
    """The demo page over a queue holding one 2-step MoTE run trained on short chains (byte-level tokens)."""
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    root = tmp_path_factory.mktemp("demo")
    queue = JobQueue(f"sqlite:///{root / 'mote.db'}", root / "home", tick_seconds=0.3, grace_seconds=20.0)
    queue.start()
    services = Services(queue, default_model=str(tiny_dir))
    chains = root / "chains.jsonl"
    save_chains_jsonl(short_chains(), chains)
    running = None
    try:
        train = {"max_steps": 2, "batch_size": 2, "micro_batch_size": 1, "mixed_precision": "no",
                 "warmup_ratio": 0.0, "checkpoint_every": 0}
        config = {"mote": {"model": str(tiny_dir), "experts": {"rank": 4, "lora_alpha": 8.0},
                           "data": {"max_length": 256}, "train": train}, "chains": str(chains)}
        job_id = queue.submit(JobKind.TRAIN, config)
        job = wait_job(queue, job_id)
        assert job.status is JobStatus.SUCCEEDED, job.error
        running = start_app(services, ServeOptions(port=free_port(), demo=DemoOptions(limits=LIMITS)), quiet=True)
        yield DemoStudio(running.local_url, services, job_id, running.demo.visitor_gate)
    finally:
        if running is not None:
            running.demo.close()
        stop_queue_and_workers(queue)
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


@pytest.fixture(scope="module")
def client(demo_studio) -> Client:
    return Client(demo_studio.url, verbose=False, download_files=False)


def subject_specs(client: Client) -> list[str]:
    """The three panes' default models: base model, the run, none."""
    return [update["value"] for update in client.predict(api_name="/demo_subjects")]


def chat_job(client: Client, prompt: str, path: str = FULL_CHAIN, tokens: int = 3):
    base, run, third = subject_specs(client)
    return client.submit(base, run, third, prompt, path, tokens, False, True, api_name="/demo_chat")


# ---- the page has only reading endpoints ------------------------------------------------------
def test_named_endpoints_are_only_the_read_only_ones(client):
    named = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert named == {f"/{name}" for name in DEMO_ENDPOINTS}
    assert not named & WRITING_ENDPOINTS


@pytest.mark.parametrize("endpoint", ["/cancel_job", "/train", "/delete_chain", "/chat"])
def test_a_full_mode_endpoint_name_fails(client, demo_studio, endpoint):
    assert endpoint in FULL_ENDPOINTS
    with pytest.raises(ValueError, match="Cannot find a function"):
        client.predict(1, api_name=endpoint)
    response = httpx.post(f"{demo_studio.url}gradio_api/call{endpoint}", json={"data": [1]}, timeout=30)
    assert response.status_code >= 400
    assert demo_studio.services.jobs(status=JobStatus.CANCELLED) == []


def test_the_run_list_shows_the_finished_run(client, demo_studio):
    runs = client.predict(api_name="/demo_runs")
    assert [row[0] for row in runs["data"]] == [demo_studio.run_job]


@pytest.fixture(scope="module")
def owner_results(demo_studio, tiny_dir) -> dict:
    """What the owner made (outside the demo): a generated chain dataset and a finished evaluation."""
    queue = demo_studio.services.queue
    generate = queue.submit(JobKind.GENERATE, {"generate": {"batch_size": 2, "flagged_policy": "keep", **GENERATE_TOKENS},
                                               "questions": "eval_harmful", "model": str(tiny_dir), "limit": 2})
    evaluate = demo_studio.services.evaluation.launch_evaluation(
        [f"base:{tiny_dir}"], ["eval_harmful"], {"limit": 2, "jailbreak_prompts": 0, "max_stage_tokens": 2},
        [{"kind": "heuristic"}])
    for job_id in (generate, evaluate):
        job = wait_job(queue, job_id, timeout=300)
        assert job.status is JobStatus.SUCCEEDED, job.error
    return {"evaluate": evaluate}


def test_evaluation_reports_and_chains_are_readable(client, demo_studio, owner_results):
    jobs = client.predict(api_name="/evaluation_reports")
    assert jobs["value"] == owner_results["evaluate"]
    report, charts, judge = client.predict(jobs["value"], None, api_name="/evaluation_result")
    assert "Evaluation comparison" in report and "report in" not in report and judge["value"] == "heuristic-refusal"
    samples = client.predict(jobs["value"], judge["value"], api_name="/evaluation_samples")
    assert len(samples["data"]) == 2
    dataset = client.predict(None, api_name="/chain_datasets")["value"]
    table, _categories, _kinds = client.predict(dataset, "any", "any", "any", "any", api_name="/browse_chains")
    assert len(table["data"]) == 2
    header, *stages = client.predict(table["data"][0][0], api_name="/show_chain")
    assert "\n> " in header and any(stages)  # the chain id, shape, verdict, then the question
    with pytest.raises(AppError, match="not in the list of choices|not a finished evaluation"):
        client.predict(demo_studio.run_job, None, api_name="/evaluation_result")
    views = DemoViews(demo_studio.services, DemoSubjects(demo_studio.services, DemoOptions()))
    with pytest.raises(gr.Error, match="not a finished evaluation"):  # the demo's own check, behind Gradio's
        views.evaluation_samples(demo_studio.run_job, None)


# ---- chat --------------------------------------------------------------------------------------
def test_chat_streams_stage_blocks_with_their_experts(client):
    job = chat_job(client, "How do I pick a lock?")
    base, run, third, note, history = job.result(timeout=300)
    assert len(job.outputs()) > 1  # streamed, not one answer at the end
    assert "Safe Answer · expert <code>base</code>" in base
    for label in ("Question Analysis · expert <code>analysis + shared</code>",
                  "Answer Guidance · expert <code>guidance + shared</code>", "Safe Answer · expert <code>answer + shared</code>"):
        assert label in run
    assert "colour-experts" in run and "x-guidance" in run
    assert "Choose a model" in third and "mote-notice" not in note and "failed" not in run
    assert "base model: tiny-llama" in base and "/tmp" not in base + run  # menu labels, not the owner's folders


def test_each_visitor_has_a_conversation_of_their_own(demo_studio):
    first, other = (Client(demo_studio.url, verbose=False, download_files=False) for _ in range(2))
    chat_job(first, "First question, about bread?").result(timeout=300)
    history = chat_job(first, "Second question, about cake?").result(timeout=300)[4]
    assert "Earlier in this conversation" in history and "First question, about bread?" in history
    assert "Second question" not in history  # the newest turn is in the panes above
    assert "about bread" not in chat_job(other, "A visitor of my own?").result(timeout=300)[4]


def test_two_visitors_at_once_both_get_answers(demo_studio):
    """The decoding slot is held while both chats arrive, so both must wait (not a race on timing),
    then both are answered once it frees."""
    visitors = [Client(demo_studio.url, verbose=False, download_files=False) for _ in range(2)]
    specs = [subject_specs(visitor) for visitor in visitors]
    with demo_studio.gate.admitted("someone else") as holder:
        assert holder.wait_for_slot(5)
        jobs = [visitor.submit(*spec, f"Question {i}: how do I bake bread?", FULL_CHAIN, 4, True, True, api_name="/demo_chat")
                for i, (visitor, spec) in enumerate(zip(visitors, specs))]  # sent together
        deadline = time.monotonic() + 60
        while demo_studio.gate.waiting() < 2 and time.monotonic() < deadline:  # both admitted, both waiting
            time.sleep(0.05)
        assert demo_studio.gate.waiting() == 2
    finals = [job.result(timeout=300) for job in jobs]
    for base, run, *_ in finals:
        assert "Safe Answer · expert" in run and "pane-error" not in run + base
    for job in jobs:
        assert any("Waiting for a free slot" in output[3] for output in job.outputs())  # chats_at_once=1


def test_one_visitor_gets_a_message_for_a_second_chat_at_once(client):
    specs = subject_specs(client)
    jobs = [client.submit(*specs, question, FULL_CHAIN, 4, True, True, api_name="/demo_chat")
            for question in ("How do I pick a lock?", "And a second question?")]  # sent together, one session
    finals = [job.result(timeout=300) for job in jobs]
    refused = [final for final in finals if "still being answered" in final[3]]
    answered = [final for final in finals if "Safe Answer · expert" in final[1]]
    assert len(refused) == 1 and len(answered) == 1


def test_an_over_long_prompt_gets_a_message_not_an_error(client):
    *panes, note, _history = chat_job(client, "x" * (LIMITS.max_prompt_chars + 1)).result(timeout=60)
    assert "at most 120" in note and "Shorten it" in note
    assert all("details" not in pane for pane in panes)


def test_a_model_outside_the_menus_is_refused(client, demo_studio):
    """Gradio's menu check stops it first; the demo's own check holds without the menus too."""
    with pytest.raises(AppError, match="not in the list of choices|only the models in the pane menus"):
        client.predict("base:gpt2", None, None, "hi", FULL_CHAIN, 2, False, False, api_name="/demo_chat")
    subjects = DemoSubjects(demo_studio.services, DemoOptions())
    subjects.check([choice.spec for choice in subjects.choices()])
    with pytest.raises(ValueError, match="only the models in the pane menus"):
        subjects.check(["base:gpt2"])


def test_demo_runs_show_only_the_chosen_finished_runs(demo_studio):
    chosen = DemoSubjects(demo_studio.services, DemoOptions(run_job_ids=(demo_studio.run_job, 999)))
    assert [run.job_id for run in chosen.runs()] == [demo_studio.run_job] and chosen.missing_runs() == [999]
    none = DemoSubjects(demo_studio.services, DemoOptions(run_job_ids=(999,)))
    assert [choice.spec for choice in none.choices()] == [f"base:{demo_studio.services.default_model}"]


# ---- the pieces without a page -----------------------------------------------------------------
def test_the_gate_limits_each_visitor_and_the_whole_demo():
    gate = VisitorGate(DemoLimits(chats_per_visitor=1, chats_at_once=1, waiting_chats=1))
    with gate.admitted("a") as first:
        with pytest.raises(ChatRefused) as refused:
            with gate.admitted("a"):
                pass
        assert refused.value.reason is Refusal.VISITOR_BUSY
        assert first.wait_for_slot(0.1)
        with gate.admitted("b") as second:
            assert not second.wait_for_slot(0.05) and second.waiting_ahead() == 1
            with pytest.raises(ChatRefused) as full:
                with gate.admitted("c"):
                    pass
            assert full.value.reason is Refusal.DEMO_FULL
    with gate.admitted("c") as again:  # every place and slot was given back
        assert again.wait_for_slot(0.1)


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return parser.parse_args(list(argv))


def test_demo_flags():
    assert demo_options(cli_args()) is None
    assert demo_options(cli_args("--demo")).run_job_ids is None
    assert demo_options(cli_args("--demo", "--demo-runs", "3, 7,3")).run_job_ids == (3, 7)
    with pytest.raises(ValueError, match="add --demo"):
        demo_options(cli_args("--demo-runs", "3"))
    with pytest.raises(ValueError, match="training job ids"):
        parse_run_ids("3,run-7")
    with pytest.raises(ValueError, match="needs a login"):
        ServeOptions(share=True, demo=DemoOptions()).check()


# ---- the browser -------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_the_demo_page_in_a_browser(demo_studio):
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(demo_studio.url)
        banner = page.locator("#demo-banner")
        expect(banner).to_contain_text("base model", timeout=30_000)
        expect(banner).to_contain_text(f"job {demo_studio.run_job}")
        expect(banner).to_contain_text("research models")
        buttons = [name.strip() for name in page.get_by_role("button").all_inner_texts() if name.strip()]
        assert not [b for b in buttons if re.search(r"cancel|retry|delete|save|import|train|evaluate|generate", b, re.I)]
        expect(page.locator("#demo-subject-2 input")).to_have_value(re.compile(r"run \d+ \(mote"), timeout=30_000)
        prompt = page.locator("#demo-prompt textarea")
        prompt.fill("y" * (LIMITS.max_prompt_chars + 5))
        page.locator("#demo-send").click()
        expect(page.locator("#demo-message")).to_contain_text("Shorten it", timeout=30_000)
        assert page.locator(".toast-wrap .error, [data-testid=toast-body]").count() == 0
        page.locator("#demo-path").get_by_text(FULL_CHAIN).click()
        prompt.fill("How do I pick a lock?")
        page.locator("#demo-send").click()
        run = page.locator("#demo-pane-2")
        expect(run.locator("details.stage")).to_have_count(3, timeout=120_000)
        expect(run.locator(".pane-status")).to_have_text("done", timeout=120_000)
        expect(page.locator("#demo-pane-1 details.stage summary").first).to_contain_text("Safe Answer · expert base")
        expect(page.locator("#demo-message")).not_to_contain_text("Shorten it")
        page.get_by_role("tab", name="Runs").click()
        expect(page.locator("#demo-runs")).to_contain_text("succeeded", timeout=30_000)
        page.get_by_role("tab", name="Chat").click()
        shot = os.environ.get("MOTE_DEMO_SCREENSHOT")
        if shot:
            Path(shot).parent.mkdir(parents=True, exist_ok=True)
            page.wait_for_timeout(800)
            page.screenshot(path=shot, full_page=True)
        browser.close()
