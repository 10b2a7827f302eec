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
from pathlib import Path

import psutil
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from jobs.gpus import GpuStatus, list_gpus
from jobs.lock import dispatcher_pid
from jobs.records import Chain, Job, JobStatus, TrainingRun

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


def _database(sessions: sessionmaker[Session], url: str, home: Path) -> dict[str, str]:
    parsed = make_url(url)
    info = {"url": parsed.render_as_string(hide_password=True), "backend": parsed.get_backend_name()}
    if parsed.get_backend_name() == "sqlite" and parsed.database and Path(parsed.database).exists():
        files = [Path(parsed.database), Path(f"{parsed.database}-wal")]  # recent writes sit in the WAL file
        info["size"] = f"{sum(f.stat().st_size for f in files if f.exists()) / 1024 ** 2:.1f} MiB"
    with sessions() as session:
        info["jobs"] = str(session.scalar(select(func.count()).select_from(Job)))
        info["running jobs"] = str(session.scalar(select(func.count()).where(Job.status == JobStatus.RUNNING)))
        info["chains"] = str(session.scalar(select(func.count()).select_from(Chain)))
        info["training runs"] = str(session.scalar(select(func.count()).select_from(TrainingRun)))
    owner = dispatcher_pid(home)
    info["dispatcher"] = f"pid {owner}" if owner else "not running (jobs wait until the app or a CLI command runs the queue)"
    return info


def system_report(sessions: sessionmaker[Session], url: str, home: Path) -> SystemReport:
    status = list_gpus()
    with sessions() as session:
        running = {pid: job_id for job_id, pid in session.execute(
            select(Job.id, Job.pid).where(Job.status == JobStatus.RUNNING, Job.pid.is_not(None)))}
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
        database=_database(sessions, url, home))
