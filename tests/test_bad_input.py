"""Bad input gets an error that names the problem and the fix (h)."""
from __future__ import annotations

import json

import pytest

from core.data.chains import ChainFormatError, chain_from_dict, load_chains_jsonl
from core.config import DataConfig, ExpertConfig, MoteConfig, TrainConfig
from core.data.dataset import EmptyDatasetError, encode_chains
from core.experts.model import build_mote_model
from core.model_source import ModelSourceError, load_base_model
from tests.conftest import load_tiny, tiny_mote


def test_chain_without_answer_is_rejected_with_its_line(tmp_path):
    path = tmp_path / "chains.jsonl"
    path.write_text(json.dumps({"question": "q", "analysis": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(ChainFormatError, match=r"chains.jsonl:1: .*no answer"):
        load_chains_jsonl(path)


def test_unknown_stage_name_lists_the_valid_ones():
    record = {"question": "q", "stages": [{"stage": "reflection", "text": "x"}, {"stage": "answer", "text": "y"}]}
    with pytest.raises(ChainFormatError, match=r"Unknown stage name 'reflection'.*analysis"):
        chain_from_dict(record)


def test_marker_already_in_vocabulary(tiny_dir):
    mote = tiny_mote(tiny_dir)
    fresh_model, _ = load_tiny(tiny_dir)
    with pytest.raises(ValueError, match=r"already in this tokenizer's vocabulary.*load_mote_model"):
        build_mote_model(fresh_model, mote.tokenizer, ExpertConfig(rank=2))


def test_target_modules_not_found_lists_the_real_names(tiny_dir):
    model, tokenizer = load_tiny(tiny_dir)
    with pytest.raises(ValueError, match=r"None of target_modules=\['c_attn'\].*q_proj"):
        build_mote_model(model, tokenizer, ExpertConfig(rank=2, target_modules=["c_attn"]))


def test_missing_model_path(tmp_path):
    with pytest.raises(ModelSourceError, match="does not exist"):
        load_base_model(str(tmp_path / "no-such-model"), tmp_path)


def test_empty_dataset(tiny_dir):
    mote = tiny_mote(tiny_dir)
    with pytest.raises(EmptyDatasetError, match="empty"):
        encode_chains([], mote.tokenizer, DataConfig(), mote.marker_ids)


def test_config_errors_name_the_field_and_range():
    with pytest.raises(ValueError, match=r"alpha=1.5 is out of range"):
        ExpertConfig(alpha=1.5)
    with pytest.raises(ValueError, match="not a multiple of micro_batch_size"):
        TrainConfig(batch_size=6, micro_batch_size=4)
    with pytest.raises(ValueError, match=r"method='moe' is not known"):
        MoteConfig(method="moe")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['ranks'\]"):
        MoteConfig.from_dict({"experts": {"ranks": 4}})
