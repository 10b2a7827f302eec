"""The paper-preset estimates rest on arithmetic that can be checked against a real model."""
from __future__ import annotations

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
