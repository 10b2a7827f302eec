"""Step-skip masks: a skipped stage is invisible to later stages, a kept one is not (d)."""
from __future__ import annotations

import pytest
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


def per_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, target) at every position p, predicting labels[p + 1]; loss 0 where ignored."""
    targets = labels[0, 1:]
    losses = torch.nn.functional.cross_entropy(logits[0, :-1].float(), targets, ignore_index=-100, reduction="none")
    return losses, targets


def truncated_pair(mote, chain, skipped):
    """The one-pass sample with `skipped` and the materialised truncated chain it stands for."""
    sample = encode_chain(chain, mote.tokenizer, DataConfig(), mote.marker_ids)
    kept = type(chain)(chain.question, [s for s in chain.segments if s.stage not in skipped])
    return sample, encode_chain(kept, mote.tokenizer, DataConfig(), mote.marker_ids)


SKIP_CASES = [
    (2, (Stage.ANALYSIS,)),
    (2, (Stage.GUIDANCE,)),
    (2, (Stage.ANALYSIS, Stage.GUIDANCE)),
    (1, (Stage.ANALYSIS,)),
]


@pytest.mark.parametrize("chain_index, skipped", SKIP_CASES)
def test_step_skip_matches_the_truncated_chain_at_every_token(tiny_dir, chain_index, skipped):
    """Every position outside the skipped spans: same input, logits, next-token target and loss
    as the materialised truncated chain, transitions (question -> next kept stage) included."""
    mote = tiny_mote(tiny_dir)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.normal_(std=0.1)
    sample, truncated = truncated_pair(mote, short_chains(3)[chain_index], skipped)
    one_pass = collate([sample], [SampleChoices(0, skipped)], pad_id=mote.tokenizer.pad_token_id)
    reference = collate([truncated], [SampleChoices(0, ())], pad_id=mote.tokenizer.pad_token_id)
    logits, ref_logits = logits_for(mote, sample, skipped), logits_for(mote, truncated, ())
    losses, targets = per_token_losses(logits, one_pass.labels)
    ref_losses, ref_targets = per_token_losses(ref_logits, reference.labels)

    in_skipped = torch.zeros(len(sample), dtype=torch.bool)
    for stage in skipped:
        start, end = sample.spans[stage]
        in_skipped[start:end] = True
    kept = (~in_skipped).nonzero().flatten()
    assert torch.equal(one_pass.input_ids[0, kept], reference.input_ids[0])
    assert torch.allclose(logits[0, kept], ref_logits[0], atol=1e-5)
    kept_predicting = kept[:-1]  # the last token predicts nothing in either sequence
    assert torch.equal(targets[kept_predicting], ref_targets)
    assert torch.allclose(losses[kept_predicting], ref_losses, atol=1e-5)

    first_skipped = min(sample.spans[stage][0] for stage in skipped)
    next_kept = min(s for s, _ in sample.spans.values() if s > first_skipped and not in_skipped[s])
    assert targets[first_skipped - 1] == sample.input_ids[next_kept]  # the truncated transition
    last_skipped_end = max(sample.spans[stage][1] for stage in skipped)
    assert targets[last_skipped_end - 1] == -100  # the run's last end marker predicts nothing
    skipped_loss = losses[in_skipped[:-1]].sum()
    assert torch.allclose(losses.sum(), ref_losses.sum() + skipped_loss, atol=1e-4)


def test_a_skipped_stage_still_trains_its_own_tokens_as_in_the_full_chain(tiny_dir):
    mote = tiny_mote(tiny_dir)
    sample = encode_chain(short_chains(3)[2], mote.tokenizer, DataConfig(), mote.marker_ids)
    start, end = sample.spans[Stage.GUIDANCE]
    skipped, full = logits_for(mote, sample, (Stage.GUIDANCE,)), logits_for(mote, sample, ())
    assert torch.allclose(skipped[0, :end], full[0, :end], atol=1e-6)
    labels = collate([sample], [SampleChoices(0, (Stage.GUIDANCE,))], pad_id=0).labels[0]
    assert torch.equal(labels[start + 1 : end], torch.tensor(sample.labels[start + 1 : end]))
