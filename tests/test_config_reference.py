"""docs/config-reference.md is rendered from the config dataclasses and presets, and kept current."""
from __future__ import annotations

import dataclasses
import re

import pytest

import core.config
import launch
from app.train_form import FIELDS, field_help
from core.config import (
    PRESETS_DIR,
    ExpertConfig,
    GenerateConfig,
    TrainConfig,
    load_preset,
    preset_names,
)
from core.config_reference import (
    REFERENCE_PATH,
    REGENERATE_COMMAND,
    config_sections,
    render_config_reference,
    render_dataclass,
    render_presets,
)
from core.settings import SettingError, setting, setting_rules, validate_settings


@dataclasses.dataclass
class Probe:
    """A config written the house way: every rule declared once, in the field's metadata."""

    width: int = setting(3, ge=2, le=5, help="A width between two and five.")
    names: list[str] = setting(factory=lambda: ["a"], non_empty=True, help="Some names.")
    total: int = setting(6, ge=1, multiple_of="width", help="A multiple of width.")
    mode: str = setting("fast", choices=("fast", "slow"), help="How to go.")

    def __post_init__(self) -> None:
        validate_settings(self)


@dataclasses.dataclass
class Undeclared:
    """A field declared without setting(...) is refused, not silently left unchecked."""

    bare: int = 2


def test_committed_reference_is_current():
    fresh = render_config_reference()
    committed = REFERENCE_PATH.read_text(encoding="utf-8") if REFERENCE_PATH.is_file() else ""
    if committed != fresh:
        pytest.fail(f"{REFERENCE_PATH.name} is stale (it no longer matches core/config.py or assets/presets). "
                    f"Regenerate it with `{REGENERATE_COMMAND}` and commit the result.")


def test_a_rule_declared_in_metadata_is_both_enforced_and_documented():
    rules = setting_rules(Probe)
    assert (rules["width"].ge, rules["width"].le, rules["width"].help) == (2, 5, "A width between two and five.")
    assert Probe(width=4, total=8).total == 8
    for bad, name in (({"width": 6}, "width=6"), ({"names": []}, "names=[]"), ({"mode": "warp"}, "mode='warp'"),
                      ({"width": 2, "total": 3}, "total=3"), ({"width": "4"}, "width='4'")):
        with pytest.raises(SettingError, match=re.escape(name)):
            Probe(**bad)
    section = render_dataclass("probe", Probe)
    assert "| `width` | `int` | `3` | [2, 5] | A width between two and five. |" in section
    assert "| `names` | `list[str]` | `[a]` | not empty | Some names. |" in section
    assert "| `total` | `int` | `6` | >= 1; a multiple of `width` | A multiple of width. |" in section
    assert "| `mode` | `str` | `fast` | `fast`, `slow` | How to go. |" in section


def test_a_field_without_a_declared_rule_is_refused():
    with pytest.raises(TypeError, match=r"Undeclared.bare is declared without setting"):
        setting_rules(Undeclared)


def test_every_config_dataclass_and_field_is_documented():
    sections = {cls for _, cls in config_sections()}
    in_module = {obj for obj in vars(core.config).values()
                 if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == "core.config"}
    assert sections == in_module
    text = render_config_reference()
    for cls in sections:
        rules = setting_rules(cls)
        for f in dataclasses.fields(cls):
            assert rules[f.name].help, f"{cls.__name__}.{f.name} has no help: give setting(..., help=...) in core/config.py"
            row = next((line for line in text.splitlines()
                        if line.startswith(f"| `{f.name}` |") and rules[f.name].help in line), None)
            assert row, f"{cls.__name__}.{f.name} is missing from the reference"


def test_rules_of_the_configs_come_from_their_metadata():
    experts, train, generate = (setting_rules(c) for c in (ExpertConfig, TrainConfig, GenerateConfig))
    assert (experts["rank"].ge, experts["rank"].le) == (1, 1024)
    assert (experts["alpha"].ge, experts["alpha"].le) == (0.0, 1.0)
    assert experts["target_modules"].non_empty
    assert experts["infer_question_routing"].choices == ("analysis", "guidance", "answer", "random", "mean")
    assert train["mixed_precision"].choices == ("auto", "bf16", "fp16", "no")
    assert (train["max_steps"].ge, train["max_steps"].le) == (1, None)
    assert train["batch_size"].multiple_of == "micro_batch_size"
    assert (train["weight_decay"].ge, train["max_grad_norm"].ge) == (0.0, 0.0)
    assert train["epochs"].ge > 0  # 0 epochs would silently train one step
    assert (generate["check_tokens"].ge, generate["check_tokens"].le) == (1, 8192)


def test_the_train_form_shows_the_declared_rule_of_each_field():
    for spec in FIELDS:
        rule = setting_rules(spec.owner[0])[spec.owner[1]]
        assert (spec.minimum, spec.maximum) == (rule.ge, rule.le), spec.path
        assert spec.choices == tuple(str(c) for c in rule.choices), spec.path
        assert rule.help in field_help(spec), spec.path
        if rule.range_text():
            assert f"valid: {rule.range_text()}" in field_help(spec), spec.path


def _outside(bound: float, direction: int) -> float:
    return bound + direction if isinstance(bound, int) else bound + direction * max(abs(bound), 1.0) * 0.5


def test_documented_ranges_and_values_are_what_the_configs_reject():
    for _, cls in config_sections():
        for name, rule in setting_rules(cls).items():
            for bound, direction in ((rule.ge, -1), (rule.le, 1)):
                if bound is not None:
                    with pytest.raises(SettingError, match=f"^{name}="):
                        cls(**{name: _outside(bound, direction)})
            if rule.choices:
                with pytest.raises(SettingError, match=f"^{name}="):
                    cls(**{name: "not-a-listed-value"})
                for choice in rule.choices:
                    cls(**{name: choice})


def test_presets_are_listed_with_their_header_and_values():
    text = render_presets()
    rows = {cells[0].strip("`"): [c.strip("`") for c in cells[1:]]
            for cells in (line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| `"))}
    names = preset_names()
    for name in names:
        header = (PRESETS_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
        assert header.split(":", 1)[1].strip() in text
    assert rows["experts.rank"] == [str(ExpertConfig().rank), *(str(load_preset(n).experts.rank) for n in names)]
    assert rows["train.learning_rate"] == [repr(TrainConfig().learning_rate),
                                           *(repr(load_preset(n).train.learning_rate) for n in names)]
    assert "data.system_prompt" not in rows  # no preset sets it


def test_cli_prints_and_writes_the_reference(tmp_path, capsys):
    assert launch.main(["config-reference"]) == 0
    assert capsys.readouterr().out == render_config_reference()
    out = tmp_path / "docs" / "ref.md"
    assert launch.main(["config-reference", "--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_config_reference()
