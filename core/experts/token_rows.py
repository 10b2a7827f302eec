"""Trainable embedding and output rows for the new stage-marker tokens only.

Why: the markers are new tokens, so their input embeddings and output-head rows must be
learned, but the rest of the vocabulary stays frozen (section 3; the same idea as PEFT's
`trainable_token_indices`). The frozen matrices keep their shape; a small parameter holds the
new rows and overrides them in the forward. Tied embeddings share one parameter.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class TokenRows(nn.Module):
    """The trainable rows: `embed` (n, hidden) and, for untied heads, `head` (n, hidden)."""

    def __init__(self, token_ids: list[int], embed_rows: torch.Tensor, head_rows: torch.Tensor | None) -> None:
        super().__init__()
        self.register_buffer("token_ids", torch.tensor(token_ids, dtype=torch.long), persistent=False)
        self.embed = nn.Parameter(embed_rows.detach().float().clone())
        self.head = None if head_rows is None else nn.Parameter(head_rows.detach().float().clone())

    @property
    def head_rows(self) -> torch.Tensor:
        return self.embed if self.head is None else self.head


class RowOverrideEmbedding(nn.Module):
    """nn.Embedding whose rows `token_ids` come from `rows.embed`."""

    def __init__(self, base: nn.Embedding, rows: TokenRows) -> None:
        super().__init__()
        self.base = base
        self.rows = rows
        lookup = torch.full((base.num_embeddings,), -1, dtype=torch.long)
        lookup[rows.token_ids] = torch.arange(len(rows.token_ids))
        self.register_buffer("lookup", lookup, persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.base(input_ids)
        slot = self.lookup.to(input_ids.device)[input_ids]
        new = F.embedding(slot.clamp(min=0), self.rows.embed).to(out.dtype)
        if getattr(self.base, "embed_scale", None) is not None:  # Gemma scales embeddings
            new = new * self.base.embed_scale.to(new.dtype)
        return torch.where((slot >= 0).unsqueeze(-1), new, out)


class RowOverrideHead(nn.Module):
    """Output head whose logits for `token_ids` use `rows.head_rows`."""

    def __init__(self, base: nn.Linear, rows: TokenRows) -> None:
        super().__init__()
        self.base = base
        self.rows = rows

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.base(hidden)
        new = F.linear(hidden.to(self.rows.head_rows.dtype), self.rows.head_rows)
        if self.base.bias is not None:
            new = new + self.base.bias[self.rows.token_ids].to(new.dtype)
        return logits.index_copy(-1, self.rows.token_ids.to(logits.device), new.to(logits.dtype))


def install_token_rows(model: nn.Module, token_ids: list[int]) -> TokenRows:
    """Wrap the model's input embedding and output head so only `token_ids` rows train."""
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    ids = torch.tensor(token_ids, dtype=torch.long, device=embedding.weight.device)
    head_rows = None if tied or head is None else head.weight[ids]
    rows = TokenRows(token_ids, embedding.weight[ids], head_rows).to(embedding.weight.device)
    model.set_input_embeddings(RowOverrideEmbedding(embedding, rows))
    if head is not None:
        model.set_output_embeddings(RowOverrideHead(head, rows))
    return rows


def merge_token_rows(model: nn.Module) -> None:
    """Write the trained rows into the plain matrices and remove the wrappers (export, PEFT)."""
    embedding = model.get_input_embeddings()
    head = model.get_output_embeddings()
    if not isinstance(embedding, RowOverrideEmbedding):
        return
    rows = embedding.rows
    with torch.no_grad():
        embedding.base.weight[rows.token_ids] = rows.embed.to(embedding.base.weight.dtype)
        if isinstance(head, RowOverrideHead):
            head.base.weight[rows.token_ids] = rows.head_rows.to(head.base.weight.dtype)
    model.set_input_embeddings(embedding.base)
    if isinstance(head, RowOverrideHead):
        model.set_output_embeddings(head.base)
