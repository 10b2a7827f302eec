"""GPU checks of issue 23 on a small model: bf16 base, 4-bit QLoRA base, FSDP (run by gpu_check.sh).

Why a script and not tests: this project's CI has no GPU. A session that is lent one runs
`bash bench/gpu_check.sh` (under ten minutes) and keeps the log it writes. Each check prints one
`CHECK name: PASS|FAIL ...` line with its numbers.
  python bench/gpu_check.py precision OUT_DIR     bf16 base and NF4 base, one process
  python bench/gpu_check.py fsdp OUT_DIR          under `accelerate launch --config_file .../fsdp.yaml`
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.config import BaseDtype, DataConfig, ExpertConfig, MoteConfig, Quantize, TrainConfig  # noqa: E402
from core.data.dataset import encode_chains  # noqa: E402
from core.experts.model import build_mote_model  # noqa: E402
from core.training.loop import train_experts  # noqa: E402
from core.training.recipe import load_training_base  # noqa: E402
from tests.conftest import short_chains  # noqa: E402
from tests.tiny_model import save_tiny_model_dir  # noqa: E402

DATA = DataConfig(max_length=256, p_skip=0.3)


def _train(model_dir: Path, out: Path, **train_settings) -> dict:
    """Load the base as the settings ask, attach experts, train 8 steps; what changed and the losses."""
    config = MoteConfig(model=str(model_dir), train=TrainConfig(
        max_steps=8, batch_size=4, micro_batch_size=2, learning_rate=5e-3, warmup_ratio=0.0, **train_settings))
    base, tokenizer = load_training_base(config, home=out / "home", say=print)
    mote = build_mote_model(base, tokenizer, ExpertConfig(rank=4, lora_alpha=8.0, dropout=0.0))
    frozen = {n: p.detach().clone() for n, p in mote.model.named_parameters() if not p.requires_grad}
    samples, _ = encode_chains(short_chains(16), tokenizer, DATA, mote.marker_ids)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    result = train_experts(mote, samples, config.train, DATA, out / "run")
    unchanged = all(torch.equal(p, frozen[n]) for n, p in mote.model.named_parameters() if not p.requires_grad)
    dtypes = sorted({str(p.dtype) for p in mote.model.parameters() if not p.requires_grad})
    trainable = sorted({str(p.dtype) for p in mote.model.parameters() if p.requires_grad})
    linear_types = sorted({type(m.base_layer).__name__ for m in mote.model.modules() if hasattr(m, "lora_A")})
    return {"losses": result.losses, "frozen_unchanged": unchanged, "frozen_dtypes": dtypes,
            "trainable_dtypes": trainable, "wrapped_linear_types": linear_types,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None}


def _verdict(name: str, ok: bool, info: dict) -> bool:
    print(f"CHECK {name}: {'PASS' if ok else 'FAIL'} {json.dumps(info)}", flush=True)
    return ok


def precision(out: Path) -> int:
    model_dir = save_tiny_model_dir(out / "tiny")
    bf16 = _train(model_dir, out / "bf16", base_dtype=BaseDtype.AUTO, mixed_precision="auto")
    fp32 = _train(model_dir, out / "fp32", base_dtype=BaseDtype.FLOAT32, mixed_precision="auto")
    close = all(math.isclose(a, b, rel_tol=2e-2) for a, b in zip(bf16["losses"], fp32["losses"]))
    ok = _verdict("bf16-base", bf16["frozen_dtypes"] == ["torch.bfloat16"] and bf16["trainable_dtypes"] == ["torch.float32"]
                  and bf16["frozen_unchanged"] and close, {"bf16": bf16, "fp32_losses": fp32["losses"]})
    nf4 = _train(model_dir, out / "nf4", quantize=Quantize.NF4, mixed_precision="auto")
    ok &= _verdict("qlora-nf4", nf4["wrapped_linear_types"] == ["Linear4bit"] and nf4["frozen_unchanged"]
                   and all(math.isfinite(x) for x in nf4["losses"]) and nf4["losses"][-1] < nf4["losses"][0], nf4)
    return 0 if ok else 1


def fsdp(out: Path) -> int:
    """Under accelerate's FSDP preset: train, checkpoint and export (rank 0 writes the files)."""
    from accelerate import PartialState

    from core.training.recipe import run_training, setup_run

    state = PartialState()
    model_dir = out / "tiny"
    if state.is_main_process:
        save_tiny_model_dir(model_dir)
    state.wait_for_everyone()
    config = MoteConfig(model=str(model_dir), train=TrainConfig(
        max_steps=6, batch_size=2, micro_batch_size=1, learning_rate=5e-3, warmup_ratio=0.0, checkpoint_every=3))
    setup = setup_run(config, short_chains(16), home=out / "home")
    result = run_training(setup, out / "run")
    if state.is_main_process:
        files = sorted(str(p.relative_to(out / "run")) for p in (out / "run").rglob("*") if p.is_file())
        sharded = str(state.distributed_type).endswith("FSDP")  # else the preset did not take
        ok = sharded and result.steps == 6 and (out / "run" / "export" / "mote.json").is_file()
        _verdict("fsdp", ok, {"distributed_type": str(state.distributed_type), "processes": state.num_processes,
                               "losses": result.losses, "files": files[:20]})
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("bench/gpu_check.py needs a CUDA GPU (this machine has none); the CPU checks are the tests.")
    checks = {"precision": precision, "fsdp": fsdp}
    sys.exit(checks[sys.argv[1]](Path(sys.argv[2])))
