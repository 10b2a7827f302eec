"""Which judge an evaluation uses, as a self-checking dataclass, and the factory that builds it.

Why a config: the UI, the CLI and a stored evaluation job all describe a judge the same way
(and the record is replayable). Building is cheap and never loads or connects; call
`judge.check()` (or `build_checked_judge`) before generating, so a wrong model path, an unset
API key variable or an unreachable URL fails in seconds, with the fix in the message.
"""
from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evaluation.classifier_judge import ClassifierJudge, InputFormat
from core.evaluation.label_verdicts import JudgeMode
from core.evaluation.types import Aspect, Judge

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DEVICES = re.compile(r"^(auto|cpu|cuda|cuda:\d+|mps)$")
_DTYPES = ("auto", "float32", "bfloat16", "float16")


class JudgeKind(str, enum.Enum):
    """Where verdicts come from."""

    HEURISTIC = "heuristic"
    """String-match refusal detector (REFUSAL, SAFETY proxy); always labelled heuristic."""
    LOCAL = "local"
    """A local transformers chat model with the project's rubrics."""
    HTTP = "http"
    """An OpenAI-compatible chat-completions endpoint with the project's rubrics."""
    CLASSIFIER = "classifier"
    """A local sequence-classification model (cost or reward model); one aspect."""


_DEFAULT_ASPECTS = {
    JudgeKind.HEURISTIC: [Aspect.REFUSAL, Aspect.SAFETY],
    JudgeKind.LOCAL: [Aspect.SAFETY, Aspect.HELPFULNESS, Aspect.REFUSAL],
    JudgeKind.HTTP: [Aspect.SAFETY, Aspect.HELPFULNESS, Aspect.REFUSAL],
    JudgeKind.CLASSIFIER: [],
}
_ALLOWED_ASPECTS = {**{k: set(v) for k, v in _DEFAULT_ASPECTS.items()}, JudgeKind.CLASSIFIER: set(Aspect)}


@dataclass
class JudgeConfig:
    """One judge. Fields not used by `kind` are ignored (and kept, so a record round-trips)."""

    kind: JudgeKind = JudgeKind.HEURISTIC
    """heuristic | local | http | classifier."""
    aspects: list[Aspect] = field(default_factory=list)
    """What it scores; empty takes the kind's default (classifier: exactly one must be given)."""
    model: str = ""
    """local: model folder, hub id (online only) or 'smollm2-135m-instruct'; classifier: folder."""
    url: str = ""
    """http: base URL of the OpenAI-compatible API, ending in /v1."""
    model_name: str = ""
    """http: the model name the endpoint serves."""
    api_key_env: str | None = None
    """http: name of the environment variable holding the API key (never the key itself)."""
    max_retries: int = 2
    """LLM judges: re-asks after an unparsable reply before storing it as unparsable (0-10)."""
    max_new_tokens: int = 256
    """LLM judges: reply length limit (the rubric asks for a short reason then the final line)."""
    batch_size: int = 8
    """local/classifier: rows per forward pass; http: requests in flight."""
    retry_temperature: float = 0.7
    """LLM judges: sampling temperature of retries (the first attempt is greedy)."""
    verdict_first: bool = False
    """local: start each reply with the final line's key (VERDICT:/SCORE:) so the model only fills
    in the value; for small models that cannot follow the format, and fast (set max_new_tokens ~8)."""
    mode: JudgeMode | None = None
    """LLM judges: 'label-prob' (the default: label-token probabilities locally, logprobs over
    HTTP when the server offers them), 'verdict-first' (local) or 'free-text'. None picks
    'verdict-first' when verdict_first is set, else 'label-prob'. The mode ends the judge id."""
    seed: int = 0
    """LLM judges: retry attempt k samples with seed + k."""
    rubrics_dir: str | None = None
    """LLM judges: folder with safety/helpfulness/refusal.txt; None uses assets/rubrics."""
    timeout_s: float = 120.0
    """http: seconds to wait for one reply."""
    device: str = "auto"
    """local/classifier: 'auto' (GPU if visible), 'cpu', 'cuda' or 'cuda:N'."""
    dtype: str = "auto"
    """local: 'auto' (bfloat16 on GPU, float32 on CPU), 'float32', 'bfloat16' or 'float16'."""
    label_index: int = 0
    """classifier: index of the positive class (safe / refused) or of the reward output."""
    threshold: float = 0.5
    """classifier, binary aspects: probability (or scalar score) needed for the positive class."""
    higher_is_positive: bool = True
    """classifier with one output: positive when score >= threshold (False: score < threshold)."""
    reward_low: float = -5.0
    """classifier, helpfulness: reward mapped to 1 (lower rewards clip to it)."""
    reward_high: float = 5.0
    """classifier, helpfulness: reward mapped to 10 (higher rewards clip to it)."""
    input_format: InputFormat = InputFormat.PAIR
    """classifier: 'pair' (tokenizer text pair) or 'chat' (chat template)."""

    def __post_init__(self) -> None:
        self.kind = _enum(JudgeKind, self.kind, "kind")
        self.input_format = _enum(InputFormat, self.input_format, "input_format")
        self._resolve_mode()
        self.api_key_env, self.rubrics_dir = self.api_key_env or None, self.rubrics_dir or None  # '' from a form
        self.aspects = [_enum(Aspect, a, "aspects") for a in ([self.aspects] if isinstance(self.aspects, str) else self.aspects)]
        self.aspects = list(dict.fromkeys(self.aspects)) or list(_DEFAULT_ASPECTS[self.kind])
        allowed = _ALLOWED_ASPECTS[self.kind]
        if not set(self.aspects) <= allowed:
            raise ValueError(
                f"aspects={[a.value for a in self.aspects]} is not valid for kind={self.kind.value!r}: "
                f"use a subset of {sorted(a.value for a in allowed)}."
            )
        self._check_kind_fields()
        for name, low, high in (("max_retries", 0, 10), ("max_new_tokens", 1, 8192), ("batch_size", 1, 1024)):
            if not (low <= getattr(self, name) <= high):
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range: use an integer in [{low}, {high}].")
        if not (0.0 < self.retry_temperature <= 2.0):
            raise ValueError(f"retry_temperature={self.retry_temperature!r} is out of range: use a value in (0, 2].")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s={self.timeout_s!r} is out of range: use a positive number of seconds.")
        if not _DEVICES.match(self.device):
            raise ValueError(f"device={self.device!r} is not valid: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not valid: use one of {list(_DTYPES)}.")
        if self.reward_low >= self.reward_high:
            raise ValueError(f"reward_low={self.reward_low!r} must be below reward_high={self.reward_high!r}.")

    def _resolve_mode(self) -> None:
        """One source of truth: `mode`, with verdict_first kept in step for older records."""
        if self.mode is None or self.mode == "":
            self.mode = JudgeMode.VERDICT_FIRST if self.verdict_first else JudgeMode.LABEL_PROBABILITY
        self.mode = _enum(JudgeMode, self.mode, "mode")
        if self.verdict_first and self.mode is not JudgeMode.VERDICT_FIRST:
            raise ValueError(f"verdict_first=True contradicts mode={self.mode.value!r}: set mode='verdict-first' only.")
        self.verdict_first = self.mode is JudgeMode.VERDICT_FIRST

    def _check_kind_fields(self) -> None:
        if self.kind in (JudgeKind.LOCAL, JudgeKind.CLASSIFIER) and not self.model.strip():
            raise ValueError(f"model is empty: kind={self.kind.value!r} needs a model folder (or name) in 'model'.")
        if self.kind is JudgeKind.CLASSIFIER and len(self.aspects) != 1:
            raise ValueError("aspects must name exactly one aspect for kind='classifier' (one model scores one aspect), e.g. ['safety'].")
        if self.kind is JudgeKind.HTTP:
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url={self.url!r} is not valid: kind='http' needs an http:// or https:// URL ending in /v1.")
            if not self.model_name.strip():
                raise ValueError("model_name is empty: kind='http' needs the model name the endpoint serves.")
            if self.verdict_first:
                raise ValueError("verdict_first=True needs a local judge: an http endpoint cannot be made to start "
                                 "its reply with the verdict key; remove verdict_first.")
        if self.api_key_env is not None and not _ENV_NAME.match(self.api_key_env):
            raise ValueError(
                f"api_key_env={self.api_key_env!r} is not an environment variable name: give the variable's name "
                "(letters, digits, '_'), e.g. 'OPENAI_API_KEY', never the key itself."
            )

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["kind"], record["input_format"] = self.kind.value, self.input_format.value
        record["mode"] = self.mode.value if self.mode is not None else None
        record["aspects"] = [a.value for a in self.aspects]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> JudgeConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(record) - known
        if unknown:
            raise ValueError(f"Unknown judge setting(s) {sorted(unknown)}: use only {sorted(known)}.")
        return cls(**record)


def _enum(kind: type[enum.Enum], value: Any, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not valid: use one of {[m.value for m in kind]}.") from None


def build_judge(config: JudgeConfig, *, home: Path | None = None) -> Judge:
    """The judge `config` describes; nothing is loaded or contacted until check() or judge()."""
    if config.kind is JudgeKind.HEURISTIC:
        from core.evaluation.heuristic_judge import HeuristicRefusalJudge

        return HeuristicRefusalJudge(config.aspects)
    if config.kind is JudgeKind.CLASSIFIER:
        return ClassifierJudge(
            config.model, config.aspects[0], label_index=config.label_index, threshold=config.threshold,
            higher_is_positive=config.higher_is_positive, reward_bounds=(config.reward_low, config.reward_high),
            input_format=config.input_format, batch_size=config.batch_size, device=config.device,
        )
    from core.evaluation.chat_backends import HttpChatBackend, LocalChatBackend
    from core.evaluation.llm_judge import LLMJudge

    if config.kind is JudgeKind.LOCAL:
        backend: Any = LocalChatBackend(
            config.model, home=home, batch_size=config.batch_size, device=config.device, dtype=config.dtype
        )
        judge_id = f"llm:{config.model}"
    else:
        backend = HttpChatBackend(
            config.url, config.model_name, api_key_env=config.api_key_env, concurrency=config.batch_size,
            timeout=config.timeout_s,
        )
        judge_id = f"llm:{backend.id}"
    if config.mode is not JudgeMode.FREE_TEXT:  # free-text judges keep the ids they always had
        judge_id += f":{config.mode.value}"
    return LLMJudge(
        backend, judge_id=judge_id, aspects=config.aspects, rubrics_dir=config.rubrics_dir,
        max_retries=config.max_retries, max_new_tokens=config.max_new_tokens,
        retry_temperature=config.retry_temperature, seed=config.seed, mode=config.mode,
    )


def build_checked_judge(config: JudgeConfig, *, home: Path | None = None) -> Judge:
    """build_judge, then check(): the fail-fast entry point for an evaluation job."""
    judge = build_judge(config, home=home)
    judge.check()
    return judge


def judge_settings_from_spec(spec: str) -> dict[str, Any]:
    """JudgeConfig fields from the judge shorthand the CLI and `judges validate` take: 'heuristic',
    'local:MODEL[:label-prob|:verdict-first|:free-text]', 'http(s)://HOST/v1#MODEL_NAME[@KEY_ENV]',
    or a YAML/JSON file of JudgeConfig fields. Raises ValueError saying what to write instead."""
    spec = spec.strip()
    if spec == "heuristic":
        return {"kind": "heuristic"}
    if spec.startswith("local:"):
        model, _, mode = spec[6:].rpartition(":")
        if mode in {m.value for m in JudgeMode}:
            return {"kind": "local", "model": model, "mode": mode}
        return {"kind": "local", "model": spec[6:]}
    if spec.startswith(("http:", "https:")):
        url, _, rest = spec.partition("#")
        if not rest:
            raise ValueError(f"Judge {spec!r}: add the served model name after '#', e.g. http://host:8000/v1#mote.")
        name, _, key_env = rest.partition("@")
        return {"kind": "http", "url": url, "model_name": name, "api_key_env": key_env or None}
    path = Path(spec).expanduser()
    if path.is_file():
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"Judge file {path}: it should hold a mapping of judge settings (JudgeConfig fields).")
        return data
    raise ValueError(f"Judge {spec!r} is not known: use heuristic, local:MODEL, http://HOST/v1#MODEL[@KEY_ENV] "
                     "or a YAML file of judge settings.")
