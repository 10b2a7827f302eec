"""How much of the machine a worker takes: its CPU priority and its CPU thread count.

Why: on a small machine a training or generation worker would otherwise take every core, and the
page and the job queries the app serves would wait behind it. A worker therefore runs `nice`r
than the process that started it (the app or the CLI), and a CPU job leaves one core to the app
when the app runs on the same machine. GPU jobs keep their thread settings (accelerate and torch
choose them per rank); only their priority is lowered, which costs a GPU job nothing.

Settings (environment, read by the process that starts workers; JobQueue options override):
- MOTE_WORKER_NICE: how many steps nicer than its parent a worker runs (default 10; 0 = same).
- MOTE_WORKER_THREADS: CPU threads per CPU job (default: the cores, less one when the app runs on
  this machine, shared among the CPU jobs that run at once; at least 1). A user's own
  OMP_NUM_THREADS is respected when this is not set.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

NICE_ENV = "MOTE_WORKER_NICE"
THREADS_ENV = "MOTE_WORKER_THREADS"
#: Passed to the worker: the niceness increment it applies to itself at start.
WORKER_NICE_ENV = "MOTE_WORKER_NICE_INCREMENT"
DEFAULT_NICE = 10
MAX_NICE = 19  # the lowest priority Linux and macOS give


def _int_setting(environ: Mapping[str, str], name: str, low: int, high: int | None = None) -> int | None:
    """An integer environment setting within [low, high], or None when unset; a bad value names the fix."""
    text = environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number: set it to e.g. {name}={max(low, 1)} "
                         "or unset it for the default.") from None
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name}={value} is outside {allowed}: set a value in that range or unset it for the default.")
    return value


@dataclass(frozen=True)
class WorkerPriority:
    """The share of the machine each worker gets (see the module docstring)."""

    nice: int = DEFAULT_NICE
    """Niceness increment of a worker over its parent, 0..19 (higher = yields the CPU sooner)."""
    threads: int | None = None
    """CPU threads per CPU job; None = automatic (cores less the app's, shared by the CPU jobs)."""
    beside_app: bool = False
    """Whether the app serves pages from this machine (then one core is left to it)."""

    def __post_init__(self) -> None:
        if not 0 <= self.nice <= MAX_NICE:
            raise ValueError(f"worker nice={self.nice} is outside 0..{MAX_NICE}: 0 runs workers at the app's "
                             f"priority, {MAX_NICE} at the lowest.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"worker threads={self.threads} must be at least 1 (or None for automatic).")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ, *, nice: int | None = None,
                         threads: int | None = None, beside_app: bool = False) -> WorkerPriority:
        """Explicit arguments first, then MOTE_WORKER_NICE / MOTE_WORKER_THREADS, then the defaults."""
        if nice is None:
            nice = _int_setting(environ, NICE_ENV, 0, MAX_NICE)
        if threads is None:
            threads = _int_setting(environ, THREADS_ENV, 1)
        return cls(DEFAULT_NICE if nice is None else nice, threads, beside_app)

    def cpu_threads(self, cpu_jobs_at_once: int, cores: int | None = None) -> int:
        """Threads for one CPU job when up to `cpu_jobs_at_once` CPU jobs run together."""
        if self.threads is not None:
            return self.threads
        cores = cores or os.cpu_count() or 1
        for_jobs = cores - 1 if self.beside_app else cores
        return max(1, for_jobs // max(1, cpu_jobs_at_once))


def lower_own_priority(environ: Mapping[str, str] = os.environ) -> int:
    """In a worker: become nicer by the increment its dispatcher passed; returns the niceness now.
    Called first thing, so even the imports of torch and the model load yield to the app."""
    increment = _int_setting(environ, WORKER_NICE_ENV, 0, MAX_NICE) or 0
    return os.nice(increment) if increment else os.nice(0)
