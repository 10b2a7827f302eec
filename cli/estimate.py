"""`launch.py estimate`: memory per GPU and time per epoch of a run, before renting the GPUs.

Why a verb: whether a 13B or 70B run fits (bf16 or 4-bit base, DDP or FSDP / ZeRO-3, with or
without gradient checkpointing) is arithmetic on the model's shape and the preset; printing it
with the arithmetic lets a user check it (core/training/estimates.py states the formulas).
"""
from __future__ import annotations

import argparse

VERBS = ("estimate",)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "estimate", help="memory per GPU and hours per epoch for 7B/13B/70B (or your model) under each training mode")
    parser.add_argument("--model", action="append", metavar="SIZE|NAME|FOLDER",
                        help="7b, 13b, 70b, 8b, a known model name or a local model folder (config.json); "
                             "repeat for several (default: 7b, 13b and 70b)")
    parser.add_argument("--preset", default="paper", help="preset whose rank, experts, micro-batch, max_length "
                                                          "and checkpointing are used (default: paper)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs the sharded modes spread over (default 8)")
    parser.add_argument("--questions", type=int, default=6000, help="chains per epoch (default 6000)")
    parser.add_argument("--chain-tokens", type=int, default=600, help="tokens per chain (default 600)")
    parser.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU, to mark what does not fit")
    parser.add_argument("--explain", choices=("fp32", "bf16", "nf4"),
                        help="also print the arithmetic of this base storage, one GPU and sharded over --gpus")


def run(args: argparse.Namespace) -> int:
    from core.config import load_preset
    from core.training.estimates import (
        SCALE_MODELS, BaseStorage, Hardware, Sharding, TrainMode, explain, resolve_shape, run_shape_from_config,
        scale_table, standard_modes,
    )

    if args.gpus < 1:
        raise ValueError(f"--gpus {args.gpus}: give at least 1 GPU.")
    models = dict(resolve_shape(name) for name in (args.model or SCALE_MODELS))
    shape = run_shape_from_config(load_preset(args.preset), questions=args.questions, chain_tokens=args.chain_tokens)
    hardware = Hardware(memory_gib=args.gpu_memory)
    print(f"preset {args.preset}: {shape.experts} experts of rank {shape.rank}, micro-batch {shape.micro_batch} x "
          f"{shape.seq_len} tokens, {shape.questions} chains x {shape.chain_tokens} tokens per epoch; "
          f"{hardware.name} at {hardware.mfu:.0%} utilisation\n")
    print(scale_table(models, shape, standard_modes(args.gpus), hardware))
    if args.explain:
        base = BaseStorage(args.explain)
        for name, model in models.items():
            for mode in (TrainMode(base, Sharding.DDP, 1), TrainMode(base, Sharding.FSDP, args.gpus)):
                print(f"\n{name}\n{explain(model, shape, mode, hardware)}")
    return 0
