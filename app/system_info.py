"""What the System tab shows: GPUs through NVML (with their processes mapped to our jobs), CPU,
RAM, disk and the job database.

Why processes are mapped through process groups: a worker is the leader of its own group
(jobs.processes), and under `accelerate launch` the process holding the GPU is a child of it;
a GPU process whose group id is a running job's pid belongs to that job.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

import psutil

from jobs.gpus import GpuStatus, list_gpus
from jobs.lock import dispatcher_pid
from jobs.queries import database_summary, running_job_pids
from jobs.queue import JobQueue

NO_GPU_NOTE = ("No GPU found: jobs run on the CPU, one at a time. The bundled 135M model trains in minutes on a "
               "CPU; larger models need a machine with an NVIDIA GPU and its driver (NVML).")


@dataclass(frozen=True)
class GpuRow:
    index: int
    name: str
    memory: str
    utilization: str
    temperature: str
    processes: str


@dataclass
class SystemReport:
    gpu_message: str
    gpus: list[GpuRow] = field(default_factory=list)
    no_gpu_note: str = ""
    cpu: dict[str, str] = field(default_factory=dict)
    memory: dict[str, str] = field(default_factory=dict)
    disk: dict[str, str] = field(default_factory=dict)
    database: dict[str, str] = field(default_factory=dict)


def _gib(value: float) -> str:
    return f"{value / 1024 ** 3:.1f} GiB"


def _job_of_pid(pid: int, running: dict[int, int]) -> int | None:
    """The running job (by its worker's pid = process group) that `pid` belongs to."""
    if pid in running:
        return running[pid]
    try:
        return running.get(os.getpgid(pid))
    except (ProcessLookupError, PermissionError):
        return None


def gpu_rows(status: GpuStatus, running: dict[int, int]) -> list[GpuRow]:
    rows = []
    for gpu in status.gpus:
        procs = []
        for proc in gpu.processes:
            job = _job_of_pid(proc.pid, running)
            procs.append(f"{proc.pid} ({f'job {job}' if job else 'not ours'}, {proc.used_memory_mib:.0f} MiB)")
        rows.append(GpuRow(
            gpu.index, gpu.name, f"{gpu.memory_used_mib:.0f} / {gpu.memory_total_mib:.0f} MiB",
            "n/a" if gpu.utilization_percent is None else f"{gpu.utilization_percent:.0f}%",
            "n/a" if gpu.temperature_c is None else f"{gpu.temperature_c:.0f} C", "; ".join(procs) or "none"))
    return rows


def _database(queue: JobQueue) -> dict[str, str]:
    summary = database_summary(queue.sessions, queue.url)
    info = {"url": summary.url, "backend": summary.backend}
    if summary.size_mib is not None:
        info["size"] = f"{summary.size_mib:.1f} MiB"
    info.update({"jobs": str(summary.jobs), "running jobs": str(summary.running_jobs), "chains": str(summary.chains),
                 "training runs": str(summary.training_runs)})
    owner = dispatcher_pid(queue.home)
    info["dispatcher"] = f"pid {owner}" if owner else "not running (jobs wait until the app or a CLI command runs the queue)"
    return info


def system_report(queue: JobQueue) -> SystemReport:
    """GPUs (their processes mapped to our jobs), CPU, RAM, the data directory's disk and the database."""
    status = list_gpus()
    running = running_job_pids(queue.sessions)
    home = queue.home
    memory, disk = psutil.virtual_memory(), shutil.disk_usage(home)
    load = os.getloadavg()
    return SystemReport(
        gpu_message=status.message, gpus=gpu_rows(status, running),
        no_gpu_note="" if status.gpus else f"{NO_GPU_NOTE} ({status.detail})" if status.detail else NO_GPU_NOTE,
        cpu={"cores": str(os.cpu_count()), "usage": f"{psutil.cpu_percent(interval=None):.0f}%",
             "load (1, 5, 15 min)": ", ".join(f"{x:.2f}" for x in load)},
        memory={"used": _gib(memory.used), "total": _gib(memory.total), "available": _gib(memory.available),
                "usage": f"{memory.percent:.0f}%"},
        disk={"data directory": str(home), "free": _gib(disk.free), "total": _gib(disk.total),
              "usage": f"{disk.used / disk.total:.0%}"},
        database=_database(queue))
