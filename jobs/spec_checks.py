"""Checks shared by every job spec parser: the error type and the small value checks.

Why its own module: the train/generate/pipeline parsers (jobs/specs.py) and the evaluate parser
(jobs/evaluate_spec.py) both use them; keeping them here lets specs.py import evaluate_spec
without an import cycle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any


class JobConfigError(ValueError):
    """A job config that cannot run; the message names the setting and how to fix it.
    `job_id` is the failed job row that records it (set by the queue)."""

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


def only_settings(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    """`data` as a mapping whose keys are all in `allowed`; the error lists the valid ones."""
    if not isinstance(data, dict):
        raise JobConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}.")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise JobConfigError(f"{where}: unknown setting(s) {unknown}; valid settings are {sorted(allowed)}.")
    return data


def positive_int(where: str, value: Any) -> int | None:
    """A positive integer, or None when left out."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise JobConfigError(f"{where}={value!r} is not valid: use a positive integer (or leave it out).")
    return value


def out_dir(data: dict[str, Any]) -> str | None:
    """An explicit output folder (absolute), or None for <home>/runs/job-N."""
    return str(Path(data["out"]).expanduser().resolve()) if data.get("out") else None


def check_model(where: str, model: str) -> None:
    """A base model the job will load is here and can load (the bundled alias, a readable
    safetensors folder, or a hub id already in the local Hugging Face cache), checked without
    loading it, so a typo or a model never downloaded fails at submit instead of in the worker.
    The one check behind the Train, Generate and Evaluate forms and the CLI's submits."""
    from core.model_source import ModelSourceError, check_model_choice, check_model_on_this_machine

    try:
        check_model_choice(model)
        check_model_on_this_machine(model)
    except ModelSourceError as error:
        raise JobConfigError(f"{where}: {error}") from None


def check_model_present(where: str, model: str) -> None:
    """A judge's model is on this machine (alias, existing path or cached hub id); its files are
    checked by the judge's own loader, which knows the kind of model it needs."""
    from core.model_source import ModelSourceError, check_model_on_this_machine

    try:
        check_model_on_this_machine(model)
    except ModelSourceError as error:
        raise JobConfigError(f"{where}: {error}") from None
