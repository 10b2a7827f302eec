"""Command-line forms of evaluate and study jobs: flags and YAML files -> job configs.

    --run RUN        a run folder, job:ID (a training job) or base:MODEL; repeat for several
    --judge JUDGE    heuristic | local:MODEL[:label-prob|:verdict-first|:free-text] | URL#MODEL_NAME[@KEY_ENV] (http://host:8000/v1#mote) | a YAML file of
                     JudgeConfig fields; repeat for several (the first is the main one)
    study --config   a YAML file: {train: {train config} | preset/model/chains, methods: [...],
                     evaluate: {settings: {...}, judges: [...], include_base: true}}
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from jobs.specs import JobConfigError


def subject_from_flag(value: str) -> dict[str, Any]:
    """'job:12' | 'base:MODEL' | a run folder -> an evaluate subject (labelled by what was given)."""
    value = value.strip()
    if value.startswith("job:"):
        job = value[4:]
        if not job.isdigit():
            raise JobConfigError(f"--run {value!r}: job: takes a training job id, e.g. job:12.")
        return {"label": f"job-{job}", "train_job": int(job)}
    if value.startswith("base:"):
        return {"label": value, "base": value[5:]}
    return {"label": Path(value).name if Path(value).name != "export" else Path(value).parent.name, "run": value}


def judge_from_flag(value: str) -> dict[str, Any]:
    """A judge config from the --judge shorthand or a YAML/JSON file."""
    value = value.strip()
    if value == "heuristic":
        return {"kind": "heuristic"}
    if value.startswith("local:"):
        from core.evaluation.label_verdicts import JudgeMode

        model, _, mode = value[6:].rpartition(":")
        if mode in {m.value for m in JudgeMode}:  # local:MODEL:verdict-first | :free-text | :label-prob
            return {"kind": "local", "model": model, "mode": mode}
        return {"kind": "local", "model": value[6:]}
    if value.startswith(("http:", "https:")):
        url, _, rest = value.partition("#")
        if not rest:
            raise JobConfigError(f"--judge {value!r}: add the served model name after '#', e.g. http://host:8000/v1#mote.")
        name, _, key_env = rest.partition("@")
        return {"kind": "http", "url": url, "model_name": name, "api_key_env": key_env or None}
    path = Path(value).expanduser()
    if path.is_file():
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise JobConfigError(f"--judge {value}: the file should hold a mapping of judge settings.")
        return data
    raise JobConfigError(f"--judge {value!r} is not known: use heuristic, local:MODEL, http:URL#MODEL[@KEY_ENV] "
                         "or a YAML file of judge settings.")


def evaluate_config(args: argparse.Namespace, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """The evaluate job the flags describe. `source` is the config of the evaluate job named by
    --rejudge: its subjects and settings are the defaults, and its stored answers are reused."""
    settings: dict[str, Any] = dict(source.get("settings") or {}) if source else {}
    if args.sets:
        settings["sets"] = [s.strip() for s in args.sets.split(",") if s.strip()]
    for name in ("limit", "jailbreak_prompts", "max_stage_tokens", "temperature", "seed", "path", "batch_size"):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    if not args.run and not source:
        raise JobConfigError("evaluate: give at least one --run (a run folder, job:ID or base:MODEL), "
                             "or --rejudge JOB to judge an earlier evaluation's answers again.")
    subjects = [subject_from_flag(r) for r in args.run] if args.run else list(source["subjects"])
    config = {"subjects": subjects, "settings": settings,
              "judges": [judge_from_flag(j) for j in (args.judge or ["heuristic"])], "out": args.out}
    if source:
        config["answers_from"] = args.rejudge
    return config


def study_config(path: str | Path) -> dict[str, Any]:
    """A study YAML -> a pipeline config without generation (train per method, then evaluate)."""
    from core.config import MoteConfig, load_preset

    file = Path(path).expanduser()
    if not file.is_file():
        raise JobConfigError(f"study --config {path}: no such file.")
    data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise JobConfigError(f"study --config {path}: expected a mapping with train, methods and evaluate.")
    unknown = sorted(set(data) - {"preset", "model", "chains", "chain_dataset_id", "train", "methods", "evaluate", "generate"})
    if unknown:
        raise JobConfigError(f"study --config {path}: unknown key(s) {unknown}.")
    train = dict(data.get("train") or {})
    if "mote" not in train:
        mote = load_preset(data.get("preset", "quick")) if not data.get("train") else MoteConfig.from_dict(train)
        if data.get("model"):
            mote.model = data["model"]
        train = {"mote": mote.to_dict()}
    for key in ("chains", "chain_dataset_id"):
        if data.get(key) is not None:
            train[key] = str((file.parent / data[key]).resolve()) if key == "chains" else data[key]
    if not data.get("generate") and not any(train.get(k) for k in ("chains", "chain_dataset_id", "chains_from_job")):
        from core.data.chains import bundled_sample_chains_path

        train["chains"] = str(bundled_sample_chains_path())
    return {"generate": data.get("generate"), "train": train, "methods": data.get("methods") or ["mote", "lora", "sft"],
            "evaluate": data.get("evaluate") or {}}


PIPELINES_DIR = Path(__file__).resolve().parent.parent / "assets" / "pipelines"


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


def add_evaluate_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--run", action="append", help="run folder, job:ID (training job) or base:MODEL; repeat for several")
    sub.add_argument("--sets", help="comma-separated question sets (default eval_harmful,eval_helpful,eval_benign)")
    sub.add_argument("--judge", action="append", help="heuristic | local:MODEL[:verdict-first|:free-text] | URL#MODEL[@KEY_ENV] (e.g. http://127.0.0.1:8000/v1#mote) | judge.yaml; repeat")
    sub.add_argument("--limit", type=int, help="questions per set (default 16)")
    sub.add_argument("--jailbreak-prompts", type=int, help="harmful questions also asked in every jailbreak wrapper (default 8)")
    sub.add_argument("--max-stage-tokens", type=int, help="token limit of each stage (default 96)")
    sub.add_argument("--batch-size", type=int, help="prompts each model decodes together (default 8; 1 = one at a time)")
    sub.add_argument("--temperature", type=float)
    sub.add_argument("--seed", type=int)
    sub.add_argument("--path", choices=["answer", "analysis->answer", "analysis->guidance->answer"], help="force a chain shape")
    sub.add_argument("--out", help="report folder (default: HOME/runs/job-ID/report)")
    sub.add_argument("--rejudge", type=int, metavar="JOB",
                     help="judge the answers evaluate job JOB stored with --judge, without generating them again "
                          "(its subjects and settings are the defaults)")
