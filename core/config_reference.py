"""Markdown reference of every training and generation setting, rendered from core/config.py.

Why generated: the config dataclasses already state each setting's type, default, checked range
and meaning (the SettingRule in each field's metadata, which `validate_settings` enforces), and
the presets live in assets/presets. Rendering the reference from those sources means it cannot drift from the code;
tests/test_config_reference.py fails when docs/config-reference.md differs from a fresh render.
"""
from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.paths import DOCS_DIR
from core.config import (
    PRESETS_DIR,
    GenerateConfig,
    MoteConfig,
    load_preset,
    preset_names,
)
from core.settings import setting_rules, yaml_flow_text

REFERENCE_PATH = DOCS_DIR / "config-reference.md"
REGENERATE_COMMAND = "python launch.py config-reference --write docs/config-reference.md"
#: The configs a user writes; the dataclasses nested in their fields get sections of their own.
ROOT_CONFIGS: tuple[type, ...] = (MoteConfig, GenerateConfig)
_INTROS = {
    MoteConfig: "Write it as the YAML file of `python launch.py train --config FILE`, or start from a "
                "preset (`--preset NAME`); nested settings go under their section key.",
    GenerateConfig: "These are the settings of `python launch.py generate`; most have a command-line "
                    "option of the same name with dashes.",
}


@dataclass(frozen=True)
class FieldDoc:
    """One row of the reference: a dataclass field as a user sees it."""

    name: str
    type: str
    default: str
    allowed: str
    doc: str
    nested: type | None = None


def describe_fields(cls: type) -> list[FieldDoc]:
    """Every field of the dataclass `cls` with its type, default, allowed values and docstring."""
    rules, hints = setting_rules(cls), typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        nested = hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else None
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(FieldDoc(
            name=f.name,
            type=f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
            default=f"see {nested.__name__}" if nested else f"`{yaml_flow_text(default)}`",
            allowed=rules[f.name].allowed_text(),
            doc=rules[f.name].help,
            nested=nested,
        ))
    return rows


def config_sections(roots: tuple[type, ...] = ROOT_CONFIGS) -> list[tuple[str, type]]:
    """(YAML key path, dataclass) for each root config and, depth first, its nested configs."""
    sections: list[tuple[str, type]] = []

    def visit(path: str, cls: type) -> None:
        sections.append((path, cls))
        for row in describe_fields(cls):
            if row.nested is not None:
                visit(f"{path}.{row.name}" if path else row.name, row.nested)

    for root in roots:
        visit("", root)
    return sections


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_dataclass(path: str, cls: type) -> str:
    """One section: heading, the class docstring, and a table of its fields."""
    title = f"{cls.__name__} (`{path}:`)" if path else cls.__name__
    lines = [f"## {title}", "", inspect.cleandoc(cls.__doc__ or "")]
    if cls in _INTROS:
        lines[-1] += " " + _INTROS[cls]
    lines += ["", "| Field | Type | Default | Allowed | Description |", "|---|---|---|---|---|"]
    for row in describe_fields(cls):
        cells = [f"`{row.name}`", f"`{row.type}`", row.default, row.allowed, row.doc]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def flatten_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings -> {"train.epochs": 2, ...} (dotted names, as the reference and diffs show them)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _comment_header(path: Path) -> str:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(line for line in lines if line).removeprefix(f"{path.stem}:").strip()


def render_presets() -> str:
    """The bundled presets: what each is for (its comment header) and its values beside the defaults."""
    names = preset_names()
    intro = ("Bundled training presets in `assets/presets/` (`python launch.py train --preset NAME`). "
             "Settings a preset leaves out keep the default.")
    lines = ["## Presets", "", intro, ""]
    lines += [f"- **{name}**: {_comment_header(PRESETS_DIR / f'{name}.yaml')}" for name in names]
    written = {name: flatten_settings(yaml.safe_load((PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {})
               for name in names}
    resolved = {name: flatten_settings(load_preset(name).to_dict()) for name in names}  # also validates each preset
    defaults = flatten_settings(MoteConfig().to_dict())
    lines += ["", "| Setting | Default | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for key in (k for k in defaults if any(k in written[name] for name in names)):
        cells = [f"`{key}`", f"`{yaml_flow_text(defaults[key])}`"]
        cells += [f"`{yaml_flow_text(resolved[name][key])}`" for name in names]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_config_reference() -> str:
    """The whole reference as Markdown (deterministic: the same code gives the same text)."""
    head = (
        "# Configuration reference\n\n"
        f"<!-- Generated from core/config.py and assets/presets by `{REGENERATE_COMMAND}`; "
        "do not edit by hand. -->\n\n"
        "Every setting of a training run and of chain self-generation, with its type, default, the values "
        "the config accepts (checked when the config is built; a bad value raises an error naming the field "
        "and the allowed range) and what it does.\n"
    )
    sections = [render_dataclass(path, cls) for path, cls in config_sections()]
    return "\n".join([head, *sections, render_presets()])


def write_config_reference(path: str | Path = REFERENCE_PATH) -> Path:
    """Write the rendered reference to `path` (creating its folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config_reference(), encoding="utf-8")
    return path
