"""A held-out slice of the chains and the mean token loss a trained model gets on it.

Why: a setting (learning rate, epochs, rank) is chosen by measurement, not copied from a paper
written for another model size. The training loss cannot choose it (a higher learning rate
always fits the training chains better); the loss on chains the run never saw can. The slice is
drawn by a fixed seed from the chain ids, so every value of a sweep is measured on the same
chains, and the loss is the same token-level cross-entropy the loop optimises, with every stage
kept (no step skipping) so two runs are compared on one fixed target.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from core.data.chains import Chain
from core.data.dataset import EncodedChain, SampleChoices, collate, draw_choices
from core.experts.model import MoteModel
from core.training.loop import token_loss_sum


@dataclass(frozen=True)
class HoldoutSplit:
    """The chains a run trains on and the held-out chains its loss is measured on."""

    train: list[Chain]
    heldout: list[Chain]


def split_holdout(chains: Sequence[Chain], fraction: float, seed: int) -> HoldoutSplit:
    """Hold out round(fraction x n) chains (at least one, and at least one left to train on).

    The draw depends only on the chain ids, the fraction and the seed (not on file order), so
    every run of a sweep holds out the same chains."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout={fraction} must be between 0 and 1 (e.g. 0.1 holds out a tenth of the chains).")
    if len(chains) < 2:
        raise ValueError(f"A held-out slice needs at least 2 chains, got {len(chains)}: add chains or drop the sweep.")
    ordered = sorted(chains, key=lambda chain: str(chain.id))
    count = min(len(ordered) - 1, max(1, round(fraction * len(ordered))))
    picked = set(random.Random(seed).sample(range(len(ordered)), count))
    return HoldoutSplit(train=[c for i, c in enumerate(ordered) if i not in picked],
                        heldout=[c for i, c in enumerate(ordered) if i in picked])


def _no_skip_choices(samples: Sequence[EncodedChain], seed: int) -> list[SampleChoices]:
    """Every stage kept; the question expert drawn as training draws it (seeded, epoch 0)."""
    return [draw_choices(seed, 0, index, 0.0, sample) for index, sample in enumerate(samples)]


@torch.no_grad()
def heldout_loss(mote: MoteModel, samples: Sequence[EncodedChain], *, seed: int = 0, batch_size: int = 4) -> float:
    """Mean next-token cross-entropy over every labelled token of `samples` (summed over the
    tokens, divided by their count: long chains weigh by their length, as in training)."""
    if not samples:
        raise ValueError("No held-out chains to measure: the held-out slice encoded to nothing "
                         "(every chain was too long or empty); raise data.max_length or the holdout fraction.")
    pad_id = mote.tokenizer.pad_token_id if mote.tokenizer.pad_token_id is not None else mote.tokenizer.eos_token_id
    additive = mote.model.dtype if mote.model.config._attn_implementation == "eager" else None
    device = next(mote.model.parameters()).device
    choices = _no_skip_choices(samples, seed)
    was_training = mote.model.training
    mote.model.eval()
    total, tokens = 0.0, 0
    try:
        for start in range(0, len(samples), batch_size):
            batch = collate(list(samples[start:start + batch_size]), choices[start:start + batch_size], pad_id=pad_id,
                            additive_mask_dtype=additive).to(device)
            logits = mote(batch.input_ids, batch.stage_ids, attention_mask=batch.attention_mask,
                          position_ids=batch.position_ids, question_expert=batch.question_expert, training=True).logits
            total += float(token_loss_sum(logits, batch.labels))
            tokens += batch.num_label_tokens
    finally:
        mote.model.train(was_training)
    if not tokens:
        raise ValueError("The held-out chains have no labelled tokens: check data.train_on and the chains' answers.")
    return total / tokens
