"""Launching multi-process test runs (torchrun, accelerate launch) so that they neither collide on a
rendezvous port nor fail silently: each run gets a free port, and a failed run's own output (every
rank's traceback) becomes the assertion message instead of a bare exit status."""
from __future__ import annotations

import subprocess
from pathlib import Path

from jobs.processes import free_port

OUTPUT_TAIL_CHARS = 6000


def run_launched(command: list[str], *, env: dict, cwd: Path, timeout: int = 300) -> None:
    """Run `command`; on a non-zero exit fail the test with the tail of what the processes printed."""
    done = subprocess.run(command, env=env, cwd=cwd, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        printed = (done.stdout + "\n" + done.stderr)[-OUTPUT_TAIL_CHARS:]
        raise AssertionError(f"{command[:6]}... exited with {done.returncode}; its output ends:\n{printed}")


def rendezvous_port() -> int:
    """A port no other test or job holds right now (fixed ports collide between CI runs and jobs)."""
    return free_port()
