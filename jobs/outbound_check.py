"""Check every URL and key variable in a job config a caller sent, before the job is queued.

Why a walk over the raw config: judges (evaluate, pipeline), the generator endpoint (generate,
pipeline) and any URL field added later all sit at different depths; checking every `url`,
`endpoint_url` and `api_key_env` wherever it appears means a new URL-taking setting cannot slip
past the operator's policy. It runs before the config is parsed, so a caller cannot even learn
whether a variable it was not given exists.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from core.outbound import OutboundPolicy, OutboundRefused
from jobs.specs import JobConfigError

URL_FIELDS = ("url", "endpoint_url")
KEY_FIELD = "api_key_env"


def _settings_with_targets(config: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(config, dict):
        if any(config.get(name) for name in (*URL_FIELDS, KEY_FIELD)):
            yield where, config
        for key, value in config.items():
            yield from _settings_with_targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            yield from _settings_with_targets(value, f"{where}[{index}]")


def check_config_outbound(config: Any, policy: OutboundPolicy) -> None:
    """Raise JobConfigError naming the setting when a URL or key variable breaks `policy`."""
    if policy.unrestricted:
        return
    for where, settings in _settings_with_targets(config, ""):
        key_env = settings.get(KEY_FIELD) or None
        if key_env is not None and not isinstance(key_env, str):
            raise JobConfigError(f"{where}: {KEY_FIELD} must be a variable name (text), not {type(key_env).__name__}.")
        urls = [(name, settings[name]) for name in URL_FIELDS if settings.get(name)]
        try:
            for name, url in urls:
                if not isinstance(url, str):
                    raise OutboundRefused(f"{name} must be a URL (text), not {type(url).__name__}.")
                policy.check(url, key_env, what=f"{where}.{name}" if where else name)
            if key_env and not urls:  # a key with nowhere to go is still only one the operator named
                policy.check_key_name(key_env, what=where or KEY_FIELD)
        except OutboundRefused as error:
            raise JobConfigError(str(error)) from None
