"""The step-routed multi-LoRA linear layer: math only.

For a token with gates g (one weight per expert, set by the stage the token belongs to):

    y = W0 x + b + sum_e g_e * (lora_alpha / r) * B_e A_e dropout(x)

With MoTE's layout g = alpha * onehot(stage) for the three step experts and (1 - alpha) for the
shared one, which is section 3's  y = W0 x + alpha E_s(x) + (1 - alpha) E_shared(x).

All experts are computed together: A is stored as (E, r, in) and B as (out, E, r), so the
whole layer is two matmuls, x -> (E*r) -> out, with the gates scaling each expert's r-block in
between. No loop over tokens or experts. Init and scaling follow PEFT's LoRA (A Kaiming-
uniform, B zero, scale lora_alpha / r), so zero B is exactly the base model.

Token-level baselines (moe_token, mixlora) give the layer a `TokenGate`: g then comes from the
gate, per token, and the router's gates only mark padding (core/experts/token_gate.py).

Folded forms (inference): `fold(g)` caches W0 + delta(g), so a token whose gate is g costs one
plain matmul. With a folded common gate c and per-token residual gates r = g - c over a few
experts (ExpertRouter.route_over_fold), y = (W0 + delta(c)) x + b + sum_e r_e * scaling * B_e A_e x.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from core.experts.routing import ExpertRouter, ResidualGates
from core.experts.token_gate import TokenGate


class StepExpertLinear(nn.Module):
    """A frozen `nn.Linear` plus E LoRA experts mixed per token by router gates."""

    def __init__(
        self,
        base_layer: nn.Linear,
        *,
        router: ExpertRouter,
        rank: int,
        lora_alpha: float,
        dropout: float = 0.0,
        token_gate: TokenGate | None = None,
    ) -> None:
        super().__init__()
        self.token_gate = token_gate
        self.base_layer = base_layer
        self.router = router
        self.rank = rank
        self.num_experts = router.layout.num_experts
        self.scaling = lora_alpha / rank
        weight = base_layer.weight
        factory = {"device": weight.device, "dtype": torch.float32 if weight.dtype.is_floating_point else None}
        self.lora_A = nn.Parameter(torch.empty(self.num_experts, rank, base_layer.in_features, **factory))
        self.lora_B = nn.Parameter(torch.zeros(base_layer.out_features, self.num_experts, rank, **factory))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._folded_weight: torch.Tensor | None = None
        self._folded = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PEFT's init: A ~ Kaiming-uniform(a=sqrt(5)) per expert, B = 0."""
        with torch.no_grad():
            for expert in range(self.num_experts):
                nn.init.kaiming_uniform_(self.lora_A[expert], a=math.sqrt(5))
            self.lora_B.zero_()

    def expert_delta(self, gate: torch.Tensor) -> torch.Tensor:
        """Weight update (out, in) of one gate vector (E,): scaling * sum_e g_e B_e A_e."""
        b, a = self._active_factors(gate)
        return b @ a

    def _active_factors(self, gate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(out, k*r) and (k*r, in) factors of the experts with a non-zero gate (k <= E)."""
        gate = gate.to(device=self.lora_B.device, dtype=self.lora_B.dtype) * self.scaling
        active = gate.nonzero().flatten()
        scaled_b = self.lora_B[:, active] * gate[active].view(1, -1, 1)
        return scaled_b.reshape(self.lora_B.shape[0], -1), self.lora_A[active].reshape(-1, self.lora_A.shape[-1])

    def fold(self, gate: torch.Tensor) -> None:
        """Cache W0 + delta(gate) so forward is one plain matmul (generation within a stage).

        Only the experts with a non-zero gate are multiplied (two for a MoTE stage), and the
        folded weight reuses one buffer across stage switches.
        """
        with torch.no_grad():
            base = self.base_layer.weight
            if self._folded_weight is None:
                self._folded_weight = torch.empty_like(base)
            b, a = self._active_factors(gate)
            if base.dtype == b.dtype:
                torch.addmm(base, b, a, out=self._folded_weight)
            else:
                torch.add(base, (b @ a).to(base.dtype), out=self._folded_weight)
            self._folded = True

    def unfold(self, release: bool = True) -> None:
        """Go back to per-token routing; `release` frees the folded buffer."""
        self._folded = False
        if release:
            self._folded_weight = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) with router gates (..., E) -> (..., out)."""
        if not self.router.enabled:
            return self.base_layer(x)
        if self._folded:
            result = F.linear(x, self._folded_weight, self.base_layer.bias)
            residual = self.router.residual
            return result if residual is None else result + self._residual_update(x, residual).to(result.dtype)
        gates = self.router.gates
        valid = None
        if self.token_gate is not None:  # router gates are only the padding mask here
            valid = None if gates is None else gates[..., 0] > 0
            gates = self.token_gate(x, valid)
        if gates is None:
            raise RuntimeError(
                "A MoTE layer ran without routing: call the model through MoteModel.forward "
                "(or inside router.route(gates)) so every token has a stage."
            )
        if gates.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"gates {tuple(gates.shape)} do not match the layer input {tuple(x.shape)}.")
        result = self.base_layer(x)
        a = self.lora_A.reshape(-1, self.lora_A.shape[-1])
        b = self.lora_B.reshape(self.lora_B.shape[0], -1)
        hidden = F.linear(self.dropout(x).to(a.dtype), a)
        hidden = hidden.unflatten(-1, (self.num_experts, self.rank))
        if self.token_gate is not None:
            self.token_gate.observe_features(hidden, valid)
        hidden = hidden * (gates.to(hidden.dtype) * self.scaling).unsqueeze(-1)
        update = F.linear(hidden.flatten(-2), b)
        return result + update.to(result.dtype)

    def _residual_update(self, x: torch.Tensor, residual: ResidualGates) -> torch.Tensor:
        """sum over the residual's experts of g_e * scaling * B_e A_e x; (..., in) -> (..., out).

        The expert slices of A (E, r, in) and B (out, E, r) are views, not copies."""
        a = self.lora_A[residual.experts].reshape(-1, self.lora_A.shape[-1])
        b = self.lora_B[:, residual.experts].reshape(self.lora_B.shape[0], -1)
        if residual.gates.shape[:-1] != x.shape[:-1]:
            raise ValueError(f"residual gates {tuple(residual.gates.shape)} do not match the layer input {tuple(x.shape)}.")
        hidden = F.linear(self.dropout(x).to(a.dtype), a) * residual.row_scales(self.rank, self.scaling, a.dtype)
        return F.linear(hidden, b)

    def extra_repr(self) -> str:
        return f"experts={self.num_experts}, rank={self.rank}, scaling={self.scaling:g}"
