"""Ending a multi-process run cleanly.

Why: a rank that exits while its process group (gloo on the CPU, NCCL on GPUs) is alive can abort
in the group's background threads ("terminate called without an active exception", SIGABRT), and
even after the group is destroyed, C++ teardown at interpreter exit sometimes aborts the same way
(seen on 2 CPU processes with torch 2.13, about one run in ten under load). The launcher then
reports a failed run after the work succeeded. So every rank destroys its group, and a rank that
was one of several leaves with `os._exit` once its streams are flushed: its results are written,
and skipping interpreter teardown skips the abort. torch is looked up, not imported, so a
single-process worker that never loaded it pays nothing.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def close_process_group() -> None:
    """Destroy this process's default process group if one was started; otherwise do nothing."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return
    dist.destroy_process_group()


def launched_as_one_of_several() -> bool:
    """True in a rank started by torchrun / accelerate launch with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or "1") > 1


def exit_process(code: int) -> NoReturn:
    """Exit with `code`; a rank of a multi-process run closes its group and skips C++ teardown."""
    close_process_group()
    if not launched_as_one_of_several():
        sys.exit(code)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
