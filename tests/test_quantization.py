"""The QLoRA configuration is built and checked without a GPU; the 4-bit run itself is bench/gpu_check.sh."""
from __future__ import annotations

import pytest
import torch

from core.config import MoteConfig, Quantize, TrainConfig
from core.settings import SettingError
from core.training.quantization import QuantizationUnavailable, quantization_for_training
from core.training.recipe import load_training_base


def test_nf4_builds_qlora_settings_when_a_gpu_and_bitsandbytes_are_there():
    config = quantization_for_training(Quantize.NF4, cuda=True, bitsandbytes=True)
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant is True
    assert config.bnb_4bit_compute_dtype == torch.bfloat16
    assert config.bnb_4bit_quant_storage == torch.bfloat16  # FSDP shards it like the bf16 weights
    assert config.to_dict()["quant_method"].value == "bitsandbytes"


def test_none_loads_unquantised_anywhere():
    assert quantization_for_training("none", cuda=False, bitsandbytes=False) is None


@pytest.mark.parametrize("cuda, bnb, cause", [(False, True, "needs a CUDA GPU"), (True, False, "pip install bitsandbytes")])
def test_nf4_refuses_clearly_where_it_cannot_run(cuda, bnb, cause):
    with pytest.raises(QuantizationUnavailable, match=cause) as error:
        quantization_for_training("nf4", cuda=cuda, bitsandbytes=bnb)
    assert "train.quantize: none" in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_a_cpu_run_with_nf4_fails_before_loading_the_model(tmp_path):
    config = MoteConfig(model=str(tmp_path / "never-read"), train=TrainConfig(quantize=Quantize.NF4))
    with pytest.raises(QuantizationUnavailable, match="CUDA GPU"):
        load_training_base(config, home=tmp_path)


def test_the_setting_accepts_only_known_schemes():
    with pytest.raises(SettingError, match="quantize"):
        TrainConfig(quantize="int3")
