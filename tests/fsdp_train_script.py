"""Entry point for the FSDP test: the tiny MoTE model sharded with FSDP2 (one unit per decoder layer,
then the root), trained by the loop's own step functions on 2 CPU processes (gloo).

Why not `accelerate launch --config_file assets/accelerate/fsdp.yaml`: accelerate (1.15) turns CPU
processes into MULTI_CPU (DDP over gloo) and never into FSDP, even with an FSDP plugin passed; so
the sharding accelerate would do on GPUs is done here with torch's own `fully_shard`, the call
accelerate's FSDP2 path makes, and the steps are the loop's `micro_batches` + `train_step`.
Run under `python -m torch.distributed.run --nproc_per_node 2`.
"""
from __future__ import annotations

import faulthandler
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402
from torch.distributed.device_mesh import init_device_mesh  # noqa: E402
from torch.distributed.fsdp import fully_shard  # noqa: E402

from core.config import DataConfig, TrainConfig  # noqa: E402
from core.data.dataset import encode_chains  # noqa: E402
from core.training.checkpoint import TrainState  # noqa: E402
from core.training.loop import (  # noqa: E402
    TrainingSession, cosine_with_warmup, make_optimizer, micro_batches, total_steps_for, train_step,
)
from core.training.process_group import exit_process  # noqa: E402
from tests.conftest import short_chains, tiny_mote  # noqa: E402


def main(model_dir: str, out_dir: str, per_process_batch: int, micro: int, base_dtype: str = "float32") -> None:
    faulthandler.enable()  # a rank that aborts in C++ shows where in Python it was
    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)  # MULTI_CPU: the gloo process group, reduce, autocast
    mote = tiny_mote(Path(model_dir))
    with torch.no_grad():  # train.base_dtype: a bf16 base beside float32 experts in one FSDP unit
        for param in mote.model.parameters():
            if not param.requires_grad:
                param.data = param.data.to(getattr(torch, base_dtype))
    data = DataConfig(max_length=256, p_skip=0.3)
    samples, _ = encode_chains(short_chains(16), mote.tokenizer, data, mote.marker_ids)
    train = TrainConfig(max_steps=4, batch_size=per_process_batch, micro_batch_size=micro, learning_rate=5e-3,
                        mixed_precision="no", warmup_ratio=0.0, checkpoint_every=0)
    mesh = init_device_mesh("cpu", (accelerator.num_processes,))
    for layer in mote.model.model.layers:  # one FSDP unit per decoder layer, as the preset wraps
        fully_shard(layer, mesh=mesh)
    fully_shard(mote.model, mesh=mesh)
    sharded = [p for p in mote.model.parameters() if type(p).__name__ == "DTensor"]
    params = [p for p in mote.model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, train)
    total = total_steps_for(len(samples), train, accelerator.num_processes)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(0, total))  # as `prepare` builds it
    session = TrainingSession(mote, mote.model, optimizer, scheduler, accelerator, TrainState(), total, train.max_grad_norm)
    losses = []
    for step in range(4):
        batches = micro_batches(samples, step, train, data, pad_id=mote.tokenizer.pad_token_id,
                                rank=accelerator.process_index, world_size=accelerator.num_processes)
        losses.append(train_step(session, batches)["loss"])
    if accelerator.is_main_process:
        report = {"losses": losses, "sharded_params": len(sharded), "params": len(list(mote.model.parameters()))}
        (Path(out_dir) / "fsdp.json").write_text(json.dumps(report))


if __name__ == "__main__":
    Path(sys.argv[2]).mkdir(parents=True, exist_ok=True)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *sys.argv[5:6])
    exit_process(0)
