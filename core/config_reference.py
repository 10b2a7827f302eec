"""Markdown reference of every training and generation setting, rendered from core/config.py.

Why generated: the config dataclasses already state each setting's type, default, checked range
(in `__post_init__`) and meaning (the string literal under each field), and the presets live in
assets/presets. Rendering the reference from those sources means it cannot drift from the code;
tests/test_config_reference.py fails when docs/config-reference.md differs from a fresh render.
"""
from __future__ import annotations

import ast
import dataclasses
import enum
import inspect
import itertools
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
    plain_values,
    preset_names,
)

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
class Constraint:
    """What `__post_init__` accepts for one field: a closed range, a set of values, notes."""

    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()
    notes: tuple[str, ...] = ()

    def merged(self, other: Constraint) -> Constraint:
        return Constraint(
            low=other.low if other.low is not None else self.low,
            high=other.high if other.high is not None else self.high,
            choices=other.choices or self.choices,
            notes=self.notes + tuple(n for n in other.notes if n not in self.notes),
        )

    def text(self) -> str:
        parts = []
        if self.choices:
            parts.append(", ".join(f"`{_yaml_value(c)}`" for c in self.choices))
        if self.low is not None and self.high is not None:
            parts.append(f"[{self.low!r}, {self.high!r}]")
        elif self.low is not None:
            parts.append(f">= {self.low!r}")
        elif self.high is not None:
            parts.append(f"<= {self.high!r}")
        return "; ".join(parts + list(self.notes))


@dataclass(frozen=True)
class FieldDoc:
    """One row of the reference: a dataclass field as a user sees it."""

    name: str
    type: str
    default: str
    allowed: str
    doc: str
    nested: type | None = None


def _class_node(cls: type) -> ast.ClassDef:
    module = inspect.getmodule(cls)
    tree = ast.parse(inspect.getsource(module))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    raise ValueError(f"{cls.__name__} is not a top-level class of {module.__name__}: only those are documented.")


def field_docstrings(cls: type) -> dict[str, str]:
    """The string literal written under each annotated field (PEP 257 attribute docstrings)."""
    body = _class_node(cls).body
    docs: dict[str, str] = {}
    for node, following in itertools.pairwise(body):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            docs[node.target.id] = " ".join(inspect.cleandoc(following.value.value).split())
    return docs


def _subject(node: ast.AST, loop_names: dict[str, str]) -> str | None:
    """The field a check is about: `self.x`, or `getattr(self, name)` inside a loop over names."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) == 2 and isinstance(node.args[1], ast.Name)):
        return loop_names.get(node.args[1].id)
    return None


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _allowed(test: ast.AST, loop_names: dict[str, str]) -> dict[str, Constraint]:
    """Constraints from a condition that must hold, e.g. `low <= self.x <= high`."""
    if isinstance(test, ast.Compare) and len(test.ops) == 2:
        low, high = _literal(test.left), _literal(test.comparators[1])
        field = _subject(test.comparators[0], loop_names)
        if field and all(isinstance(op, (ast.Lt, ast.LtE)) for op in test.ops) and None not in (low, high):
            return {field: Constraint(low=low, high=high)}
    return {}


def _forbidden(test: ast.AST, loop_names: dict[str, str]) -> dict[str, Constraint]:
    """Constraints from the condition of an `if ...: raise` (a condition that must not hold)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return _combine(_forbidden(value, loop_names) for value in test.values)
    if isinstance(test, ast.BoolOp):  # `x is not None and x < 1`: the None case is allowed
        parts = [v for v in test.values if not (isinstance(v, ast.Compare) and isinstance(v.ops[0], ast.IsNot))]
        return _forbidden(parts[0], loop_names) if len(parts) == 1 else {}
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        field = _subject(test.operand, loop_names)
        return {field: Constraint(notes=("not empty",))} if field else _allowed(test.operand, loop_names)
    if isinstance(test, ast.BinOp) and isinstance(test.op, ast.Mod):
        left, right = _subject(test.left, loop_names), _subject(test.right, loop_names)
        return {left: Constraint(notes=(f"a multiple of `{right}`",))} if left and right else {}
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        field, value, op = _subject(test.left, loop_names), _literal(test.comparators[0]), test.ops[0]
        if field is None or value is None:
            return {}
        if isinstance(op, ast.NotIn):
            return {field: Constraint(choices=tuple(value))}
        if isinstance(op, ast.Lt):
            return {field: Constraint(low=value)}
        if isinstance(op, ast.Gt):
            return {field: Constraint(high=value)}
    return {}


def _combine(found: typing.Iterable[dict[str, Constraint]]) -> dict[str, Constraint]:
    merged: dict[str, Constraint] = {}
    for constraints in found:
        for field, constraint in constraints.items():
            merged[field] = merged[field].merged(constraint) if field in merged else constraint
    return merged


def _checks_in(statements: list[ast.stmt], loop_names: dict[str, str]) -> list[dict[str, Constraint]]:
    found = []
    for stmt in statements:
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name) and isinstance(stmt.iter, ast.Tuple):
            for name in (_literal(element) for element in stmt.iter.elts):
                found += _checks_in(stmt.body, {**loop_names, stmt.target.id: name})
        elif isinstance(stmt, ast.If) and any(isinstance(s, ast.Raise) for s in stmt.body):
            found.append(_forbidden(stmt.test, loop_names))
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value  # _check_range("name", self.name, low, high)
            if isinstance(call.func, ast.Name) and call.func.id == "_check_range" and len(call.args) == 4:
                name, low, high = (_literal(call.args[i]) for i in (0, 2, 3))
                found.append({name: Constraint(low=low, high=high)})
    return found


def field_constraints(cls: type) -> dict[str, Constraint]:
    """The ranges, values and rules that `cls.__post_init__` checks, by field name."""
    node = next((n for n in _class_node(cls).body
                 if isinstance(n, ast.FunctionDef) and n.name == "__post_init__"), None)
    constraints = _combine(_checks_in(node.body, {})) if node else {}
    for name, hint in typing.get_type_hints(cls).items():
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            choices = tuple(member.value for member in hint)
            constraints[name] = constraints.get(name, Constraint()).merged(Constraint(choices=choices))
    return constraints


def _yaml_value(value: Any) -> str:
    """A value spelled as it would be written in a YAML config (flow style, one line)."""
    value = plain_values(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


def describe_fields(cls: type) -> list[FieldDoc]:
    """Every field of the dataclass `cls` with its type, default, allowed values and docstring."""
    docs, constraints, hints = field_docstrings(cls), field_constraints(cls), typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        nested = hints[f.name] if dataclasses.is_dataclass(hints[f.name]) else None
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        rows.append(FieldDoc(
            name=f.name,
            type=f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type)),
            default=f"see {nested.__name__}" if nested else f"`{_yaml_value(default)}`",
            allowed=constraints[f.name].text() if f.name in constraints else "",
            doc=docs.get(f.name, ""),
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
        cells = [f"`{key}`", f"`{_yaml_value(defaults[key])}`"]
        cells += [f"`{_yaml_value(resolved[name][key])}`" for name in names]
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
