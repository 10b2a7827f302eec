"""Step-skip masks: a skipped stage is invisible to later stages, a kept one is not (d)."""
from __future__ import annotations

import torch

from core.config import DataConfig
from core.data.dataset import SampleChoices, collate, encode_chain
from core.stages import Stage
from tests.conftest import short_chains, tiny_mote


def logits_for(mote, sample, skipped, input_ids=None):
    batch = collate([sample], [SampleChoices(0, skipped)], pad_id=mote.tokenizer.pad_token_id)
    ids = batch.input_ids if input_ids is None else input_ids
    with torch.no_grad():
        gates = mote.gates(batch.stage_ids, training=True, question_expert=batch.question_expert)
        with mote.router.route(gates):
            return mote.model(input_ids=ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids).logits


def perturb(ids: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    changed = ids.clone()
    start, end = span
    changed[0, start + 1 : end - 1] = (changed[0, start + 1 : end - 1] + 7) % 250  # keep the markers
    return changed


def test_skipped_stage_is_invisible_to_later_stages(tiny_dir):
    mote = tiny_mote(tiny_dir)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.normal_(std=0.1)
    full_chain = short_chains(3)[2]
    sample = encode_chain(full_chain, mote.tokenizer, DataConfig(), mote.marker_ids)
    analysis, answer = sample.spans[Stage.ANALYSIS], sample.spans[Stage.ANSWER]
    ids = torch.tensor([sample.input_ids])

    skipped = logits_for(mote, sample, (Stage.ANALYSIS,))
    skipped_perturbed = logits_for(mote, sample, (Stage.ANALYSIS,), perturb(ids, analysis))
    later = slice(analysis[1], None)
    assert torch.allclose(skipped[:, later], skipped_perturbed[:, later], atol=1e-6)

    kept = logits_for(mote, sample, ())
    kept_perturbed = logits_for(mote, sample, (), perturb(ids, analysis))
    assert (kept[:, answer[0] :] - kept_perturbed[:, answer[0] :]).abs().max() > 1e-4


def test_compacted_positions_reproduce_the_truncated_chain(tiny_dir):
    mote = tiny_mote(tiny_dir)
    full_chain, = [c for c in short_chains(3) if len(c.segments) == 2]
    sample = encode_chain(full_chain, mote.tokenizer, DataConfig(), mote.marker_ids)
    answer_only = type(full_chain)(full_chain.question, [s for s in full_chain.segments if s.stage is Stage.ANSWER])
    truncated = encode_chain(answer_only, mote.tokenizer, DataConfig(), mote.marker_ids)
    skipped = logits_for(mote, sample, (Stage.ANALYSIS,))
    reference = logits_for(mote, truncated, ())
    start = sample.spans[Stage.ANSWER][0]
    ref_start = truncated.spans[Stage.ANSWER][0]
    assert torch.allclose(skipped[0, start:], reference[0, ref_start:], atol=1e-5)
