"""Continuous batching on the tiny model: same text as one-at-a-time, and real chains end to end."""
from __future__ import annotations

from types import SimpleNamespace

from core.config import GenerateConfig
from core.data.chain_store import JsonlChainSink
from core.decoding.completions import CompletionRequest, LocalGenerator
from core.synthesis.pipeline import generate_chains
from core.synthesis.prompts import load_prompt_set
from tests.conftest import load_tiny


def requests(count: int) -> list[CompletionRequest]:
    return [
        CompletionRequest([{"role": "user", "content": "x" * (3 + 5 * i)}], max_new_tokens=3 + (i * 7) % 11, key=i)
        for i in range(count)
    ]


def complete_all(generator: LocalGenerator, todo: list[CompletionRequest]) -> dict[int, str]:
    queue, results = list(todo), {}
    generator.run(lambda: queue.pop(0) if queue else None, lambda r, c: results.__setitem__(r.key, c.text), lambda: False)
    return results


def test_batched_rows_with_refill_match_one_at_a_time(tiny_dir):
    model, tokenizer = load_tiny(tiny_dir)
    batched = complete_all(LocalGenerator(model, tokenizer, batch_size=3), requests(8))
    sequential = complete_all(LocalGenerator(model, tokenizer, batch_size=1), requests(8))
    assert batched == sequential
    assert len(batched) == 8 and all(batched.values())


def test_tiny_model_writes_real_chains_end_to_end(tiny_dir, tmp_path):
    model, tokenizer = load_tiny(tiny_dir)
    generator = LocalGenerator(model, tokenizer, batch_size=4, model_id="tiny")
    # The paper's plain pipeline (free-text self-check, flagged chains kept) so every chain is kept.
    config = GenerateConfig(analysis_tokens=6, guidance_tokens=6, answer_tokens=8, check_tokens=3,
                            flagged_policy="keep", check_stages=False, exemplars=0)
    questions = [SimpleNamespace(id=f"q{i}", text=f"Question number {i}?", kind="helpful", category="t") for i in range(3)]
    sink = JsonlChainSink(tmp_path)
    summary = generate_chains(questions, generator, config, load_prompt_set(), sink)
    records = sink.records()
    assert summary.written == 3 and len(records) == 3
    for record in records:
        assert record["generator"] == "local:tiny" and record["answer"]
        # random weights never write a parsable verdict, so every chain runs to full length
        assert record["shape"] == "analysis->guidance->answer" and record["flagged"]
        assert all(not a["verdict_parsed"] for a in record["attempts"][0]["answers"])
