"""Shared fixtures: a tiny random Llama folder (built once per session) and short chains."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.data.chains import Chain
from core.config import ExpertConfig
from core.experts.model import MoteModel, build_mote_model
from core.stages import Stage, StageSegment
from tests.tiny_model import save_tiny_model_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# `make test` runs two pytest-xdist workers on a 2-core machine: each gets its share of the cores
# (one BLAS thread each), so the two never fight over threads.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads()) // _WORKERS))
if _WORKERS > 1:
    os.environ["OMP_NUM_THREADS"] = "1"  # job processes the tests start inherit it


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_tied_dir(tmp_path_factory) -> Path:
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama-tied"), tie=True)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory) -> Path:
    """MOTE_TEST_HOME keeps the converted bundled model between runs; otherwise a fresh temp home."""
    env = os.environ.get("MOTE_TEST_HOME")
    return Path(env).expanduser() if env else tmp_path_factory.mktemp("mote-home")


def load_tiny(folder: Path):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    return model, tokenizer


def tiny_mote(folder: Path, **expert_kwargs) -> MoteModel:
    model, tokenizer = load_tiny(folder)
    settings = {"rank": 4, "lora_alpha": 8.0, "dropout": 0.0, **expert_kwargs}
    torch.manual_seed(0)  # marker rows and expert A matrices are drawn at build time
    return build_mote_model(model, tokenizer, ExpertConfig(**settings))


def short_chains(count: int = 12) -> list[Chain]:
    """Short chains of all three shapes (byte-level tokens keep them under ~120 tokens)."""
    shapes = [
        (Stage.ANSWER,),
        (Stage.ANALYSIS, Stage.ANSWER),
        (Stage.ANALYSIS, Stage.GUIDANCE, Stage.ANSWER),
    ]
    texts = {Stage.ANALYSIS: "risk: low {i}", Stage.GUIDANCE: "be kind {i}", Stage.ANSWER: "sure, here {i}"}
    chains = []
    for i in range(count):
        stages = shapes[i % 3]
        segments = [StageSegment(stage, texts[stage].format(i=i)) for stage in stages]
        chains.append(Chain(question=f"q{i}?", segments=segments, id=f"c{i}"))
    return chains
