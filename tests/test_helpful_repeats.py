"""data.helpful_repeats: helpful-labelled chains are trained on N times an epoch, nothing else changes."""
from __future__ import annotations

from core.config import DataConfig
from core.data.chains import Chain
from core.data.dataset import EncodedChain, with_helpful_repeats
from core.stages import Stage, StageSegment


def chain(i: int, kind: str | None) -> Chain:
    return Chain(f"question {i}", [StageSegment(Stage.ANSWER, "answer")], id=f"c{i}", meta={"kind": kind} if kind else {})


def sample(i: int) -> EncodedChain:
    return EncodedChain(f"c{i}", [1, 2], [1, 2], [-1, 2], {})


def test_helpful_chains_are_repeated_and_the_others_kept_once():
    chains = [chain(1, "harmful"), chain(2, "helpful"), chain(3, None), chain(4, "helpful")]
    samples = [sample(i) for i in (1, 2, 3, 4)]
    repeated = with_helpful_repeats(samples, chains, 3)
    assert [s.chain_id for s in repeated] == ["c1", "c2", "c3", "c4", "c2", "c4", "c2", "c4"]
    assert with_helpful_repeats(samples, chains, 1) == samples
    assert DataConfig().helpful_repeats == 1  # the paper's recipe: every chain once an epoch
