"""A stand-in local Hugging Face cache, for tests whose configs name a hub-style model
("tiny-model", "org/name") that must count as downloaded: submit checks refuse a hub id that
is not in the cache (core.model_source.check_model_on_this_machine)."""
from __future__ import annotations

from pathlib import Path

import pytest

SNAPSHOT = "0" * 40


def write_cached_hub_model(cache: Path, model_id: str) -> Path:
    """The cache layout huggingface_hub reads (refs/main -> snapshots/SHA/config.json); returns the snapshot."""
    repo = cache / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    (snapshot / "config.json").write_text("{}", encoding="utf-8")
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT, encoding="utf-8")
    return snapshot


def use_hub_cache(monkeypatch: pytest.MonkeyPatch, cache: Path, *model_ids: str) -> Path:
    """Point huggingface_hub at `cache` (for this test) with `model_ids` in it."""
    from huggingface_hub import constants

    for model_id in model_ids:
        write_cached_hub_model(cache, model_id)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache
