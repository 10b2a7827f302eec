"""The CPU study preset (assets/studies/cpu.yaml, `launch.py study --preset cpu`) end to end through
the queue on the tiny model: the sweep stage measures each learning rate's held-out loss and keeps
the lowest, every method trains with it, and the report opens with the answer in words (from the
stored numbers) and its chart. Only the sizes are overridden: the tiny model, a small chains
fixture, two questions per kind, two sweep values."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from cli.submit import follow_job
from core.config import MoteConfig
from core.evaluation.headline import count_of
from core.evaluation.metrics import MetricName, MetricValue
from jobs.pipelines import study_config, study_preset_path
from jobs.records import Evaluation, Job, JobStatus
from tests.jobs.conftest import train_config, wait_for
from tests.jobs.test_evaluation_jobs import eval_file, eval_settings  # noqa: F401 (eval_file: a fixture)

SWEEP_VALUES = [0.001, 0.02]


def tiny_cpu_study(tmp_path: Path, tiny_dir: Path, chains_file: Path, eval_file: Path) -> Path:
    """The cpu preset with the tiny model, chains and question sizes; everything else as shipped."""
    study = yaml.safe_load(study_preset_path("cpu").read_text(encoding="utf-8"))
    assert study["methods"] == ["mote", "lora", "sft", "mote_no_shared"] and study["sweep"]["setting"] == "train.learning_rate"
    study["train"] = {"mote": train_config(tiny_dir, chains_file, max_steps=None, epochs=1)["mote"]}
    study["chains"] = str(chains_file)
    study["sweep"] = {**study["sweep"], "values": SWEEP_VALUES, "holdout": 0.25}
    study["evaluate"]["settings"] = eval_settings(eval_file, max_stage_tokens=4)
    study["evaluate"]["judges"] = [dict(j, model=str(tiny_dir)) if j["kind"] == "local" else j
                                   for j in study["evaluate"]["judges"]]
    path = tmp_path / "cpu-tiny.yaml"
    path.write_text(yaml.safe_dump(study), encoding="utf-8")
    return path


def test_the_cpu_study_preset_sweeps_trains_every_method_and_leads_with_the_answer(
        make_queue, db_url, tiny_dir, chains_file, eval_file, tmp_path):
    if db_url.startswith("postgresql"):
        pytest.skip("one backend is enough for the study's wiring; PostgreSQL storage has its own tests")
    queue = make_queue()
    pipeline_id = queue.submit("pipeline", study_config(tiny_cpu_study(tmp_path, tiny_dir, chains_file, eval_file)))
    queue.start(lock=False)
    wait_for(lambda: queue.get(pipeline_id).status.finished, timeout=900, what="the cpu study")
    with queue.sessions() as session:
        stages = {name: session.get(Job, i) for name, i in session.get(Job, pipeline_id).config["stages"].items()}
        evaluations = {row.subject: row.summary for row in session.scalars(select(Evaluation))}
    logs = {name: Path(job.log_path).read_text()[-2500:] for name, job in stages.items()
            if job.log_path and Path(job.log_path).exists()}
    assert queue.get(pipeline_id).status is JobStatus.SUCCEEDED, logs
    assert list(stages) == ["sweep", "train:mote", "train:lora", "train:sft", "train:mote_no_shared", "evaluate"]

    # The sweep: one held-out loss per value, the lowest kept, and every method trained with it.
    sweep = json.loads((Path(stages["sweep"].run_dir) / "sweep.json").read_text(encoding="utf-8"))
    losses = {trial["value"]: trial["heldout_loss"] for trial in sweep["trials"]}
    assert sorted(losses) == SWEEP_VALUES and sweep["chosen_value"] == min(losses, key=losses.get)
    assert sweep["n_heldout"] == 2 and sweep["n_train"] == 6  # 25% of the 8 fixture chains held out
    for method in ("mote", "lora", "sft", "mote_no_shared"):
        job = stages[f"train:{method}"]
        trained = MoteConfig.from_yaml(Path(job.run_dir) / "config.yaml")
        assert job.status is JobStatus.SUCCEEDED and (Path(job.run_dir) / "export").is_dir(), method
        assert trained.train.learning_rate == sweep["chosen_value"] and trained.method.value == method

    # The report opens with the answer, its numbers those of the stored evaluation.
    stored = {subject: MetricValue(**summary["tables"]["heuristic-refusal"]["metrics"]["refusal_rate_harmful"])
              for subject, summary in evaluations.items()}
    mote, base = count_of(stored["mote"], MetricName.REFUSAL_HARMFUL), count_of(stored["base"], MetricName.REFUSAL_HARMFUL)
    headline = evaluations["mote"]["headline"]
    assert headline["judge"] == "heuristic-refusal"
    # The tiny random model's answers are mostly cut off (degenerate), so a rate may be missing:
    # then the sentence says n/a with the stored reason, never a number the evaluation did not store.
    said = f"{mote} of {stored['mote'].n}" if mote is not None else f"n/a ({stored['mote'].note})"
    first = headline["sentences"][0]
    assert first.startswith(f"MoTE refuses {said} harmful questions (base: {base if base is not None else 'n/a'}), difference ")
    assert [s.split(" harmful questions (")[1].split(":")[0] for s in headline["sentences"][1:]] == ["lora", "sft", "mote_no_shared"]
    report = Path(stages["evaluate"].run_dir) / "report"
    summary_md = (report / "summary.md").read_text(encoding="utf-8")
    assert summary_md.startswith("## The answer (judge `heuristic-refusal`)") and first in summary_md
    assert "## Sweep of train.learning_rate" in summary_md and evaluations["mote"]["sweep"]["chosen_value"] == sweep["chosen_value"]
    assert (report / "headline.png").read_bytes()[:4] == b"\x89PNG"
    shown = io.StringIO()  # `launch.py study` following the finished study prints the answer first
    assert follow_job(queue, pipeline_id, shown) == 0
    printed = shown.getvalue()
    assert first in printed and printed.index(first) < printed.index("| subject | Help")
