"""Token-level baselines (moe_token, mixlora): they train on the same chains with their
auxiliary losses, their gates learn, generation routes per token, and exports round-trip."""
from __future__ import annotations

import pytest
import torch

from core.config import Method, MoteConfig, TrainConfig, resolve_method
from core.data.dataset import SampleChoices, collate, encode_chains
from core.decoding.chain_programs import GenerationSettings, generate_chain
from core.experts.export import GATES_FILE, export_mote, load_mote_model, read_manifest
from core.experts.model import build_mote_model
from core.experts.token_gate import expert_contrastive_loss
from core.training.loop import train_experts
from tests.conftest import load_tiny, short_chains

TINY_EXPERTS = {"rank": 4, "lora_alpha": 8.0, "dropout": 0.0}


def token_gated(tiny_dir, method: Method, **experts):
    config = resolve_method(MoteConfig(method=method, experts={**TINY_EXPERTS, **experts}))
    model, tokenizer = load_tiny(tiny_dir)
    torch.manual_seed(0)
    return build_mote_model(model, tokenizer, config.experts), config


def test_methods_resolve_to_token_gates_on_the_chain_data():
    for method in (Method.MOE_TOKEN, Method.MIXLORA):
        config = resolve_method(MoteConfig(method=method))
        assert config.experts.token_gate and config.data.train_on == "chain" and config.data.p_skip == 0.0
    assert resolve_method(MoteConfig(method=Method.MOE_TOKEN)).experts.contrastive_loss_weight == 0.0
    assert resolve_method(MoteConfig(method=Method.MIXLORA)).experts.contrastive_loss_weight > 0.0
    assert not resolve_method(MoteConfig(method=Method.MOTE)).experts.token_gate


@pytest.mark.parametrize("method", [Method.MOE_TOKEN, Method.MIXLORA])
def test_auxiliary_losses_decrease_while_training(tiny_dir, tmp_path, method):
    mote, config = token_gated(tiny_dir, method, balance_loss_weight=1.0, gate_top_k=1)
    with torch.no_grad():  # a sharp random gate: unbalanced at the start, as a real router can be
        for layer in mote.router.layers:
            layer.token_gate.weight.mul_(10.0)
    samples, _ = encode_chains(short_chains(12), mote.tokenizer, config.data, mote.marker_ids)
    train = TrainConfig(max_steps=10, batch_size=12, micro_batch_size=12, learning_rate=1e-2,
                        warmup_ratio=0.0, mixed_precision="no", max_grad_norm=0.0)
    metrics = train_experts(mote, samples, train, config.data, tmp_path).metrics
    balance = [m["balance_loss"] for m in metrics]
    assert balance[0] > 1.05 and sum(balance[-3:]) / 3 < balance[0] - 0.03
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    contrastive = [m["contrastive_loss"] for m in metrics]
    if method is Method.MIXLORA:
        assert sum(contrastive[-3:]) / 3 < 0.5 * contrastive[0]
    else:
        assert contrastive == [0.0] * len(contrastive)


@pytest.mark.parametrize("method", [Method.MOE_TOKEN, Method.MIXLORA])
def test_every_gate_receives_gradients(tiny_dir, method):
    mote, config = token_gated(tiny_dir, method)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.normal_(std=0.1)
    samples, _ = encode_chains(short_chains(3), mote.tokenizer, config.data, mote.marker_ids)
    batch = collate(samples, [SampleChoices(0, ())] * 3, pad_id=mote.tokenizer.pad_token_id)
    mote.model.train()
    with mote.router.gate_losses.collect() as collected:
        out = mote.forward(batch.input_ids, batch.stage_ids, attention_mask=batch.attention_mask, training=True,
                           question_expert=batch.question_expert)
    loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), batch.labels[:, 1:].flatten(), ignore_index=-100)
    (loss + collected.balance() + collected.contrastive()).backward()
    assert len(collected.balance_terms) == len(mote.router.layers)
    assert (len(collected.contrastive_terms) > 0) == (method is Method.MIXLORA)
    for layer in mote.router.layers:
        assert layer.token_gate.weight.requires_grad
        assert layer.token_gate.weight.grad is not None and layer.token_gate.weight.grad.abs().sum() > 0


def test_gate_weights_are_per_token_top_k_and_skip_padding(tiny_dir):
    mote, config = token_gated(tiny_dir, Method.MOE_TOKEN)
    gate = mote.router.layers[0].token_gate
    x = torch.randn(2, 5, gate.weight.shape[1])
    valid = torch.tensor([[True] * 5, [True, True, True, False, False]])
    weights = gate(x, valid)
    assert torch.allclose(weights[valid].sum(-1), torch.ones(int(valid.sum())))
    assert ((weights[valid] > 0).sum(-1) == config.experts.gate_top_k).all()
    assert weights[~valid].abs().sum() == 0


def test_contrastive_loss_is_low_for_distinct_experts_and_high_for_identical_ones():
    distinct = torch.eye(4).repeat(6, 1, 1) + 0.01 * torch.randn(6, 4, 4)
    identical = torch.ones(6, 4, 4) + 0.01 * torch.randn(6, 4, 4)
    assert expert_contrastive_loss(distinct) < 0.01 < 1.0 < expert_contrastive_loss(identical)


@pytest.mark.parametrize("method", [Method.MOE_TOKEN, Method.MIXLORA])
def test_export_round_trip_gives_identical_outputs_and_generations(tiny_dir, tmp_path, method):
    mote, config = token_gated(tiny_dir, method)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.normal_(std=0.1)
            layer.token_gate.weight.normal_(std=0.5)
    folder = export_mote(mote, tmp_path / "export", base_model=str(tiny_dir))
    manifest = read_manifest(folder)
    assert (folder / GATES_FILE).exists() and manifest["method"] == "token-gate" and not manifest["peft_equivalent"]
    base, _ = load_tiny(tiny_dir)
    loaded = load_mote_model(folder, base)
    samples, _ = encode_chains(short_chains(3), mote.tokenizer, config.data, mote.marker_ids)
    batch = collate(samples, [SampleChoices(0, ())] * 3, pad_id=mote.tokenizer.pad_token_id)
    mote.model.eval()
    with torch.no_grad():
        before = mote.forward(batch.input_ids, batch.stage_ids, attention_mask=batch.attention_mask).logits
        after = loaded.forward(batch.input_ids, batch.stage_ids, attention_mask=batch.attention_mask).logits
    assert torch.equal(before, after)
    settings = GenerationSettings(temperature=0.0, max_stage_tokens=6)
    first = generate_chain(mote, "q1?", settings)
    assert first.segments and first.segments == generate_chain(loaded, "q1?", settings).segments


def test_generation_gates_per_token_even_when_folding_is_asked_for(tiny_dir):
    mote, _ = token_gated(tiny_dir, Method.MOE_TOKEN)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.normal_(std=0.1)
    folded = generate_chain(mote, "q1?", GenerationSettings(temperature=0.0, max_stage_tokens=6, fold_experts=True))
    routed = generate_chain(mote, "q1?", GenerationSettings(temperature=0.0, max_stage_tokens=6, fold_experts=False))
    assert mote.router.folded_gate is None
    assert folded.segments == routed.segments


def test_recipe_trains_exports_and_evaluates_a_token_gated_run(tiny_dir, tmp_path):
    """The same path as MoTE: setup_run -> run_training (export) -> load_trained -> a subject's
    batched answers, which go through the per-token gates."""
    from core.decoding.subjects import MoteSubject
    from core.training.recipe import load_trained, run_training, setup_run

    config = MoteConfig(model=str(tiny_dir), method=Method.MIXLORA, experts=dict(TINY_EXPERTS),
                        train={"max_steps": 2, "batch_size": 2, "micro_batch_size": 1, "mixed_precision": "no"})
    setup = setup_run(config, short_chains(4), say=lambda _: None)
    run_training(setup, tmp_path / "run")
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8")
    assert '"balance_loss"' in metrics and '"contrastive_loss"' in metrics
    reloaded = load_trained(tmp_path / "run", say=lambda _: None)
    assert reloaded.layout.token_gate and all(layer.token_gate is not None for layer in reloaded.router.layers)
    subject = MoteSubject(reloaded, label="mixlora", method=Method.MIXLORA)
    settings = GenerationSettings(max_stage_tokens=4)
    replies = dict(subject.answer_many(["q1?", "q2?"], settings, batch_size=2))
    assert replies[0].answer == subject.answer("q1?", settings).answer
