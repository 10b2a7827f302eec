"""Two accelerate processes on the CPU (gloo) give the losses of one process with the same global batch."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.multiprocess import rendezvous_port, run_launched

SCRIPT = Path(__file__).resolve().parent / "ddp_train_script.py"
ROOT = SCRIPT.parent.parent


@pytest.mark.slow
def test_two_cpu_processes_match_one_process(tiny_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"
    run_launched([sys.executable, str(SCRIPT), str(tiny_dir), str(single), "4", "2"], env=env, cwd=ROOT)
    double = tmp_path / "double"  # 2 processes x 2 chains = the same global batch of 4
    # accelerate's --cpu launcher starts ONE process (multi-CPU needs MPI); its torchrun-based
    # launcher (--multi_gpu) starts two, and with no GPU they join a gloo process group.
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(rendezvous_port())]
    run_launched([*launch, str(SCRIPT), str(tiny_dir), str(double), "2", "2"], env=env, cwd=ROOT)
    one = json.loads((single / "losses.json").read_text())
    two = json.loads((double / "losses.json").read_text())
    assert len(one) == len(two) == 4
    assert max(abs(a - b) for a, b in zip(one, two)) <= 1e-4, (one, two)
