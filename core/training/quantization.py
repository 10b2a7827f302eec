"""4-bit QLoRA for the frozen base: the bitsandbytes NF4 settings, built and checked.

Why this shape: QLoRA (Dettmers et al. 2023) as PEFT and LLaMA-Factory run it stores the frozen
linears in 4-bit NormalFloat with double quantisation and computes in bf16, while the adapters
(here the step-routed experts and marker rows) stay float32 on top. The settings are fixed, so
they live in one frozen dataclass; the transformers `BitsAndBytesConfig` is built from it
lazily (it needs no GPU), and `quantization_for_training` refuses a run that cannot load 4-bit
weights before any model is read, saying what to change.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from core.config import Quantize

if TYPE_CHECKING:
    from transformers import BitsAndBytesConfig


class QuantizationUnavailable(RuntimeError):
    """The run asks for a 4-bit base on a machine that cannot load one; the message says why."""


@dataclass(frozen=True)
class NF4Settings:
    """QLoRA's storage and compute choices for the frozen base."""

    quant_type: str = "nf4"
    """4-bit NormalFloat: quantiles of a normal distribution, matching how weights are spread."""
    double_quant: bool = True
    """Quantise the per-block scales too (~0.37 bits/param saved, ~3 GB on a 70B model)."""
    compute_dtype: torch.dtype = torch.bfloat16
    """Weights are dequantised to this for each matmul."""
    storage_dtype: torch.dtype = torch.bfloat16
    """Packing dtype of the 4-bit tensors; bf16 (not uint8) lets FSDP shard them like the other
    bf16 weights (the FSDP + QLoRA recipe of Answer.AI, used by LLaMA-Factory and PEFT)."""

    def to_transformers(self) -> BitsAndBytesConfig:
        """The transformers config object (bitsandbytes itself is only needed to load weights)."""
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=self.quant_type,
            bnb_4bit_use_double_quant=self.double_quant,
            bnb_4bit_compute_dtype=self.compute_dtype,
            bnb_4bit_quant_storage=self.storage_dtype,
        )


def bitsandbytes_installed() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def quantization_for_training(quantize: Quantize | str, *, cuda: bool | None = None,
                              bitsandbytes: bool | None = None) -> BitsAndBytesConfig | None:
    """The BitsAndBytesConfig for `train.quantize`, or None to load the base unquantised.

    Raises QuantizationUnavailable on a machine without a CUDA GPU or without bitsandbytes:
    bitsandbytes' 4-bit kernels are CUDA kernels, and a silent fallback to an unquantised base
    would need 4-8x the memory the user planned for.
    """
    choice = Quantize(quantize)
    if choice is Quantize.NONE:
        return None
    on_cuda = torch.cuda.is_available() if cuda is None else cuda
    if not on_cuda:
        raise QuantizationUnavailable(
            "train.quantize=nf4 (4-bit QLoRA) needs a CUDA GPU and this machine has none. Set "
            "train.quantize: none (and train.base_dtype: bfloat16 to halve the base's memory) to train here."
        )
    has_bnb = bitsandbytes_installed() if bitsandbytes is None else bitsandbytes
    if not has_bnb:
        raise QuantizationUnavailable(
            "train.quantize=nf4 needs the bitsandbytes package, which is not installed. Install it "
            "(`pip install bitsandbytes`) or set train.quantize: none."
        )
    return NF4Settings().to_transformers()


def quantized_device_map() -> dict[str, int]:
    """Where each process loads its 4-bit base: whole on its own GPU (accelerate cannot move
    a quantised model after loading, so it must be placed at load time)."""
    from accelerate import PartialState

    return {"": PartialState().local_process_index}
