"""Export a trained MoTE model as standard PEFT LoRA adapters, and load it back.

Layout of an export folder:
    mote.json                    stages, markers, alpha, routing, base model, experts, token rows
    experts/<name>/              one PEFT LoRA adapter per expert (adapter_config.json +
                                 adapter_model.safetensors); its lora_alpha folds in the expert's
                                 mixing weight, so activating {stage expert, shared} in PEFT gives
                                 W0 x + alpha E_s(x) + (1 - alpha) E_shared(x) for that stage
    token_rows.safetensors       trained rows of the marker tokens (embedding, untied head)
    tokenizer files              the tokenizer with the marker tokens

    token_gates.safetensors      token-level baselines only (moe_token, mixlora): each wrapped
                                 layer's gate weight (experts x in), keyed by layer name

A PEFT user: load the base, `apply_token_rows(model, folder)`, then
`PeftModel.from_pretrained(model, folder/experts/answer, adapter_name="answer")`, load "shared" and
activate both.

Token-level baselines have no PEFT form: a learned gate that mixes LoRA experts per token has
no equivalent in PEFT's LoRA (PEFT mixes adapters with fixed weights). Their experts are still
written as PEFT adapters (mix weight 1, no gate), and the gates beside them; `load_mote_model`
restores both, and only it (or MoTE Studio) reproduces the trained model.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, PreTrainedModel

from core.config import ExpertConfig
from core.experts.model import MoteModel, build_mote_model
from core.experts.routing import SHARED_EXPERT
from core.stages import STAGE_LABELS, Stage

FORMAT_VERSION = 1
MOTE_FILE = "mote.json"
ROWS_FILE = "token_rows.safetensors"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
GATES_FILE = "token_gates.safetensors"


def expert_mix_weights(mote: MoteModel) -> dict[str, float]:
    """Each expert's fixed mixing weight (stage experts alpha, shared 1 - alpha, single LoRA 1)."""
    layout = mote.layout
    if layout.token_gate:  # the weights are the gate's, per token: none is fixed
        return {name: 1.0 for name in layout.names}
    return {name: (1.0 - layout.alpha) if name == SHARED_EXPERT else layout.stage_weight for name in layout.names}


def _method_name(mote: MoteModel) -> str:
    if mote.layout.token_gate:
        return "token-gate"
    return "mote" if mote.layout.step_experts else "single-lora"


def token_gate_state(mote: MoteModel) -> dict[str, torch.Tensor]:
    """Wrapped layer name -> its gate weight (experts, in); empty without token gates."""
    return {
        name: mote.model.get_submodule(name).token_gate.weight.detach().cpu().contiguous()
        for name in mote.wrapped_modules
        if mote.model.get_submodule(name).token_gate is not None
    }


def export_mote(mote: MoteModel, folder: str | Path, *, base_model: str, extra: dict[str, Any] | None = None) -> Path:
    """Write the export folder (see module docstring); returns it."""
    folder = Path(folder)
    (folder / "experts").mkdir(parents=True, exist_ok=True)
    weights = expert_mix_weights(mote)
    for index, name in enumerate(mote.layout.names):
        _save_adapter(mote, index, weights[name], folder / "experts" / name, base_model)
    if mote.token_rows is not None:
        rows = {"token_ids": mote.token_rows.token_ids.cpu(), "embed": mote.token_rows.embed.detach().cpu()}
        if mote.token_rows.head is not None:
            rows["head"] = mote.token_rows.head.detach().cpu()
        save_file({k: v.contiguous() for k, v in rows.items()}, str(folder / ROWS_FILE))
    gates = token_gate_state(mote)
    if gates:
        save_file(gates, str(folder / GATES_FILE))
    mote.tokenizer.save_pretrained(folder)
    manifest = {
        "format_version": FORMAT_VERSION,
        "method": _method_name(mote),
        "base_model": base_model,
        "stages": {stage.name.lower(): STAGE_LABELS[stage] for stage in Stage},
        "markers": mote.marker_ids,
        "experts": {name: {"folder": f"experts/{name}", "mix_weight": weights[name]} for name in mote.layout.names},
        "expert_config": {k: (v.value if hasattr(v, "value") else v) for k, v in vars(mote.config).items()},
        "step_experts": mote.layout.step_experts,
        "shared_expert": mote.layout.shared_expert,
        "alpha": mote.layout.alpha,
        "question_routing": {"train": mote.config.train_question_routing.value, "inference": mote.config.infer_question_routing.value},
        "wrapped_modules": mote.wrapped_modules,
        "trained_token_ids": [] if mote.token_rows is None else mote.token_rows.token_ids.tolist(),
        "token_rows_file": ROWS_FILE if mote.token_rows is not None else None,
        "token_gates_file": GATES_FILE if gates else None,
        "peft_equivalent": not gates,
        **(extra or {}),
    }
    (folder / MOTE_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


def _save_adapter(mote: MoteModel, index: int, mix: float, folder: Path, base_model: str) -> None:
    config = mote.config
    lora = LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha * mix,
        lora_dropout=config.dropout,
        target_modules=list(mote.wrapped_modules),
        task_type="CAUSAL_LM",
        base_model_name_or_path=base_model,
    )
    lora.save_pretrained(str(folder))
    tensors = {}
    for layer_name in mote.wrapped_modules:
        layer = mote.model.get_submodule(layer_name)
        prefix = f"base_model.model.{layer_name}"
        tensors[f"{prefix}.lora_A.weight"] = layer.lora_A[index].detach().cpu().contiguous()
        tensors[f"{prefix}.lora_B.weight"] = layer.lora_B[:, index].detach().cpu().contiguous()
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MOTE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{folder} is not a MoTE export (no {MOTE_FILE}); pick a run's export folder.")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {manifest.get('format_version')} is not supported (expected {FORMAT_VERSION}).")
    return manifest


def apply_token_rows(model: PreTrainedModel, folder: str | Path, tokenizer_size: int) -> None:
    """Resize a plain base model to the export's vocabulary and write the trained marker rows."""
    path = Path(folder) / ROWS_FILE
    if model.get_input_embeddings().num_embeddings < tokenizer_size:
        model.resize_token_embeddings(tokenizer_size, mean_resizing=False)
    if not path.exists():
        return
    rows = load_file(str(path))
    ids = rows["token_ids"]
    with torch.no_grad():
        embedding = model.get_input_embeddings().weight
        embedding[ids] = rows["embed"].to(embedding.dtype)
        head = model.get_output_embeddings()
        if head is not None and head.weight is not embedding:
            head.weight[ids] = rows.get("head", rows["embed"]).to(head.weight.dtype)


def load_mote_model(folder: str | Path, base: PreTrainedModel) -> MoteModel:
    """Rebuild a MoTE model from an export folder on top of `base` (loaded by the caller)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = ExpertConfig(**{**manifest["expert_config"], "dropout": 0.0})
    uses_markers = bool(manifest["trained_token_ids"])
    if uses_markers:
        base.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    mote = build_mote_model(base, tokenizer, config, use_markers=uses_markers, allow_existing_markers=True)
    with torch.no_grad():
        if mote.token_rows is not None:
            rows = load_file(str(folder / ROWS_FILE))
            mote.token_rows.embed.copy_(rows["embed"])
            if mote.token_rows.head is not None:
                mote.token_rows.head.copy_(rows.get("head", rows["embed"]))
        for index, name in enumerate(mote.layout.names):
            tensors = load_file(str(folder / manifest["experts"][name]["folder"] / ADAPTER_WEIGHTS))
            for layer_name in mote.wrapped_modules:
                layer = mote.model.get_submodule(layer_name)
                layer.lora_A[index].copy_(tensors[f"base_model.model.{layer_name}.lora_A.weight"])
                layer.lora_B[:, index].copy_(tensors[f"base_model.model.{layer_name}.lora_B.weight"])
        _load_token_gates(mote, folder, manifest)
    mote.model.eval()
    return mote


def _load_token_gates(mote: MoteModel, folder: Path, manifest: dict[str, Any]) -> None:
    if not mote.layout.token_gate:
        return
    name = manifest.get("token_gates_file")
    if not name or not (folder / name).exists():
        raise FileNotFoundError(
            f"{folder} holds a token-gated model but no {GATES_FILE}: re-export the run; the experts "
            "alone cannot reproduce it."
        )
    gates = load_file(str(folder / name))
    for layer_name in mote.wrapped_modules:
        mote.model.get_submodule(layer_name).token_gate.weight.copy_(gates[layer_name])
