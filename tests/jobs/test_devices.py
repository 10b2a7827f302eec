"""No-GPU status and CPU fallback (h), GPU placement rules, worker commands and environment,
and the dispatcher lock (the `jobs` verb itself: tests/cli/test_jobs_verb.py)."""
from __future__ import annotations

import sys
import types

import pytest

from jobs import gpus
from jobs.gpus import NO_GPU_MESSAGE, GpuInfo, GpuProcess, Placement, describe, list_gpus, pick_devices
from jobs.lock import DispatcherLock, dispatcher_pid
from jobs.processes import worker_command, worker_environment


def gpu(index: int, used_by: dict[int, float] | None = None) -> GpuInfo:
    procs = tuple(GpuProcess(pid, mib) for pid, mib in (used_by or {}).items())
    return GpuInfo(index, "Test GPU", 81920.0, sum(p.used_memory_mib for p in procs), 0.0, 40.0, procs)


def test_without_nvml_the_status_says_cpu_and_nothing_crashes(monkeypatch):
    def broken_init():
        raise OSError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", types.SimpleNamespace(nvmlInit=broken_init))
    status = list_gpus()
    assert status.gpus == [] and status.message == NO_GPU_MESSAGE and "NVML" in status.detail
    assert describe(status) == "no GPU found, using CPU"


def test_this_machine_lists_its_gpus_or_says_cpu():
    status = list_gpus()  # on the CPU-only test machines: no driver -> the CPU message
    assert status.message == NO_GPU_MESSAGE if not status.gpus else "found" in status.message


def test_cpu_fallback_runs_one_cpu_job_at_a_time_by_default():
    assert pick_devices(None, set(), gpus=[]) == Placement(())
    assert pick_devices(None, set(), gpus=[], cpu_jobs_running=1) is None
    assert pick_devices(None, set(), gpus=[], cpu_jobs_running=1, max_cpu_jobs=2) == Placement(())
    with pytest.raises(ValueError, match="no GPU found"):
        pick_devices([0], set(), gpus=[])


def test_gpu_placement_skips_busy_and_foreign_gpus_and_honours_requests():
    cards = [gpu(0), gpu(1, {4242: 30000.0}), gpu(2, {777: 500.0}), gpu(3)]
    assert pick_devices(None, set(), gpus=cards) == Placement((0,))
    assert pick_devices(None, {0}, gpus=cards) == Placement((2,))  # 1 has a foreign 30 GB process
    assert pick_devices(None, {0}, gpus=cards, our_pids={4242}) == Placement((1,))  # ... unless it is ours
    assert pick_devices(None, {0}, per_job=2, gpus=cards) == Placement((2, 3))
    assert pick_devices(None, {0, 2, 3}, gpus=cards) is None
    assert pick_devices([3, 0], set(), gpus=cards) == Placement((3, 0))
    assert pick_devices([1], set(), gpus=cards) is None  # waits for the foreign process to leave
    with pytest.raises(ValueError, match="do not exist"):
        pick_devices([7], set(), gpus=cards)


def test_nvml_listing_is_read_into_dataclasses(monkeypatch):
    fake = types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0, nvmlInit=lambda: None, nvmlShutdown=lambda: None, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: i, nvmlDeviceGetName=lambda h: b"NVIDIA H100",
        nvmlDeviceGetMemoryInfo=lambda h: types.SimpleNamespace(total=80 * 2**30, used=2**30),
        nvmlDeviceGetUtilizationRates=lambda h: types.SimpleNamespace(gpu=37),
        nvmlDeviceGetTemperature=lambda h, kind: 51,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [types.SimpleNamespace(pid=99, usedGpuMemory=512 * 2**20)],
        nvmlDeviceGetGraphicsRunningProcesses=lambda h: [],
    )
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    status = gpus.list_gpus()
    assert status.message == "1 GPU found: 0: NVIDIA H100"
    card = status.gpus[0]
    assert (card.name, card.memory_total_mib, card.utilization_percent, card.temperature_c) == ("NVIDIA H100", 81920.0, 37.0, 51.0)
    assert card.processes == (GpuProcess(99, 512.0),)
    assert "util 37%" in describe(status)


def test_worker_commands_single_process_and_accelerate(tmp_path):
    single = worker_command(5, db_url="sqlite:////x.db", home=tmp_path, python="/venv/bin/python")
    assert single == ["/venv/bin/python", "-m", "jobs.worker", "5", "--home", str(tmp_path), "--db", "sqlite:////x.db"]
    multi = worker_command(5, db_url=None, home=tmp_path, num_processes=2, main_process_port=29511, python=sys.executable)
    launch = multi.index("launch") if "launch" in multi else multi.index("accelerate.commands.launch")
    assert multi[launch + 1:] == ["--num_processes", "2", "--num_machines", "1", "--multi_gpu", "--main_process_port",
                                  "29511", "-m", "jobs.worker", "5", "--home", str(tmp_path)]
    assert "--cpu" in worker_command(5, db_url=None, home=tmp_path, num_processes=2, use_gpu=False)


def test_worker_environment_sets_visible_devices_and_cpu_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert worker_environment((2, 3), cpu_threads=4)["CUDA_VISIBLE_DEVICES"] == "2,3"
    cpu = worker_environment((), cpu_threads=4, extra={"MOTE_DATABASE_URL": "postgresql+psycopg://u:p@h/db"})
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["OMP_NUM_THREADS"] == "4" and cpu["MOTE_DATABASE_URL"].endswith("/db")


def test_dispatcher_lock_allows_one_dispatcher_per_home(tmp_path):
    first, second = DispatcherLock(tmp_path), DispatcherLock(tmp_path)
    assert dispatcher_pid(tmp_path) is None
    first.acquire()
    assert dispatcher_pid(tmp_path) > 0
    with pytest.raises(RuntimeError, match="already runs"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()
    assert dispatcher_pid(tmp_path) is None
