"""A bf16 frozen base trains like the float32 one, and only the float32 experts and marker rows change."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.config import BaseDtype, DataConfig, ExpertConfig, MoteConfig, TrainConfig
from core.data.dataset import encode_chains
from core.experts.model import MoteModel, build_mote_model
from core.model_source import training_base_dtype
from core.training.loop import train_experts
from core.training.recipe import load_training_base
from tests.conftest import short_chains

DATA = DataConfig(max_length=256, p_skip=0.0)
TRAIN = TrainConfig(max_steps=3, batch_size=4, micro_batch_size=2, learning_rate=5e-3,
                    mixed_precision="no", warmup_ratio=0.0)


def mote_in(folder, dtype: torch.dtype) -> MoteModel:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
    torch.manual_seed(0)
    return build_mote_model(model, tokenizer, ExpertConfig(rank=4, lora_alpha=8.0, dropout=0.0))


def trainable(mote: MoteModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in mote.model.named_parameters() if p.requires_grad}


def test_auto_is_half_on_gpus_and_float32_on_the_cpu():
    assert training_base_dtype(BaseDtype.AUTO, cuda=False) == torch.float32
    assert training_base_dtype("bfloat16", cuda=False) == torch.bfloat16
    assert training_base_dtype(BaseDtype.FLOAT16, cuda=True) == torch.float16
    if torch.cuda.is_available():
        assert training_base_dtype("auto") in (torch.bfloat16, torch.float16)
    with pytest.raises(ValueError, match="train.base_dtype"):
        training_base_dtype("int8")


def test_the_setting_loads_the_base_in_bf16_with_float32_experts(tiny_dir, tmp_path):
    config = MoteConfig(model=str(tiny_dir), train=TrainConfig(base_dtype=BaseDtype.BFLOAT16))
    base, tokenizer = load_training_base(config, home=tmp_path, say=pytest.fail)
    assert base.dtype == torch.bfloat16
    mote = build_mote_model(base, tokenizer, ExpertConfig(rank=4))
    dtypes = {p.dtype for p in mote.model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in mote.model.parameters() if not p.requires_grad}
    assert dtypes == {torch.float32} and frozen == {torch.bfloat16}


def test_a_bf16_base_step_matches_the_float32_base_step(tiny_dir, tmp_path):
    full, half = mote_in(tiny_dir, torch.float32), mote_in(tiny_dir, torch.bfloat16)
    half.model.load_state_dict(trainable(full), strict=False)  # same starting experts and rows
    frozen_before = {n: p.detach().clone() for n, p in half.model.named_parameters() if not p.requires_grad}
    start = trainable(half)
    samples, _ = encode_chains(short_chains(), full.tokenizer, DATA, full.marker_ids)
    full_run = train_experts(full, samples, TRAIN, DATA, tmp_path / "fp32")
    half_run = train_experts(half, samples, TRAIN, DATA, tmp_path / "bf16")

    # bf16 keeps 8 bits of mantissa: losses agree to well under 1% on this tiny model
    assert half_run.losses == pytest.approx(full_run.losses, rel=1e-2)
    full_after, half_after = trainable(full), trainable(half)
    for name, value in half_after.items():
        assert value.dtype == torch.float32, name
        full_step, half_step = full_after[name] - start[name], value - start[name]
        if full_step.abs().max() > 0:
            cosine = torch.nn.functional.cosine_similarity(full_step.flatten(), half_step.flatten(), dim=0)
            assert cosine > 0.9, f"{name}: update direction differs (cosine {cosine:.3f})"
    changed = {n for n in half_after if not torch.equal(half_after[n], start[n])}
    assert any("lora_B" in n for n in changed) and any("rows." in n for n in changed)
    for name, param in half.model.named_parameters():
        if not param.requires_grad:
            assert param.dtype == torch.bfloat16 or not param.dtype.is_floating_point, name
            assert torch.equal(param, frozen_before[name]), f"frozen {name} changed"
