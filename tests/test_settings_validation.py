"""Every bad training setting is refused at submit (or when the config is built), in one line that
names the setting; nothing is silently reinterpreted and nothing reaches a worker (issue 19.6)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import launch
from core.config import MoteConfig
from core.data.chains import ChainFormatError, check_chains_file, save_chains_jsonl
from core.model_source import ModelSourceError, load_base_model
from core.settings import ConfigFileError, SettingError
from jobs.queue import JobQueue
from jobs.specs import JobConfigError
from tests.conftest import short_chains


@pytest.fixture
def queue(tmp_path):
    queue = JobQueue(f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home")
    yield queue
    queue.engine.dispose()


@pytest.fixture
def chains_file(tmp_path) -> Path:
    path = tmp_path / "chains.jsonl"
    save_chains_jsonl(short_chains(6), path)
    return path


def _train(model: Path | str, chains: Path | str, **sections) -> dict:
    mote = {"model": str(model), **sections}
    return {"mote": mote, "chains": str(chains)}


def _refused(queue: JobQueue, config: dict, *fragments: str) -> str:
    """Submit `config`, expect a one-line refusal naming every fragment, and a failed job row."""
    with pytest.raises(JobConfigError) as caught:
        queue.submit("train", config)
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert caught.value.job_id is not None  # recorded as a failed job, never queued
    return message


def test_a_valid_config_is_accepted(queue, tiny_dir, chains_file):
    assert queue.submit("train", _train(tiny_dir, chains_file, train={"max_steps": 1}, data={"max_length": 256}))


@pytest.mark.parametrize(("sections", "fragments"), [
    ({"train": {"learning_rate": "fast"}}, ("train.learning_rate='fast'", "is not a number")),
    ({"experts": {"rank": "abc"}}, ("experts.rank='abc'", "is not an integer")),
    ({"experts": {"rank": 2.5}}, ("experts.rank=2.5", "is not an integer")),
    ({"experts": [1, 2]}, ("experts=[1, 2]", "is not a section of settings")),
    ({"train": {"weight_decay": -5}}, ("train.weight_decay=-5", "out of range", ">= 0.0")),
    ({"train": {"max_grad_norm": -1}}, ("train.max_grad_norm=-1", "out of range", ">= 0.0")),
    ({"train": {"epochs": 0}}, ("train.epochs=0", "out of range")),
    ({"train": {"max_steps": 0}}, ("train.max_steps=0", "out of range", ">= 1")),
    ({"train": {"seed": -1}}, ("train.seed=-1", "out of range")),
    ({"data": {"compact_positions": "maybe"}}, ("data.compact_positions='maybe'", "true or false")),
    ({"method": "moe"}, ("method='moe'", "is not known")),
], ids=lambda value: json.dumps(value) if isinstance(value, dict) else None)
def test_each_bad_setting_fails_at_submit_naming_the_field(queue, tiny_dir, chains_file, sections, fragments):
    _refused(queue, _train(tiny_dir, chains_file, **sections), *fragments)


def test_a_missing_model_path_fails_at_submit(queue, tmp_path, chains_file):
    _refused(queue, _train(tmp_path / "no-such-model", chains_file), "mote: model", "does not exist")


def test_a_pickle_only_model_folder_asks_for_safetensors(queue, tmp_path, tiny_dir, chains_file):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_dir / "config.json", folder / "config.json")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x02not really a pickle")
    _refused(queue, _train(folder, chains_file), "pytorch_model.bin", "safetensors")
    with pytest.raises(ModelSourceError, match=r"only PyTorch pickle weights.*safetensors"):
        load_base_model(str(folder), tmp_path)  # what `serve` and the worker call: no raw OSError


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_broken_empty_and_binary_chains_files_fail_at_submit(queue, tmp_path, tiny_dir, chains_file):
    good = chains_file.read_bytes()
    broken = _write(tmp_path / "broken.jsonl", good + b'{"question": "q", "answer": \n')
    line = len(good.splitlines()) + 1
    _refused(queue, _train(tiny_dir, broken), f"broken.jsonl:{line}", "not valid JSON")
    no_answer = _write(tmp_path / "no-answer.jsonl", b'{"question": "q", "analysis": "a"}\n')
    _refused(queue, _train(tiny_dir, no_answer), "no-answer.jsonl:1", "no answer")
    empty = _write(tmp_path / "empty.jsonl", b"\n\n")
    _refused(queue, _train(tiny_dir, empty), "empty.jsonl holds no chains")
    binary = _write(tmp_path / "weights.jsonl", bytes(range(256)) * 8)
    _refused(queue, _train(tiny_dir, binary), "weights.jsonl is a binary file")
    latin1 = _write(tmp_path / "latin1.jsonl", good + '{"question": "caf\u00e9", "answer": "x"}\n'.encode("latin-1"))
    _refused(queue, _train(tiny_dir, latin1), f"latin1.jsonl:{line}", "not UTF-8")
    _refused(queue, _train(tiny_dir, tmp_path / "absent.jsonl"), "absent.jsonl does not exist")
    _refused(queue, _train(tiny_dir, tmp_path), "is not a regular file")


def test_check_chains_file_counts_the_chains(chains_file):
    assert check_chains_file(chains_file) == 6
    with pytest.raises(ChainFormatError, match="holds no chains"):
        check_chains_file(_write(chains_file.with_name("blank.jsonl"), b""))


def test_yaml_syntax_error_is_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 2\n  learning_rate: [0.1\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"bad.yaml:\d+: not valid YAML") as caught:
        MoteConfig.from_yaml(path)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigFileError, match="does not exist"):
        MoteConfig.from_yaml(tmp_path / "absent.yaml")
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="must be a YAML mapping"):
        MoteConfig.from_yaml(path)


def test_a_wrong_type_in_a_yaml_file_names_file_and_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("experts:\n  rank: abc\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match=r"typo.yaml: experts.rank='abc' is not an integer"):
        MoteConfig.from_yaml(path)


def test_yaml_exponent_numbers_are_read_as_numbers():
    """PyYAML reads `2e-5` as text; a float setting takes it as the number it spells."""
    assert MoteConfig.from_dict({"train": {"learning_rate": "2e-5"}}).train.learning_rate == 2e-5
    with pytest.raises(SettingError, match="is not a number"):
        MoteConfig.from_dict({"train": {"learning_rate": "nan"}})


def test_cli_train_refuses_bad_settings_in_one_line(tmp_path, tiny_dir, chains_file, capfd):
    url, home = f"sqlite:///{tmp_path / 'mote.db'}", tmp_path / "home"
    base = ["--home", str(home), "--db", url, "train"]
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("train: {epochs: 2\n", encoding="utf-8")
    assert launch.main([*base, "--config", str(bad_yaml), "--detach"]) != 0
    error = capfd.readouterr().err
    assert "bad.yaml" in error and "not valid YAML" in error and "Traceback" not in error
    zero_steps = ["--preset", "quick", "--model", str(tiny_dir), "--chains", str(chains_file), "--max-steps", "0"]
    assert launch.main([*base, *zero_steps, "--detach"]) != 0  # 0 is refused, not read as "no limit"
    queue = JobQueue(url, home)  # the refusal is recorded as failed job 1 (what the CLI printed)
    assert "train.max_steps=0 is out of range" in queue.get(1).error
    queue.engine.dispose()
