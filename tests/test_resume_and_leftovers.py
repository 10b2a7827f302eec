"""Issue 19 point 7: metrics.jsonl holds each step once across a resume and the resume is logged;
a killed model conversion's .partial folder is cleaned at the next start; uploads live under the
data directory and old ones are removed at start."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.upload_folder import GRADIO_TEMP_ENV, use_upload_folder
from core import model_source
from core.config import DataConfig, MoteConfig, TrainConfig
from core.data.dataset import encode_chains
from core.model_source import DEFAULT_MODEL_DIRNAME, ensure_default_model
from core.training.recipe import RunSetup, run_training
from tests.conftest import short_chains, tiny_mote

DATA = DataConfig(max_length=256, p_skip=0.3)


def logged_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_resumed_run_logs_each_step_once_and_says_where_it_resumed(tiny_dir, tmp_path):
    train = TrainConfig(max_steps=6, checkpoint_every=3, batch_size=4, micro_batch_size=2, learning_rate=5e-3,
                        mixed_precision="no", warmup_ratio=0.0)
    config = MoteConfig(model=str(tiny_dir), data=DATA, train=train)
    mote = tiny_mote(tiny_dir)
    samples, _ = encode_chains(short_chains(), mote.tokenizer, DATA, mote.marker_ids)
    run_dir, said = tmp_path / "run", []
    run_training(RunSetup(config, mote, samples, []), run_dir, say=said.append)
    assert logged_steps(run_dir) == [1, 2, 3, 4, 5, 6] and said == []
    # As after a kill at step 6 before its checkpoint: steps 4-6 are logged, the last line torn.
    for checkpoint in (run_dir / "checkpoints").glob("step-0000006*"):
        shutil.rmtree(checkpoint)
    with (run_dir / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 7, "lo')
    resumed = run_training(RunSetup(config, tiny_mote(tiny_dir), samples, []), run_dir, say=said.append)
    assert resumed.steps == 6 and len(resumed.metrics) == 3  # steps 4-6 replayed
    assert logged_steps(run_dir) == [1, 2, 3, 4, 5, 6]
    assert said == [f"Resumed from step 3 (checkpoint {run_dir / 'checkpoints' / 'step-0000003'})"]


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def partial_of(models: Path, pid: int) -> Path:
    folder = models / f".{DEFAULT_MODEL_DIRNAME}.partial-{pid}-{time.time_ns()}"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"half written")
    return folder


def test_a_killed_conversions_partial_folder_is_removed_at_the_next_start(tmp_path, monkeypatch):
    models = tmp_path / "models"
    killed = partial_of(models, dead_pid())
    running = partial_of(models, os.getppid())  # a live conversion in another process: left alone

    def convert(gguf: Path, version: str, out: Path) -> None:
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(model_source, "_bundled_gguf", lambda: (tmp_path / "model.gguf", "0"))
    monkeypatch.setattr(model_source, "_convert_gguf", convert)
    target = ensure_default_model(tmp_path, say=lambda _: None)
    assert not killed.exists() and running.exists()
    assert sorted(p.name for p in models.iterdir()) == sorted([running.name, DEFAULT_MODEL_DIRNAME])

    again = partial_of(models, dead_pid())  # a kill racing a finished conversion: cleaned once converted too
    assert ensure_default_model(tmp_path, say=lambda _: None) == target
    assert not again.exists() and running.exists()


def test_uploads_land_under_the_data_directory_and_old_ones_are_removed(tmp_path, monkeypatch):
    from gradio.utils import get_upload_folder

    monkeypatch.delenv(GRADIO_TEMP_ENV, raising=False)
    home = tmp_path / "home"
    old_upload, new_upload = home / "uploads" / "aaa" / "old.csv", home / "uploads" / "bbb" / "new.csv"
    for path in (old_upload, new_upload):
        path.parent.mkdir(parents=True)
        path.write_text("question\nWhat is bread?\n")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_upload, (two_days_ago, two_days_ago))
    folder = use_upload_folder(home)
    assert folder == (home / "uploads").resolve() and get_upload_folder() == str(folder)
    assert not old_upload.exists() and not old_upload.parent.exists() and new_upload.exists()
    use_upload_folder(tmp_path / "other-home")  # a second app in this process: its own folder
    assert get_upload_folder() == str((tmp_path / "other-home" / "uploads").resolve())


def test_an_upload_folder_the_operator_chose_is_kept_and_never_cleaned(tmp_path, monkeypatch):
    chosen = tmp_path / "mine"
    chosen.mkdir()
    keep = chosen / "old.bin"
    keep.write_text("x")
    os.utime(keep, (0, 0))
    monkeypatch.setenv(GRADIO_TEMP_ENV, str(chosen))
    assert use_upload_folder(tmp_path / "home") == chosen and keep.exists()
    assert os.environ[GRADIO_TEMP_ENV] == str(chosen) and not (tmp_path / "home" / "uploads").exists()
