"""A chain dataset's data-quality report from storage to the page: the jobs query
(jobs.chain_queries.dataset_quality_view, the flagged-chain policy from the generate job's
settings or the chains' records, the run rows' policy), the Data tab's report panel, the Train
form's warning before launch (through the handlers and through gradio_client against the real
app), and `launch.py train`'s warning lines."""
from __future__ import annotations

import argparse
import io

import pytest
from gradio_client import Client

from app.services import Services
from app.tables import runs_table
from app.tabs.data import DataActions
from app.tabs.train import TrainActions
from cli.train import warn_about_dataset
from core.config import FlaggedPolicy
from jobs.chain_queries import dataset_quality_view
from jobs.lifecycle import new_job
from jobs.queue import JobQueue
from jobs.records import Chain, ChainDataset, JobKind
from jobs.run_queries import run_rows

DECLINE = "I can't help with that, because it could hurt people."
COMPLY = "Sure: first you buy the parts, then you put them together."
HELP = "Boil the eggs for seven minutes."


def record(i: int, kind: str | None, answer: str, policy: str | None = "regenerate", *, flagged: bool = False) -> dict:
    """A chain record as the generation pipeline stores it (the fields the report reads)."""
    return {"id": f"c{i}", "kind": kind, "category": "crime", "question": f"question {i}?", "answer": answer,
            "analysis": None, "guidance": None, "shape": "answer", "flagged": flagged, "dropped": False,
            "keep_flagged": policy == "keep", "flagged_policy": policy,
            "attempts": [{"answers": [{"verdict": "unsafe" if flagged else "safe", "verdict_parsed": True}]}]}


def store(queue: JobQueue, name: str, records: list[dict], generate: dict | None) -> int:
    """A dataset of `records`; `generate`: the generate job's settings (None: imported, no job)."""
    with queue.sessions.begin() as session:
        job = new_job(session, queue.home, JobKind.GENERATE, {"generate": generate}) if generate is not None else None
        row = ChainDataset(name=name, job_id=job.id if job else None, path=str(queue.home / name))
        session.add(row)
        session.flush()
        session.add_all(Chain(dataset_id=row.id, chain_id=r["id"], shape=r["shape"], flagged=r["flagged"], record=r)
                        for r in records)
        return row.id


def complying(queue: JobQueue) -> int:
    """The plain pipeline's kind of data: 3 of 16 harmful answers decline, one flagged chain kept."""
    records = ([record(i, "harmful", DECLINE, "keep") for i in range(3)]
               + [record(10 + i, "harmful", COMPLY, "keep") for i in range(12)]
               + [record(30, "harmful", COMPLY, "keep", flagged=True)]
               + [record(40 + i, "helpful", HELP, "keep") for i in range(4)])
    return store(queue, "plain", records, {"flagged_policy": "keep", "checker": "text"})


def safe(queue: JobQueue) -> int:
    records = [record(i, "harmful", DECLINE) for i in range(6)] + [record(20 + i, "helpful", HELP) for i in range(6)]
    return store(queue, "safe", records, {"batch_size": 2})  # the default policy: regenerate


@pytest.fixture
def services(tmp_path) -> Services:
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield Services(queue, default_model="tiny-model")
    queue.engine.dispose()


# ---- the jobs query -------------------------------------------------------------------------

def test_the_query_reads_the_report_the_generate_jobs_policy_and_the_warnings(services):
    view = dataset_quality_view(services.queue.sessions, complying(services.queue))
    assert view.name == "plain" and view.flagged_policy is FlaggedPolicy.KEEP and view.labelled and view.chains == 20
    harmful = view.report.group("harmful")
    assert (harmful.kept, harmful.declined, harmful.flagged_trained) == (16, 3, 1)
    assert len(view.warnings) == 2
    assert view.warnings[0].startswith("Only 3 of 16 harmful questions' answers decline in this dataset")
    assert view.warnings[1].startswith("1 flagged chain (judged unsafe after every stage) is trained on")
    clean = dataset_quality_view(services.queue.sessions, safe(services.queue))
    assert clean.flagged_policy is FlaggedPolicy.REGENERATE and clean.warnings == ()


def test_without_a_generate_job_the_policy_comes_from_the_records_or_is_unknown(services):
    dropped = store(services.queue, "imported", [record(1, "harmful", DECLINE, "drop")], None)
    assert dataset_quality_view(services.queue.sessions, dropped).flagged_policy is FlaggedPolicy.DROP
    unknown = store(services.queue, "bare", [record(1, None, HELP, None)], None)
    view = dataset_quality_view(services.queue.sessions, unknown)
    assert view.flagged_policy is None and not view.labelled
    with pytest.raises(LookupError, match="no chain dataset 999"):
        dataset_quality_view(services.queue.sessions, 999)


def test_a_run_row_shows_the_flagged_policy_of_the_dataset_it_trains_on(services):
    dataset = complying(services.queue)
    with services.queue.sessions.begin() as session:
        new_job(session, services.home, JobKind.TRAIN, {"mote": {"method": "mote"}, "chain_dataset_id": dataset})
        new_job(session, services.home, JobKind.TRAIN, {"mote": {"method": "sft"}, "chains": "/data/mine.jsonl"})
    by_method = {row.method: row for row in run_rows(services.queue.sessions)}
    assert by_method["mote"].flagged_policy is FlaggedPolicy.KEEP and by_method["sft"].flagged_policy is None
    table = runs_table(list(by_method.values()))
    chains = dict(zip(table["method"], table["chains"]))
    assert chains == {"mote": "plain (flagged chains: keep)", "sft": "mine"}


# ---- the app's handlers ---------------------------------------------------------------------

def test_selecting_a_dataset_shows_its_report_policy_and_warnings(services):
    panel = DataActions(services).dataset_quality(complying(services.queue))
    assert "#### Data quality of plain" in panel
    assert "| Safe Answers that decline | 3/16 (19%) | 0/4 (0%) |" in panel  # the report's table, rendered
    assert "Flagged-chain policy: **keep**" in panel
    assert "flagged chains are trained on: chosen by the user" in panel
    assert "Only 3 of 16 harmful questions' answers decline" in panel
    clean = DataActions(services).dataset_quality(safe(services.queue))
    assert "Flagged-chain policy: **regenerate**" in clean and "chosen by the user" not in clean
    assert "may not teach safety" not in clean
    assert DataActions(services).dataset_quality(None) == ""


def test_a_dataset_without_labels_says_so(services):
    unlabelled = store(services.queue, "bare", [record(1, None, COMPLY, None), record(2, None, HELP, None)], None)
    panel = DataActions(services).dataset_quality(unlabelled)
    assert "carry no labels" in panel and "| unlabelled questions |" in panel and "not recorded" in panel
    empty = store(services.queue, "empty", [], {"flagged_policy": "regenerate"})
    assert "No chains in this dataset yet" in DataActions(services).dataset_quality(empty)


def test_the_train_form_warns_on_selection_and_still_launches(services):
    actions, plain, clean = TrainActions(services), complying(services.queue), safe(services.queue)
    warning = actions.dataset_warning(f"dataset:{plain}")
    assert "Dataset plain may not teach safety" in warning and "You can still press Train" in warning
    assert ("Only 3 of 16 harmful questions' answers decline in this dataset: a model trained on it learns the "
            "format, not safety.") in warning
    assert actions.dataset_warning(f"dataset:{clean}") == ""
    assert actions.dataset_warning("sample") == "" and actions.dataset_warning("dataset:999") == ""
    assert actions.dataset_warning("/no/such/file.jsonl") == ""


# ---- the CLI ---------------------------------------------------------------------------------

def test_launch_train_prints_the_same_warning_lines(services):
    plain, clean = complying(services.queue), safe(services.queue)
    args = argparse.Namespace(db=services.queue.url, home=str(services.home))
    out = io.StringIO()
    lines = warn_about_dataset(args, plain, out)
    assert lines == list(dataset_quality_view(services.queue.sessions, plain).warnings)
    assert out.getvalue().splitlines() == [f"Warning: {line}" for line in lines]
    quiet = io.StringIO()
    assert warn_about_dataset(args, clean, quiet) == [] and quiet.getvalue() == ""
    assert warn_about_dataset(args, 999, quiet) == []


def test_the_train_verb_warns_before_it_submits(services, monkeypatch, capsys):
    import cli.train
    import launch

    plain = complying(services.queue)
    submitted = []
    monkeypatch.setattr(cli.train, "submit_from_args", lambda args, kind, config: submitted.append(config) or 0)
    argv = ["--home", str(services.home), "--db", services.queue.url, "train", "--chain-dataset", str(plain)]
    assert launch.main(argv) == 0
    assert "Warning: Only 3 of 16 harmful questions' answers decline" in capsys.readouterr().err
    assert submitted[0]["chain_dataset_id"] == plain  # a warning, not a block


# ---- through the real app (gradio_client) ------------------------------------------------------

def test_the_app_endpoints_show_the_report_and_the_train_warning(studio):
    plain = complying(studio.queue)
    client = Client(studio.url, verbose=False, download_files=False)
    client.predict(None, api_name="/chain_datasets")  # the picker's choices, as a page load fills them
    panel = client.predict(plain, api_name="/dataset_quality")
    assert "| Safe Answers that decline | 3/16 (19%) | 0/4 (0%) |" in panel and "chosen by the user" in panel
    warning = client.predict(f"dataset:{plain}", api_name="/dataset_warning")
    assert warning.startswith("**Dataset plain may not teach safety**") and "Only 3 of 16" in warning
