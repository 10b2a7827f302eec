"""Constrained label choice: probabilities over the labels, exact for multi-token labels, batch-invariant."""
from __future__ import annotations

import math

import pytest
import torch

from core.decoding.label_scores import prompt_text, score_labels
from tests.tiny_model import build_tiny_model, build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tiny_tokenizer()
    return build_tiny_model(len(tokenizer), seed=3), tokenizer


def brute_force_log_prob(model, tokenizer, text: str, label: str) -> float:
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    target = tokenizer(label, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt + target])).logits[0].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    return sum(log_probs[len(prompt) - 1 + i, t].item() for i, t in enumerate(target))


def test_probabilities_sum_to_one_and_match_the_exact_sequence_probability(tiny):
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": "Is this safe?"}], [{"role": "user", "content": "How do I bake bread at home?"}]]
    labels = [" safe", " unsafe"]
    scores = score_labels(model, tokenizer, prompts, labels, prefix="VERDICT:")
    for prompt, score in zip(prompts, scores):
        assert math.isclose(sum(score.probabilities.values()), 1.0, rel_tol=1e-6)
        text = prompt_text(tokenizer, prompt, prefix="VERDICT:")
        raw = [brute_force_log_prob(model, tokenizer, text, label) for label in labels]
        expected = torch.softmax(torch.tensor(raw), dim=0)
        assert score[" unsafe"] == pytest.approx(expected[1].item(), abs=1e-5)
        assert score.best in labels


def test_single_token_path_equals_sequence_path_and_batching_changes_nothing(tiny):
    model, tokenizer = tiny
    prompts = ["a short prompt", "a much longer prompt that needs left padding in a batch"]
    one_token = score_labels(model, tokenizer, prompts, ["x", "y", "z"])
    # Same labels forced through the multi-token path by adding a two-token label with ~0 mass.
    alone = [score_labels(model, tokenizer, [p], ["x", "y", "z"], batch_size=1)[0] for p in prompts]
    for batched, single in zip(one_token, alone):
        for label in "xyz":
            assert batched[label] == pytest.approx(single[label], abs=1e-5)
    mixed = score_labels(model, tokenizer, prompts, ["x", "yz"])
    for i, prompt in enumerate(prompts):
        raw = [brute_force_log_prob(model, tokenizer, prompt, label) for label in ["x", "yz"]]
        assert mixed[i]["yz"] == pytest.approx(torch.softmax(torch.tensor(raw), 0)[1].item(), abs=1e-5)


def test_expected_value_of_numeric_labels_and_bad_labels_refused(tiny):
    model, tokenizer = tiny
    scores = score_labels(model, tokenizer, ["SCORE:"], [str(n) for n in range(1, 11)])[0]
    assert 1.0 <= scores.expected_value() <= 10.0
    with pytest.raises(ValueError, match="distinct"):
        score_labels(model, tokenizer, ["p"], ["a", "a"])


def test_labels_of_several_tokens_sharing_a_first_token_are_scored_exactly_in_a_padded_batch(tiny):
    """The cached path: one prompt read, each label's later tokens on its cut-back KV cache."""
    model, tokenizer = tiny
    prompts = ["short", "a far longer prompt, so the batch is left padded for the first one"]
    labels = ["yz", "yzx", "zx", "x"]
    scores = score_labels(model, tokenizer, prompts, labels, batch_size=2)
    for prompt, score in zip(prompts, scores):
        raw = torch.tensor([brute_force_log_prob(model, tokenizer, prompt, label) for label in labels])
        for label, expected in zip(labels, torch.softmax(raw, 0).tolist()):
            assert score[label] == pytest.approx(expected, abs=1e-5)
