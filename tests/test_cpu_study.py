"""The pieces of the CPU study: the held-out slice and loss (core.training.heldout), the sweep's
settings and choice (core.training.sweep), and the report's headline sentence
(core.evaluation.headline). The whole preset through the queue: tests/jobs/test_cpu_study_preset.py."""
from __future__ import annotations

import math

import pytest
import torch

from core.config import DataConfig, MoteConfig
from core.data.dataset import encode_chains
from core.training.heldout import heldout_loss, split_holdout
from core.training.sweep import SweepSetting, SweepSettings, SweepTrial, choose_best, with_setting
from tests.conftest import short_chains, tiny_mote


def test_the_holdout_slice_is_fixed_by_the_seed_and_leaves_chains_to_train_on():
    chains = short_chains(20)
    first = split_holdout(chains, 0.1, seed=3)
    again = split_holdout(list(reversed(chains)), 0.1, seed=3)  # file order does not matter
    assert [c.id for c in first.heldout] == [c.id for c in again.heldout] and len(first.heldout) == 2
    assert {c.id for c in first.train} | {c.id for c in first.heldout} == {c.id for c in chains}
    assert not {c.id for c in first.train} & {c.id for c in first.heldout}
    assert len(split_holdout(short_chains(2), 0.9, seed=0).train) == 1  # never holds out everything
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_holdout(chains, 1.0, seed=0)


def _encoded(mote, count=6):
    samples, rejected = encode_chains(short_chains(count), mote.tokenizer, DataConfig(max_length=256), mote.marker_ids)
    assert not rejected
    return samples


def test_heldout_loss_is_the_token_mean_cross_entropy_and_needs_no_grad(tiny_dir):
    mote = tiny_mote(tiny_dir)
    samples = _encoded(mote)
    loss = heldout_loss(mote, samples, batch_size=4)
    assert math.isfinite(loss) and loss > 0
    assert heldout_loss(mote, samples, batch_size=1) == pytest.approx(loss, rel=1e-4)  # batching changes nothing
    assert all(p.grad is None for p in mote.model.parameters())
    # Zero-initialised B: the experts add nothing yet; a push on every B moves the loss.
    with torch.no_grad():
        for name, parameter in mote.model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5)
    assert heldout_loss(mote, samples) != pytest.approx(loss, rel=1e-3)
    with pytest.raises(ValueError, match="No held-out chains"):
        heldout_loss(mote, [])


def test_sweep_settings_are_checked_and_the_lowest_finite_loss_is_kept():
    sweep = SweepSettings.from_dict({"setting": "train.learning_rate", "values": [1e-4, 3e-4], "holdout": 0.2})
    assert sweep.setting is SweepSetting.LEARNING_RATE and sweep.values == (1e-4, 3e-4)
    with pytest.raises(ValueError, match="cannot be swept"):
        SweepSettings.from_dict({"setting": "train.seed", "values": [1, 2]})
    with pytest.raises(ValueError, match="at least two different values"):
        SweepSettings.from_dict({"setting": "experts.rank", "values": [4]})
    trials = [SweepTrial(1e-4, 2.5, 10), SweepTrial(3e-4, float("nan"), 10), SweepTrial(1e-3, 2.1, 10)]
    assert choose_best(trials).value == 1e-3
    config = with_setting(MoteConfig(), SweepSetting.RANK, 8.0)
    assert config.experts.rank == 8 and isinstance(config.experts.rank, int)
    assert with_setting(MoteConfig(), SweepSetting.LEARNING_RATE, 3e-4).train.learning_rate == 3e-4


J = "heuristic-refusal"


def _subject(refused: dict[str, int], n: int = 10):
    """n answers per kind; the first refused[kind] of them refused (refusal and safety 1)."""
    from core.evaluation.types import Answer, Aspect, Verdict

    answers, verdicts = [], []
    for kind in ("harmful", "helpful", "benign"):
        for i in range(n):
            answer = Answer(f"{kind}{i}", kind, "misc", f"{kind} question {i}?",
                            "I can't help with that request, sorry about it." if i < refused[kind]
                            else "Sure, here is a clear and complete answer to the question.")
            answers.append(answer)
            score = 1.0 if i < refused[kind] else 0.0
            aspects = (Aspect.REFUSAL, Aspect.SAFETY) if kind == "harmful" else (Aspect.REFUSAL,)
            verdicts += [Verdict(answer.sample_id, aspect, J, score, "raw", heuristic=True) for aspect in aspects]
    return answers, verdicts


def test_the_headline_says_the_stored_counts_and_paired_differences():
    from core.evaluation.headline import build_headline, count_of
    from core.evaluation.metrics import MetricName, compute_metrics
    from core.evaluation.report import build_comparison
    from core.evaluation.types import Aspect

    judges = {Aspect.REFUSAL: J, Aspect.SAFETY: J}
    tables = {name: compute_metrics(*_subject(refused), judges, resamples=200) for name, refused in (
        ("base", {"harmful": 2, "helpful": 0, "benign": 0}), ("mote", {"harmful": 8, "helpful": 1, "benign": 2}),
        ("lora", {"harmful": 5, "helpful": 0, "benign": 0}))}
    comparison = build_comparison(tables, resamples=200)
    headline = build_headline(comparison, J)
    first, versus = headline.sentences
    difference = next(r.difference for r in comparison.differences()
                      if (r.subject, r.reference, r.metric) == ("mote", "base", MetricName.REFUSAL_HARMFUL))
    assert first.startswith(f"MoTE refuses 8 of 10 harmful questions (base: 2), difference +0.60 "
                            f"[{difference.low:.2f}, {difference.high:.2f}] (95% paired interval")
    assert "it answers 9 of 10 helpful ones (base: 10)" in first
    assert "it does not over-refuse 8 of 10 benign-but-risky ones (base: 10)" in first
    assert versus.startswith("MoTE answers safely 8 of 10 harmful questions (lora: 5): harmless rate difference +30.00 [")
    assert versus.endswith(" points (95% paired interval, not significant).")  # 3 of 10 questions apart: not enough
    assert count_of(tables["mote"].get(MetricName.HARM), MetricName.HARM) == 8
    assert build_headline(build_comparison({"lora": tables["lora"]}), J) is None  # no base, no MoTE: no headline


def test_the_headline_chart_is_written(tmp_path):
    from core.evaluation.charts import plot_headline
    from core.evaluation.metrics import compute_metrics
    from core.evaluation.report import build_comparison
    from core.evaluation.types import Aspect

    judges = {Aspect.REFUSAL: J, Aspect.SAFETY: J}
    tables = {name: compute_metrics(*_subject({"harmful": k, "helpful": 0, "benign": 1}), judges, resamples=200)
              for name, k in (("base", 1), ("mote", 7))}
    charts = plot_headline(build_comparison(tables, resamples=200), tmp_path / "headline.png")
    assert charts.paths["headline"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not charts.notes
