"""Dataclass configs for MoTE training, checked on construction; YAML presets mirror them.

Why dataclasses with metadata: one place declares each setting, its default, its valid range
or choices and its meaning (`setting(...)`, core/settings.py), so the checks, the Train form and
docs/config-reference.md all read the same declaration and cannot drift apart. Every config's
__post_init__ calls the one generic validator (`validate_settings`), so a rule written here is
always both checked and shown. Every DECISION of docs/mote-method.md is a field.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.paths import ASSETS_DIR
from core.settings import (
    ConfigFileError,
    plain_values,
    read_yaml_mapping,
    setting,
    settings_from_dict,
    validate_settings,
)

#: Largest seed every random generator in the stack accepts (numpy's limit).
MAX_SEED = 2**32 - 1


class Method(str, enum.Enum):
    """MoTE or one of the baselines / ablations of section 4, trained by the same code path."""

    MOTE = "mote"
    MOTE_NO_SKIP = "mote_no_skip"
    MOTE_NO_SHARED = "mote_no_shared"
    MOTE_NO_SKIP_NO_SHARED = "mote_no_skip_no_shared"
    LORA = "lora"
    LORA_X2 = "lora_x2"
    SFT = "sft"
    MOE_TOKEN = "moe_token"
    MIXLORA = "mixlora"


class QuestionRouting(str, enum.Enum):
    """Which step expert(s) the question tokens go through."""

    ANALYSIS = "analysis"
    GUIDANCE = "guidance"
    ANSWER = "answer"
    RANDOM = "random"
    MEAN = "mean"


class BaseDtype(str, enum.Enum):
    """The dtype the frozen base weights are loaded in for training (experts and marker rows
    always stay float32)."""

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


class Quantize(str, enum.Enum):
    """How the frozen base weights are stored while training: as loaded, or 4-bit NF4 (QLoRA)."""

    NONE = "none"
    NF4 = "nf4"


DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class ExpertConfig:
    """The step-routed LoRA experts (section 3)."""

    rank: int = setting(16, ge=1, le=1024, help="LoRA rank r of every expert (paper: 16).")
    lora_alpha: float = setting(32.0, ge=1e-6, le=1e6, help="""PEFT-style scaling numerator: each expert's
        output is scaled by lora_alpha / rank.""")
    alpha: float = setting(0.5, ge=0.0, le=1.0, help="""Mixing weight: y = W0 x + alpha * E_stage(x) +
        (1 - alpha) * E_shared(x) (paper: 0.5).""")
    dropout: float = setting(0.05, ge=0.0, le=0.9, help="Dropout on the expert input during training, as PEFT's lora_dropout.")
    target_modules: list[str] = setting(factory=lambda: list(DEFAULT_TARGET_MODULES), non_empty=True, help="""
        Names (last path component) of the linear layers that get experts; ['all-linear'] for every
        linear layer except the output head.""")
    step_experts: bool = setting(True, help="""Three step experts routed by stage; False gives one LoRA for
        every token (baseline).""")
    shared_expert: bool = setting(True, help="""Add the shared expert; without it the stage expert gets
        weight 1 (ablation).""")
    train_question_routing: QuestionRouting = setting(QuestionRouting.RANDOM, help="""Question tokens during
        training: one step expert picked at random per sample (paper).""")
    infer_question_routing: QuestionRouting = setting(QuestionRouting.MEAN, help="""Question tokens at
        inference: the mean of the three step experts (the expectation of the random training pick).""")

    token_gate: bool = setting(False, help="""Four LoRA experts mixed per token by a learned gate instead of
        by stage (the moe_token and mixlora baselines set it); see core/experts/token_gate.py.""")
    gate_top_k: int = setting(2, ge=1, le=4, help="""Experts each token uses under a token gate (top-k of the
        gate's softmax, renormalised); 4 gives a dense softmax gate. MixLoRA uses 2.""")
    balance_loss_weight: float = setting(0.01, ge=0.0, le=100.0, help="""Weight of the Switch Transformer
        load-balancing loss of a token gate (Switch, MixLoRA: 0.01).""")
    contrastive_loss_weight: float = setting(0.1, ge=0.0, le=100.0, help="""Weight of the contrastive loss
        that keeps the token-gated experts apart (mixlora only; every other method trains with 0).""")
    def __post_init__(self) -> None:
        if isinstance(self.target_modules, str):  # a single name is a list of one
            self.target_modules = [self.target_modules]
        validate_settings(self)


@dataclass
class DataConfig:
    """How chains become training sequences (section 4)."""

    max_length: int = setting(512, ge=16, le=131072, help="""Longest tokenised chain; longer chains are
        rejected with a message (never cut silently).""")
    p_skip: float = setting(0.2, ge=0.0, le=1.0, help="""Probability, per sample and per intermediate stage,
        that later stages cannot see it.""")
    compact_positions: bool = setting(True, help="""With a stage skipped, later tokens take the positions
        they would have had without it, so a skipped sample computes exactly what the truncated chain
        would (RoPE sees the same distances).""")
    train_on: str = setting("chain", choices=("chain", "answer"), help="""'chain': loss on every stage and
        marker; 'answer': plain answer, no markers (SFT baseline).""")
    system_prompt: str | None = setting(None, help="""System message put before the question; None leaves
        the chat template's default.""")
    helpful_repeats: int = setting(1, ge=1, le=100, help="""Times each chain of a question labelled helpful
        is trained on per epoch (1: once, like every other chain). A set with as many declines as helpful
        answers teaches a small model to decline everything; repeating the helpful side, the model's own
        answers, holds its helpfulness (see the README's CPU check).""")

    def __post_init__(self) -> None:
        validate_settings(self)


@dataclass
class TrainConfig:
    """The training loop (accelerate)."""

    epochs: float = setting(3.0, ge=0.01, le=1000.0, help="""Passes over the chain dataset (paper: 3);
        fractions are allowed, 0 is not (set max_steps for a short run).""")
    max_steps: int | None = setting(None, ge=1, help="""Stop after this many optimizer steps (overrides
        epochs when set); None (left out): epochs decide.""")
    batch_size: int = setting(16, ge=1, multiple_of="micro_batch_size", help="""Chains per optimizer step on
        each process, before gradient accumulation splits it.""")
    micro_batch_size: int = setting(4, ge=1, help="""Chains per forward pass; batch_size must be a multiple
        of it (gradient accumulation).""")
    learning_rate: float = setting(2e-5, ge=1e-9, le=1.0, help="Peak learning rate of AdamW (paper: 2e-5).")
    weight_decay: float = setting(0.0, ge=0.0, help="AdamW weight decay on expert weights (0: none).")
    warmup_ratio: float = setting(0.03, ge=0.0, le=0.5, help="""Fraction of steps with linear warm-up, then
        cosine decay to 0.""")
    max_grad_norm: float = setting(1.0, ge=0.0, help="Gradient clipping norm (0 disables clipping).")
    mixed_precision: str = setting("auto", choices=("auto", "bf16", "fp16", "no"), help="""'auto' (bf16
        autocast where the device supports it), 'bf16', 'fp16' (GPU) or 'no'.""")
    checkpoint_every: int = setting(0, ge=0, help="""Save a resumable checkpoint every N optimizer steps
        (0: only at the end and on stop).""")
    seed: int = setting(0, ge=0, le=MAX_SEED, help="""Seeds data order, question routing, step skipping and
        initialisation.""")
    gradient_checkpointing: bool = setting(False, help="""Recompute activations in backward to save memory on
        large models.""")
    base_dtype: BaseDtype = setting(BaseDtype.AUTO, help="""dtype of the frozen base weights while training:
        'auto' is bfloat16 on a CUDA GPU with bf16 (float16 on older GPUs) and float32 on the CPU; the
        experts and marker rows stay float32 whatever this is (halves base memory: 7B is 14 GB, not 28).""")
    quantize: Quantize = setting(Quantize.NONE, help="""'nf4': load the frozen base in 4-bit NF4 with double
        quantisation and bf16 compute (QLoRA, bitsandbytes; CUDA GPUs only), experts on top in float32.""")
    accelerate_config: str | None = setting(None, help="""Sharded training preset for several GPUs: 'fsdp',
        'deepspeed_zero3' (assets/accelerate/) or the path of an accelerate config YAML; None: plain DDP.""")

    def __post_init__(self) -> None:
        validate_settings(self)

    @property
    def accumulation_steps(self) -> int:
        return self.batch_size // self.micro_batch_size


@dataclass
class MoteConfig:
    """Everything one training run needs."""

    model: str = setting("smollm2-135m-instruct", non_empty=True, help="""Base model: the bundled alias, a
        local Hugging Face folder (config.json and *.safetensors weights), or a hub id when online.""")
    method: Method = setting(Method.MOTE, help="MoTE or a baseline / ablation; see `resolve_method`.")
    experts: ExpertConfig = setting(factory=ExpertConfig, help="""The step-routed LoRA experts: rank, scaling,
        mixing weight, target layers, routing.""")
    data: DataConfig = setting(factory=DataConfig, help="""How chains become training sequences: length
        limit, step skipping, loss targets.""")
    train: TrainConfig = setting(factory=TrainConfig, help="""The training loop: epochs or steps, batch sizes,
        optimizer, precision, checkpoints.""")

    def __post_init__(self) -> None:
        validate_settings(self)

    def to_dict(self) -> dict[str, Any]:
        return plain_values(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoteConfig:
        return settings_from_dict(cls, data, "config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> MoteConfig:
        """A checked config from a YAML file; every failure is one ValueError naming the file."""
        path = Path(path)
        data = read_yaml_mapping(path)
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ConfigFileError(f"{path}: {error}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def resolve_method(config: MoteConfig) -> MoteConfig:
    """Copy of `config` with the switches its method implies (section 4's baselines/ablations)."""
    resolved = dataclasses.replace(
        config,
        experts=dataclasses.replace(config.experts),
        data=dataclasses.replace(config.data),
        train=dataclasses.replace(config.train),
    )
    experts, data, method = resolved.experts, resolved.data, config.method
    if method in (Method.LORA, Method.LORA_X2, Method.SFT):
        experts.step_experts = False
        experts.shared_expert = False
        data.p_skip = 0.0
    if method is Method.LORA_X2:
        experts.rank *= 2
        experts.lora_alpha *= 2  # keep lora_alpha / rank, so only capacity changes
    if method is Method.SFT:
        data.train_on = "answer"
    if method in (Method.MOTE_NO_SKIP, Method.MOTE_NO_SKIP_NO_SHARED):
        data.p_skip = 0.0
    if method in (Method.MOTE_NO_SHARED, Method.MOTE_NO_SKIP_NO_SHARED):
        experts.shared_expert = False
    if method in (Method.MOE_TOKEN, Method.MIXLORA):
        experts.token_gate = True  # same chains and markers as MoTE; no stage routing, no step skipping
        data.p_skip = 0.0
    if method is not Method.MIXLORA:
        experts.contrastive_loss_weight = 0.0
    return resolved


PRESETS_DIR = ASSETS_DIR / "presets"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def load_preset(name: str) -> MoteConfig:
    """A bundled preset by name ('quick', 'paper'); the error lists the available ones."""
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.exists():
        raise ValueError(f"Unknown preset {name!r}: use one of {preset_names()} or pass --config FILE.")
    return MoteConfig.from_yaml(path)


class FlaggedPolicy(str, enum.Enum):
    """What to do with a chain whose answer is still judged unsafe after all stages: regenerate
    then drop (default), drop at once, or keep it flagged (an explicit choice, stored with every
    chain, and the only way a flagged chain is ever trained on)."""

    KEEP = "keep"
    DROP = "drop"
    REGENERATE = "regenerate"


class AnswerOpenings(str, enum.Enum):
    """Whether a Safe Answer to a question labelled harmful is started with a declining opening."""

    HARMFUL = "harmful"
    OFF = "off"


@dataclass
class GenerateConfig:
    """Self-generation of AlignCoT chains (section 2)."""

    generator: str = setting("self", non_empty=True, help="""'self' (the model being aligned), a local model
        (alias, folder or hub id), or 'openai' for an OpenAI-compatible chat endpoint (a stronger
        teacher).""")
    endpoint_url: str | None = setting(None, help="""Base URL of the OpenAI-compatible endpoint, e.g.
        http://127.0.0.1:8000/v1 (needed by generator 'openai').""")
    endpoint_model: str | None = setting(None, help="Model name sent to the endpoint (needed by generator 'openai').")
    api_key_env: str | None = setting(None, help="""Name of the environment variable holding the endpoint's
        API key (never the key itself).""")
    batch_size: int = setting(8, ge=1, le=1024, help="""Rows decoded together by a local generator; finished
        rows are refilled at once.""")
    analysis_tokens: int = setting(160, ge=1, le=8192, help="Token limit of the analysis stage.")
    guidance_tokens: int = setting(128, ge=1, le=8192, help="Token limit of the guidance stage.")
    answer_tokens: int = setting(256, ge=1, le=8192, help="Token limit of each answer attempt.")
    check_tokens: int = setting(8, ge=1, le=8192, help="Token limit of each safety check (the verdict).")
    stop_strings: list[str] = setting(factory=list, help="""Extra strings that end a stage's text (the
        end-of-turn token always does).""")
    temperature: float = setting(0.0, ge=0.0, le=5.0, help="Sampling temperature of first attempts (0 is greedy).")
    top_p: float = setting(1.0, ge=0.0, le=1.0, help="Nucleus sampling threshold.")
    seed: int = setting(0, ge=0, le=MAX_SEED, help="Seeds sampling; attempt k of a question uses seed + k.")
    flagged_policy: FlaggedPolicy = setting(FlaggedPolicy.REGENERATE, help="""regenerate the whole chain up to
        max_regenerations times, then drop it (default); drop at once; or keep it flagged (only then is a
        flagged chain ever trained on).""")
    max_regenerations: int = setting(2, ge=0, le=10, help="""Extra attempts under the regenerate policy; a
        chain still flagged after them is dropped.""")
    regenerate_temperature: float = setting(0.8, ge=0.0, le=5.0, help="""Sampling temperature of regeneration
        attempts (greedy would repeat the same chain).""")
    prompts_dir: str | None = setting(None, help="""Folder with analysis/guidance/answer/check templates; None
        uses assets/prompts.""")
    max_prompt_tokens: int = setting(2048, ge=1, le=131072, help="""Longest prompt a stage may send; longer
        questions are recorded as failed, not cut.""")

    checker: str = setting("self", non_empty=True, help="""Who judges safety: 'self' (the generator's own
        model; a local one scores the labels' token probabilities, an endpoint uses logprobs), 'text' (the
        generator's free-text verdict, the paper's plain self-check), 'openai' (checker_endpoint_*), or a
        local model (alias, folder, id).""")
    checker_endpoint_url: str | None = setting(None, help="""Base URL of an OpenAI-compatible checker
        endpoint; None reuses endpoint_url.""")
    checker_endpoint_model: str | None = setting(None, help="Model name of the checker endpoint; None reuses endpoint_model.")
    unsafe_threshold: float = setting(0.5, ge=0.0, le=1.0, help="A constrained verdict is unsafe when P(unsafe) >= this threshold.")
    check_stages: bool = setting(True, help="""Also check the analysis and guidance stages (they can carry
        harmful detail); an unsafe one flags the chain.""")
    label_checks: bool = setting(True, help="""Where a question carries a label: flag a Safe Answer that
        complies with a harmful question or refuses a helpful one as 'label mismatch' (refusal judge),
        handled by flagged_policy.""")
    exemplars: int = setting(2, ge=0, le=16, help="""Few-shot example pairs per stage prompt, from the
        templates (alternately harmful and helpful). Training sees the bare question without them
        (context distillation).""")
    answer_openings: AnswerOpenings = setting(AnswerOpenings.HARMFUL, help="""'harmful': start Safe Answers to
        questions labelled harmful with a declining opening from openings.txt (the model writes the rest);
        'off': never. Unlabelled questions get none.""")
    best_of: int = setting(1, ge=1, le=32, help="""Answer candidates sampled per answer step in one batch; the
        checker keeps the safest.""")
    loop_words: int = setting(6, ge=0, le=64, help="""Stop a stage's text where it first repeats a run of this
        many words and keep it up to the last whole sentence before that (a small model decoding greedily
        loops to its token limit, and a looping chain teaches looping); a text cut off by its token limit
        loses its unfinished sentence too. An answer left degenerate (empty, a few words) flags the chain.
        0 keeps raw text.""")
    def __post_init__(self) -> None:
        validate_settings(self)
        if self.checker == "openai" and not ((self.checker_endpoint_url or self.endpoint_url)
                                             and (self.checker_endpoint_model or self.endpoint_model)):
            raise ValueError("checker='openai' needs checker_endpoint_url and checker_endpoint_model "
                             "(or endpoint_url and endpoint_model).")
        if self.generator == "openai" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("generator='openai' needs endpoint_url and endpoint_model (and api_key_env if the "
                             "endpoint wants a key).")


#: The paper's plain pipeline as GenerateConfig values (`generate --plain-pipeline`): the generator's
#: free-text self-check decides the chain's length, flagged chains are kept, no label or stage
#: checks, no exemplars, no openings, one candidate, raw (untrimmed) text.
PLAIN_PIPELINE: dict[str, object] = {"checker": "text", "flagged_policy": "keep", "label_checks": False,
                                     "check_stages": False, "exemplars": 0, "answer_openings": "off", "best_of": 1,
                                     "loop_words": 0}
