"""The paper-preset estimates rest on arithmetic that can be checked against a real model."""
from __future__ import annotations

import pytest

from core.training.estimates import KNOWN_SHAPES, ModelShape, RunShape, estimate
from tests.conftest import tiny_mote


def test_expert_parameter_count_matches_a_built_mote_model(tiny_dir):
    mote = tiny_mote(tiny_dir)  # rank 4, experts on all seven projections
    config = mote.model.config
    shape = ModelShape(params=0, hidden=config.hidden_size, layers=config.num_hidden_layers,
                       intermediate=config.intermediate_size, vocab=config.vocab_size,
                       kv_dim=config.num_key_value_heads * (config.hidden_size // config.num_attention_heads))
    expert_params = sum(p.numel() for n, p in mote.model.named_parameters() if "lora_" in n)
    assert estimate(shape, RunShape(rank=4)).expert_params == expert_params


def test_estimates_grow_with_the_model_and_shrink_with_checkpointing():
    small, large = KNOWN_SHAPES["SmolLM2-135M-Instruct"], KNOWN_SHAPES["Llama-3.1-8B-Instruct"]
    assert estimate(large).train_memory_gib > estimate(small).train_memory_gib
    assert estimate(large).train_hours > 10 * estimate(small).train_hours
    no_checkpointing = RunShape(gradient_checkpointing=False)
    assert estimate(large, no_checkpointing).train_memory_gib > estimate(large).train_memory_gib
    assert estimate(large, no_checkpointing).train_hours < estimate(large).train_hours  # no recompute


# --- the scale arithmetic on a fixed toy shape (numbers worked by hand) ---------------------------
from core.training.estimates import (  # noqa: E402
    GIB, NF4_BYTES, BaseStorage, Hardware, Sharding, TrainMode, base_weight_bytes, memory_per_gpu, resolve_shape,
    step_seconds,
)

TOY = ModelShape(params=1000, hidden=4, layers=2, intermediate=8, vocab=10, kv_dim=2)
TOY_RUN = RunShape(rank=2, experts=4, micro_batch=1, seq_len=8, chain_tokens=5)
SLOW = Hardware(peak_tflops=1e-9, mfu=1.0, interconnect_gbs=1e-9)  # 1000 FLOP/s, 1 byte/s


def test_toy_shape_counts():
    assert TOY.layer_linear_params == 2 * 16 + 2 * 8 + 3 * 32 == 144
    assert TOY.other_params == 1000 - 288
    assert estimate(TOY, TOY_RUN).expert_params == 4 * 2 * (8 + 8 + 6 + 6 + 12 + 12 + 12) * 2 == 1024


def test_base_bytes_per_storage():
    assert base_weight_bytes(TOY, BaseStorage.FP32) == 4000
    assert base_weight_bytes(TOY, BaseStorage.BF16) == 2000
    assert base_weight_bytes(TOY, BaseStorage.NF4) == pytest.approx(288 * NF4_BYTES + 712 * 2)
    assert NF4_BYTES == pytest.approx(0.5 + 0.015625 + 0.000244, abs=1e-6)


def test_memory_terms_under_ddp_and_fsdp():
    ddp = memory_per_gpu(TOY, TOY_RUN, TrainMode(BaseStorage.BF16, Sharding.DDP, 1, True))
    working_set = (34 * 4 + 2 * (6 * 4 + 8)) * 8  # bytes for 8 tokens
    logits = 8 * 10 * 10
    assert (ddp.base, ddp.gathered, ddp.trainable_states) == (2000, 0, 16 * 1024)
    assert ddp.activations == 2 * 2 * 4 * 8 + working_set + logits
    assert ddp.total_gib == pytest.approx((2000 + 16384 + ddp.activations) / GIB + 1)
    fsdp = memory_per_gpu(TOY, TOY_RUN, TrainMode(BaseStorage.BF16, Sharding.FSDP, 4, True))
    assert (fsdp.base, fsdp.trainable_states, fsdp.gathered) == (500, 4096, 2 * 144 * 2)
    zero3 = memory_per_gpu(TOY, TOY_RUN, TrainMode(BaseStorage.BF16, Sharding.ZERO3, 4, True))
    assert zero3 == fsdp
    no_ckpt = memory_per_gpu(TOY, TOY_RUN, TrainMode(BaseStorage.BF16, Sharding.DDP, 1, False))
    assert no_ckpt.activations == 2 * working_set + logits


def test_step_time_is_flops_or_all_gather_whichever_is_slower():
    one = TrainMode(BaseStorage.BF16, Sharding.DDP, 1, True)
    assert step_seconds(TOY, TOY_RUN, one, SLOW, global_batch=2) == pytest.approx(10 * 2 * 3 * 1000 / 1000)
    no_ckpt = TrainMode(BaseStorage.BF16, Sharding.DDP, 1, False)
    assert step_seconds(TOY, TOY_RUN, no_ckpt, SLOW, global_batch=2) == pytest.approx(40)
    nf4 = TrainMode(BaseStorage.NF4, Sharding.DDP, 1, True)
    assert step_seconds(TOY, TOY_RUN, nf4, SLOW, global_batch=2) == pytest.approx(75)
    fsdp = TrainMode(BaseStorage.BF16, Sharding.FSDP, 2, True)
    assert step_seconds(TOY, TOY_RUN, fsdp, SLOW, global_batch=2) == pytest.approx(3 * 2000 / 2)
    fast_link = Hardware(peak_tflops=1e-9, mfu=1.0, interconnect_gbs=1.0)
    assert step_seconds(TOY, TOY_RUN, fsdp, fast_link, global_batch=2) == pytest.approx(30)


def test_llama_2_7b_shape_from_its_config_json():
    config = {"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
              "intermediate_size": 11008, "vocab_size": 32000, "tie_word_embeddings": False}
    shape = ModelShape.from_config(config)
    assert shape.params == pytest.approx(KNOWN_SHAPES["Llama-2-7B"].params, rel=2e-3)
    assert shape.layer_linear_params == KNOWN_SHAPES["Llama-2-7B"].layer_linear_params
    with pytest.raises(ValueError, match="config.json"):
        resolve_shape("no-such-model")
    assert resolve_shape("70B")[0] == "Llama-2-70B"


@pytest.mark.parametrize("size, base, published_gb", [
    ("Llama-2-7B", BaseStorage.BF16, 16), ("Llama-2-7B", BaseStorage.NF4, 6),
    ("Llama-2-70B", BaseStorage.BF16, 160), ("Llama-2-70B", BaseStorage.NF4, 48),
])
def test_plain_lora_is_near_llama_factorys_published_figures(size, base, published_gb):
    """LLaMA-Factory README, 'Hardware Requirement' (its own estimates): LoRA 16-bit 7B 16GB / 70B
    160GB, QLoRA 4-bit 7B 6GB / 70B 48GB. Plain LoRA here: one expert of rank 8, 1 x 1024 tokens."""
    lora = RunShape(rank=8, experts=1, micro_batch=1, seq_len=1024)
    gigabytes = memory_per_gpu(KNOWN_SHAPES[size], lora, TrainMode(base)).total_gib * GIB / 1e9
    assert gigabytes == pytest.approx(published_gb, rel=0.25)
