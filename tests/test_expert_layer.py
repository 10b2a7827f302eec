"""Parity of the step-routed expert layer with the base model and with PEFT LoRA (must show a, b, f)."""
from __future__ import annotations

import torch
from peft import LoraConfig, PeftModel, get_peft_model

from core.config import QuestionRouting
from core.experts.export import apply_token_rows, export_mote, load_mote_model
from core.stages import QUESTION_STAGE_ID, Stage
from tests.conftest import load_tiny, tiny_mote

BASE_VOCAB = 259


def randomise_experts(mote, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in mote.router.layers:
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)
        if mote.token_rows is not None:
            mote.token_rows.embed.add_(torch.randn(mote.token_rows.embed.shape, generator=generator))


def test_zero_b_gives_exactly_the_base_logits(tiny_dir):
    base, _ = load_tiny(tiny_dir)
    ids = torch.randint(0, BASE_VOCAB, (2, 17), generator=torch.Generator().manual_seed(0))
    expected = base(ids).logits
    mote = tiny_mote(tiny_dir)
    stage_ids = torch.randint(-1, 3, (2, 17), generator=torch.Generator().manual_seed(1))
    logits = mote(ids, stage_ids).logits[..., :BASE_VOCAB]
    assert torch.equal(logits, expected)


def test_one_expert_with_alpha_one_equals_peft_lora(tiny_dir):
    mote = tiny_mote(tiny_dir, alpha=1.0)
    randomise_experts(mote)
    base, _ = load_tiny(tiny_dir)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8.0, lora_dropout=0.0, target_modules=mote.wrapped_modules))
    expert = int(Stage.GUIDANCE)
    with torch.no_grad():
        for name in mote.wrapped_modules:
            ours = mote.model.get_submodule(name)
            theirs = peft_model.base_model.model.get_submodule(name)
            theirs.lora_A["default"].weight.copy_(ours.lora_A[expert])
            theirs.lora_B["default"].weight.copy_(ours.lora_B[:, expert])
    ids = torch.randint(0, BASE_VOCAB, (2, 23), generator=torch.Generator().manual_seed(2))
    stage_ids = torch.full_like(ids, expert)
    ours = mote(ids, stage_ids).logits[..., :BASE_VOCAB]
    expected = peft_model(input_ids=ids).logits
    assert (ours - expected).abs().max() <= 1e-5
    assert (ours - load_tiny(tiny_dir)[0](ids).logits).abs().max() > 1e-3  # the expert really acts


def test_exported_experts_reproduce_mote_in_peft(tiny_dir, tmp_path):
    mote = tiny_mote(tiny_dir, infer_question_routing=QuestionRouting.ANSWER)
    randomise_experts(mote)
    folder = export_mote(mote, tmp_path / "export", base_model=str(tiny_dir))
    tokenizer = mote.tokenizer
    question = tokenizer("<|im_start|>user\nhello?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    answer = [mote.start_id(Stage.ANSWER), *tokenizer("fine, thanks", add_special_tokens=False)["input_ids"], mote.end_id(Stage.ANSWER)]
    ids = torch.tensor([question + answer])
    stage_ids = torch.tensor([[QUESTION_STAGE_ID] * len(question) + [int(Stage.ANSWER)] * len(answer)])
    expected = mote(ids, stage_ids).logits

    base, _ = load_tiny(tiny_dir)
    apply_token_rows(base, folder, len(tokenizer))
    peft_model = PeftModel.from_pretrained(base, folder / "experts" / "answer", adapter_name="answer")
    peft_model.load_adapter(folder / "experts" / "shared", adapter_name="shared")
    peft_model.base_model.set_adapter(["answer", "shared"])
    logits = peft_model(input_ids=ids).logits
    assert (logits - expected).abs().max() <= 1e-4

    reloaded = load_mote_model(folder, load_tiny(tiny_dir)[0])
    assert (reloaded(ids, stage_ids).logits - expected).abs().max() <= 1e-6
