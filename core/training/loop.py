"""The training loop on accelerate: one pass per chain trains every expert on its own stage.

Phases, one function each: `prepare` (optimizer, schedule, resume), `fit` (optimizer steps),
`save` (checkpoints). Exactness matters more than cleverness here:
- the loss of an optimizer step is the sum of token losses over the whole global batch divided
  by its token count, so gradient accumulation and several processes give the same update;
- the data order is a permutation seeded by (seed, epoch), and every per-sample random draw is
  seeded by (seed, epoch, index), so a resumed run sees the same batches and draws.
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from accelerate import Accelerator
from torch.nn import functional as F

from core.training.checkpoint import TrainState, checkpoint_dir, latest_checkpoint, load_checkpoint, save_checkpoint
from core.config import DataConfig, TrainConfig
from core.data.dataset import IGNORE_INDEX, Batch, EncodedChain, collate, draw_choices
from core.experts.model import MoteModel, expert_state_dict
from core.experts.token_gate import GateLosses
from core.progress import Progress, no_progress


class StepMetricsSink(Protocol):
    """Where each optimizer step's metrics go (loss, learning rate, speed; the jobs layer stores
    them per step). Progress and the status line go through core.progress.Progress instead."""

    def on_step(self, step: int, total_steps: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    steps: int
    total_steps: int
    losses: list[float]
    stopped: bool
    last_checkpoint: Path | None
    metrics: list[dict[str, float]] = field(default_factory=list)


def pick_mixed_precision(setting: str, device: torch.device) -> str:
    """'auto' -> bf16 where the device computes it natively (CUDA bf16, CPUs with AVX512/AMX)."""
    if setting != "auto":
        return setting
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    capability = torch.backends.cpu.get_cpu_capability()
    return "bf16" if "AVX512" in capability or "AMX" in capability else "no"


def make_accelerator(config: TrainConfig) -> Accelerator:
    """One accelerator per run; its mixed precision follows `config.mixed_precision`."""
    device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return Accelerator(mixed_precision=pick_mixed_precision(config.mixed_precision, device))


def cosine_with_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def steps_per_epoch(num_samples: int, config: TrainConfig, world_size: int) -> int:
    return math.ceil(num_samples / (config.batch_size * world_size))


def total_steps_for(num_samples: int, config: TrainConfig, world_size: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    return max(1, math.ceil(config.epochs * steps_per_epoch(num_samples, config, world_size)))


def global_batch_indices(num_samples: int, step: int, config: TrainConfig, world_size: int) -> tuple[int, list[int]]:
    """(epoch, dataset indices of the whole global batch) for an optimizer step."""
    per_epoch = steps_per_epoch(num_samples, config, world_size)
    epoch, within = divmod(step, per_epoch)
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
    size = config.batch_size * world_size
    return epoch, order[within * size : (within + 1) * size].tolist()


def micro_batches(
    samples: list[EncodedChain],
    step: int,
    train: TrainConfig,
    data: DataConfig,
    *,
    pad_id: int,
    rank: int = 0,
    world_size: int = 1,
    additive_mask_dtype: torch.dtype | None = None,
) -> list[Batch]:
    """This process's micro-batches of one optimizer step."""
    epoch, indices = global_batch_indices(len(samples), step, train, world_size)
    share = math.ceil(len(indices) / world_size)

    def build(chunk: list[int]) -> Batch:
        choices = [draw_choices(train.seed, epoch, i, data.p_skip, samples[i]) for i in chunk]
        return collate(
            [samples[i] for i in chunk], choices, pad_id=pad_id,
            compact_positions=data.compact_positions, additive_mask_dtype=additive_mask_dtype,
        )

    mine = indices[rank * share : (rank + 1) * share]
    size = train.micro_batch_size
    return [build(mine[i : i + size]) for i in range(0, len(mine), size)]


def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over labelled positions (fp32)."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]), shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )


@dataclass
class TrainingSession:
    """Everything `fit` mutates: the prepared model, optimizer, schedule and the state so far."""

    mote: MoteModel
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    accelerator: Accelerator
    state: TrainState
    total_steps: int
    max_grad_norm: float = 0.0


FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda", "xpu", "mps")


def make_optimizer(params: list[torch.nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused (one kernel over all tensors) where torch has a fused kernel for the device.

    The default per-tensor loop costs a few kernels per tensor; MoTE has two tensors per wrapped
    projection, so on CPU the fused step is ~3x faster. The state dict is the same either way,
    so checkpoints resume across the two.
    """
    fused = all(p.dtype.is_floating_point and p.device.type in FUSED_OPTIMIZER_DEVICES for p in params)
    return torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=fused or None)


def prepare(
    mote: MoteModel,
    samples: list[EncodedChain],
    config: TrainConfig,
    *,
    accelerator: Accelerator | None = None,
    resume_from: Path | None = None,
) -> TrainingSession:
    """Optimizer over trainable tensors only, warm-up + cosine schedule, optional exact resume."""
    accelerator = accelerator or make_accelerator(config)
    torch.manual_seed(config.seed)
    mote.router.unfold(release=True)  # folded weights kept by earlier chat/generation: memory back
    if config.gradient_checkpointing:
        mote.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in mote.model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("The model has no trainable parameters: attach experts with build_mote_model first.")
    optimizer = make_optimizer(params, config)
    total = total_steps_for(len(samples), config, accelerator.num_processes)
    warmup = int(round(config.warmup_ratio * total))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(warmup, total))
    module, optimizer = accelerator.prepare(mote.model, optimizer)
    state = TrainState()
    if resume_from is not None:
        state = _resume(mote, optimizer, scheduler, Path(resume_from))
    return TrainingSession(mote, module, optimizer, scheduler, accelerator, state, total, config.max_grad_norm)


def _resume(mote: MoteModel, optimizer, scheduler, path: Path) -> TrainState:
    trainable, state = load_checkpoint(path, optimizer)
    params = dict(mote.model.named_parameters())
    missing = sorted(set(trainable) - set(params))
    if missing:
        raise ValueError(f"Checkpoint {path} does not match this model (unknown tensors such as {missing[:3]}).")
    with torch.no_grad():
        for name, tensor in trainable.items():
            params[name].copy_(tensor)
    scheduler.last_epoch = state.scheduler["last_epoch"]
    scheduler._step_count = state.scheduler["step_count"]
    scheduler._last_lr = state.scheduler["last_lr"]
    return state


@dataclass
class StepLosses:
    """One micro-batch's losses (detached): the language-model loss, which is what `loss` logs
    for every method, and the token gates' auxiliary losses (0 without token gates)."""

    lm: torch.Tensor
    balance: torch.Tensor
    contrastive: torch.Tensor


def _auxiliary_loss(mote: MoteModel, collected: GateLosses) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(weighted sum to add to the loss, balance term, contrastive term) of the token gates."""
    balance, contrastive = collected.balance(), collected.contrastive()
    weighted = mote.config.balance_loss_weight * balance + mote.config.contrastive_loss_weight * contrastive
    return weighted, balance.detach(), contrastive.detach()


def _forward_loss(session: TrainingSession, batch: Batch, token_count: int, micro_batches: int) -> StepLosses:
    """Forward and backward of one micro-batch. The LM loss is scaled so the step's update is the
    global token mean; each auxiliary loss is a per-forward mean, so it is averaged over the
    step's micro-batches."""
    mote = session.mote
    gates = mote.gates(batch.stage_ids, training=True, question_expert=batch.question_expert)
    with mote.router.route(gates.to(batch.input_ids.device)):
        with mote.router.gate_losses.collect() as collected, session.accelerator.autocast():
            logits = session.module(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids
            ).logits
        loss = token_loss_sum(logits, batch.labels) * session.accelerator.num_processes / token_count
        total = loss
        balance = contrastive = torch.zeros(())
        if collected.balance_terms:  # token-gated methods only: step routing adds nothing
            weighted_aux, balance, contrastive = _auxiliary_loss(mote, collected)
            total = loss + weighted_aux.to(loss.device) / micro_batches
        session.accelerator.backward(total)  # inside route(): recomputed layers see the same gates
    return StepLosses(loss.detach(), balance, contrastive)


def train_step(session: TrainingSession, batches: list[Batch],
               should_stop: Callable[[], bool] | None = None) -> dict[str, float] | None:
    """One optimizer step over this process's micro-batches; returns logged metrics.

    With one process, `should_stop()` is also asked between micro-batches: a step on a large
    model on CPU can outlast a cancel's grace period, so a stop abandons the step (its partial
    gradients are dropped, nothing is updated) and returns None; the caller then saves the
    last whole step. With several processes the check stays at step boundaries (fit), where
    every rank agrees on it, so no rank waits in a collective the others left."""
    acc = session.accelerator
    started = time.perf_counter()
    local_tokens = torch.tensor(sum(b.num_label_tokens for b in batches), device=acc.device)
    token_count = int(acc.reduce(local_tokens, "sum")) if acc.num_processes > 1 else int(local_tokens)
    session.module.train()
    total = torch.zeros((), device=acc.device)
    balance, contrastive = torch.zeros(()), torch.zeros(())
    for index, batch in enumerate(batches):
        if index and should_stop is not None and acc.num_processes == 1 and should_stop():
            session.optimizer.zero_grad(set_to_none=True)
            return None
        last = index == len(batches) - 1
        sync = contextlib.nullcontext() if last or acc.num_processes == 1 else acc.no_sync(session.module)
        with sync:
            losses = _forward_loss(session, batch.to(acc.device), max(1, token_count), len(batches))
        total += losses.lm
        balance += losses.balance.cpu() / len(batches)
        contrastive += losses.contrastive.cpu() / len(batches)
    if session.max_grad_norm > 0:
        acc.clip_grad_norm_([p for p in session.module.parameters() if p.requires_grad], session.max_grad_norm)
    lr = session.scheduler.get_last_lr()[0]
    session.optimizer.step()
    session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    loss = float(acc.reduce(total, "sum")) / acc.num_processes if acc.num_processes > 1 else float(total)
    elapsed = time.perf_counter() - started
    metrics = {"loss": loss, "learning_rate": lr, "tokens_per_second": token_count / max(elapsed, 1e-9), "step_seconds": elapsed}
    if session.mote.layout.token_gate:  # this process's values: logged, not used for the update
        metrics |= {"balance_loss": float(balance), "contrastive_loss": float(contrastive)}
    return metrics


def save(session: TrainingSession, output_dir: Path) -> Path:
    """Checkpoint the current step (main process writes; others wait)."""
    sched = session.scheduler
    session.state.scheduler = {"last_epoch": sched.last_epoch, "step_count": sched._step_count, "last_lr": sched._last_lr}
    path = checkpoint_dir(output_dir, session.state.step)
    if session.accelerator.is_main_process:
        save_checkpoint(path, expert_state_dict(session.mote.model), session.optimizer, session.state)
    session.accelerator.wait_for_everyone()
    return path


def _agreed_stop(acc: Accelerator, should_stop: Callable[[], bool] | None) -> bool:
    """Every process asks, and all stop if any was told to, so no rank waits in a collective."""
    local = bool(should_stop()) if should_stop is not None else False
    if acc.num_processes == 1:
        return local
    flag = torch.tensor(int(local), device=acc.device)
    return bool(acc.reduce(flag, "sum") > 0)


def fit(
    session: TrainingSession,
    samples: list[EncodedChain],
    train: TrainConfig,
    data: DataConfig,
    output_dir: Path,
    *,
    reporter: StepMetricsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: Progress = no_progress,
) -> TrainResult:
    """Run optimizer steps from the session's step to the end, or until `should_stop()`.
    `progress` hears "step k/N" before the first step (the status says training has begun,
    not "starting") and after each one."""
    acc, state = session.accelerator, session.state
    pad_id = session.mote.tokenizer.pad_token_id
    if pad_id is None:
        pad_id = session.mote.tokenizer.eos_token_id
    additive = session.mote.model.dtype if session.mote.model.config._attn_implementation == "eager" else None
    last_checkpoint, metrics_log, stopped = None, [], False
    report = progress if acc.is_main_process else no_progress
    report(state.step, session.total_steps, f"step {state.step}/{session.total_steps}")
    while state.step < session.total_steps:
        if _agreed_stop(acc, should_stop):
            stopped = True
            break
        batches = micro_batches(
            samples, state.step, train, data, pad_id=pad_id, rank=acc.process_index,
            world_size=acc.num_processes, additive_mask_dtype=additive,
        )
        metrics = train_step(session, batches, should_stop)
        if metrics is None:  # stopped between micro-batches: the step was abandoned
            stopped = True
            break
        state.step += 1
        state.losses.append(metrics["loss"])
        metrics_log.append(metrics)
        if reporter is not None and acc.is_main_process:
            reporter.on_step(state.step, session.total_steps, metrics)
        report(state.step, session.total_steps, f"step {state.step}/{session.total_steps} · loss {metrics['loss']:.4f}")
        if train.checkpoint_every and state.step % train.checkpoint_every == 0:
            last_checkpoint = save(session, output_dir)
    if stopped or not train.checkpoint_every or state.step % train.checkpoint_every:
        last_checkpoint = save(session, output_dir)
    return TrainResult(state.step, session.total_steps, list(state.losses), stopped, last_checkpoint, metrics_log)


def train_experts(
    mote: MoteModel,
    samples: list[EncodedChain],
    train: TrainConfig,
    data: DataConfig,
    output_dir: Path,
    *,
    resume: bool | Path = False,
    reporter: StepMetricsSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    accelerator: Accelerator | None = None,
    progress: Progress = no_progress,
) -> TrainResult:
    """Prepare, then fit. resume=True continues from the run's latest checkpoint, if any."""
    resume_from = latest_checkpoint(output_dir) if resume is True else (resume or None)
    session = prepare(mote, samples, train, accelerator=accelerator, resume_from=resume_from)
    return fit(session, samples, train, data, Path(output_dir), reporter=reporter, should_stop=should_stop,
               progress=progress)
