"""Dataclass configs for MoTE training, checked on construction; YAML presets mirror them.

Why dataclasses with metadata: one place declares each setting, its default, its valid range
or choices and its meaning (`setting(...)` stores them as field metadata), so the checks, the
Train form and docs/config-reference.md all read the same declaration and cannot drift apart.
One generic validator (`validate_settings`) enforces the declared types and ranges, so a rule
written here is always both checked and shown. Every DECISION of docs/mote-method.md is a field.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from core.paths import ASSETS_DIR

#: The key of a field's SettingRule in its dataclass metadata.
RULE_KEY = "mote_setting"
#: Largest seed every random generator in the stack accepts (numpy's limit).
MAX_SEED = 2**32 - 1


class SettingError(ValueError):
    """One setting with a wrong type or outside its declared range; the message names the
    setting (dotted inside a section, e.g. train.learning_rate), the value and what is allowed."""

    def __init__(self, name: str, value: Any, problem: str) -> None:
        self.name, self.value, self.problem = name, value, problem
        super().__init__(f"{name}={value!r} {problem}")

    def within(self, section: str) -> SettingError:
        """The same error named from the enclosing config (experts.rank instead of rank)."""
        return SettingError(f"{section}.{self.name}", self.value, self.problem)


class ConfigFileError(ValueError):
    """A config file that cannot be read or parsed; the message names the file (and line)."""


@dataclass(frozen=True)
class SettingRule:
    """What one setting accepts (beyond its type hint) and what it means.

    `ge`/`le` are inclusive bounds; `choices` the allowed values of a plain-text setting (enum
    settings get theirs from the enum); `non_empty` rejects an empty list or text;
    `multiple_of` names another field of the same config that must divide this one.
    """

    help: str
    ge: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] = ()
    non_empty: bool = False
    multiple_of: str | None = None

    def range_text(self) -> str:
        """'[low, high]', '>= low', '<= high' or '' (bounds as declared, e.g. 1 or 0.0)."""
        if self.ge is not None and self.le is not None:
            return f"[{self.ge!r}, {self.le!r}]"
        if self.ge is not None:
            return f">= {self.ge!r}"
        return f"<= {self.le!r}" if self.le is not None else ""

    def allowed_text(self) -> str:
        """Everything a value must satisfy, in words, for the reference and the form."""
        parts = [", ".join(f"`{yaml_flow_text(choice)}`" for choice in self.choices)] if self.choices else []
        parts += [self.range_text()] if self.range_text() else []
        parts += ["not empty"] if self.non_empty else []
        parts += [f"a multiple of `{self.multiple_of}`"] if self.multiple_of else []
        return "; ".join(parts)


def setting(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, help: str,
            ge: float | None = None, le: float | None = None, choices: tuple[Any, ...] = (),
            non_empty: bool = False, multiple_of: str | None = None) -> Any:
    """A dataclass field that carries its SettingRule (give `factory` for a mutable default)."""
    rule = SettingRule(help=" ".join(help.split()), ge=ge, le=le, choices=tuple(choices),
                       non_empty=non_empty, multiple_of=multiple_of)
    if factory is not None:
        return field(default_factory=factory, metadata={RULE_KEY: rule})
    return field(default=default, metadata={RULE_KEY: rule})


@functools.cache
def setting_rules(cls: type) -> dict[str, SettingRule]:
    """Every field's SettingRule by name; an enum field's choices are its enum's values."""
    hints = _type_hints(cls)
    rules: dict[str, SettingRule] = {}
    for f in dataclasses.fields(cls):
        rule = f.metadata.get(RULE_KEY)
        if rule is None:
            raise TypeError(f"{cls.__name__}.{f.name} is declared without setting(...): give it a help text "
                            "and its valid range, so it is checked and documented.")
        enum_type = _enum_type(hints[f.name])
        if enum_type is not None and not rule.choices:
            rule = dataclasses.replace(rule, choices=tuple(member.value for member in enum_type))
        rules[f.name] = rule
    return rules


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _without_none(hint: Any) -> tuple[Any, bool]:
    """(the hint without None, whether None is allowed) for `X | None`; other hints unchanged."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(args) != 1:
            raise TypeError(f"Setting type {hint} is not supported: use one type, optionally `| None`.")
        return args[0], True
    return hint, False


def _enum_type(hint: Any) -> type[enum.Enum] | None:
    hint, _ = _without_none(hint)
    return hint if isinstance(hint, type) and issubclass(hint, enum.Enum) else None


def _in_range(rule: SettingRule) -> str:
    return f" in {rule.range_text()}" if rule.range_text().startswith("[") else (
        f" {rule.range_text()}" if rule.range_text() else "")


def _typed(name: str, value: Any, hint: Any, rule: SettingRule) -> Any:
    """`value` as the declared type, or a SettingError naming the expected type.

    Why a float setting accepts numeric text: YAML 1.1 (PyYAML) reads `2e-5` as the string
    '2e-5'; anything that is not a number ('fast') is still refused.
    """
    hint, optional = _without_none(hint)
    if value is None:
        if optional:
            return None
        raise SettingError(name, value, f"is missing: give a value{_in_range(rule)}.")
    if dataclasses.is_dataclass(hint):
        return _section(name, value, hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise SettingError(name, value, f"is not known: use one of {[m.value for m in hint]}.") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise SettingError(name, value, "is not true or false: write true or false.")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(name, value, f"is not an integer: use a whole number{_in_range(rule)}.")
        return value
    if hint is float:
        return _number(name, value, rule)
    if hint is str:
        if not isinstance(value, str):
            raise SettingError(name, value, "is not text: write it as a string.")
        return value
    if typing.get_origin(hint) is list and typing.get_args(hint) == (str,):
        if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise SettingError(name, value, "is not a list of strings: write it as e.g. [q_proj, v_proj].")
        return list(value)
    raise TypeError(f"Setting {name} has type {hint}, which validate_settings does not support.")


def _number(name: str, value: Any, rule: SettingRule) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise SettingError(name, value, f"is not a number: use a finite number{_in_range(rule)}.")
    return number


def _section(name: str, value: Any, cls: type) -> Any:
    """A nested config from its mapping (errors named from the enclosing config)."""
    if isinstance(value, cls):
        return value
    if not isinstance(value, dict):
        raise SettingError(name, value, f"is not a section of settings: write `{name}:` followed by indented "
                                        f"`setting: value` lines ({cls.__name__} in docs/config-reference.md).")
    try:
        return _from_dict(cls, value, name)
    except SettingError as error:
        raise error.within(name) from None


def _check_rule(name: str, value: Any, rule: SettingRule, config: Any) -> None:
    if value is None:
        return
    if rule.choices and value not in rule.choices and not isinstance(value, enum.Enum):
        raise SettingError(name, value, f"is not valid: use one of {list(rule.choices)}.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (rule.ge is not None and value < rule.ge) or (rule.le is not None and value > rule.le):
            raise SettingError(name, value, f"is out of range: use {rule.range_text()}.")
    if rule.non_empty and (not value or (isinstance(value, str) and not value.strip())):
        raise SettingError(name, value, "is empty: give at least one value.")
    if rule.multiple_of:
        other = getattr(config, rule.multiple_of)
        if other and value % other:  # a zero divisor is reported by its own range check
            raise SettingError(name, value, f"is not a multiple of {rule.multiple_of}={other}: pick sizes "
                                            f"where {rule.multiple_of} divides {name}.")


def validate_settings(config: Any) -> None:
    """Check and normalise every field of a config dataclass against its type and SettingRule.

    Every config's __post_init__ calls this first: types (with numbers from text and enums from
    their values), then ranges, choices, emptiness and divisibility, so the first bad setting
    raises a SettingError naming it, its value and what is allowed.
    """
    cls, rules, hints = type(config), setting_rules(type(config)), _type_hints(type(config))
    for name, rule in rules.items():
        setattr(config, name, _typed(name, getattr(config, name), hints[name], rule))
    for name, rule in rules.items():
        _check_rule(name, getattr(config, name), rule, config)


def yaml_flow_text(value: Any) -> str:
    """A value spelled as it would be written in a YAML config (flow style, one line)."""
    value = plain_values(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(yaml_flow_text(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


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
        return _from_dict(cls, data, "config")

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


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The mapping a YAML settings file holds; a missing, unreadable or malformed file raises a
    ConfigFileError naming the file and, for a syntax error, the line (never a parser traceback)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(f"Config file {path} does not exist: pass a YAML file of settings "
                              "(see docs/config-reference.md).") from None
    except UnicodeDecodeError:
        raise ConfigFileError(f"Config file {path} is not UTF-8 text: save it as a UTF-8 YAML file.") from None
    except OSError as error:
        raise ConfigFileError(f"Config file {path} cannot be read ({error.strerror}).") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigFileError(f"{where}: not valid YAML ({problem}); write one `setting: value` per line, "
                              "sections indented under their key.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: a config file must be a YAML mapping of settings, not a {type(data).__name__}.")
    return data


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
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
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
    """What to do with a chain whose answer is still judged unsafe after all stages."""

    KEEP = "keep"
    DROP = "drop"
    REGENERATE = "regenerate"


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
    flagged_policy: FlaggedPolicy = setting(FlaggedPolicy.KEEP, help="""keep (flagged), drop, or regenerate the
        whole chain up to max_regenerations times.""")
    max_regenerations: int = setting(2, ge=0, le=10, help="""Extra attempts under the regenerate policy; a
        chain still unsafe after them is kept, flagged.""")
    regenerate_temperature: float = setting(0.8, ge=0.0, le=5.0, help="""Sampling temperature of regeneration
        attempts (greedy would repeat the same chain).""")
    prompts_dir: str | None = setting(None, help="""Folder with analysis/guidance/answer/check templates; None
        uses assets/prompts.""")
    max_prompt_tokens: int = setting(2048, ge=1, le=131072, help="""Longest prompt a stage may send; longer
        questions are recorded as failed, not cut.""")

    def __post_init__(self) -> None:
        validate_settings(self)
        if self.generator == "openai" and not (self.endpoint_url and self.endpoint_model):
            raise ValueError("generator='openai' needs endpoint_url and endpoint_model (and api_key_env if the "
                             "endpoint wants a key).")
