"""Rough memory and time a MoTE run needs, from the model's shape and the run's settings.

Why estimates and not measurements: the paper preset targets 7-8B models on GPUs that this
project's CI does not have. The arithmetic is the standard one, stated so a user can check it:

- memory while training (per GPU, data parallel): frozen base weights as loaded for training,
  float32 today (4 bytes/param; bf16 autocast computes in bf16 but keeps the fp32 weights),
  expert parameters in fp32 with their gradient and two AdamW moments (16 bytes/param), and
  activations: with gradient checkpointing one saved hidden state per layer per token (bf16)
  plus one layer's working set (~34 x hidden bf16 values per token, Korthikanti et al. 2022)
  and the fp32 logits of a micro-batch; without checkpointing every layer's working set.
- training time: ~2N FLOPs per token forward, ~2N for the input gradients backward (the base is
  frozen, so no weight gradients), +2N for the recompute under gradient checkpointing, at an
  assumed model-FLOPs utilisation of the GPU's dense bf16 peak.
- generation time: decoding is memory-bound; each step reads the weights once for a whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a decoder-only transformer."""

    params: float
    hidden: int
    layers: int
    intermediate: int
    vocab: int
    kv_dim: int
    """Width of the key/value projections (num_key_value_heads x head_dim)."""

    @property
    def linear_in_out_sum(self) -> int:
        """Sum of (in + out) over one layer's seven linear projections (q, k, v, o, gate, up, down)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return (h + h) * 2 + (h + kv) * 2 + (h + i) * 3


#: Shapes of models users point MoTE Studio at (from their config.json files).
KNOWN_SHAPES = {
    "SmolLM2-135M-Instruct": ModelShape(135e6, 576, 30, 1536, 49152, 192),
    "Qwen2.5-1.5B-Instruct": ModelShape(1.54e9, 1536, 28, 8960, 151936, 256),
    "Mistral-7B-Instruct-v0.3": ModelShape(7.25e9, 4096, 32, 14336, 32768, 1024),
    "Llama-3.1-8B-Instruct": ModelShape(8.03e9, 4096, 32, 14336, 128256, 1024),
}


@dataclass(frozen=True)
class RunShape:
    """The run's settings that drive cost (the paper preset's values by default)."""

    rank: int = 16
    experts: int = 4
    micro_batch: int = 4
    seq_len: int = 2048
    gradient_checkpointing: bool = True
    questions: int = 6000
    epochs: int = 3
    chain_tokens: int = 600
    """Prompt + chain tokens per training sample (AlignCoT chains of 7-8B models run ~400-700)."""
    base_weight_bytes: float = 4.0
    """Bytes per frozen base weight while training: 4 (float32, what core.model_source loads)."""
    generated_tokens: int = 700
    """Tokens written per question during self-generation (three stages plus the safety check)."""


@dataclass(frozen=True)
class Estimate:
    expert_params: float
    train_memory_gib: float
    train_hours: float
    generate_hours: float

    def as_row(self, name: str, gpus: int) -> str:
        return (f"| {name} | {self.expert_params / 1e6:.1f} M | {self.train_memory_gib:.1f} GiB | "
                f"{self.train_hours / gpus:.2f} h | {self.generate_hours / gpus:.2f} h |")


def estimate(model: ModelShape, run: RunShape = RunShape(), *, peak_tflops: float = 989.0, mfu: float = 0.35,
             memory_bandwidth_gbs: float = 3350.0, decode_batch: int = 64) -> Estimate:
    """One GPU's estimate (defaults: an H100 SXM, 35% utilisation, batch-64 decoding)."""
    expert_params = float(run.experts * run.rank * model.linear_in_out_sum * model.layers)
    weights = run.base_weight_bytes * model.params + 16.0 * expert_params
    tokens = run.micro_batch * run.seq_len
    per_layer_working_set = 34 * model.hidden * 2 * tokens
    saved = model.layers * model.hidden * 2 * tokens if run.gradient_checkpointing else model.layers * per_layer_working_set
    activations = saved + (per_layer_working_set if run.gradient_checkpointing else 0) + tokens * model.vocab * 4
    train_tokens = run.questions * run.chain_tokens * run.epochs
    flops_per_token = (6.0 if run.gradient_checkpointing else 4.0) * model.params
    train_seconds = train_tokens * flops_per_token / (peak_tflops * 1e12 * mfu)
    decode_steps = run.questions * run.generated_tokens / decode_batch
    generate_seconds = decode_steps * (2.0 * model.params) / (memory_bandwidth_gbs * 1e9 * 0.6)
    return Estimate(expert_params, (weights + activations) / GIB, train_seconds / 3600, generate_seconds / 3600)


def estimate_table(run: RunShape = RunShape(), gpus: int = 1) -> str:
    """A Markdown table of every known model under `run` on `gpus` GPUs (data parallel)."""
    lines = ["| model | expert params | training memory per GPU | training time | self-generation time |",
             "|---|---|---|---|---|"]
    lines += [estimate(shape, run).as_row(name, gpus) for name, shape in KNOWN_SHAPES.items()]
    return "\n".join(lines)
