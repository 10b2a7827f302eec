"""Dataclass configs for MoTE training, checked on construction; YAML presets mirror them.

Why dataclasses: one place declares each setting, its default, its valid range and its meaning
(the field docstring comments), so the CLI, the UI and the YAML presets cannot drift apart.
Every DECISION of docs/mote-method.md is a field here.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from core.paths import ASSETS_DIR


class Method(str, enum.Enum):
    """MoTE or one of the baselines / ablations of section 4, trained by the same code path."""

    MOTE = "mote"
    MOTE_NO_SKIP = "mote_no_skip"
    MOTE_NO_SHARED = "mote_no_shared"
    MOTE_NO_SKIP_NO_SHARED = "mote_no_skip_no_shared"
    LORA = "lora"
    LORA_X2 = "lora_x2"
    SFT = "sft"


class QuestionRouting(str, enum.Enum):
    """Which step expert(s) the question tokens go through."""

    ANALYSIS = "analysis"
    GUIDANCE = "guidance"
    ANSWER = "answer"
    RANDOM = "random"
    MEAN = "mean"


DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not (low <= value <= high):
        raise ValueError(f"{name}={value!r} is out of range: use a value in [{low}, {high}].")


@dataclass
class ExpertConfig:
    """The step-routed LoRA experts (section 3)."""

    rank: int = 16
    """LoRA rank r of every expert (paper: 16)."""
    lora_alpha: float = 32.0
    """PEFT-style scaling numerator: each expert's output is scaled by lora_alpha / rank."""
    alpha: float = 0.5
    """Mixing weight: y = W0 x + alpha * E_stage(x) + (1 - alpha) * E_shared(x) (paper: 0.5)."""
    dropout: float = 0.05
    """Dropout on the expert input during training, as PEFT's lora_dropout."""
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    """Names (last path component) of the linear layers that get experts; ['all-linear'] for every
    linear layer except the output head."""
    step_experts: bool = True
    """Three step experts routed by stage; False gives one LoRA for every token (baseline)."""
    shared_expert: bool = True
    """Add the shared expert; without it the stage expert gets weight 1 (ablation)."""
    train_question_routing: QuestionRouting = QuestionRouting.RANDOM
    """Question tokens during training: one step expert picked at random per sample (paper)."""
    infer_question_routing: QuestionRouting = QuestionRouting.MEAN
    """Question tokens at inference: the mean of the three step experts (the expectation of the
    random training pick)."""

    def __post_init__(self) -> None:
        self.train_question_routing = QuestionRouting(self.train_question_routing)
        self.infer_question_routing = QuestionRouting(self.infer_question_routing)
        if not (1 <= self.rank <= 1024):
            raise ValueError(f"rank={self.rank!r} is out of range: use an integer in [1, 1024].")
        _check_range("lora_alpha", self.lora_alpha, 1e-6, 1e6)
        _check_range("alpha", self.alpha, 0.0, 1.0)
        _check_range("dropout", self.dropout, 0.0, 0.9)
        if isinstance(self.target_modules, str):
            self.target_modules = [self.target_modules]
        if not self.target_modules:
            raise ValueError("target_modules is empty: name at least one linear layer, e.g. ['q_proj'].")


@dataclass
class DataConfig:
    """How chains become training sequences (section 4)."""

    max_length: int = 512
    """Longest tokenised chain; longer chains are rejected with a message (never cut silently)."""
    p_skip: float = 0.2
    """Probability, per sample and per intermediate stage, that later stages cannot see it."""
    compact_positions: bool = True
    """With a stage skipped, later tokens take the positions they would have had without it, so a
    skipped sample computes exactly what the truncated chain would (RoPE sees the same distances)."""
    train_on: str = "chain"
    """'chain': loss on every stage and marker; 'answer': plain answer, no markers (SFT baseline)."""
    system_prompt: str | None = None
    """System message put before the question; None leaves the chat template's default."""

    def __post_init__(self) -> None:
        if not (16 <= self.max_length <= 131072):
            raise ValueError(f"max_length={self.max_length!r} is out of range: use [16, 131072].")
        _check_range("p_skip", self.p_skip, 0.0, 1.0)
        if self.train_on not in ("chain", "answer"):
            raise ValueError(f"train_on={self.train_on!r} is not valid: use 'chain' or 'answer'.")


@dataclass
class TrainConfig:
    """The training loop (accelerate)."""

    epochs: float = 3.0
    """Passes over the chain dataset (paper: 3)."""
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs when set)."""
    batch_size: int = 16
    """Chains per optimizer step on each process, before gradient accumulation splits it."""
    micro_batch_size: int = 4
    """Chains per forward pass; batch_size must be a multiple of it (gradient accumulation)."""
    learning_rate: float = 2e-5
    """Peak learning rate of AdamW (paper: 2e-5)."""
    weight_decay: float = 0.0
    """AdamW weight decay on expert weights."""
    warmup_ratio: float = 0.03
    """Fraction of steps with linear warm-up, then cosine decay to 0."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 disables)."""
    mixed_precision: str = "auto"
    """'auto' (bf16 autocast where the device supports it), 'bf16', 'fp16' (GPU) or 'no'."""
    checkpoint_every: int = 0
    """Save a resumable checkpoint every N optimizer steps (0: only at the end and on stop)."""
    seed: int = 0
    """Seeds data order, question routing, step skipping and initialisation."""
    gradient_checkpointing: bool = False
    """Recompute activations in backward to save memory on large models."""

    def __post_init__(self) -> None:
        _check_range("epochs", self.epochs, 0.0, 1000.0)
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps={self.max_steps!r} is out of range: use None or >= 1.")
        if self.batch_size < 1 or self.micro_batch_size < 1:
            raise ValueError("batch_size and micro_batch_size must be >= 1.")
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} is not a multiple of micro_batch_size="
                f"{self.micro_batch_size}: pick sizes where micro_batch_size divides batch_size."
            )
        _check_range("learning_rate", self.learning_rate, 1e-9, 1.0)
        _check_range("warmup_ratio", self.warmup_ratio, 0.0, 0.5)
        if self.mixed_precision not in ("auto", "bf16", "fp16", "no"):
            raise ValueError(f"mixed_precision={self.mixed_precision!r}: use auto, bf16, fp16 or no.")
        if self.checkpoint_every < 0:
            raise ValueError("checkpoint_every must be >= 0 (0 saves only at the end).")

    @property
    def accumulation_steps(self) -> int:
        return self.batch_size // self.micro_batch_size


@dataclass
class MoteConfig:
    """Everything one training run needs."""

    model: str = "smollm2-135m-instruct"
    """Base model: the bundled alias, a local Hugging Face folder, or a hub id when online."""
    method: Method = Method.MOTE
    """MoTE or a baseline / ablation; see `resolve_method`."""
    experts: ExpertConfig = field(default_factory=ExpertConfig)
    """The step-routed LoRA experts: rank, scaling, mixing weight, target layers, routing."""
    data: DataConfig = field(default_factory=DataConfig)
    """How chains become training sequences: length limit, step skipping, loss targets."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop: epochs or steps, batch sizes, optimizer, precision, checkpoints."""

    def __post_init__(self) -> None:
        try:
            self.method = Method(self.method)
        except ValueError:
            valid = [m.value for m in Method]
            raise ValueError(f"method={self.method!r} is not known: use one of {valid}.") from None
        for name, cls in (("experts", ExpertConfig), ("data", DataConfig), ("train", TrainConfig)):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _from_dict(cls, value, name))

    def to_dict(self) -> dict[str, Any]:
        return plain_values(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MoteConfig:
        return _from_dict(cls, data, "config")

    @classmethod
    def from_yaml(cls, path: str | Path) -> MoteConfig:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a config file must be a YAML mapping of settings.")
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def plain_values(value: Any) -> Any:
    """Enums to their values, tuples to lists, recursively: what JSON and YAML can hold."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: plain_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_values(v) for v in value]
    return value


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; valid settings are {sorted(names)}.")
    return cls(**data)


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

    generator: str = "self"
    """'self' (the model being aligned), a local model (alias, folder or hub id), or 'openai'
    for an OpenAI-compatible chat endpoint (a stronger teacher)."""
    endpoint_url: str | None = None
    """Base URL of the OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1."""
    endpoint_model: str | None = None
    """Model name sent to the endpoint."""
    api_key_env: str | None = None
    """Name of the environment variable holding the endpoint's API key (never the key itself)."""
    batch_size: int = 8
    """Rows decoded together by a local generator; finished rows are refilled at once."""
    analysis_tokens: int = 160
    """Token limit of the analysis stage."""
    guidance_tokens: int = 128
    """Token limit of the guidance stage."""
    answer_tokens: int = 256
    """Token limit of each answer attempt."""
    check_tokens: int = 8
    """Token limit of each safety check (the verdict)."""
    stop_strings: list[str] = field(default_factory=list)
    """Extra strings that end a stage's text (the end-of-turn token always does)."""
    temperature: float = 0.0
    """Sampling temperature of first attempts (0 is greedy)."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    seed: int = 0
    """Seeds sampling; attempt k of a question uses seed + k."""
    flagged_policy: FlaggedPolicy = FlaggedPolicy.REGENERATE
    """regenerate the whole chain up to max_regenerations times, then drop it (default); drop at
    once; or keep it flagged (only then is a flagged chain ever trained on)."""
    max_regenerations: int = 2
    """Extra attempts under the regenerate policy; a chain still flagged after them is dropped."""
    regenerate_temperature: float = 0.8
    """Sampling temperature of regeneration attempts (greedy would repeat the same chain)."""
    prompts_dir: str | None = None
    """Folder with analysis/guidance/answer/check templates; None uses assets/prompts."""
    max_prompt_tokens: int = 2048
    """Longest prompt a stage may send; longer questions are recorded as failed, not cut."""
    checker: str = "self"
    """Who judges safety: 'self' (the generator's own model; a local one scores the labels' token
    probabilities, an endpoint uses logprobs), 'text' (the generator's free-text verdict, the
    paper's plain self-check), 'openai' (checker_endpoint_*), or a local model (alias, folder, id)."""
    checker_endpoint_url: str | None = None
    """Base URL of an OpenAI-compatible checker endpoint; None reuses endpoint_url."""
    checker_endpoint_model: str | None = None
    """Model name of the checker endpoint; None reuses endpoint_model."""
    unsafe_threshold: float = 0.5
    """A constrained verdict is unsafe when P(unsafe) >= this threshold."""
    check_stages: bool = True
    """Also check the analysis and guidance stages (they can carry harmful detail); an unsafe one
    flags the chain."""
    label_checks: bool = True
    """Where a question carries a label: flag a Safe Answer that complies with a harmful question
    or refuses a helpful one as 'label mismatch' (refusal judge), handled by flagged_policy."""
    exemplars: int = 2
    """Few-shot example pairs per stage prompt, from the templates (alternately harmful and
    helpful). Training sees the bare question without them (context distillation)."""
    answer_openings: AnswerOpenings = AnswerOpenings.HARMFUL
    """'harmful': start Safe Answers to questions labelled harmful with a declining opening from
    openings.txt (the model writes the rest); 'off': never. Unlabelled questions get none."""
    best_of: int = 1
    """Answer candidates sampled per answer step in one batch; the checker keeps the safest."""

    def __post_init__(self) -> None:
        self.flagged_policy = FlaggedPolicy(self.flagged_policy)
        self.answer_openings = AnswerOpenings(self.answer_openings)
        _check_range("unsafe_threshold", self.unsafe_threshold, 0.0, 1.0)
        if not (0 <= self.exemplars <= 16):
            raise ValueError(f"exemplars={self.exemplars!r} is out of range: use [0, 16].")
        if not (1 <= self.best_of <= 32):
            raise ValueError(f"best_of={self.best_of!r} is out of range: use [1, 32].")
        if self.checker == "openai" and not ((self.checker_endpoint_url or self.endpoint_url)
                                             and (self.checker_endpoint_model or self.endpoint_model)):
            raise ValueError("checker='openai' needs checker_endpoint_url and checker_endpoint_model "
                             "(or endpoint_url and endpoint_model).")
        if self.batch_size < 1 or self.batch_size > 1024:
            raise ValueError(f"batch_size={self.batch_size!r} is out of range: use [1, 1024].")
        for name in ("analysis_tokens", "guidance_tokens", "answer_tokens", "check_tokens"):
            if not (1 <= getattr(self, name) <= 8192):
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range: use [1, 8192].")
        _check_range("temperature", self.temperature, 0.0, 5.0)
        _check_range("top_p", self.top_p, 0.0, 1.0)
        if not (0 <= self.max_regenerations <= 10):
            raise ValueError(f"max_regenerations={self.max_regenerations!r} is out of range: use [0, 10].")
        if self.generator == "openai" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("generator='openai' needs endpoint_url and endpoint_model (and api_key_env if the endpoint wants a key).")
