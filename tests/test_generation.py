"""Stage-aware generation with a KV cache equals recomputing the whole sequence (e)."""
from __future__ import annotations

import pytest
import torch

from core.decoding.chain_programs import ChainOutput, GenerationSettings, StageEventKind, generate_chain, stream_chain
from core.stages import ChainShape, Stage
from tests.conftest import tiny_mote


def trained_looking_mote(tiny_dir):
    mote = tiny_mote(tiny_dir)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.2)
    return mote


@pytest.mark.parametrize("path", [ChainShape.FULL, None])
@pytest.mark.parametrize("fold", [True, False])
def test_cached_generation_matches_full_recompute(tiny_dir, path, fold):
    mote = trained_looking_mote(tiny_dir)
    settings = GenerationSettings(max_stage_tokens=6, path=path, fold_experts=fold)
    output = generate_chain(mote, "Is this safe?", settings, record_logits=True)
    assert output.segments[-1].stage is Stage.ANSWER
    if path is ChainShape.FULL:
        assert [s.stage for s in output.segments] == list(ChainShape.FULL.stages)
    generated = len(output.token_ids) - output.prompt_length
    assert len(output.step_logits) == generated
    with torch.no_grad():
        for step, cached in enumerate(output.step_logits):
            length = output.prompt_length + step
            ids = torch.tensor([output.token_ids[:length]])
            stages = torch.tensor([output.stage_ids[:length]])
            recomputed = mote(ids, stages).logits[0, -1]
            assert (recomputed - cached).abs().max() <= 1e-4, f"step {step}"


def test_stream_events_open_write_and_close_each_stage(tiny_dir):
    mote = trained_looking_mote(tiny_dir)
    settings = GenerationSettings(max_stage_tokens=4, path=ChainShape.ANALYSIS_ANSWER, stage_limits={"answer": 2})
    output = ChainOutput([], [], [], 0)
    events = list(stream_chain(mote, "hello", settings, output=output))
    kinds = [(e.kind, e.stage) for e in events if e.kind is not StageEventKind.TEXT]
    start, end = StageEventKind.START, StageEventKind.END
    assert kinds == [(start, Stage.ANALYSIS), (end, Stage.ANALYSIS), (start, Stage.ANSWER), (end, Stage.ANSWER)]
    assert events[0].expert == "analysis + shared"
    answer_tokens = [t for t, s in zip(output.token_ids, output.stage_ids) if s == int(Stage.ANSWER)]
    assert len(answer_tokens) <= 2 + 2  # the limit plus the two markers
    assert events[-1].text == output.answer
    assert mote.router.folded_gate is None  # folding is undone after generation
    assert all(layer._folded_weight is not None for layer in mote.router.layers)  # buffers kept for the next chain
    list(stream_chain(mote, "hello", GenerationSettings(max_stage_tokens=2, keep_fold_buffers=False)))
    assert all(layer._folded_weight is None for layer in mote.router.layers)  # or freed on request
    before = [p.detach().clone() for p in mote.model.parameters()]
    list(stream_chain(mote, "hello", GenerationSettings(max_stage_tokens=2, path=ChainShape.FULL)))
    assert mote.router.folded_gate is None and all(  # kept buffers never leak into the weights
        torch.equal(a, b.detach()) for a, b in zip(before, mote.model.parameters()))
