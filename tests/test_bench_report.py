"""bench/report.py's writer: fixed results give the expected markdown, and verdicts come from intervals."""
from __future__ import annotations

from pathlib import Path

import pytest

from bench.figures_doc import NO_INTERVAL, BenchResult, CommitStamp, Comparison, Figure, Goal, Machine, parse, render
from bench.report import BENCHES, merged, read_evaluation, read_experts, read_layouts, read_responsiveness

ROOT = Path(__file__).resolve().parent.parent
MACHINE = Machine(2, "Test CPU", ("avx2",), "AVX2", None)
AT_LEAST_3 = Goal(Comparison.AT_LEAST, 3.0)


def result(bench: str = "bench_generation", quick: bool = False, figures: tuple[Figure, ...] | None = None) -> BenchResult:
    return BenchResult(bench=bench, command=f"python bench/{bench}.py", date="2026-01-02 03:04 UTC",
                       commit=CommitStamp("a" * 40, dirty=False), machine=MACHINE, quick=quick, seconds=61.4,
                       depends_on=(f"bench/{bench}.py", "core/decoding/scheduler.py"),
                       figures=figures or (Figure("batched_vs_sequential", 3.456, (3.1, 3.9), 7, AT_LEAST_3),
                                           Figure("batched_seconds", 40.21)))


@pytest.mark.parametrize(("interval", "repeats", "verdict"), [
    ((3.1, 3.9), 7, "met"),
    ((2.0, 2.9), 7, "not met"),
    ((2.5, 3.5), 7, "inconclusive"),
    ((3.1, 3.9), 2, "inconclusive (only 2 repeats)"),
    (None, 1, NO_INTERVAL),
])
def test_verdict_comes_from_the_interval(interval, repeats, verdict):
    assert Figure("x", 3.2, interval, repeats, AT_LEAST_3).verdict == verdict


def test_at_most_goal_is_met_only_below_it():
    goal = Goal(Comparison.AT_MOST, 1.5)
    assert Figure("x", 1.0, (0.9, 1.2), 7, goal).verdict == "met"
    assert Figure("x", 1.0, (0.9, 1.6), 7, goal).verdict == "inconclusive"
    assert Figure("x", 2.0, (1.6, 2.2), 7, goal).verdict == "not met"


def test_figure_without_goal_has_no_verdict():
    assert Figure("x", 3.2, (3.0, 3.4), 7).verdict == "-"


def test_fixed_results_render_the_expected_section():
    text = render([result()])
    expected = """## bench_generation

- command: `python bench/bench_generation.py`
- run: 2026-01-02 03:04 UTC, 61 s, at commit `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa`
- machine: 2 cores, Test CPU (avx2; torch uses AVX2), GPU: none
- depends on: `bench/bench_generation.py`, `core/decoding/scheduler.py`

| figure | value | 95% interval | repeats | goal | verdict |
|---|---|---|---|---|---|
| `batched_vs_sequential` | 3.46 | 3.1-3.9 | 7 | >= 3 | met |
| `batched_seconds` | 40.2 | - | 1 | - | - |
"""
    assert expected in text
    assert text.startswith("# Measured figures\n")
    assert "quick run: not for citing" not in text


def test_quick_and_dirty_runs_are_marked():
    quick = BenchResult(**{**result(quick=True).__dict__, "commit": CommitStamp("b" * 40, dirty=True)})
    text = render([quick])
    assert "**quick run: not for citing** (small settings for a smoke check: bench_generation)" in text
    assert f"`{'b' * 40}` with uncommitted changes" in text


def test_rendered_file_reads_back_the_same_results():
    results = [result("bench_experts"), result(quick=True)]
    assert parse(render(results)) == results


def test_a_hand_written_file_is_refused_with_what_to_do():
    with pytest.raises(ValueError, match="make figures"):
        parse("# Measured figures\n| a | 1 |\n")


def test_a_new_run_replaces_only_its_own_bench_in_bench_order():
    old = [result("bench_generation"), result("bench_experts")]
    new = result("bench_generation", quick=True)
    assert merged(old, [new]) == [old[1], new]


def test_every_bench_script_and_dependency_exists():
    """A dependency that does not exist has no git history, so it could never make a figure stale."""
    for spec in BENCHES:
        assert (ROOT / spec.script).is_file(), spec.script
        assert spec.script in spec.depends_on
        missing = [path for path in spec.depends_on if not (ROOT / path).exists()]
        assert not missing, f"{spec.name} depends on missing files {missing}: update bench/report.py's BENCHES"


def test_experts_reader_takes_intervals_goals_and_the_repeats_of_each_section():
    data = {"models": {"tiny": {
        "figures": {"mote_vs_lora_step": 1.05, "materialised_vs_onepass_epoch": 2.4, "mote_vs_lora_peak_mem": 1.2},
        "intervals_95": {"mote_vs_lora_step": [1.0, 1.08], "materialised_vs_onepass_epoch": [2.1, 2.6]},
        "repeats": 15, "epoch_repeats": 5}}}
    step, epoch, memory = read_experts(data)
    assert (step.name, step.interval, step.repeats, step.verdict) == ("tiny.mote_vs_lora_step", (1.0, 1.08), 15, "met")
    assert (epoch.repeats, epoch.verdict) == (5, "met")
    assert (memory.interval, memory.goal, memory.verdict) == (None, None, "-")


def test_layouts_and_responsiveness_readers():
    layouts = read_layouts({"figures": {"dense_vs_lora": 1.3}, "intervals_95": {"dense_vs_lora": [1.2, 1.4]},
                            "settings": {"repeats": 15}})
    assert layouts == (Figure("dense_vs_lora", 1.3, (1.2, 1.4), 15),)
    busy = read_responsiveness({"figures": {
        "busy_vs_idle_latency": {"value": 1.6, "interval_95": [1.55, 1.7], "ratios": [1.6] * 7},
        "busy_vs_idle_query": {"value": 1.1, "interval_95": [1.0, 1.2], "ratios": [1.1] * 7}}})
    assert [f.verdict for f in busy] == ["not met", "-"]


def test_evaluation_reader_takes_the_paired_mote_vs_base_ratio_with_its_goal():
    data = {"base_batched_vs_sequential": 4.1, "mote_batched_vs_sequential": 3.5,
            "paired_figures": {
                "mote_vs_base_batched_answers": {"value": 0.85, "interval_95": [0.82, 0.9], "ratios": [0.85] * 5,
                                                 "goal": ">= 0.8"},
                "mote_vs_base_batched_answers_as_written": {"value": 0.5, "interval_95": [0.4, 0.6], "ratios": [0.5] * 5}}}
    figures = {f.name: f for f in read_evaluation(data)}
    assert figures["base_batched_vs_sequential"].interval is None
    assert (figures["mote_vs_base_batched_answers"].repeats, figures["mote_vs_base_batched_answers"].verdict) == (5, "met")
    assert figures["mote_vs_base_batched_answers_as_written"].verdict == "-"
