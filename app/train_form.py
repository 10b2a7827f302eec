"""The Train tab's hyperparameter form: which MoteConfig fields it shows, their valid ranges, their
help text, and the conversions form values <-> MoteConfig <-> YAML / CLI command.

Why ranges and help are read from core/config.py's field metadata (`setting_rules`): the same
SettingRule that `validate_settings` enforces gives the form its limits and help text, so the
form says exactly what the code enforces and cannot drift from it.
"""
from __future__ import annotations

import enum
import functools
import inspect
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import DataConfig, ExpertConfig, MoteConfig, TrainConfig
from core.settings import SettingRule, setting_rules

SAMPLE_SOURCE = "sample"
DATASET_PREFIX = "dataset:"
_SECTIONS: dict[str, type] = {"": MoteConfig, "experts": ExpertConfig, "data": DataConfig, "train": TrainConfig}


class FieldKind(str, enum.Enum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"
    TEXT = "text"
    LIST = "list"


@dataclass(frozen=True)
class FieldSpec:
    """One form field: its dotted path in MoteConfig and its kind. `optional`: an empty field
    means None."""

    path: str
    kind: FieldKind
    optional: bool = False

    @property
    def name(self) -> str:
        return self.path.replace(".", "_")

    @property
    def label(self) -> str:
        return self.path.split(".")[-1].replace("_", " ")

    @property
    def owner(self) -> tuple[type, str]:
        """(the dataclass holding the field, the field's name in it)."""
        section, _, leaf = self.path.rpartition(".")
        return _SECTIONS[section], leaf

    @property
    def rule(self) -> SettingRule:
        """The field's declared rule in core/config.py: range, choices and help."""
        cls, leaf = self.owner
        return setting_rules(cls)[leaf]

    @property
    def minimum(self) -> float | None:
        return self.rule.ge

    @property
    def maximum(self) -> float | None:
        return self.rule.le

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.rule.choices)

    def range_text(self) -> str:
        """The declared range as the reference and core's errors write it; an optional field
        says that 0 (what Gradio shows for an empty number) means none."""
        text = self.rule.range_text()
        return text + (" (0 or empty: none)" if text and self.optional else "")


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("model", FieldKind.TEXT),
    FieldSpec("method", FieldKind.CHOICE),
    FieldSpec("experts.rank", FieldKind.INT),
    FieldSpec("experts.lora_alpha", FieldKind.FLOAT),
    FieldSpec("experts.alpha", FieldKind.FLOAT),
    FieldSpec("experts.dropout", FieldKind.FLOAT),
    FieldSpec("experts.target_modules", FieldKind.LIST),
    FieldSpec("data.max_length", FieldKind.INT),
    FieldSpec("data.p_skip", FieldKind.FLOAT),
    FieldSpec("data.compact_positions", FieldKind.BOOL),
    FieldSpec("train.epochs", FieldKind.FLOAT),
    FieldSpec("train.max_steps", FieldKind.INT, optional=True),
    FieldSpec("train.batch_size", FieldKind.INT),
    FieldSpec("train.micro_batch_size", FieldKind.INT),
    FieldSpec("train.learning_rate", FieldKind.FLOAT),
    FieldSpec("train.weight_decay", FieldKind.FLOAT),
    FieldSpec("train.warmup_ratio", FieldKind.FLOAT),
    FieldSpec("train.max_grad_norm", FieldKind.FLOAT),
    FieldSpec("train.mixed_precision", FieldKind.CHOICE),
    FieldSpec("train.checkpoint_every", FieldKind.INT),
    FieldSpec("train.seed", FieldKind.INT),
    FieldSpec("train.gradient_checkpointing", FieldKind.BOOL),
    FieldSpec("train.base_dtype", FieldKind.CHOICE),
    FieldSpec("train.quantize", FieldKind.CHOICE),
    FieldSpec("train.accelerate_config", FieldKind.TEXT, optional=True),
)
FIELD_NAMES: tuple[str, ...] = tuple(spec.name for spec in FIELDS)


def field_help(spec: FieldSpec) -> str:
    """What the form shows under a field: the valid range, then the field's help text."""
    parts = [f"valid: {spec.range_text()}" if spec.range_text() else "", spec.rule.help]
    return " — ".join(part for part in parts if part)


def _get(config: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        config = config[key]
    return config


def form_values(config: MoteConfig) -> list[Any]:
    """The form's values for `config`, in FIELDS order."""
    data = config.to_dict()
    values = []
    for spec in FIELDS:
        value = _get(data, spec.path)
        values.append(", ".join(value) if spec.kind is FieldKind.LIST else value)
    return values


def _number(spec: FieldSpec, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{spec.path}={value!r} is not a number: use {spec.range_text() or 'a number'}.") from None
    if not math.isfinite(number):
        raise ValueError(f"{spec.path}={value!r} is not a finite number: use {spec.range_text() or 'a number'}.")
    return number


def _coerce(spec: FieldSpec, value: Any) -> Any:
    if spec.optional and value == 0:  # an empty number field reads as 0
        return None
    if value is None or (isinstance(value, str) and not value.strip()):
        if spec.optional:
            return None
        raise ValueError(f"{spec.path} is empty: give a value" + (f" in {spec.range_text()}." if spec.range_text() else "."))
    if spec.kind is FieldKind.INT:
        if _number(spec, value) != int(_number(spec, value)):
            raise ValueError(f"{spec.path}={value!r} is not a whole number: use an integer in {spec.range_text()}.")
        value = int(_number(spec, value))
    elif spec.kind is FieldKind.FLOAT:
        value = _number(spec, value)
    elif spec.kind is FieldKind.BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{spec.path}={value!r} is not true or false: tick or clear the box (true/false).")
        return value
    elif spec.kind is FieldKind.LIST:
        return [item.strip() for item in str(value).split(",") if item.strip()]
    elif spec.kind is FieldKind.CHOICE and value not in spec.choices:
        raise ValueError(f"{spec.path}={value!r} is not valid: use one of {list(spec.choices)}.")
    return value.strip() if isinstance(value, str) else value


def config_from_values(values: Sequence[Any], base: dict[str, Any] | None = None) -> MoteConfig:
    """A checked MoteConfig from form values (FIELDS order) laid over `base` (a loaded config's
    dict, so settings the form does not show are kept). Errors name the field and its range."""
    if len(values) != len(FIELDS):
        raise ValueError(f"Expected {len(FIELDS)} form values ({', '.join(FIELD_NAMES)}), got {len(values)}.")
    data = MoteConfig.from_dict(dict(base)).to_dict() if base else MoteConfig().to_dict()
    for spec, value in zip(FIELDS, values):
        *parents, leaf = spec.path.split(".")
        target = data
        for key in parents:
            target = target[key]
        target[leaf] = _coerce(spec, value)
    return MoteConfig.from_dict(data)


@dataclass(frozen=True)
class ChainSource:
    """What a training run learns from: the bundled sample chains, a stored dataset or a file."""

    dataset_id: int | None = None
    file: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> ChainSource:
        text = (text or "").strip()
        if not text or text == SAMPLE_SOURCE:
            return cls()
        if text.startswith(DATASET_PREFIX):
            number = text[len(DATASET_PREFIX):].split()[0]
            if not number.isdigit():
                raise ValueError(f"Chain source {text!r}: expected 'dataset:ID' with a numeric id.")
            return cls(dataset_id=int(number))
        if not Path(text).expanduser().is_file():
            raise ValueError(f"Chain source {text!r} is neither 'sample', 'dataset:ID' nor an existing .jsonl file.")
        return cls(file=str(Path(text).expanduser().resolve()))

    def job_config(self) -> dict[str, Any]:
        if self.dataset_id is not None:
            return {"chain_dataset_id": self.dataset_id}
        return {"chains": self.file} if self.file else {}

    def cli_flags(self) -> list[str]:
        if self.dataset_id is not None:
            return ["--chain-dataset", str(self.dataset_id)]
        return ["--chains", self.file] if self.file else []


def cli_command(source: ChainSource, config_path: Path, *, home: Path, db_url: str | None = None) -> str:
    """The shell command that submits the same training job headless."""
    words = ["python", "launch.py", "--home", str(home)] + (["--db", db_url] if db_url else [])
    words += ["train", "--config", str(config_path), *source.cli_flags()]
    return " ".join(shlex.quote(word) for word in words)


def with_named_parameters(fn, head: Sequence[str], tail: Sequence[str] = ()):
    """`fn(*values)` exposed with parameter names (head, FIELD_NAMES, tail), so gradio_client
    users can call the endpoint with keywords such as train_learning_rate=3e-4."""
    names = [*head, *FIELD_NAMES, *tail]

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        return fn(*args)

    call.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names])
    return call
