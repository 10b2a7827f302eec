"""Chains -> token ids, labels, per-token stage ids, and step-skip attention masks.

Why one pass: a whole chain is one sequence; every token carries the stage it belongs to, so one
forward trains each expert on its own segment (section 4). Step skipping hides an intermediate
stage from every later stage with an explicit 4-D mask instead of building truncated copies.

Step skipping, exactly (what a skipped sample does and does not reproduce). For a sample whose
kept stages are K (the chain minus its skipped stages S), the materialised truncated chain is
question + K. One pass reproduces it token for token:
- every position outside S (question, kept stages, closing tokens) gets the same logits as the
  truncated chain, because the 4-D mask hides S from every later token and, with
  `DataConfig.compact_positions` (DECISION, default on), later tokens take the positions they
  would have in the truncated chain (RoPE sees the same distances);
- every position outside S predicts the same next token with the same loss, transitions
  included: the position that ends the last kept segment before a skipped run (the question's
  last token, or the previous kept stage's end marker) predicts the next kept stage's start
  marker (question -> answer, question -> guidance, analysis -> answer), as the truncated chain
  teaches. See `skip_transition_edits`.
What is not equivalent: a skipped stage's own tokens stay in the sample and keep their loss
(so its expert still trains on them), computed as in the chain up to that stage; only its two
transitions are dropped: the last kept position no longer predicts the skipped stage's start
marker (it predicts the next kept one instead), and the end marker that closes the skipped run
predicts nothing. (With analysis and guidance both skipped, analysis -> guidance stays trained
as in the full chain; guidance then sees only the question.) The skipped sample's loss is therefore the truncated chain's loss plus the skipped
stages' inner tokens. Without compact positions the labels still match, the logits do not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from core.data.chains import Chain
from core.config import DataConfig
from core.stages import CHAIN_STAGES, END_MARKERS, PAD_STAGE_ID, QUESTION_STAGE_ID, START_MARKERS, Stage

IGNORE_INDEX = -100
_SENTINEL = "\u2063MOTE-SENTINEL\u2063"
SKIPPABLE = (Stage.ANALYSIS, Stage.GUIDANCE)


class EmptyDatasetError(ValueError):
    """No chain could be encoded."""


@dataclass
class EncodedChain:
    """One tokenised chain. spans: stage -> [start, end) token positions (markers included)."""

    chain_id: str
    input_ids: list[int]
    labels: list[int]
    stage_ids: list[int]
    spans: dict[Stage, tuple[int, int]]

    def __len__(self) -> int:
        return len(self.input_ids)


def chat_prefix_suffix(tokenizer: PreTrainedTokenizerBase, question: str, system_prompt: str | None) -> tuple[str, str]:
    """Text before and after the assistant turn, as the model's own chat template writes them."""
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    messages += [{"role": "user", "content": question}, {"role": "assistant", "content": _SENTINEL}]
    if not getattr(tokenizer, "chat_template", None):
        return f"{question}\n", ""
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if _SENTINEL not in full:
        raise ValueError("This tokenizer's chat template drops the assistant message; set a chat template.")
    prefix, suffix = full.split(_SENTINEL, 1)
    return prefix, suffix


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []


def _suffix_ids(tokenizer: PreTrainedTokenizerBase, suffix: str) -> list[int]:
    """End-of-turn tokens, up to and including the first eos (the rest is template padding)."""
    ids = _ids(tokenizer, suffix)
    eos = tokenizer.eos_token_id
    return ids[: ids.index(eos) + 1] if eos in ids else ids


def encode_chain(
    chain: Chain,
    tokenizer: PreTrainedTokenizerBase,
    config: DataConfig,
    marker_ids: dict[str, int],
) -> EncodedChain:
    """Tokenise segment by segment, so stage ids align with tokens exactly."""
    prefix, suffix = chat_prefix_suffix(tokenizer, chain.question, config.system_prompt)
    input_ids = _ids(tokenizer, prefix)
    stage_ids = [QUESTION_STAGE_ID] * len(input_ids)
    spans: dict[Stage, tuple[int, int]] = {}
    segments = chain.segments if config.train_on == "chain" else [s for s in chain.segments if s.stage is Stage.ANSWER]
    for segment in segments:
        body = _ids(tokenizer, segment.text)
        if config.train_on == "chain":
            body = [marker_ids[START_MARKERS[segment.stage]], *body, marker_ids[END_MARKERS[segment.stage]]]
        spans[segment.stage] = (len(input_ids), len(input_ids) + len(body))
        input_ids += body
        stage_ids += [int(segment.stage)] * len(body)
    closing = _suffix_ids(tokenizer, suffix)
    input_ids += closing
    stage_ids += [int(Stage.ANSWER)] * len(closing)
    labels = [tok if stage != QUESTION_STAGE_ID else IGNORE_INDEX for tok, stage in zip(input_ids, stage_ids)]
    return EncodedChain(chain.id, input_ids, labels, stage_ids, spans)


def encode_chains(
    chains: list[Chain],
    tokenizer: PreTrainedTokenizerBase,
    config: DataConfig,
    marker_ids: dict[str, int],
) -> tuple[list[EncodedChain], list[tuple[str, str]]]:
    """Encode all chains; over-long ones are set aside with a reason (never cut silently)."""
    if not chains:
        raise EmptyDatasetError("The chain dataset is empty: generate chains first or pass a non-empty .jsonl file.")
    encoded, rejected = [], []
    for chain in chains:
        sample = encode_chain(chain, tokenizer, config, marker_ids)
        if len(sample) > config.max_length:
            rejected.append((chain.id, f"{len(sample)} tokens > max_length={config.max_length}"))
            continue
        encoded.append(sample)
    if not encoded:
        raise EmptyDatasetError(
            f"No chain fits max_length={config.max_length} ({len(rejected)} rejected): raise data.max_length."
        )
    return encoded, rejected


def with_helpful_repeats(samples: list[EncodedChain], chains: list[Chain], repeats: int) -> list[EncodedChain]:
    """`samples` with each helpful-labelled chain's sample `repeats` times (DataConfig.helpful_repeats).

    Why: refusal data outweighing helpful data is the known cause of over-refusal after safety
    tuning; the helpful chains are the model's own answers, so seeing them more often anchors its
    helpful behaviour without teaching anything new. Copies go at the end of the list; the
    training loop shuffles every epoch, and each copy draws its own step skipping."""
    if repeats <= 1:
        return samples
    helpful = {chain.id for chain in chains if chain.meta.get("kind") == "helpful"}
    extra = [sample for sample in samples if sample.chain_id in helpful]
    return samples + extra * (repeats - 1)


@dataclass
class SampleChoices:
    """Per-sample random draws, seeded by (seed, epoch, index) so a resumed run redraws them."""

    question_expert: int
    skipped: tuple[Stage, ...]


def draw_choices(seed: int, epoch: int, index: int, p_skip: float, sample: EncodedChain) -> SampleChoices:
    generator = torch.Generator().manual_seed(hash((seed, epoch, index)) & 0x7FFF_FFFF_FFFF)
    question_expert = int(torch.randint(len(CHAIN_STAGES), (1,), generator=generator))
    draws = torch.rand(len(SKIPPABLE), generator=generator)
    skipped = tuple(stage for stage, draw in zip(SKIPPABLE, draws) if stage in sample.spans and draw < p_skip)
    return SampleChoices(question_expert, skipped)


def skip_transition_edits(sample: EncodedChain, skipped: tuple[Stage, ...]) -> list[tuple[int, int]]:
    """(label index, new label) pairs that make a skipped sample teach the truncated chain's
    transitions (labels are unshifted: labels[i] is the target of the logits at i - 1).

    For each run of skipped stages followed by a kept stage K: the label at the run's first start
    marker (predicted from the last kept position) becomes K's start marker, and the label at K's
    start marker (predicted from the skipped stage's end marker) is ignored. O(stages), no loop
    over tokens, so the collate hot path stays vectorised.
    """
    edits: list[tuple[int, int]] = []
    run_entry: int | None = None
    for stage, (start, _end) in sorted(sample.spans.items(), key=lambda item: item[1][0]):
        if stage in skipped:
            run_entry = start if run_entry is None else run_entry
            continue
        if run_entry is not None:
            edits += [(run_entry, sample.input_ids[start]), (start, IGNORE_INDEX)]
            run_entry = None
    return edits


@dataclass
class Batch:
    """Collated micro-batch. Shapes: (batch, seq) except attention_mask (batch, 1, seq, seq)
    when a stage is skipped (else (batch, seq) padding mask) and question_expert (batch,)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    stage_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    question_expert: torch.Tensor

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{name: value.to(device) for name, value in vars(self).items()})

    @property
    def num_label_tokens(self) -> int:
        return int((self.labels[:, 1:] != IGNORE_INDEX).sum())


def collate(
    samples: list[EncodedChain],
    choices: list[SampleChoices],
    *,
    pad_id: int,
    compact_positions: bool = True,
    additive_mask_dtype: torch.dtype | None = None,
) -> Batch:
    """Right-pad and build masks. additive_mask_dtype: float mask for eager attention, else bool."""
    length = max(len(s) for s in samples)
    batch = len(samples)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
    stage_ids = torch.full((batch, length), PAD_STAGE_ID, dtype=torch.long)
    valid = torch.zeros((batch, length), dtype=torch.bool)
    positions = torch.arange(length).repeat(batch, 1)
    any_skip = any(choice.skipped for choice in choices)
    keep = torch.ones(length, length, dtype=torch.bool).tril().repeat(batch, 1, 1) if any_skip else None
    for row, (sample, choice) in enumerate(zip(samples, choices)):
        n = len(sample)
        input_ids[row, :n] = torch.tensor(sample.input_ids)
        labels[row, :n] = torch.tensor(sample.labels)
        stage_ids[row, :n] = torch.tensor(sample.stage_ids)
        valid[row, :n] = True
        for stage in choice.skipped:
            start, end = sample.spans[stage]
            keep[row, end:, start:end] = False
            if compact_positions:
                positions[row, end:] -= end - start
        for index, label in skip_transition_edits(sample, choice.skipped):
            labels[row, index] = label
    question_expert = torch.tensor([c.question_expert for c in choices], dtype=torch.long)
    if keep is None:
        mask = valid.long()
    else:
        keep &= valid.unsqueeze(1)
        keep |= torch.eye(length, dtype=torch.bool)  # padding rows see themselves: no NaN rows
        mask = keep.unsqueeze(1)
        if additive_mask_dtype is not None:
            mask = torch.zeros(mask.shape, dtype=additive_mask_dtype).masked_fill(
                ~mask, torch.finfo(additive_mask_dtype).min
            )
    return Batch(input_ids, labels, stage_ids, mask, positions, question_expert)
