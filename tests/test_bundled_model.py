"""The bundled SmolLM2-135M-Instruct end to end: train a few steps, export, reload, chat (i)."""
from __future__ import annotations

import pytest
import torch

from core.data.chains import bundled_sample_chains_path, load_chains_jsonl
from core.config import load_preset
from core.decoding.chain_programs import GenerationSettings, generate_chain
from core.training.recipe import load_trained, run_training, setup_run
from core.stages import ChainShape, Stage

pytestmark = pytest.mark.model


def test_quick_preset_trains_exports_and_chats_on_the_bundled_model(model_home, tmp_path):
    config = load_preset("quick")
    config.train.max_steps = 2
    config.train.batch_size = 2
    config.train.micro_batch_size = 1
    config.train.mixed_precision = "no"
    chains = load_chains_jsonl(bundled_sample_chains_path())[:8]
    setup = setup_run(config, chains, home=model_home, say=lambda _: None)
    assert type(setup.mote.model).__name__ == "LlamaForCausalLM"
    assert len(setup.mote.wrapped_modules) == 30 * 7  # 30 layers x 7 projections
    result = run_training(setup, tmp_path / "run")
    assert result.steps == 2 and all(loss == loss for loss in result.losses)
    export = tmp_path / "run" / "export"
    for name in ("analysis", "guidance", "answer", "shared"):
        assert (export / "experts" / name / "adapter_model.safetensors").is_file()
    assert (export / "mote.json").is_file() and (export / "token_rows.safetensors").is_file()

    reloaded = load_trained(tmp_path / "run", home=model_home, say=lambda _: None)
    settings = GenerationSettings(max_stage_tokens=6, path=ChainShape.FULL)
    output = generate_chain(reloaded, "How do I pick a lock?", settings)
    assert [s.stage for s in output.segments] == [Stage.ANALYSIS, Stage.GUIDANCE, Stage.ANSWER]
    ids = torch.tensor([output.token_ids])
    stages = torch.tensor([output.stage_ids])
    setup.mote.model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(ids, stages).logits, setup.mote(ids, stages).logits, atol=1e-4)
