"""The quick pipeline preset (assets/pipelines/quick.yaml) end to end through the job queue on
the tiny model: generate chains -> train MoTE and single LoRA -> evaluate both and the base model."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.submit import follow_job
from jobs.pipelines import pipeline_config, pipeline_defaults
from jobs.records import Evaluation, Job, JobKind, JobStatus
from tests.jobs.conftest import generate_config, train_config, wait_for
from tests.jobs.test_evaluation_jobs import eval_settings


def test_the_quick_pipeline_runs_every_stage_on_the_tiny_model(make_queue, db_url, tiny_dir, questions_file, chains_file,
                                                                tmp_path):
    if db_url.startswith("postgresql"):
        pytest.skip("one backend is enough for the pipeline's wiring; PostgreSQL storage has its own tests")
    preset = pipeline_defaults("quick")
    assert preset["methods"] == ["mote", "lora"] and preset["evaluate"]["include_base"]
    assert preset["train_chains"] == "bundled" and preset["generate"]["limit"] == 8  # the shipped chains, plus 8 fresh
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text("".join(json.dumps({"id": f"{k}{i}", "question": f"{k} question {i}?", "kind": k}) + "\n"
                                 for k in ("harmful", "helpful", "benign") for i in range(2)), encoding="utf-8")
    generate = generate_config(tiny_dir, questions_file, limit=3)
    train = {"mote": train_config(tiny_dir, questions_file, max_steps=2)["mote"]}
    # The shipped SmolLM2 chains are replaced by the small fixture (the tiny model's own sizes).
    config = pipeline_config("quick", generate, train, methods=None, evaluate=True, train_chains=str(chains_file))
    config["evaluate"]["settings"] = eval_settings(eval_file, jailbreak_prompts=1)  # tiny sizes, same stages
    # The preset's judges, with the tiny model in place of SmolLM2 (verdict-first local judge included).
    config["evaluate"]["judges"] = [dict(j, model=str(tiny_dir)) if j["kind"] == "local" else j for j in config["evaluate"]["judges"]]
    assert any(j.get("verdict_first") for j in config["evaluate"]["judges"])
    queue = make_queue()
    pipeline_id = queue.submit("pipeline", config)
    queue.start(lock=False)
    wait_for(lambda: queue.get(pipeline_id).status.finished, timeout=600, what="the quick pipeline")
    with queue.sessions() as session:
        pipeline = session.get(Job, pipeline_id)
        stages = {name: session.get(Job, i) for name, i in pipeline.config["stages"].items()}
        subjects = set(session.scalars(select(Evaluation.subject)))
    logs = {name: Path(job.log_path).read_text()[-2000:] for name, job in stages.items() if job.log_path and Path(job.log_path).exists()}
    assert pipeline.status is JobStatus.SUCCEEDED, logs
    assert list(stages) == ["generate", "train:mote", "train:lora", "evaluate"]
    assert stages["train:mote"].config["chains_from_job"] == stages["generate"].id
    assert stages["train:mote"].config["extra_chains"] == str(chains_file)
    assert "Training mote on 11 chains" in Path(stages["train:mote"].log_path).read_text()  # 3 generated + 8 shipped
    assert stages["generate"].kind is JobKind.GENERATE and stages["generate"].config["limit"] == 3
    assert subjects == {"base", "mote", "lora"}
    assert (Path(stages["evaluate"].run_dir) / "report" / "summary.md").is_file()
    shown = io.StringIO()  # following the finished pipeline shows the comparison, as the CLI does
    assert follow_job(queue, pipeline_id, shown) == 0
    text = shown.getvalue()
    assert "heuristic judge `heuristic-refusal`" in text and ":verdict-first`" in text
    assert "| mote |" in text and f"Full comparison (notes, charts, per-sample drill-down): {Path(stages['evaluate'].run_dir) / 'report'}" in text
