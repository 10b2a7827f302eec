"""Pipeline job configs from presets and study files: generate -> train each method -> evaluate.

Why in jobs/: the app's pipeline form and the CLI's `pipeline` and `study` verbs build the same
job config, so the merge rules (the preset's defaults, then what the user set) live once, next
to the job specs that check the result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.paths import ASSETS_DIR
from jobs.specs import JobConfigError

PIPELINES_DIR = ASSETS_DIR / "pipelines"
STUDY_KEYS = frozenset({"preset", "model", "chains", "chain_dataset_id", "train", "methods", "evaluate", "generate"})
DEFAULT_STUDY_METHODS = ("mote", "lora", "sft")


def pipeline_defaults(preset: str | None) -> dict[str, Any]:
    """assets/pipelines/<preset>.yaml (generate settings, methods, evaluate), or {} when none."""
    path = PIPELINES_DIR / f"{preset}.yaml"
    if not preset or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise JobConfigError(f"{path}: expected a mapping with generate, methods and evaluate.")
    return data


def pipeline_config(preset: str | None, generate: dict[str, Any], train: dict[str, Any], *,
                    methods: list[str] | None, evaluate: bool) -> dict[str, Any]:
    """A pipeline config: the preset's defaults, overridden by what the user set."""
    defaults = pipeline_defaults(preset)
    base = dict(defaults.get("generate") or {})
    chosen = {k: v for k, v in generate.items() if v is not None and k != "generate"}
    settings = {**(base.get("generate") or {}), **(generate.get("generate") or {})}
    return {"generate": {**base, **chosen, "generate": settings}, "train": train,
            "methods": methods or defaults.get("methods"),
            "evaluate": (defaults.get("evaluate") or {"settings": {}}) if evaluate else None}


def _read_study(path: str | Path) -> tuple[Path, dict[str, Any]]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise JobConfigError(f"study --config {path}: no such file.")
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise JobConfigError(f"study --config {path}: expected a mapping with train, methods and evaluate.")
    unknown = sorted(set(data) - STUDY_KEYS)
    if unknown:
        raise JobConfigError(f"study --config {path}: unknown key(s) {unknown}.")
    return file, data


def study_config(path: str | Path) -> dict[str, Any]:
    """A study YAML -> a pipeline config without generation (train per method, then evaluate).

    The file: {train: {train config} | preset/model/chains, methods: [...],
    evaluate: {settings: {...}, judges: [...], include_base: true, prompting: [aligncot, ...]}};
    methods: [] trains nothing (a study of the base model alone); relative chain paths are
    read from the study file's folder."""
    from core.config import MoteConfig, load_preset
    from core.data.chains import bundled_sample_chains_path

    file, data = _read_study(path)
    train = dict(data.get("train") or {})
    if "mote" not in train:
        mote = load_preset(data.get("preset", "quick")) if not data.get("train") else MoteConfig.from_dict(train)
        if data.get("model"):
            mote.model = data["model"]
        train = {"mote": mote.to_dict()}
    if data.get("chains") is not None:
        train["chains"] = str((file.parent / data["chains"]).resolve())
    if data.get("chain_dataset_id") is not None:
        train["chain_dataset_id"] = data["chain_dataset_id"]
    if not data.get("generate") and not any(train.get(k) for k in ("chains", "chain_dataset_id", "chains_from_job")):
        train["chains"] = str(bundled_sample_chains_path())
    methods = data["methods"] if data.get("methods") is not None else list(DEFAULT_STUDY_METHODS)  # []: evaluate only
    return {"generate": data.get("generate"), "train": train, "methods": methods,
            "evaluate": data.get("evaluate") or {}}
