"""Choosing the next token: greedy, or temperature / top-k / top-p sampling with a seeded generator.

Why a fresh seed is drawn when none is given: an unseeded torch.Generator starts from a fixed
default seed, so "random" replies would repeat one another. The seed drawn is kept on the
sampler, so a caller can show it and a user can reproduce the reply by passing it back.
"""
from __future__ import annotations

import secrets
from collections.abc import Sequence

import torch

#: Fresh seeds are drawn below this bound: small enough to read, type back and store as JSON.
FRESH_SEED_BOUND = 2**31


def fresh_seed() -> int:
    """A seed from the operating system's entropy, in [1, FRESH_SEED_BOUND). Never 0, because
    forms (the Chat tab) use 0 to ask for a fresh seed: a drawn seed can always be typed back."""
    return 1 + secrets.randbelow(FRESH_SEED_BOUND - 1)


def sample_token(logits: torch.Tensor, *, temperature: float, top_p: float = 1.0, top_k: int = 0,
                 generator: torch.Generator | None = None, banned: Sequence[int] = ()) -> int:
    """Greedy (temperature 0) or temperature / top-k / top-p sampling of one token from (vocab,) logits.
    The one sampler of the project: chains, chat subjects and plain completions all use it."""
    logits = logits.clone()
    if banned:
        logits[list(banned)] = float("-inf")
    if temperature <= 0:
        return int(logits.argmax())
    logits = logits / temperature
    if top_k > 0:
        cutoff = torch.topk(logits, min(top_k, logits.numel())).values[-1]
        logits[logits < cutoff] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        probs[order[sorted_probs.cumsum(0) - sorted_probs > top_p]] = 0.0
        probs = probs / probs.sum()
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))


class Sampler:
    """Draws one sequence's tokens with its own generator, so a sequence's tokens do not depend
    on what else is decoded beside it. `seed` None draws a fresh seed; `self.seed` is the seed used."""

    def __init__(self, *, temperature: float, top_p: float = 1.0, top_k: int = 0, seed: int | None = None) -> None:
        self.temperature, self.top_p, self.top_k = temperature, top_p, top_k
        self.seed = fresh_seed() if seed is None else int(seed)
        self.generator = torch.Generator(device="cpu").manual_seed(self.seed)

    def sample(self, logits: torch.Tensor, allowed: list[int] | None = None, banned: Sequence[int] = ()) -> int:
        """One token from (vocab,) logits; `allowed` restricts the choice, `banned` excludes tokens."""
        if allowed is not None:
            keep = torch.full_like(logits, float("-inf"))
            keep[allowed] = 0.0
            logits = logits + keep
        return sample_token(logits, temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                            generator=self.generator, banned=banned)
