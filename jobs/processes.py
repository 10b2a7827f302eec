"""Worker processes: the command that starts one, and the checks and signals that end one.

Why a process group per job: a training job may be `accelerate launch` plus one process per
device; signalling the group (the worker is started with start_new_session=True, so its pid
is the group id) reaches all of them, and nothing outside the job.
Why check the command line: after a reboot, a stored pid may belong to an unrelated process;
a pid counts as our worker only while its command line still names jobs.worker and the job id.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import psutil

from core.training.sharding import Rendezvous, accelerate_launch_arguments

from jobs.priority import WORKER_NICE_ENV

PROJECT_ROOT = Path(__file__).resolve().parent.parent
WORKER_MODULE = "jobs.worker"


def worker_command(
    job_id: int,
    *,
    db_url: str | None,
    home: Path,
    num_processes: int = 1,
    use_gpu: bool = True,
    main_process_port: int | None = None,
    config_file: Path | None = None,
    python: str = sys.executable,
) -> list[str]:
    """`python -m jobs.worker ID ...`, or `accelerate launch --num_processes N -m jobs.worker ...`.

    db_url None: the worker reads MOTE_DATABASE_URL (used when the URL holds a password, so it
    does not show in `ps`). config_file: an FSDP / DeepSpeed accelerate config (train.accelerate_config).
    """
    tail = [str(job_id), "--home", str(home)] + (["--db", db_url] if db_url else [])
    if num_processes <= 1:
        return [python, "-m", WORKER_MODULE, *tail]
    launcher = Path(python).with_name("accelerate")
    head = [str(launcher), "launch"] if launcher.exists() else [python, "-m", "accelerate.commands.launch"]
    head += accelerate_launch_arguments(num_processes, config_file=config_file, use_gpu=use_gpu,
                                        rendezvous=Rendezvous(main_process_port=main_process_port))
    return [*head, "-m", WORKER_MODULE, *tail]


def free_port() -> int:
    """A free local TCP port for accelerate's rendezvous (two jobs must not share 29500)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_environment(gpus: tuple[int, ...], *, cpu_threads: int | None, extra: Mapping[str, str] = (),
                       nice: int = 0, threads_forced: bool = False) -> dict[str, str]:
    """The parent's environment plus device visibility and the worker's share of the machine:
    CUDA_VISIBLE_DEVICES names the job's GPUs ('' hides all of them from a CPU job); CPU jobs
    share the cores via OMP_NUM_THREADS (a user's own OMP_NUM_THREADS wins unless `threads_forced`,
    i.e. MOTE_WORKER_THREADS was set); `nice` is the niceness increment the worker applies to itself."""
    env = dict(os.environ)
    env.update(extra)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"  # the log file shows progress as it happens
    env[WORKER_NICE_ENV] = str(nice)
    if not gpus and cpu_threads and (threads_forced or "OMP_NUM_THREADS" not in os.environ):
        env["OMP_NUM_THREADS"] = str(cpu_threads)
    return env


def spawn(command: list[str], env: dict[str, str], log_path: Path, header: str = "") -> subprocess.Popen:
    """Start a worker in its own session, output appended to its log file (never a pipe: a full
    pipe would block the worker once nobody reads it). `header` is written first."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        if header:
            log.write(header.encode() + b"\n")
            log.flush()
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=PROJECT_ROOT, env=env, start_new_session=True)


def is_our_worker(pid: int | None, job_id: int) -> bool:
    """Whether `pid` is alive (not a zombie) and runs the worker (or its launcher) for `job_id`."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command = process.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return WORKER_MODULE in command and str(job_id) in command


def group_pids(pid: int) -> set[int]:
    """The leader and all its descendants (the pids that count as ours on a GPU)."""
    try:
        leader = psutil.Process(pid)
        return {pid} | {child.pid for child in leader.children(recursive=True)}
    except psutil.Error:
        return set()


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the job's process group; False if it is already gone."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
