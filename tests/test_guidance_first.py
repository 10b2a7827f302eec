"""Guidance-first chains ([guidance, answer]): read, counted, trained and generated like the
other shapes."""
from __future__ import annotations

import pytest

from core.config import DataConfig, TrainConfig
from core.data.chain_store import chain_statistics, statistics_table
from core.data.chains import ChainFormatError, chain_from_dict
from core.data.dataset import encode_chains
from core.decoding.chain_programs import GenerationSettings, generate_chain
from core.stages import ChainShape, Stage, allowed_next_stages, shape_of
from core.training.loop import train_experts
from tests.conftest import tiny_mote


def guidance_first_chains(count: int) -> list:
    return [chain_from_dict({"id": f"g{i}", "question": f"q{i}?", "guidance": f"be kind {i}", "answer": f"sure {i}"})
            for i in range(count)]


def test_guidance_first_is_a_shape_and_a_valid_opening():
    assert shape_of([Stage.GUIDANCE, Stage.ANSWER]) is ChainShape.GUIDANCE_ANSWER
    assert guidance_first_chains(1)[0].shape is ChainShape.GUIDANCE_ANSWER
    assert allowed_next_stages(()) == (Stage.ANALYSIS, Stage.GUIDANCE, Stage.ANSWER)
    assert allowed_next_stages((Stage.GUIDANCE,)) == (Stage.ANSWER,)
    with pytest.raises(ChainFormatError, match="not a valid chain"):
        chain_from_dict({"question": "q?", "stages": [{"stage": "answer", "text": "a"}, {"stage": "guidance", "text": "g"}]})


def test_statistics_count_guidance_first_chains_with_or_without_a_recorded_shape():
    records = [chain.to_dict() for chain in guidance_first_chains(2)]
    records[0]["shape"] = ChainShape.GUIDANCE_ANSWER.value
    for record in records:
        record["flagged"] = False
    stats = chain_statistics(records)
    assert stats["shape_counts"][ChainShape.GUIDANCE_ANSWER.value] == 2
    assert "| guidance -> answer | 2 |" in statistics_table(stats)


def test_a_guidance_first_chain_trains_and_generates(tiny_dir, tmp_path):
    mote = tiny_mote(tiny_dir)
    data = DataConfig(p_skip=0.0)  # with skipping, the skipped samples would teach question -> answer
    samples, _ = encode_chains(guidance_first_chains(6), mote.tokenizer, data, mote.marker_ids)
    assert list(samples[0].spans) == [Stage.GUIDANCE, Stage.ANSWER]
    train = TrainConfig(max_steps=40, batch_size=6, micro_batch_size=3, learning_rate=2e-2,
                        warmup_ratio=0.0, mixed_precision="no")
    result = train_experts(mote, samples, train, data, tmp_path)
    assert result.losses[-1] < result.losses[0] - 1.0

    forced = generate_chain(mote, "q1?", GenerationSettings(max_stage_tokens=8, path=ChainShape.GUIDANCE_ANSWER))
    assert [s.stage for s in forced.segments] == [Stage.GUIDANCE, Stage.ANSWER]
    own = generate_chain(mote, "q1?", GenerationSettings(max_stage_tokens=8))
    assert [s.stage for s in own.segments] == [Stage.GUIDANCE, Stage.ANSWER]  # it learned to open with guidance
