"""GPU listing through NVML (nvidia-ml-py) and job placement, with a CPU fallback.

Why NVML and not torch.cuda: the dispatcher must see memory and processes of every GPU,
including other users' processes, without creating a CUDA context in the app process.
A machine without the NVIDIA driver (or without NVML) is a normal case, not an error:
the listing is empty and jobs run on the CPU, one at a time by default.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

NO_GPU_MESSAGE = "no GPU found, using CPU"
#: A GPU on which processes that are not ours use more than this is left alone.
FOREIGN_MEMORY_LIMIT_MIB = 1024.0
_MIB = 1024 * 1024


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_mib: float


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_total_mib: float
    memory_used_mib: float
    utilization_percent: float | None
    temperature_c: float | None
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class GpuStatus:
    """The listing plus a status line for the UI and the CLI."""

    gpus: list[GpuInfo] = field(default_factory=list)
    message: str = NO_GPU_MESSAGE
    detail: str = ""  # why there is no GPU (NVML's error), for the log


@dataclass(frozen=True)
class Placement:
    """Where a job runs: the GPU indices it gets, or none for the CPU."""

    gpus: tuple[int, ...] = ()

    @property
    def on_cpu(self) -> bool:
        return not self.gpus


def _optional(read, default=None):
    try:
        return read()
    except Exception:  # a field the card or driver does not report
        return default


def _read_gpu(pynvml, index: int) -> GpuInfo:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    name = pynvml.nvmlDeviceGetName(handle)
    memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
    util = _optional(lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu))
    temp = _optional(lambda: float(pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)))
    procs: dict[int, GpuProcess] = {}  # a process can be listed as compute and graphics: once
    for getter in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses"):
        for proc in _optional(lambda name=getter: getattr(pynvml, name)(handle), []) or []:
            used = proc.usedGpuMemory or 0  # None when the driver hides it (containers)
            procs.setdefault(int(proc.pid), GpuProcess(int(proc.pid), used / _MIB))
    return GpuInfo(
        index=index, name=name.decode() if isinstance(name, bytes) else str(name),
        memory_total_mib=memory.total / _MIB, memory_used_mib=memory.used / _MIB,
        utilization_percent=util, temperature_c=temp, processes=tuple(procs.values()),
    )


def list_gpus() -> GpuStatus:
    """Every GPU NVML sees; an empty listing with NO_GPU_MESSAGE when there is none or no driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as error:  # no package, no libnvidia-ml, no driver: all mean CPU
        return GpuStatus([], NO_GPU_MESSAGE, f"{type(error).__name__}: {error}")
    try:
        gpus = [_read_gpu(pynvml, i) for i in range(pynvml.nvmlDeviceGetCount())]
    except Exception as error:
        return GpuStatus([], NO_GPU_MESSAGE, f"{type(error).__name__}: {error}")
    finally:
        _optional(pynvml.nvmlShutdown)
    if not gpus:
        return GpuStatus([], NO_GPU_MESSAGE, "NVML reports 0 devices")
    return GpuStatus(gpus, f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} found: "
                     + ", ".join(f"{g.index}: {g.name}" for g in gpus))


def describe(status: GpuStatus) -> str:
    """Multi-line text for `launch.py jobs gpus` and the UI."""
    if not status.gpus:
        return status.message
    lines = [status.message]
    for g in status.gpus:
        util = f"{g.utilization_percent:.0f}%" if g.utilization_percent is not None else "n/a"
        temp = f"{g.temperature_c:.0f} C" if g.temperature_c is not None else "n/a"
        pids = ", ".join(str(p.pid) for p in g.processes) or "none"
        lines.append(f"  GPU {g.index} {g.name}: {g.memory_used_mib:.0f}/{g.memory_total_mib:.0f} MiB, "
                     f"util {util}, {temp}, processes: {pids}")
    return "\n".join(lines)


def foreign_memory_mib(gpu: GpuInfo, our_pids: set[int]) -> float:
    return sum(p.used_memory_mib for p in gpu.processes if p.pid not in our_pids)


def pick_devices(
    requested: list[int] | None,
    busy: set[int],
    per_job: int = 1,
    *,
    gpus: Sequence[GpuInfo] = (),
    our_pids: set[int] = frozenset(),
    foreign_limit_mib: float = FOREIGN_MEMORY_LIMIT_MIB,
    cpu_jobs_running: int = 0,
    max_cpu_jobs: int = 1,
) -> Placement | None:
    """Where the next job runs now, or None if it must wait.

    A GPU is free when none of our running jobs holds it (`busy`) and processes that are not
    ours use at most `foreign_limit_mib` of it. `requested` pins the job to those GPUs (it
    waits until all are free); otherwise it takes the `per_job` free GPUs with the lowest
    indices. With no GPU at all, a job runs on the CPU when fewer than `max_cpu_jobs` do.
    """
    if not gpus:
        if requested:
            raise ValueError(f"GPUs {requested} were requested but {NO_GPU_MESSAGE}: leave the GPU list empty.")
        return Placement(()) if cpu_jobs_running < max_cpu_jobs else None
    known = {g.index for g in gpus}
    free = [g.index for g in sorted(gpus, key=lambda g: g.index)
            if g.index not in busy and foreign_memory_mib(g, our_pids) <= foreign_limit_mib]
    if requested:
        missing = sorted(set(requested) - known)
        if missing:
            raise ValueError(f"GPU(s) {missing} do not exist here: choose among {sorted(known)}.")
        return Placement(tuple(requested)) if set(requested) <= set(free) else None
    if per_job > len(gpus):
        raise ValueError(f"A job asks for {per_job} GPUs but this machine has {len(gpus)}.")
    return Placement(tuple(free[:per_job])) if len(free) >= per_job else None
