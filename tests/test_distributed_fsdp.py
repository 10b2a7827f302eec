"""FSDP (FSDP2 full shard, one unit per decoder layer) on 2 CPU processes (gloo) gives the losses of
one unsharded process with the same global batch, with a float32 or a bf16 frozen base."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.multiprocess import rendezvous_port, run_launched

ROOT = Path(__file__).resolve().parent.parent
DDP_SCRIPT = ROOT / "tests" / "ddp_train_script.py"
FSDP_SCRIPT = ROOT / "tests" / "fsdp_train_script.py"


def _sharded(tiny_dir: Path, out: Path, env: dict, base_dtype: str) -> dict:
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(rendezvous_port())]
    run_launched([*launch, str(FSDP_SCRIPT), str(tiny_dir), str(out), "2", "2", base_dtype], env=env, cwd=ROOT)
    return json.loads((out / "fsdp.json").read_text())


@pytest.mark.slow
def test_fsdp_on_two_cpu_processes_matches_one_process(tiny_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    single = tmp_path / "single"  # one process, no sharding, global batch 4 in micro-batches of 2
    run_launched([sys.executable, str(DDP_SCRIPT), str(tiny_dir), str(single), "4", "2"], env=env, cwd=ROOT)
    one = json.loads((single / "losses.json").read_text())
    full = _sharded(tiny_dir, tmp_path / "fsdp-fp32", env, "float32")
    assert full["sharded_params"] == full["params"] > 0  # every parameter is a DTensor shard
    assert max(abs(a - b) for a, b in zip(one, full["losses"])) <= 1e-4, (one, full["losses"])
    half = _sharded(tiny_dir, tmp_path / "fsdp-bf16", env, "bfloat16")
    assert half["losses"] == pytest.approx(one, rel=1e-2)
