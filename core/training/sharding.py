"""Sharded training presets (FSDP, DeepSpeed ZeRO-3) and the `accelerate launch` line that uses them.

Why accelerate config files: FSDP and ZeRO-3 are run by the engines researchers already use, set
up the way `accelerate config` writes them, so a lab can swap in its own file. The training loop
is unchanged: `Accelerator()` reads the launcher's settings and `accelerator.prepare` shards
the model. `train.accelerate_config` names a bundled preset or a file; this module resolves it
and builds the launch command for one machine or for rank R of several.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.paths import ASSETS_DIR

ACCELERATE_DIR = ASSETS_DIR / "accelerate"


class ShardingPreset(str, enum.Enum):
    """The bundled accelerate configs (assets/accelerate/NAME.yaml)."""

    FSDP = "fsdp"
    DEEPSPEED_ZERO3 = "deepspeed_zero3"

    @property
    def path(self) -> Path:
        return ACCELERATE_DIR / f"{self.value}.yaml"


_ENGINES = {"FSDP": "fsdp_config", "DEEPSPEED": "deepspeed_config"}


def accelerate_config_file(choice: str | None) -> Path | None:
    """The config file of `train.accelerate_config` (a preset name or a path); None: plain DDP.

    Raises ValueError naming the setting when the file is missing or is not an FSDP / DeepSpeed
    accelerate config, so a job fails at submit rather than after the model has loaded.
    """
    if choice is None or not str(choice).strip():
        return None
    names = {preset.value: preset for preset in ShardingPreset}
    path = names[choice].path if choice in names else Path(choice).expanduser()
    if not path.is_file():
        raise ValueError(f"train.accelerate_config={choice!r}: no such file. Use {', '.join(names)} "
                         "or the path of a file written by `accelerate config`.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"train.accelerate_config={choice!r}: {path} is not valid YAML ({error}).") from None
    engine = data.get("distributed_type") if isinstance(data, dict) else None
    if engine not in _ENGINES or not isinstance(data.get(_ENGINES[engine]), dict):
        raise ValueError(f"train.accelerate_config={choice!r}: {path} is not an FSDP or DeepSpeed accelerate "
                         f"config (distributed_type {engine!r}, expected FSDP with fsdp_config or DEEPSPEED "
                         "with deepspeed_config).")
    return path.resolve()


@dataclass(frozen=True)
class Rendezvous:
    """Where the ranks of a job meet: one machine, or rank `machine_rank` of `num_machines`."""

    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str | None = None
    main_process_port: int | None = None

    def __post_init__(self) -> None:
        if self.num_machines < 1 or not 0 <= self.machine_rank < self.num_machines:
            raise ValueError(f"machine_rank {self.machine_rank} must be in [0, num_machines={self.num_machines}).")
        if self.num_machines > 1 and (not self.main_process_ip or not self.main_process_port):
            raise ValueError("A multi-node job needs main_process_ip and main_process_port: the address of "
                             "machine rank 0, reachable from every machine.")


def accelerate_launch_arguments(processes_per_machine: int, *, config_file: Path | None = None,
                                rendezvous: Rendezvous = Rendezvous(), use_gpu: bool = True) -> list[str]:
    """`accelerate launch` options for a job (without the launcher and the script).

    --num_processes is the TOTAL over all machines, as accelerate counts it. Without a config
    file the job is plain DDP (--multi_gpu, or --cpu for processes on the CPU).
    """
    total = processes_per_machine * rendezvous.num_machines
    args = ["--config_file", str(config_file)] if config_file is not None else []
    args += ["--num_processes", str(total), "--num_machines", str(rendezvous.num_machines)]
    if config_file is None:
        args += ["--multi_gpu"] if use_gpu else ["--cpu"]
    if rendezvous.num_machines > 1:
        args += ["--machine_rank", str(rendezvous.machine_rank), "--main_process_ip", str(rendezvous.main_process_ip)]
    if rendezvous.main_process_port is not None:
        args += ["--main_process_port", str(rendezvous.main_process_port)]
    return args
