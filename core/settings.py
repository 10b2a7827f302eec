"""Settings as dataclass fields that carry their own rule, and the one validator that enforces it.

Why metadata: a setting's type, valid range or choices and help text are declared once, on the
field (`setting(...)`), so `validate_settings` checks exactly what docs/config-reference.md and
the Train form show; a check cannot be written in a shape that the docs do not see. The config
dataclasses themselves live in core/config.py; this module knows nothing of MoTE.
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


#: The key of a field's SettingRule in its dataclass metadata.
RULE_KEY = "mote_setting"


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
        return settings_from_dict(cls, value, name)
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


def settings_from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """`cls(**data)` after refusing anything but a mapping of its own setting names (`where` names it)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; valid settings are {sorted(names)}.")
    return cls(**data)
