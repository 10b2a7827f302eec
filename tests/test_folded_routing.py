"""Rows in different stages decode together with the shared gate folded and the step experts
routed per token (ExpertLayout.split_common, ExpertRouter.route_over_fold): same logits as
per-token routing of every expert, for every layout and for mixed stages, questions and padding."""
from __future__ import annotations

import pytest
import torch

from core.config import QuestionRouting
from core.experts.routing import ExpertLayout
from core.stages import PAD_STAGE_ID, QUESTION_STAGE_ID, Stage
from tests.conftest import tiny_mote
from tests.test_expert_layer import randomise_experts

MIXED = torch.tensor([[QUESTION_STAGE_ID, QUESTION_STAGE_ID, int(Stage.ANALYSIS), int(Stage.ANSWER)],
                      [PAD_STAGE_ID, QUESTION_STAGE_ID, int(Stage.GUIDANCE), int(Stage.GUIDANCE)]])


@pytest.mark.parametrize(("layout", "common"), [
    (ExpertLayout(alpha=0.3), [0.0, 0.0, 0.0, 0.7]),
    (ExpertLayout(shared_expert=False), [0.0, 0.0, 0.0]),
    (ExpertLayout(step_experts=False, shared_expert=False), [1.0]),
])
def test_the_common_gate_is_what_every_chain_stage_shares(layout, common):
    assert layout.common_gate().tolist() == pytest.approx(common)


def test_common_plus_residual_gives_back_every_non_pad_tokens_gate():
    layout = ExpertLayout(alpha=0.3)
    gates = layout.gates(MIXED, QuestionRouting.MEAN)
    common, residual = layout.split_common(gates, MIXED)
    assert residual is not None and residual.experts == slice(0, 3)  # the step experts only
    rebuilt = common.expand_as(gates).clone()
    rebuilt[..., residual.experts] += residual.gates
    not_pad = MIXED != PAD_STAGE_ID
    assert torch.allclose(rebuilt[not_pad], gates[not_pad])
    assert residual.gates[~not_pad].abs().sum() == 0
    single = ExpertLayout(step_experts=False, shared_expert=False)
    assert single.split_common(single.gates(MIXED, QuestionRouting.MEAN), MIXED)[1] is None  # all folded


@pytest.mark.parametrize("experts", [{}, {"shared_expert": False}, {"step_experts": False, "shared_expert": False}])
def test_folded_common_gate_gives_the_logits_of_per_token_routing(tiny_dir, experts):
    mote = tiny_mote(tiny_dir, **experts)
    randomise_experts(mote)
    mote.model.eval()
    ids = torch.randint(3, 100, MIXED.shape)
    mask = (MIXED != PAD_STAGE_ID).long()
    with torch.no_grad():
        routed = mote.forward(ids, MIXED, attention_mask=mask).logits
        folded = mote.forward(ids, MIXED, attention_mask=mask, fold_common=True).logits
        again = mote.forward(ids, MIXED, attention_mask=mask, fold_common=True).logits  # the fold is reused
    keep = mask.bool()
    assert torch.allclose(folded[keep], routed[keep], atol=1e-5)
    assert torch.equal(folded, again)
    assert not torch.allclose(routed[0, 2], routed[1, 2])  # the experts do change the logits
    if experts.get("shared_expert", True):  # something was folded; a later per-token forward unfolds it
        assert mote.router.folded_gate is not None
        with torch.no_grad():
            assert torch.allclose(mote.forward(ids, MIXED, attention_mask=mask).logits[keep], routed[keep], atol=1e-6)
        assert mote.router.folded_gate is None
