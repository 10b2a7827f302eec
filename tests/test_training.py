"""Training: only experts and marker rows change (c); loss falls; exact resume (g)."""
from __future__ import annotations

import torch

from core.config import DataConfig, TrainConfig
from core.data.dataset import encode_chains
from core.training.loop import train_experts
from tests.conftest import short_chains, tiny_mote

DATA = DataConfig(max_length=256, p_skip=0.3)


def train_config(**overrides) -> TrainConfig:
    settings = dict(max_steps=4, batch_size=4, micro_batch_size=2, learning_rate=5e-3, mixed_precision="no", warmup_ratio=0.0)
    return TrainConfig(**{**settings, **overrides})


class StopAfter:
    """A reporter and stop check in one: asks to stop once `steps` optimizer steps are done."""

    def __init__(self, steps: int) -> None:
        self.steps, self.done, self.asked = steps, 0, 0

    def on_step(self, step: int, total_steps: int, metrics: dict[str, float]) -> None:
        self.done = step

    def __call__(self) -> bool:
        self.asked += 1
        return self.done >= self.steps


def test_one_step_changes_only_experts_and_marker_rows(tiny_dir, tmp_path):
    mote = tiny_mote(tiny_dir)
    before = {name: p.detach().clone() for name, p in mote.model.named_parameters()}
    base_embedding = mote.model.get_input_embeddings().weight.detach().clone()
    samples, _ = encode_chains(short_chains(), mote.tokenizer, DATA, mote.marker_ids)
    train_experts(mote, samples, train_config(max_steps=1), DATA, tmp_path)
    changed = {name for name, p in mote.model.named_parameters() if not torch.equal(before[name], p)}
    assert changed, "nothing was trained"
    assert all(".lora_B" in n or ".lora_A" in n or n.endswith("rows.embed") or n.endswith("rows.head") for n in changed)
    assert any(".lora_B" in n for n in changed) and any("rows." in n for n in changed)
    assert torch.equal(mote.model.get_input_embeddings().weight, base_embedding)


def test_tied_embeddings_train_one_shared_row_parameter(tiny_tied_dir, tmp_path):
    mote = tiny_mote(tiny_tied_dir)
    assert mote.token_rows.head is None
    samples, _ = encode_chains(short_chains(), mote.tokenizer, DATA, mote.marker_ids)
    rows_before = mote.token_rows.embed.detach().clone()
    train_experts(mote, samples, train_config(max_steps=1), DATA, tmp_path)
    assert not torch.equal(rows_before, mote.token_rows.embed)


def test_loss_decreases_over_a_few_dozen_steps(tiny_dir, tmp_path):
    mote = tiny_mote(tiny_dir)
    samples, _ = encode_chains(short_chains(), mote.tokenizer, DATA, mote.marker_ids)
    result = train_experts(mote, samples, train_config(max_steps=30, learning_rate=1e-2), DATA, tmp_path)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < first - 0.3, result.losses


def test_resume_from_mid_run_checkpoint_matches_uninterrupted_run(tiny_dir, tmp_path):
    samples_config = dict(max_steps=6, checkpoint_every=3)
    full_mote = tiny_mote(tiny_dir, dropout=0.1)
    samples, _ = encode_chains(short_chains(), full_mote.tokenizer, DATA, full_mote.marker_ids)
    full = train_experts(full_mote, samples, train_config(**samples_config), DATA, tmp_path / "full")

    stopper = StopAfter(3)
    part_mote = tiny_mote(tiny_dir, dropout=0.1)
    part = train_experts(part_mote, samples, train_config(**samples_config), DATA, tmp_path / "part", reporter=stopper,
                         should_stop=stopper)
    assert part.stopped and part.steps == 3

    resumed_mote = tiny_mote(tiny_dir, dropout=0.1)
    resumed = train_experts(resumed_mote, samples, train_config(**samples_config), DATA, tmp_path / "part", resume=True)
    assert resumed.steps == 6
    assert len(resumed.metrics) == 3  # it ran steps 4..6 only
    assert resumed.losses == full.losses
    for (name, a), b in zip(full_mote.model.named_parameters(), resumed_mote.model.parameters()):
        assert torch.equal(a, b), name


def test_optimizer_is_fused_on_cpu_and_takes_the_per_tensor_loops_step():
    """The fused AdamW (one kernel over all tensors) is the same maths as the per-tensor loop."""
    from core.training.loop import make_optimizer

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(5))]
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    fused = make_optimizer(params, train_config())
    loop = torch.optim.AdamW(twin, lr=fused.defaults["lr"], weight_decay=fused.defaults["weight_decay"], foreach=False)
    assert fused.defaults["fused"] is True and not loop.defaults["fused"]
    for _ in range(3):
        for p, q in zip(params, twin):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        fused.step()
        loop.step()
    for p, q in zip(params, twin):
        torch.testing.assert_close(p, q)


def test_a_stop_between_micro_batches_abandons_the_step_and_saves_the_last_whole_one(tiny_dir, tmp_path):
    """A cancel must not wait for a long step: the stop is seen between micro-batches, the
    half-done step changes nothing, and the checkpoint holds the last finished step."""
    mote = tiny_mote(tiny_dir)
    samples, _ = encode_chains(short_chains(), mote.tokenizer, DATA, mote.marker_ids)
    calls = iter([False, False, False, True])  # step 1: boundary, mid-step; step 2: boundary, then stop mid-step
    config = train_config(max_steps=5, batch_size=4, micro_batch_size=2)
    before: dict[str, torch.Tensor] = {}

    def should_stop() -> bool:
        stop = next(calls)
        if stop:
            before.update({n: p.detach().clone() for n, p in mote.model.named_parameters() if p.requires_grad})
        return stop

    result = train_experts(mote, samples, config, DATA, tmp_path, should_stop=should_stop)
    assert result.stopped and result.steps == 1 and result.last_checkpoint is not None
    assert result.last_checkpoint.name.endswith("1")
    assert all(torch.equal(before[n], p) for n, p in mote.model.named_parameters() if p.requires_grad)
    assert all(p.grad is None for p in mote.model.parameters())
