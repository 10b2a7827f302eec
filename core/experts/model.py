"""Attach step-routed experts and stage markers to any transformers causal LM.

Why pure named functions: adding markers, wrapping layers and freezing are separate steps that
tests, export and loading reuse one by one (litgpt's `mark_only_lora_as_trainable` style).
`MoteModel` bundles the result and gives the one forward that sets routing from stage ids.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from core.config import ExpertConfig, QuestionRouting
from core.experts.layer import StepExpertLinear
from core.experts.routing import ExpertLayout, ExpertRouter
from core.experts.token_gate import TokenGate
from core.stages import ALL_MARKERS, END_MARKERS, START_MARKERS, Stage
from core.experts.token_rows import TokenRows, install_token_rows

ALL_LINEAR = "all-linear"


def add_stage_markers(
    tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, *, allow_existing: bool = False
) -> dict[str, int]:
    """Add the six marker tokens as special tokens and resize the embeddings; marker -> id."""
    vocab = tokenizer.get_vocab()
    present = [marker for marker in ALL_MARKERS if marker in vocab]
    if present and not allow_existing:
        raise ValueError(
            f"Marker token(s) {present} are already in this tokenizer's vocabulary: this looks like "
            "a model that already has MoTE markers. Load it with load_mote_model, or start from "
            "the original base model."
        )
    missing = [marker for marker in ALL_MARKERS if marker not in vocab]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing}, replace_extra_special_tokens=False)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    return {marker: tokenizer.convert_tokens_to_ids(marker) for marker in ALL_MARKERS}


def find_target_linears(model: nn.Module, target_modules: list[str]) -> dict[str, nn.Linear]:
    """Qualified name -> nn.Linear for every layer whose last name is a target (not the head)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and module is not head and "lm_head" not in name
    }
    if ALL_LINEAR in target_modules:
        found = linears
    else:
        found = {name: mod for name, mod in linears.items() if name.rsplit(".", 1)[-1] in target_modules}
    if not found:
        available = sorted({name.rsplit(".", 1)[-1] for name in linears})
        raise ValueError(
            f"None of target_modules={target_modules} matches a linear layer of this model. "
            f"Its linear layers are named {available}; set target_modules to some of them, or "
            f"to ['{ALL_LINEAR}']."
        )
    return found


def attach_step_experts(model: nn.Module, config: ExpertConfig, router: ExpertRouter) -> list[str]:
    """Replace every target linear with a StepExpertLinear; returns the wrapped names."""
    targets = find_target_linears(model, list(config.target_modules))
    for name, linear in targets.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = StepExpertLinear(
            linear, router=router, rank=config.rank, lora_alpha=config.lora_alpha, dropout=config.dropout,
            token_gate=_token_gate(linear, config, router),
        )
        setattr(parent, child, layer)
        router.layers.append(layer)
    return sorted(targets)


def _token_gate(linear: nn.Linear, config: ExpertConfig, router: ExpertRouter) -> TokenGate | None:
    """A learned gate for one layer under the token-level baselines, else None (step routing)."""
    if not router.layout.token_gate:
        return None
    gate = TokenGate(
        linear.in_features, num_experts=router.layout.num_experts, top_k=config.gate_top_k,
        losses=router.gate_losses, with_contrastive=config.contrastive_loss_weight > 0,
    )
    return gate.to(linear.weight.device)


def mark_only_experts_trainable(model: nn.Module) -> None:
    """Freeze everything but expert A/B matrices, token gates and the new token rows."""
    for name, param in model.named_parameters():
        param.requires_grad = (
            ".lora_A" in name or ".lora_B" in name or ".token_gate." in name or name.endswith(("rows.embed", "rows.head"))
        )


def expert_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable tensors only (experts and token rows), keyed by parameter name."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def cache_kwargs(model: nn.Module, cache) -> dict:
    """The KV-cache keyword of this transformers release (`cache`, formerly `past_key_values`)."""
    if cache is None:
        return {}
    return {_cache_keyword(type(model)): cache}


@functools.lru_cache(maxsize=None)
def _cache_keyword(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


@dataclass
class MoteModel:
    """A causal LM with step experts, its tokenizer and the router that feeds the experts."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    config: ExpertConfig
    router: ExpertRouter
    marker_ids: dict[str, int]
    token_rows: TokenRows | None
    wrapped_modules: list[str]

    @property
    def layout(self) -> ExpertLayout:
        return self.router.layout

    @property
    def uses_markers(self) -> bool:
        return bool(self.marker_ids)

    def start_id(self, stage: Stage) -> int:
        return self.marker_ids[START_MARKERS[stage]]

    def end_id(self, stage: Stage) -> int:
        return self.marker_ids[END_MARKERS[stage]]

    def gates(
        self, stage_ids: torch.Tensor, *, training: bool, question_expert: torch.Tensor | None = None
    ) -> torch.Tensor:
        routing = self.config.train_question_routing if training else self.config.infer_question_routing
        question_expert = None if question_expert is None else question_expert.cpu()
        gates = self.layout.gates(stage_ids.cpu(), QuestionRouting(routing), question_expert)
        return gates.to(stage_ids.device)

    def forward(
        self,
        input_ids: torch.Tensor,
        stage_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        question_expert: torch.Tensor | None = None,
        cache=None,
        training: bool = False,
        logits_to_keep: int = 0,
        fold_common: bool = False,
    ):
        """Causal-LM forward with every token routed by its stage id; returns HF outputs.

        input_ids, stage_ids (batch, seq); attention_mask 2-D (batch, kv) or a prepared 4-D mask.
        `fold_common` (inference): fold the gate every chain stage shares into the weights and
        route only the rest per token (ExpertLayout.split_common): batched decoding of rows in
        different stages at close to the base model's cost. Same outputs up to float rounding.
        """
        with self._routing(stage_ids, training=training, question_expert=question_expert, fold_common=fold_common):
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=cache is not None,
                logits_to_keep=logits_to_keep,
                **cache_kwargs(self.model, cache),
            )

    __call__ = forward

    def _routing(self, stage_ids: torch.Tensor, *, training: bool, question_expert: torch.Tensor | None,
                 fold_common: bool) -> contextlib.AbstractContextManager[None]:
        if not fold_common or training:
            return self.router.route(self.gates(stage_ids, training=training, question_expert=question_expert))
        routing = QuestionRouting(self.config.infer_question_routing)
        cpu_ids = stage_ids.cpu()
        common, residual = self.layout.split_common(self.layout.gates(cpu_ids, routing, question_expert), cpu_ids)
        if not bool(common.any()):  # nothing shared to fold: plain per-token routing costs the same
            return self.router.route(self.gates(stage_ids, training=False, question_expert=question_expert))
        device = stage_ids.device
        return self.router.route_over_fold(common.to(device), residual.to(device) if residual is not None else None)


def build_mote_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    config: ExpertConfig,
    *,
    use_markers: bool = True,
    allow_existing_markers: bool = False,
) -> MoteModel:
    """Add markers (trainable rows), attach experts, freeze the rest: a model ready to train."""
    marker_ids: dict[str, int] = {}
    rows = None
    if use_markers:
        marker_ids = add_stage_markers(tokenizer, model, allow_existing=allow_existing_markers)
        rows = install_token_rows(model, sorted(marker_ids.values()))
    router = ExpertRouter(ExpertLayout.from_config(config))
    wrapped = attach_step_experts(model, config, router)
    mark_only_experts_trainable(model)
    return MoteModel(model, tokenizer, config, router, marker_ids, rows, wrapped)
