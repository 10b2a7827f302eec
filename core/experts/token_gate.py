"""A learned per-token gate over LoRA experts, and the auxiliary losses it trains with.

Why it exists: MoTE routes by reasoning step; the paper's Table 4 compares that with routing
by token. These are the token-level baselines (docs/guide/concepts.md cites the papers):
- `moe_token`: a gate per wrapped linear layer, logits = W_g x, softmax over the experts, the
  top-k kept and renormalised (MixLoRA, arXiv 2404.15159), trained with the Switch Transformer
  load-balancing loss (arXiv 2101.03961):  L_balance = E * sum_e f_e * P_e, where f_e is the
  fraction of (token, slot) assignments that went to expert e and P_e the mean gate
  probability of e over the tokens. It is 1 for a perfectly balanced gate and grows to E when
  one expert takes every token.
- `mixlora`: the same gate plus a contrastive loss that keeps the experts apart (MoELoRA,
  arXiv 2402.12851: outputs of the same expert are positives, of other experts negatives).
  DECISION: the contrast is taken on each expert's rank-r features A_e x, not on B_e A_e x:
  with LoRA's init B = 0 the latter are all zero at the start (cosine undefined, gradients of
  order 1 / |B A x|), while A_e x is non-zero from the first step.

Kept apart from the layer math (as peft's XLoraClassifier is from XLoraLayer): the layer asks
its gate for per-token weights and hands it the expert features; the gate records what the
losses need in a `GateLosses` shared by the whole model, which the training loop reads.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn import functional as F

#: Experts behind a token gate: as many as MoTE has (three step experts and the shared one).
TOKEN_GATE_EXPERTS = 4
#: Temperature of the contrastive loss's cosine logits (MoCo / SimCLR range).
CONTRASTIVE_TEMPERATURE = 0.1
#: Tokens per layer and forward used by the contrastive loss: bounded cost on long batches.
CONTRASTIVE_MAX_TOKENS = 256


class GateLosses:
    """Collects each gated layer's auxiliary-loss terms during one training forward.

    Recording is off outside `collect()`, so generation, evaluation and the recomputation of
    gradient checkpointing add nothing.
    """

    def __init__(self) -> None:
        self.active = False
        self.balance_terms: list[torch.Tensor] = []
        self.contrastive_terms: list[torch.Tensor] = []

    @contextlib.contextmanager
    def collect(self) -> Iterator[GateLosses]:
        """Record the terms of the forward passes run inside the block (cleared on entry)."""
        self.balance_terms, self.contrastive_terms, self.active = [], [], True
        try:
            yield self
        finally:
            self.active = False

    def balance(self) -> torch.Tensor:
        """Mean load-balancing loss over the gated layers (0 when none ran)."""
        return torch.stack(self.balance_terms).mean() if self.balance_terms else torch.zeros(())

    def contrastive(self) -> torch.Tensor:
        """Mean contrastive loss over the gated layers (0 when none ran)."""
        return torch.stack(self.contrastive_terms).mean() if self.contrastive_terms else torch.zeros(())


class TokenGate(nn.Module):
    """Per-token expert weights from the layer input: top-k of softmax(W_g x), renormalised."""

    def __init__(self, in_features: int, *, num_experts: int, top_k: int, losses: GateLosses,
                 with_contrastive: bool) -> None:
        super().__init__()
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} is out of range: use 1..{num_experts} (the number of experts).")
        self.weight = nn.Parameter(torch.empty(num_experts, in_features))
        nn.init.normal_(self.weight, std=0.02)
        self.num_experts, self.top_k = num_experts, top_k
        self.losses, self.with_contrastive = losses, with_contrastive

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (..., in), valid (...) bool or None (all tokens) -> weights (..., E), zero at invalid
        tokens and outside each token's top-k; rows of valid tokens sum to 1."""
        probs = F.softmax(F.linear(x.to(self.weight.dtype), self.weight), dim=-1)
        top = probs.topk(self.top_k, dim=-1)
        chosen = torch.zeros_like(probs).scatter(-1, top.indices, 1.0)
        weights = chosen * probs
        weights = weights / weights.sum(-1, keepdim=True)
        if valid is not None:
            weights = weights * valid.unsqueeze(-1).to(weights.dtype)
        if self.losses.active:
            self.losses.balance_terms.append(self._balance_loss(probs, chosen, valid))
        return weights

    def _balance_loss(self, probs: torch.Tensor, chosen: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
        mask = torch.ones(probs.shape[:-1], device=probs.device) if valid is None else valid.to(probs.dtype)
        tokens = mask.sum().clamp(min=1.0)
        dispatched = (chosen * mask.unsqueeze(-1)).sum(tuple(range(probs.dim() - 1))) / (tokens * self.top_k)
        mean_prob = (probs * mask.unsqueeze(-1)).sum(tuple(range(probs.dim() - 1))) / tokens
        return self.num_experts * (dispatched * mean_prob).sum()

    def observe_features(self, features: torch.Tensor, valid: torch.Tensor | None) -> None:
        """features (..., E, r): each expert's A_e x. Records the contrastive term when training."""
        if not (self.losses.active and self.with_contrastive):
            return
        flat = features.reshape(-1, *features.shape[-2:])
        if valid is not None:
            flat = flat[valid.reshape(-1)]
        if flat.shape[0] < 2:
            return
        stride = max(1, flat.shape[0] // CONTRASTIVE_MAX_TOKENS)
        self.losses.contrastive_terms.append(expert_contrastive_loss(flat[::stride][:CONTRASTIVE_MAX_TOKENS]))

    def extra_repr(self) -> str:
        return f"experts={self.num_experts}, top_k={self.top_k}"


def expert_contrastive_loss(features: torch.Tensor, temperature: float = CONTRASTIVE_TEMPERATURE) -> torch.Tensor:
    """InfoNCE over experts: features (tokens, E, r). Anchor: expert i at token t; candidates:
    every expert at token t+1; the positive is the same expert i. Minimising it makes each
    expert's features alike across tokens and unlike the other experts'."""
    normed = F.normalize(features.float(), dim=-1)
    partner = normed.roll(-1, dims=0)
    logits = torch.einsum("tir,tjr->tij", normed, partner) / temperature
    targets = torch.arange(features.shape[1], device=features.device).expand(features.shape[0], -1)
    return F.cross_entropy(logits.reshape(-1, features.shape[1]), targets.reshape(-1))
