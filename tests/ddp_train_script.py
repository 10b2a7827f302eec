"""Entry point for the distributed-training test: trains the tiny model and writes its losses.

Run directly (one process) or under `accelerate launch --multi_gpu --num_processes 2` (gloo on a CPU).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from accelerate import Accelerator  # noqa: E402

from core.config import DataConfig, TrainConfig  # noqa: E402
from core.data.dataset import encode_chains  # noqa: E402
from core.training.loop import train_experts  # noqa: E402
from core.training.process_group import exit_process  # noqa: E402
from tests.conftest import short_chains, tiny_mote  # noqa: E402


def main(model_dir: str, out_dir: str, per_process_batch: int, micro: int) -> None:
    torch.set_num_threads(1)
    mote = tiny_mote(Path(model_dir))
    data = DataConfig(max_length=256, p_skip=0.3)
    samples, _ = encode_chains(short_chains(16), mote.tokenizer, data, mote.marker_ids)
    train = TrainConfig(max_steps=4, batch_size=per_process_batch, micro_batch_size=micro, learning_rate=5e-3, mixed_precision="no", warmup_ratio=0.0, checkpoint_every=0)
    accelerator = Accelerator(cpu=True)
    result = train_experts(mote, samples, train, data, Path(out_dir), accelerator=accelerator)
    if accelerator.is_main_process:
        (Path(out_dir) / "losses.json").write_text(json.dumps(result.losses))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    exit_process(0)
