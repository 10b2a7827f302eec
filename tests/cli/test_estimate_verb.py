"""`launch.py estimate` prints the scale table for each mode and, asked, the arithmetic."""
from __future__ import annotations

import launch
from core.training.estimates import standard_modes


def test_estimate_prints_every_mode_for_7b_13b_70b(capsys):
    assert launch.main(["estimate", "--gpus", "4", "--explain", "bf16"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and " base, " in line]
    assert len(rows) == len(standard_modes(4)) == 18
    assert all(name in out for name in ("Llama-2-7B GiB/GPU", "Llama-2-13B", "Llama-2-70B"))
    assert "fsdp x 4" in out and "bf16 base weights" not in out
    assert out.count("total ") == 6  # 3 models x (one GPU, sharded)


def test_estimate_reads_a_local_model_folder(tiny_dir, capsys):
    assert launch.main(["estimate", "--model", str(tiny_dir), "--preset", "quick"]) == 0
    out = capsys.readouterr().out
    assert tiny_dir.name in out and "quick" in out


def test_unknown_model_says_what_to_give(capsys):
    assert launch.main(["estimate", "--model", "42b"]) == 2
    assert "local model folder" in capsys.readouterr().err
