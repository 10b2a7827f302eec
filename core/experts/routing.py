"""Step-level routing: per-token stage ids -> per-token expert gates.

Why no learned gate: MoTE routes each token to the expert of the stage it belongs to
(section 3). The gates computed here are the only thing the expert layers need; the layers
read them from one `ExpertRouter` shared by the whole model, so the Hugging Face forward
signature stays untouched.

Tensor shapes: stage_ids (batch, seq) long with values QUESTION_STAGE_ID (-1), PAD_STAGE_ID
(-2), or a chain stage 0..2; gates (batch, seq, num_experts) float.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.config import ExpertConfig, QuestionRouting
from core.experts.token_gate import TOKEN_GATE_EXPERTS, GateLosses
from core.stages import CHAIN_STAGES, PAD_STAGE_ID, QUESTION_STAGE_ID, Stage

if TYPE_CHECKING:
    from core.experts.layer import StepExpertLinear

SHARED_EXPERT = "shared"
SINGLE_EXPERT = "lora"
TOKEN_EXPERT_PREFIX = "expert_"
_FIXED_ROUTES = {
    QuestionRouting.ANALYSIS: Stage.ANALYSIS,
    QuestionRouting.GUIDANCE: Stage.GUIDANCE,
    QuestionRouting.ANSWER: Stage.ANSWER,
}


@dataclass(frozen=True)
class ExpertLayout:
    """Which experts every wrapped layer holds, and how stages mix them."""

    step_experts: bool = True
    shared_expert: bool = True
    alpha: float = 0.5
    token_gate: bool = False
    """Experts mixed per token by learned gates (moe_token, mixlora): the stage gates computed
    here are then only the padding mask, and the layers' TokenGates give the weights."""

    @classmethod
    def from_config(cls, config: ExpertConfig) -> ExpertLayout:
        if config.token_gate:
            return cls(step_experts=False, shared_expert=False, alpha=config.alpha, token_gate=True)
        return cls(config.step_experts, config.shared_expert and config.step_experts, config.alpha)

    @property
    def names(self) -> tuple[str, ...]:
        if self.token_gate:
            return tuple(f"{TOKEN_EXPERT_PREFIX}{index}" for index in range(TOKEN_GATE_EXPERTS))
        if not self.step_experts:
            return (SINGLE_EXPERT,)
        steps = tuple(stage.name.lower() for stage in CHAIN_STAGES)
        return steps + ((SHARED_EXPERT,) if self.shared_expert else ())

    @property
    def num_experts(self) -> int:
        return len(self.names)

    @property
    def stage_weight(self) -> float:
        """Weight of the stage expert: alpha with a shared expert, else 1."""
        return self.alpha if self.shared_expert else 1.0

    def stage_gate(self, stage: Stage) -> torch.Tensor:
        """Gate vector (num_experts,) of every token of one stage."""
        stage_ids = torch.full((1, 1), int(stage), dtype=torch.long)
        return self.gates(stage_ids, QuestionRouting.MEAN)[0, 0]

    def common_gate(self) -> torch.Tensor:
        """Gate components (num_experts,) every chain stage shares (others zero): MoTE's shared
        expert at 1 - alpha, a single LoRA at 1, nothing for step experts without a shared one.

        Why: folded into the weights once, they cost nothing per token, so rows of a batch in
        different stages only route what differs between stages (`split_common`)."""
        gates = torch.stack([self.stage_gate(stage) for stage in CHAIN_STAGES])
        shared = (gates == gates[0]).all(dim=0)
        return torch.where(shared, gates[0], torch.zeros_like(gates[0]))

    def split_common(self, gates: torch.Tensor, stage_ids: torch.Tensor) -> tuple[torch.Tensor, ResidualGates | None]:
        """(common gate, what each token adds to it) for per-token gates (batch, seq, E).

        gates = common + residual on every non-pad token, exactly; pad tokens get the common gate
        (their outputs are masked from every other token and never read). The residual covers
        the contiguous run of experts where some token differs; None when no token differs.
        """
        common = self.common_gate().to(gates.dtype)
        residual = torch.where((stage_ids != PAD_STAGE_ID).unsqueeze(-1), gates - common, torch.zeros_like(gates))
        differs = residual.flatten(0, -2).abs().amax(dim=0).nonzero().flatten().tolist()
        if not differs:
            return common, None
        experts = slice(differs[0], differs[-1] + 1)
        return common, ResidualGates(experts, residual[..., experts])

    def gates(
        self,
        stage_ids: torch.Tensor,
        question_routing: QuestionRouting,
        question_expert: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-token gates (batch, seq, num_experts) from stage ids (batch, seq).

        question_expert (batch,) gives the step expert of each sample's question tokens when
        question_routing is RANDOM (drawn by the dataset, so a resumed run draws the same).
        """
        not_pad = (stage_ids != PAD_STAGE_ID).unsqueeze(-1).float()
        if self.token_gate:
            return not_pad.expand(*not_pad.shape[:-1], self.num_experts).clone()
        if not self.step_experts:
            return not_pad.clone()
        if bool((stage_ids == int(Stage.CHECK)).any()) or bool((stage_ids < PAD_STAGE_ID).any()):
            raise ValueError("stage_ids hold a stage with no expert: use -2 (pad), -1 (question) or 0..2.")
        steps = self._question_step_weights(stage_ids, question_routing, question_expert)
        steps = steps * self.stage_weight * not_pad
        if not self.shared_expert:
            return steps
        shared = (1.0 - self.alpha) * not_pad
        return torch.cat([steps, shared], dim=-1)

    def _question_step_weights(
        self,
        stage_ids: torch.Tensor,
        routing: QuestionRouting,
        question_expert: torch.Tensor | None,
    ) -> torch.Tensor:
        num_steps = len(CHAIN_STAGES)
        in_chain = stage_ids.clamp(min=0)
        weights = torch.nn.functional.one_hot(in_chain, num_steps).float()
        is_question = (stage_ids == QUESTION_STAGE_ID).unsqueeze(-1)
        if routing is QuestionRouting.MEAN:
            question = torch.full_like(weights, 1.0 / num_steps)
        elif routing is QuestionRouting.RANDOM:
            if question_expert is None:
                raise ValueError("question_routing=random needs question_expert (one per sample).")
            question = torch.nn.functional.one_hot(question_expert.to(stage_ids.device).long(), num_steps).float()
            question = question.unsqueeze(1).expand_as(weights)
        else:
            question = torch.zeros_like(weights)
            question[..., int(_FIXED_ROUTES[routing])] = 1.0
        return torch.where(is_question, question, weights)


class ResidualGates:
    """Per-token gates (..., k) of the experts `experts` (a slice of k) on top of a folded gate."""

    def __init__(self, experts: slice, gates: torch.Tensor) -> None:
        self.experts, self.gates = experts, gates
        self._per_rank: dict[tuple[int, float], torch.Tensor] = {}

    def to(self, device: torch.device | str) -> ResidualGates:
        return ResidualGates(self.experts, self.gates.to(device))

    def row_scales(self, rank: int, scaling: float, dtype: torch.dtype) -> torch.Tensor:
        """(..., k * rank): each expert's gate times `scaling`, repeated over its rank rows. Built
        once per forward and shared by every layer of that rank (saves two ops per layer)."""
        key = (rank, scaling)
        if key not in self._per_rank:
            self._per_rank[key] = (self.gates.to(dtype) * scaling).repeat_interleave(rank, dim=-1)
        return self._per_rank[key]


class ExpertRouter:
    """Holds the gates of the forward pass in flight and the layers that read them.

    Layers read `gates` (batch, seq, num_experts) at forward time. For generation within one
    stage the router can instead fold a single gate vector into every layer's weight, so a
    MoTE model decodes at the base model's speed (section 5: the active pair never changes
    inside a stage).
    """

    def __init__(self, layout: ExpertLayout) -> None:
        self.layout = layout
        self.gates: torch.Tensor | None = None
        self.layers: list[StepExpertLinear] = []
        self.folded_gate: torch.Tensor | None = None
        self.residual: ResidualGates | None = None
        """Per-token gates routed on top of the folded gate (`route_over_fold`), else None."""
        self._holds_buffers = False
        self.enabled = True
        self.gate_losses = GateLosses()  # filled by the layers' TokenGates (token-level baselines)

    @contextlib.contextmanager
    def route(self, gates: torch.Tensor) -> Iterator[None]:
        """Use per-token `gates` for every forward (and backward recompute) inside the block."""
        if gates.shape[-1] != self.layout.num_experts:
            raise ValueError(f"gates have {gates.shape[-1]} experts, the model has {self.layout.num_experts}.")
        self.unfold(release=False)  # keep the fold buffers: the next stage folds into them
        previous, self.gates = self.gates, gates
        try:
            yield
        finally:
            self.gates = previous

    @contextlib.contextmanager
    def route_over_fold(self, common: torch.Tensor, residual: ResidualGates | None) -> Iterator[None]:
        """Fold `common` (num_experts,) into every layer (kept across calls while it stays the same)
        and route `residual` per token on top: how rows in different stages decode together at
        nearly the base model's cost (ExpertLayout.split_common)."""
        self.fold(common)
        previous, self.residual = self.residual, residual
        try:
            yield
        finally:
            self.residual = previous

    @contextlib.contextmanager
    def disabled(self) -> Iterator[None]:
        """Run the frozen base model alone (experts bypassed)."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def fold(self, gate: torch.Tensor) -> None:
        """Fold one gate vector (num_experts,) into every layer; no-op when already folded, and
        under learned token gates (their weights change per token: nothing fixed to fold)."""
        if self.layout.token_gate:
            return
        if self.folded_gate is not None and torch.equal(self.folded_gate, gate):
            return
        for layer in self.layers:
            layer.fold(gate)
        self.folded_gate = gate.clone()
        self._holds_buffers = True

    def unfold(self, release: bool = True) -> None:
        """Back to per-token gates; `release` also frees the folded weights' memory."""
        if self.folded_gate is None and not (release and self._holds_buffers):
            return
        for layer in self.layers:
            layer.unfold(release)
        self.folded_gate = None
        self._holds_buffers = self._holds_buffers and not release
