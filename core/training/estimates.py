"""Rough memory per GPU and time per epoch of a MoTE run, from the model's shape and the run's mode.

Why estimates and not measurements: the paper preset targets 7-70B models on GPUs that this
project's CI does not have. The arithmetic is the standard one, stated so a user can check it
(`explain` prints it with the numbers filled in):

- frozen base weights: params x bytes per weight: fp32 4, bf16 2, NF4 4-bit ~0.516 on the
  linears (0.5 + one fp8 scale per 64 weights + one fp32 scale per 64 x 256, QLoRA's double
  quantisation) while the embeddings and head stay bf16 (2 bytes).
- experts (and marker rows, negligible): float32 weight + gradient + two AdamW moments, 16 bytes
  per trainable parameter; E experts of rank r on the seven projections of every layer hold
  E r (in + out) parameters per projection.
- sharding over N GPUs: DDP keeps everything whole on every GPU; FSDP (full shard) and ZeRO-3
  keep 1/N of the base and of the expert states, plus the gathered weights of two decoder layers
  (the one computing and the one prefetched).
- activations per micro-batch of T tokens (micro_batch x max_length, padded worst case): a
  decoder layer's working set is ~34 h bytes per token (Korthikanti et al. 2022, 16-bit, flash /
  SDPA attention so no s^2 term) plus the experts' saved inputs, (6 h + i) bf16 values per token
  (q/k/v, o, gate/up, down each cast their input). Without gradient checkpointing every layer
  keeps its working set; with it each layer keeps its 2 h-byte input and one layer's working set
  is live in backward. Logits: T x vocab x 10 bytes (bf16 logits, the fp32 copy for the loss and
  its gradient).
- a fixed 1 GiB per GPU for the CUDA context and allocator slack.
- time: ~2N FLOPs per token forward, ~2N backward for the input gradients (the base is frozen, so
  no weight gradients), +2N recompute under gradient checkpointing, at an assumed model-FLOPs
  utilisation of the GPU's dense bf16 peak (an fp32 base under bf16 autocast computes in bf16
  too); 4-bit dequantisation adds an assumed 25%. FSDP / ZeRO-3 all-gather the base's weights
  once per forward, backward and recompute pass; a step takes max(compute, all-gather) (perfect
  overlap assumed), DDP only all-reduces the small expert gradients.
- self-generation: decoding is memory-bound; each step reads the weights once for a whole batch.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path

from core.config import MoteConfig, resolve_method

GIB = 1024**3
#: CUDA context + allocator slack per GPU.
OVERHEAD_BYTES = 1.0 * GIB
#: Bytes per 4-bit NF4 weight with double quantisation (blocks of 64, fp8 scales in blocks of 256).
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
NF4_SLOWDOWN = 1.25
#: Decoder layers whose full weights are live at once under FSDP / ZeRO-3 (computing + prefetched).
GATHERED_LAYERS = 2
LOGIT_BYTES = 10


class BaseStorage(str, enum.Enum):
    """How the frozen base weights are held while training (train.base_dtype / train.quantize)."""

    FP32 = "fp32"
    BF16 = "bf16"
    NF4 = "nf4"


class Sharding(str, enum.Enum):
    """How the model is spread over several GPUs (train.accelerate_config)."""

    DDP = "ddp"
    FSDP = "fsdp"
    ZERO3 = "zero3"


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

    @property
    def layer_linear_params(self) -> int:
        """Weights of one layer's seven projections (in x out each)."""
        h, i, kv = self.hidden, self.intermediate, self.kv_dim
        return 2 * h * h + 2 * h * kv + 3 * h * i

    @property
    def linear_params(self) -> float:
        return float(self.layers * self.layer_linear_params)

    @property
    def other_params(self) -> float:
        """Embeddings, head and norms: what 4-bit quantisation leaves in bf16."""
        return max(0.0, self.params - self.linear_params)

    @classmethod
    def from_config(cls, config: dict) -> ModelShape:
        """The shape from a Hugging Face config.json (Llama, Mistral, Qwen2 and alike)."""
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        heads = int(config["num_attention_heads"])
        head_dim = int(config.get("head_dim") or hidden // heads)
        kv_dim = int(config.get("num_key_value_heads", heads)) * head_dim
        intermediate, vocab = int(config["intermediate_size"]), int(config["vocab_size"])
        linear = layers * (2 * hidden * heads * head_dim + 2 * hidden * kv_dim + 3 * hidden * intermediate)
        embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
        params = linear + embeddings + layers * 2 * hidden + hidden
        return cls(float(params), hidden, layers, intermediate, vocab, kv_dim)


#: Shapes from the models' config.json files. The Llama-2 7B / 13B / 70B shapes are the ones
#: the scale table uses (the sizes LLaMA-Factory's and PEFT's published figures refer to).
KNOWN_SHAPES = {
    "SmolLM2-135M-Instruct": ModelShape(135e6, 576, 30, 1536, 49152, 192),
    "Qwen2.5-1.5B-Instruct": ModelShape(1.54e9, 1536, 28, 8960, 151936, 256),
    "Mistral-7B-Instruct-v0.3": ModelShape(7.25e9, 4096, 32, 14336, 32768, 1024),
    "Llama-3.1-8B-Instruct": ModelShape(8.03e9, 4096, 32, 14336, 128256, 1024),
    "Llama-2-7B": ModelShape(6.74e9, 4096, 32, 11008, 32000, 4096),
    "Llama-2-13B": ModelShape(13.02e9, 5120, 40, 13824, 32000, 5120),
    "Llama-2-70B": ModelShape(68.98e9, 8192, 80, 28672, 32000, 1024),
    "Llama-3.1-70B-Instruct": ModelShape(70.55e9, 8192, 80, 28672, 128256, 1024),
}
#: Short names for `launch.py estimate --model`.
SIZE_ALIASES = {"7b": "Llama-2-7B", "13b": "Llama-2-13B", "70b": "Llama-2-70B", "8b": "Llama-3.1-8B-Instruct"}
SCALE_MODELS = ("Llama-2-7B", "Llama-2-13B", "Llama-2-70B")


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
    generated_tokens: int = 700
    """Tokens written per question during self-generation (three stages plus the safety check)."""

    @property
    def micro_batch_tokens(self) -> int:
        return self.micro_batch * self.seq_len


@dataclass(frozen=True)
class TrainMode:
    """Where and how the base is held: storage, sharding over `gpus`, gradient checkpointing."""

    base: BaseStorage = BaseStorage.BF16
    sharding: Sharding = Sharding.DDP
    gpus: int = 1
    gradient_checkpointing: bool = True

    def label(self) -> str:
        checkpointing = "ckpt" if self.gradient_checkpointing else "no ckpt"
        return f"{self.base.value} base, {self.sharding.value} x {self.gpus}, {checkpointing}"


@dataclass(frozen=True)
class Hardware:
    """One GPU's peak, the utilisation assumed, and the link the shards are gathered over."""

    name: str = "H100 SXM 80 GB"
    memory_gib: float = 80.0
    peak_tflops: float = 989.0
    mfu: float = 0.35
    interconnect_gbs: float = 450.0
    """All-gather bandwidth per GPU (NVLink 4 inside a node; ~25-50 GB/s between nodes)."""
    memory_bandwidth_gbs: float = 3350.0


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per GPU, by what holds them."""

    base: float
    gathered: float
    trainable_states: float
    activations: float
    overhead: float = OVERHEAD_BYTES

    @property
    def total_gib(self) -> float:
        return (self.base + self.gathered + self.trainable_states + self.activations + self.overhead) / GIB


def expert_params(model: ModelShape, run: RunShape) -> float:
    """E experts x r x (in + out) over every wrapped projection."""
    return float(run.experts * run.rank * model.linear_in_out_sum * model.layers)


def base_weight_bytes(model: ModelShape, base: BaseStorage) -> float:
    """The whole frozen base as stored (4-bit applies to the linears only)."""
    if base is BaseStorage.NF4:
        return model.linear_params * NF4_BYTES + model.other_params * 2.0
    return model.params * (4.0 if base is BaseStorage.FP32 else 2.0)


def activation_bytes(model: ModelShape, run: RunShape, gradient_checkpointing: bool) -> float:
    """Saved activations of one micro-batch (see the module docstring)."""
    tokens = run.micro_batch_tokens
    working_set = (34 * model.hidden + 2 * (6 * model.hidden + model.intermediate)) * tokens
    if gradient_checkpointing:
        kept = model.layers * 2 * model.hidden * tokens + working_set
    else:
        kept = model.layers * working_set
    return kept + tokens * model.vocab * LOGIT_BYTES


def memory_per_gpu(model: ModelShape, run: RunShape, mode: TrainMode) -> MemoryBreakdown:
    """Peak bytes per GPU while training under `mode`."""
    base = base_weight_bytes(model, mode.base)
    states = 16.0 * expert_params(model, run)
    gathered = 0.0
    if mode.sharding is not Sharding.DDP:
        base, states = base / mode.gpus, states / mode.gpus
        gathered = GATHERED_LAYERS * model.layer_linear_params * base_weight_bytes(model, mode.base) / model.params
    return MemoryBreakdown(base, gathered, states, activation_bytes(model, run, mode.gradient_checkpointing))


def step_seconds(model: ModelShape, run: RunShape, mode: TrainMode, hardware: Hardware,
                 global_batch: int = 16) -> float:
    """One optimizer step of `global_batch` chains over `mode.gpus` GPUs."""
    passes = 3 if mode.gradient_checkpointing else 2  # forward, backward (+ recompute)
    tokens_per_gpu = global_batch * run.chain_tokens / mode.gpus
    compute = tokens_per_gpu * 2.0 * passes * model.params / (hardware.peak_tflops * 1e12 * hardware.mfu)
    if mode.base is BaseStorage.NF4:
        compute *= NF4_SLOWDOWN
    if mode.sharding is Sharding.DDP or mode.gpus == 1:
        return compute
    gathered_bytes = passes * base_weight_bytes(model, mode.base) * (mode.gpus - 1) / mode.gpus
    return max(compute, gathered_bytes / (hardware.interconnect_gbs * 1e9))


def epoch_hours(model: ModelShape, run: RunShape, mode: TrainMode, hardware: Hardware = Hardware(),
                global_batch: int = 16) -> float:
    """One pass over `run.questions` chains."""
    steps = run.questions / global_batch
    return steps * step_seconds(model, run, mode, hardware, global_batch) / 3600


@dataclass(frozen=True)
class Estimate:
    """The paper-preset summary of one model on one GPU (bf16 base, data parallel)."""

    expert_params: float
    train_memory_gib: float
    train_hours: float
    generate_hours: float

    def as_row(self, name: str, gpus: int) -> str:
        return (f"| {name} | {self.expert_params / 1e6:.1f} M | {self.train_memory_gib:.1f} GiB | "
                f"{self.train_hours / gpus:.2f} h | {self.generate_hours / gpus:.2f} h |")


def estimate(model: ModelShape, run: RunShape = RunShape(), *, base: BaseStorage = BaseStorage.BF16,
             hardware: Hardware = Hardware(), decode_batch: int = 64) -> Estimate:
    """One GPU's estimate of the whole run (all epochs) and of self-generation."""
    mode = TrainMode(base=base, gradient_checkpointing=run.gradient_checkpointing)
    memory = memory_per_gpu(model, run, mode).total_gib
    train_hours = run.epochs * epoch_hours(model, run, mode, hardware)
    decode_steps = run.questions * run.generated_tokens / decode_batch
    generate_seconds = decode_steps * (2.0 * model.params) / (hardware.memory_bandwidth_gbs * 1e9 * 0.6)
    return Estimate(expert_params(model, run), memory, train_hours, generate_seconds / 3600)


def estimate_table(run: RunShape = RunShape(), gpus: int = 1) -> str:
    """A Markdown table of every known model under `run` on `gpus` GPUs (data parallel)."""
    lines = ["| model | expert params | training memory per GPU | training time | self-generation time |",
             "|---|---|---|---|---|"]
    lines += [estimate(shape, run).as_row(name, gpus) for name, shape in KNOWN_SHAPES.items()]
    return "\n".join(lines)


def standard_modes(gpus: int = 8) -> list[TrainMode]:
    """The modes of the scale table: each base storage on one GPU (DDP), then sharded over `gpus`,
    each with and without gradient checkpointing."""
    modes = []
    for checkpointing in (True, False):
        for base in BaseStorage:
            modes.append(TrainMode(base, Sharding.DDP, 1, checkpointing))
            modes += [TrainMode(base, sharding, gpus, checkpointing) for sharding in (Sharding.FSDP, Sharding.ZERO3)]
    return modes


def scale_table(models: dict[str, ModelShape], run: RunShape, modes: list[TrainMode],
                hardware: Hardware = Hardware()) -> str:
    """Markdown: memory per GPU and hours per epoch for every model under every mode."""
    header = "| mode | " + " | ".join(f"{name} GiB/GPU | {name} h/epoch" for name in models) + " |"
    lines = [header, "|---|" + "---|---|" * len(models)]
    for mode in modes:
        cells = []
        for shape in models.values():
            memory = memory_per_gpu(shape, run, mode).total_gib
            fits = "" if memory <= hardware.memory_gib else " (too big)"
            cells += [f"{memory:.1f}{fits}", f"{epoch_hours(shape, run, mode, hardware):.2f}"]
        lines.append(f"| {mode.label()} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def explain(model: ModelShape, run: RunShape, mode: TrainMode, hardware: Hardware = Hardware()) -> str:
    """The arithmetic of one estimate with its numbers, one line per term."""
    memory = memory_per_gpu(model, run, mode)
    shard = "" if mode.sharding is Sharding.DDP else f" / {mode.gpus} GPUs"
    experts = expert_params(model, run)
    lines = [
        f"mode: {mode.label()}; {hardware.name}, {hardware.mfu:.0%} of {hardware.peak_tflops:.0f} TFLOPS bf16",
        f"base weights   {base_weight_bytes(model, mode.base) / GIB:8.2f} GiB{shard} = {memory.base / GIB:.2f} GiB "
        f"({model.params / 1e9:.2f} B params as {mode.base.value})",
        f"gathered       {memory.gathered / GIB:8.2f} GiB ({GATHERED_LAYERS} decoder layers live under FSDP / ZeRO-3)",
        f"expert states  {memory.trainable_states / GIB:8.2f} GiB ({experts / 1e6:.1f} M params x 16 bytes{shard})",
        f"activations    {memory.activations / GIB:8.2f} GiB ({run.micro_batch} x {run.seq_len} tokens, "
        f"{'with' if mode.gradient_checkpointing else 'without'} gradient checkpointing, logits included)",
        f"overhead       {memory.overhead / GIB:8.2f} GiB (CUDA context, allocator slack)",
        f"total          {memory.total_gib:8.2f} GiB per GPU",
        f"epoch          {epoch_hours(model, run, mode, hardware):8.2f} h ({run.questions} chains x {run.chain_tokens} "
        f"tokens, {3 if mode.gradient_checkpointing else 2} x 2N FLOPs per token)",
    ]
    return "\n".join(lines)


def run_shape_from_config(config: MoteConfig, *, questions: int = 6000, chain_tokens: int = 600) -> RunShape:
    """The cost-driving settings of a MoteConfig (after its method is resolved)."""
    from core.experts.routing import ExpertLayout

    resolved = resolve_method(config)
    return RunShape(rank=resolved.experts.rank, experts=ExpertLayout.from_config(resolved.experts).num_experts,
                    micro_batch=resolved.train.micro_batch_size, seq_len=resolved.data.max_length,
                    gradient_checkpointing=resolved.train.gradient_checkpointing, questions=questions,
                    epochs=max(1, round(resolved.train.epochs)), chain_tokens=chain_tokens)


def resolve_shape(name_or_folder: str) -> tuple[str, ModelShape]:
    """A known model (or a size alias: 7b, 13b, 70b, 8b), or a local folder's config.json."""
    key = SIZE_ALIASES.get(name_or_folder.lower(), name_or_folder)
    if key in KNOWN_SHAPES:
        return key, KNOWN_SHAPES[key]
    config = Path(name_or_folder).expanduser() / "config.json"
    if config.is_file():
        return Path(name_or_folder).name, ModelShape.from_config(json.loads(config.read_text(encoding="utf-8")))
    raise ValueError(f"Unknown model {name_or_folder!r}: give a size ({', '.join(SIZE_ALIASES)}), one of "
                     f"{', '.join(KNOWN_SHAPES)}, or a local model folder holding config.json.")
