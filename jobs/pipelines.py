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
STUDIES_DIR = ASSETS_DIR / "studies"
STUDY_KEYS = frozenset({"preset", "model", "chains", "chain_dataset_id", "train", "methods", "evaluate", "generate",
                        "sweep", "regenerate"})
DEFAULT_STUDY_METHODS = ("mote", "lora", "sft")
#: The bundled model's own safe chains for the 320 bundled training questions (the safe-data issue).
SHIPPED_CHAINS = ASSETS_DIR / "chains" / "smollm2_safe_chains.jsonl"
#: `train_chains: bundled` in a pipeline preset names SHIPPED_CHAINS.
BUNDLED_CHAINS = "bundled"
#: What a study's --regenerate generates when its file has no `regenerate:` section: every
#: bundled training question, with the default (safe) generation settings.
DEFAULT_REGENERATE: dict[str, Any] = {"questions": "train", "limit": None, "generate": {}}


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
                    methods: list[str] | None, evaluate: bool, train_chains: str | None = None) -> dict[str, Any]:
    """A pipeline config: the preset's defaults, overridden by what the user set.

    `train_chains` (else the preset's): a chains file trained on as well as the generated chains,
    'bundled' for the shipped safe chains, 'none' for the generated chains alone."""
    defaults = pipeline_defaults(preset)
    base = dict(defaults.get("generate") or {})
    chosen = {k: v for k, v in generate.items() if v is not None and k != "generate"}
    settings = {**(base.get("generate") or {}), **(generate.get("generate") or {})}
    extra = shipped_chains_path(train_chains or defaults.get("train_chains"), PIPELINES_DIR, "--train-chains")
    train = with_step_cap(train, defaults.get("train_max_steps"))
    return {"generate": {**base, **chosen, "generate": settings},
            "train": {**train, "extra_chains": str(extra)} if extra else train,
            "methods": methods or defaults.get("methods"),
            "evaluate": (defaults.get("evaluate") or {"settings": {}}) if evaluate else None}


def with_step_cap(train: dict[str, Any], cap: Any) -> dict[str, Any]:
    """The preset's `train_max_steps` as each method's max_steps, unless the user set one (--max-steps).

    Why a cap and not fewer epochs: a pipeline that trains on hundreds of shipped chains must still
    fit its time budget, whatever the size of the dataset."""
    mote = train.get("mote")
    if cap is None or not isinstance(mote, dict) or (mote.get("train") or {}).get("max_steps") is not None:
        return train
    if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
        raise JobConfigError(f"train_max_steps: {cap!r} is not a positive whole number of optimizer steps.")
    return {**train, "mote": {**mote, "train": {**(mote.get("train") or {}), "max_steps": cap}}}


def shipped_chains_path(value: str | None, folder: Path, where: str) -> Path | None:
    """'bundled' -> the shipped safe chains; a path (relative to `folder`) -> that file; None or
    'none' -> None. A missing file is named, with how to make it."""
    if value is None or str(value).lower() == "none":
        return None
    path = SHIPPED_CHAINS if value == BUNDLED_CHAINS else (folder / str(value)).expanduser().resolve()
    if not path.is_file():
        raise JobConfigError(missing_chains_message(path, where))
    return path


def missing_chains_message(path: Path, where: str) -> str:
    """Why the study cannot start without its chains, and the ways on."""
    what = ("It is the bundled model's own safe chains for the 320 bundled training questions; get it with the "
            "project (git pull), or" if path == SHIPPED_CHAINS else "Fix the path, or")
    return (f"{where}: the chains file {path} does not exist. {what} pass --regenerate to generate the chains "
            "first (a generate stage over every bundled training question with the default safe pipeline: "
            "hours on a CPU).")


def study_preset_path(name: str) -> Path:
    """assets/studies/NAME.yaml; the error lists the bundled study presets."""
    path = STUDIES_DIR / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
        raise JobConfigError(f"study --preset {name}: there is no {path}; use one of {names} or --config FILE.")
    return path


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


def study_config(path: str | Path, *, regenerate: bool = False) -> dict[str, Any]:
    """A study YAML -> a pipeline config without generation (train per method, then evaluate).

    The file: {train: {train config} | preset/model/chains, methods: [...],
    evaluate: {settings: {...}, judges: [...], include_base: true, prompting: [aligncot, ...]},
    sweep: {setting, values, holdout, method} (optional: choose that setting by held-out loss first),
    regenerate: {generate config} (what `regenerate=True` generates instead of reading `chains`)};
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
    generate = data.get("generate")
    if regenerate:  # the chains come from a generate stage over the training questions, not the file
        generate = {**DEFAULT_REGENERATE, **(data.get("regenerate") or {})}
        generate["model"] = generate.get("model") or train["mote"]["model"]
        train.pop("chains", None)
    elif data.get("chains") is not None:
        chains = (file.parent / data["chains"]).resolve()
        if not chains.is_file():
            raise JobConfigError(missing_chains_message(chains, f"study {file.name}"))
        train["chains"] = str(chains)
    if data.get("chain_dataset_id") is not None and not regenerate:
        train["chain_dataset_id"] = data["chain_dataset_id"]
    if not generate and not any(train.get(k) for k in ("chains", "chain_dataset_id", "chains_from_job")):
        train["chains"] = str(bundled_sample_chains_path())
    methods = data["methods"] if data.get("methods") is not None else list(DEFAULT_STUDY_METHODS)  # []: evaluate only
    return {"generate": generate, "train": train, "methods": methods,
            "evaluate": data.get("evaluate") or {}, "sweep": data.get("sweep")}
