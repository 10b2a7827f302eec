"""docs/config-reference.md is rendered from the config dataclasses and presets, and kept current."""
from __future__ import annotations

import dataclasses

import pytest

import core.config
import launch
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
    field_constraints,
    field_docstrings,
    render_config_reference,
    render_presets,
)


@dataclasses.dataclass
class HalfDocumented:
    """Used to show that a field without a docstring is noticed."""

    documented: int = 1
    """Has a docstring
    over two lines."""
    bare: int = 2


def test_committed_reference_is_current():
    fresh = render_config_reference()
    committed = REFERENCE_PATH.read_text(encoding="utf-8") if REFERENCE_PATH.is_file() else ""
    if committed != fresh:
        pytest.fail(f"{REFERENCE_PATH.name} is stale (it no longer matches core/config.py or assets/presets). "
                    f"Regenerate it with `{REGENERATE_COMMAND}` and commit the result.")


def test_field_docstrings_read_the_literal_under_each_field():
    assert field_docstrings(HalfDocumented) == {"documented": "Has a docstring over two lines."}


def test_every_config_dataclass_and_field_is_documented():
    sections = {cls for _, cls in config_sections()}
    in_module = {obj for obj in vars(core.config).values()
                 if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == "core.config"}
    assert sections == in_module
    text = render_config_reference()
    for cls in sections:
        docs = field_docstrings(cls)
        for f in dataclasses.fields(cls):
            assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring: add one under the field in core/config.py"
            row = next((line for line in text.splitlines() if line.startswith(f"| `{f.name}` |") and docs[f.name] in line), None)
            assert row, f"{cls.__name__}.{f.name} is missing from the reference"


def test_constraints_are_read_from_post_init():
    experts, train, generate = (field_constraints(c) for c in (ExpertConfig, TrainConfig, GenerateConfig))
    assert (experts["rank"].low, experts["rank"].high) == (1, 1024)
    assert (experts["alpha"].low, experts["alpha"].high) == (0.0, 1.0)
    assert experts["target_modules"].notes == ("not empty",)
    assert experts["infer_question_routing"].choices == ("analysis", "guidance", "answer", "random", "mean")
    assert train["mixed_precision"].choices == ("auto", "bf16", "fp16", "no")
    assert (train["max_steps"].low, train["max_steps"].high) == (1, None)
    assert train["batch_size"].notes == ("a multiple of `micro_batch_size`",)
    assert (generate["batch_size"].low, generate["batch_size"].high) == (1, 1024)
    assert (generate["check_tokens"].low, generate["check_tokens"].high) == (1, 8192)  # checked in a loop
    assert "seed" not in train  # no check, no invented range


def _outside(bound: float, direction: int) -> float:
    return bound + direction if isinstance(bound, int) else bound + direction * max(abs(bound), 1.0) * 0.5


def test_documented_ranges_and_values_are_what_the_configs_reject():
    for _, cls in config_sections():
        for name, constraint in field_constraints(cls).items():
            for bound, direction in ((constraint.low, -1), (constraint.high, 1)):
                if bound is not None:
                    with pytest.raises(ValueError):
                        cls(**{name: _outside(bound, direction)})
            if constraint.choices:
                with pytest.raises(ValueError):
                    cls(**{name: "not-a-listed-value"})
                for choice in constraint.choices:
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
