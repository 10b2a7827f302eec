"""Generate and pipeline jobs in worker processes: queued jobs survive a restart and then run
two at once (d), concurrent writers lose nothing (e), a failing dependency cancels its
dependent (g), a retry skips stored chains, and the CLI follows a pipeline to its end."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from cli.submit import submit_and_follow
from core.data.chains import save_chains_jsonl
from jobs.lifecycle import create_retry, new_job
from jobs.records import Chain, ChainDataset, Job, JobKind, JobStatus, Metric, TrainingRun
from jobs.worker import ExitCode, run_job
from tests.conftest import short_chains
from tests.jobs.conftest import generate_config, job_row, train_config, wait_finished, wait_for


def chain_counts(queue) -> dict[int, int]:
    with queue.sessions() as session:
        rows = session.execute(select(ChainDataset.job_id, func.count(Chain.id)).join(Chain).group_by(ChainDataset.job_id))
        return dict(rows.all())


def test_queued_jobs_survive_an_app_stop_and_then_run_two_at_once(make_queue, tiny_dir, questions_file):
    first = make_queue()
    ids = [first.submit(JobKind.GENERATE, generate_config(tiny_dir, questions_file)) for _ in range(2)]
    first.shutdown()  # the app stops before it ever dispatched
    second = make_queue(max_cpu_jobs=2)
    assert [job_row(second, i).status for i in ids] == [JobStatus.QUEUED] * 2
    second.start()
    jobs = [wait_finished(second, i) for i in ids]
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 2, [j.error for j in jobs]
    assert jobs[0].started_at < jobs[1].finished_at and jobs[1].started_at < jobs[0].finished_at  # overlapped
    assert chain_counts(second) == {ids[0]: 4, ids[1]: 4}
    for job in jobs:
        lines = (Path(job.run_dir) / "chains.jsonl").read_text().splitlines()
        assert sorted(json.loads(line)["id"] for line in lines) == ["q0", "q1", "q2", "q3"]


def test_two_processes_writing_at_once_lose_no_rows(make_queue, db_url):
    queue = make_queue()
    with queue.sessions.begin() as session:
        job = new_job(session, queue.home, JobKind.GENERATE, {})
        dataset = ChainDataset(name="shared", job_id=job.id)
        runs = [TrainingRun(job_id=job.id, run_dir=f"/tmp/run-{k}", method="mote", base_model="tiny") for k in "ab"]
        session.add_all([dataset, *runs])
        session.flush()
        job_id, dataset_id, run_ids = job.id, dataset.id, [r.id for r in runs]
    count = 150
    writers = [subprocess.Popen([sys.executable, "-m", "tests.jobs.concurrent_writer", db_url, str(dataset_id),
                                 str(run_id), str(job_id), prefix, str(count)], stderr=subprocess.PIPE, text=True)
               for run_id, prefix in zip(run_ids, "ab", strict=True)]
    results = [(w.wait(timeout=120), w.stderr.read()) for w in writers]
    assert all(code == 0 for code, _ in results), results
    assert not any("locked" in err for _, err in results), results
    with queue.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Chain)) == 2 * count
        for run_id in run_ids:
            assert session.scalar(select(func.count()).where(Metric.run_id == run_id)) == count
        assert session.get(Job, job_id).progress == 1.0


def test_failing_dependency_cancels_its_dependent_with_the_reason(make_queue, tiny_dir, tmp_path):
    bad_chains = tmp_path / "bad.jsonl"
    save_chains_jsonl(short_chains(2), bad_chains)  # valid at submit (a broken file is refused there) ...
    queue = make_queue()
    failing = queue.submit(JobKind.TRAIN, train_config(tiny_dir, bad_chains))
    dependent = queue.submit(JobKind.TRAIN, train_config(tiny_dir, bad_chains), depends_on=[failing])
    bad_chains.write_text(json.dumps({"id": "x", "question": "q?", "analysis": "no answer here"}) + "\n")  # ... broken later
    queue.start()
    wait_for(lambda: job_row(queue, failing).status is not JobStatus.QUEUED, what="the first job to start")
    assert job_row(queue, dependent).status is JobStatus.QUEUED  # waits while its dependency runs
    assert wait_finished(queue, failing).status is JobStatus.FAILED
    failed = job_row(queue, failing)
    assert "no answer stage" in failed.error and "Traceback" in failed.error and failed.exit_code == 1
    job = wait_for(lambda: (j := job_row(queue, dependent)).status.finished and j, timeout=10, what="the cascade")
    assert job.status is JobStatus.CANCELLED and job.started_at is None
    assert f"dependency job {failing} failed" in job.error and "no answer stage" in job.error


def test_generate_retry_skips_stored_chains_and_refills_the_jsonl(make_queue, tiny_dir, questions_file):
    queue = make_queue()
    job_id = queue.submit(JobKind.GENERATE, generate_config(tiny_dir, questions_file))
    with queue.sessions.begin() as session:  # a run killed after two chains, and before their JSONL lines
        job = session.get(Job, job_id)
        job.status = JobStatus.INTERRUPTED
        dataset = ChainDataset(name="d", job_id=job_id, path=job.run_dir)
        session.add(dataset)
        session.flush()
        session.add_all(Chain(dataset_id=dataset.id, chain_id=f"q{i}", record={"id": f"q{i}", "question": "earlier"})
                        for i in (0, 1))
        retry_id = create_retry(session, queue.home, job).id
    assert run_job(queue.sessions, retry_id, queue.home) is ExitCode.SUCCEEDED
    with queue.sessions() as session:
        records = {c.chain_id: c.record for c in session.scalars(select(Chain))}
    assert sorted(records) == ["q0", "q1", "q2", "q3"] and records["q0"]["question"] == "earlier"
    lines = (Path(job_row(queue, retry_id).run_dir) / "chains.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["q0", "q1", "q2", "q3"]
    quality = json.loads((Path(job_row(queue, retry_id).run_dir) / "quality.json").read_text())
    assert sum(group["chains"] for group in quality["groups"]) == 4  # the report covers every stored chain
    assert "Safe Answers that decline" in (Path(job_row(queue, retry_id).run_dir) / "quality.md").read_text()


def test_cli_follows_a_pipeline_that_generates_then_trains(make_queue, tiny_dir, questions_file, chains_file):
    queue = make_queue()
    config = {"generate": generate_config(tiny_dir, questions_file),
              "train": {"mote": train_config(tiny_dir, chains_file, max_steps=2)["mote"]}}
    out = io.StringIO()
    assert submit_and_follow(queue, "pipeline", config, detach=False, out=out) == 0, out.getvalue()
    assert not queue.running  # the CLI's own dispatcher stopped with it
    with queue.sessions() as session:
        pipeline = session.scalars(select(Job).where(Job.kind == JobKind.PIPELINE)).one()
        stages = {name: session.get(Job, i) for name, i in pipeline.config["stages"].items()}
        run = session.scalars(select(TrainingRun)).one()
    assert pipeline.status is JobStatus.SUCCEEDED
    assert all(s.status is JobStatus.SUCCEEDED for s in stages.values())
    assert run.run_dir == stages["train"].run_dir and run.final_step == 2
    assert "Training mote on 4 chains" in Path(stages["train"].log_path).read_text()
    assert "succeeded" in out.getvalue()
