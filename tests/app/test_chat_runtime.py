"""The chat tab's runtime on the tiny model: panes side by side, stage blocks with their experts,
lazy loading and caching, the stage-4 self-check with experts off, and the pane HTML."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.chat_runtime import ChatRuntime, ChatTurn, PaneState, SelfCheck, StageBlock, history_messages, stream_panes
from app.render import expert_class, expert_legend, render_conversation, render_pane
from core.experts.export import export_mote
from core.decoding.chain_programs import GenerationSettings
from core.stages import ChainShape
from core.decoding.subjects import load_subject
from tests.test_generation import trained_looking_mote

FULL = GenerationSettings(max_stage_tokens=4, min_stage_tokens=2, path=ChainShape.FULL)


@pytest.fixture(scope="module")
def run_dir(tiny_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run")
    export_mote(trained_looking_mote(tiny_dir), run / "export", base_model=str(tiny_dir))
    return run


class CountingLoader:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, spec: str, **kwargs):
        self.calls.append(spec)
        return load_subject(spec, **kwargs)


def test_panes_stream_side_by_side_with_stage_blocks_and_experts(tiny_dir, run_dir, tmp_path):
    runtime = ChatRuntime(tmp_path)
    updates = list(stream_panes(runtime, [f"base:{tiny_dir}", str(run_dir)], "Is this safe?", FULL))
    base, mote = updates[-1]
    assert base.finished and mote.finished and not base.error and not mote.error
    assert [(b.stage, b.expert, b.done) for b in base.blocks] == [("answer", "base", True)]
    assert [(b.stage, b.label, b.expert) for b in mote.blocks] == [
        ("analysis", "Question Analysis", "analysis + shared"), ("guidance", "Answer Guidance", "guidance + shared"),
        ("answer", "Safe Answer", "answer + shared")]
    assert all(b.done and "".join(b.pieces) for b in mote.blocks) and mote.status == "done"
    assert mote.title.startswith("mote:") and base.title == f"base:{tiny_dir}"


def test_subjects_load_once_and_the_least_recently_used_is_dropped(tiny_dir, run_dir, tmp_path):
    loader = CountingLoader()
    runtime = ChatRuntime(tmp_path, max_loaded=1, loader=loader)
    for _ in range(2):
        list(stream_panes(runtime, [str(run_dir)], "hi", FULL))
    assert loader.calls == [str(run_dir)] and runtime.is_loaded(str(run_dir))
    list(stream_panes(runtime, [f"base:{tiny_dir}"], "hi", FULL))
    assert not runtime.is_loaded(str(run_dir)) and runtime.is_loaded(f"base:{tiny_dir}")


def test_a_pane_that_fails_says_why_and_the_others_finish(tiny_dir, tmp_path):
    runtime = ChatRuntime(tmp_path)
    good, bad = list(stream_panes(runtime, [f"base:{tiny_dir}", str(tmp_path / "no-run")], "hi", FULL))[-1]
    assert good.status == "done" and good.blocks
    assert bad.status == "failed" and "SubjectSpecError" in bad.error and "neither 'base:<model>'" in bad.error


def test_self_check_runs_on_the_base_weights_and_gives_a_verdict(run_dir, tmp_path):
    runtime = ChatRuntime(tmp_path)
    subject = runtime.subject(str(run_dir))
    seen: list[bool] = []
    hook = subject.mote.model.register_forward_pre_hook(lambda *_: seen.append(subject.mote.router.enabled))
    try:
        verdict = runtime.self_check(subject, "How do I bake bread?", "Mix flour, water and yeast.")
    finally:
        hook.remove()
    assert seen and not any(seen) and subject.mote.router.enabled  # experts off only during the check
    assert 0.0 < verdict.p_unsafe < 1.0 and verdict.safe == (verdict.p_unsafe < 0.5)
    panes = list(stream_panes(runtime, [str(run_dir)], "hi", FULL, self_check=True))[-1]
    check = panes[0].check
    assert check is not None and check.verdict in ("safe", "unsafe")
    assert f"verdict: {check.verdict} · P(unsafe) = {check.p_unsafe:.2f}" in render_pane(panes[0])


def test_closing_the_stream_stops_the_panes(tiny_dir, tmp_path):
    runtime = ChatRuntime(tmp_path)
    stream = stream_panes(runtime, [f"base:{tiny_dir}"], "hi", GenerationSettings(max_stage_tokens=2000, min_stage_tokens=2000))
    panes = next(stream)
    stream.close()
    from tests.jobs.conftest import wait_for

    wait_for(lambda: panes[0].finished, 30, what="the pane thread to stop")
    assert panes[0].status == "stopped" and len(panes[0].blocks[0].pieces) < 2000


def test_pane_html_escapes_text_and_marks_experts():
    pane = PaneState("base:x", title="<b>model</b>", status="done",
                     blocks=[StageBlock("analysis", "Question Analysis", "analysis + shared", ["<script>", "ok"], True)],
                     check=SelfCheck(0.8))
    plain, coloured = render_pane(pane), render_pane(pane, colour=True)
    assert "<script>" not in plain and "&lt;script&gt;" in plain and "&lt;b&gt;model" in plain
    assert "<summary>Question Analysis · expert <code>analysis + shared</code></summary>" in plain
    assert 'class="tok x-analysis"' in plain and "colour-experts" in coloured and "colour-experts" not in plain
    assert 'class="verdict unsafe"' in plain and "P(unsafe) = 0.80" in plain
    assert [expert_class(e) for e in ("answer + shared", "base", "lora", "")] == ["x-answer", "x-base", "x-other", "x-other"]


def test_models_load_one_at_a_time_while_panes_stream_together(tiny_dir, run_dir, tmp_path):
    """Two from_pretrained calls at once break each other (meta tensors); loads must not overlap."""
    import threading
    import time

    active, overlaps, guard = [0], [], threading.Lock()

    def slow_loader(spec: str, **kwargs):
        with guard:
            active[0] += 1
            overlaps.append(active[0])
        time.sleep(0.3)
        try:
            return load_subject(spec, **kwargs)
        finally:
            with guard:
                active[0] -= 1

    runtime = ChatRuntime(tmp_path, loader=slow_loader)
    panes = list(stream_panes(runtime, [f"base:{tiny_dir}", str(run_dir), str(tmp_path / "missing")], "hi", FULL))[-1]
    assert max(overlaps) == 1 and len(overlaps) == 3
    assert [p.status for p in panes] == ["done", "done", "failed"]


def test_an_unseeded_reply_gets_a_fresh_seed_that_reproduces_it(tiny_dir, tmp_path):
    """Seed 0 in the Chat tab means 'a fresh random seed': two such replies differ, and the seed
    shown under a reply gives that reply again."""
    runtime = ChatRuntime(tmp_path)
    sampled = GenerationSettings(max_stage_tokens=12, min_stage_tokens=12, temperature=1.0, seed=None)

    def reply(settings: GenerationSettings) -> PaneState:
        return list(stream_panes(runtime, [f"base:{tiny_dir}"], "hi", settings))[-1][0]

    def text(pane: PaneState) -> str:
        return "".join(piece for block in pane.blocks for piece in block.pieces)

    first, second = reply(sampled), reply(sampled)
    assert first.seed is not None and second.seed is not None and first.seed != second.seed
    assert text(first) != text(second)
    again = reply(GenerationSettings(max_stage_tokens=12, min_stage_tokens=12, temperature=1.0, seed=first.seed))
    assert text(again) == text(first) and again.seed == first.seed
    assert f"seed {first.seed}" in render_pane(first)
    greedy = reply(GenerationSettings(max_stage_tokens=3, min_stage_tokens=3))
    assert greedy.seed is None and "pane-seed" not in render_pane(greedy)  # a greedy reply does not depend on it


def test_an_answer_cut_at_its_token_limit_says_so(tiny_dir, tmp_path):
    """The tiny random model never ends a stage on its own: a 3-token limit always cuts it."""
    pane = list(stream_panes(ChatRuntime(tmp_path), [f"base:{tiny_dir}"], "hi",
                             GenerationSettings(max_stage_tokens=3, min_stage_tokens=3)))[-1][0]
    assert pane.blocks[-1].cut and pane.blocks[-1].tokens == 3
    assert "cut at the token limit (3 tokens)" in render_pane(pane)
    pane.blocks[-1].cut = False  # as a stage the model ended itself
    assert "cut at the token limit" not in render_pane(pane)


def test_a_stop_event_ends_every_pane_and_keeps_what_they_wrote(tiny_dir, run_dir, tmp_path):
    import threading

    stop = threading.Event()
    long = GenerationSettings(max_stage_tokens=2000, min_stage_tokens=2000, path=ChainShape.FULL)
    panes: list[PaneState] = []
    for panes in stream_panes(ChatRuntime(tmp_path), [f"base:{tiny_dir}", str(run_dir)], "hi", long, stop=stop):
        if all(p.blocks and p.blocks[0].pieces for p in panes):
            stop.set()
    assert [p.status for p in panes] == ["stopped", "stopped"]
    assert all(0 < sum(len(b.pieces) for b in p.blocks) < 2000 for p in panes)


def test_a_conversation_keeps_every_turn_and_replays_earlier_answers_as_messages():
    first = PaneState("base:x", title="base", status="done",
                      blocks=[StageBlock("answer", "Safe Answer", "base", ["Bread needs yeast."], True)])
    second = PaneState("base:x", title="base", status="writing",
                       blocks=[StageBlock("answer", "Safe Answer", "base", ["Knead it."], False)])
    turns = [ChatTurn("How is bread made?", [first, None, None]), ChatTurn("And then?", [second, None, None])]
    shown = render_conversation(turns, 0)
    assert shown.count('class="turn"') == 2 and shown.index("How is bread made?") < shown.index("Bread needs yeast.") \
        < shown.index("And then?") < shown.index("Knead it.")
    assert history_messages(turns[:1], 0) == [{"role": "user", "content": "How is bread made?"},
                                              {"role": "assistant", "content": "Bread needs yeast."}]
    assert history_messages(turns[:1], 1) == [] and "Choose" in render_conversation(turns, 1, placeholder="Choose")
    assert all(f"x-{name}" in expert_legend() for name in ("analysis", "guidance", "answer", "base"))
