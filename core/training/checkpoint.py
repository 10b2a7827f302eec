"""Resumable training checkpoints in safetensors + JSON (no pickles).

Why not torch.save: checkpoints may be shared and reloaded, and pickles can run code. Everything
a resume needs is tensors (trainable weights, optimizer moments, torch RNG) or plain values
(step, scheduler counters, Python RNG, losses so far), so safetensors and JSON cover it.
"""
from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "state.json"


@dataclass
class TrainState:
    """Plain-value part of a checkpoint: where the run is, and what it has logged."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    scheduler: dict[str, Any] = field(default_factory=dict)
    python_rng: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_dir(output_dir: Path, step: int) -> Path:
    return Path(output_dir) / "checkpoints" / f"step-{step:07d}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    """Newest complete checkpoint of a run, or None."""
    folder = Path(output_dir) / "checkpoints"
    done = sorted(p for p in folder.glob("step-*") if (p / STATE_FILE).exists()) if folder.exists() else []
    return done[-1] if done else None


def save_checkpoint(
    path: Path,
    trainable: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: TrainState,
) -> Path:
    """Write to a temporary folder then rename, so a killed save never looks complete."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trainable.items()}, str(tmp / TRAINABLE_FILE))
    tensors, groups = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / OPTIMIZER_FILE))
    save_file({"torch": torch.get_rng_state()}, str(tmp / RNG_FILE))
    payload = {
        "step": state.step,
        "losses": state.losses,
        "scheduler": state.scheduler,
        "python_rng": _encode_python_rng(random.getstate()),
        "optimizer_param_groups": groups,
        "extra": state.extra,
    }
    (tmp / STATE_FILE).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


IMPLEMENTATION_FLAGS = ("fused", "foreach")
"""Optimizer settings that pick a kernel, not the maths: a resumed run keeps its own."""


def load_checkpoint(path: Path, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], TrainState]:
    """Restore optimizer and RNG in place; returns trainable tensors and the plain state."""
    path = Path(path)
    if not (path / STATE_FILE).exists():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no {STATE_FILE}); pick another step.")
    payload = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    kernels = [{k: group.get(k) for k in IMPLEMENTATION_FLAGS} for group in optimizer.param_groups]
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(path / OPTIMIZER_FILE)), payload["optimizer_param_groups"]))
    for group, flags in zip(optimizer.param_groups, kernels):
        group.update(flags)  # this machine's kernel choice, not the saving machine's
    torch.set_rng_state(load_file(str(path / RNG_FILE))["torch"])
    random.setstate(_decode_python_rng(payload["python_rng"]))
    state = TrainState(payload["step"], payload["losses"], payload["scheduler"], None, payload.get("extra", {}))
    return load_file(str(path / TRAINABLE_FILE)), state


def _flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    tensors: dict[str, torch.Tensor] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}/{key}"] = tensor.detach().cpu().contiguous()
    return tensors, state_dict["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict[str, Any]]) -> dict[str, Any]:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        index, key = name.split("/", 1)
        state.setdefault(int(index), {})[key] = tensor
    return {"state": state, "param_groups": groups}


def _encode_python_rng(rng_state: tuple) -> list:
    version, internal, gauss = rng_state
    return [version, list(internal), gauss]


def _decode_python_rng(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)
