"""The four AlignCoT stages, their marker tokens, and how a chain is written with them.

Why one module: every part of MoTE (data, routing, training, generation, export) must agree on
the stage names, their order, the marker strings and the chain shapes. Spec: section 1
and 3 of docs/mote-method.md.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Stage(enum.IntEnum):
    """A reasoning stage. The integer is the stage's step-expert index (CHECK has no expert)."""

    ANALYSIS = 0
    GUIDANCE = 1
    ANSWER = 2
    CHECK = 3

    @property
    def label(self) -> str:
        return STAGE_LABELS[self]


STAGE_LABELS = {
    Stage.ANALYSIS: "Question Analysis",
    Stage.GUIDANCE: "Answer Guidance",
    Stage.ANSWER: "Safe Answer",
    Stage.CHECK: "Safety Checking",
}

#: Stages written by the model in a chain, in order; each has its own step expert.
CHAIN_STAGES: tuple[Stage, ...] = (Stage.ANALYSIS, Stage.GUIDANCE, Stage.ANSWER)

#: Per-token stage id for tokens outside any chain stage (system prompt, question, template).
QUESTION_STAGE_ID = -1

#: Stage ids of padding tokens; they are never routed to any expert and carry no loss.
PAD_STAGE_ID = -2

STAGE_NAMES = {stage.name.lower(): stage for stage in Stage}

#: Start and end markers. A marker token belongs to the stage it opens or closes.
START_MARKERS = {
    Stage.ANALYSIS: "<|analysis|>",
    Stage.GUIDANCE: "<|guidance|>",
    Stage.ANSWER: "<|response|>",
}
END_MARKERS = {
    Stage.ANALYSIS: "<|/analysis|>",
    Stage.GUIDANCE: "<|/guidance|>",
    Stage.ANSWER: "<|/response|>",
}
ALL_MARKERS: tuple[str, ...] = tuple(START_MARKERS.values()) + tuple(END_MARKERS.values())


class ChainShape(str, enum.Enum):
    """The chain shapes: the three of section 1 (the paper's Table 2) and guidance-first.

    GUIDANCE_ANSWER is the chain step skipping makes of a full chain when it skips the analysis
    (the paper's truncated [guidance, answer] data): a model trained with step skipping learns
    question -> guidance, so its own path may open with guidance, and a dataset may hold it.
    """

    ANSWER_ONLY = "answer"
    ANALYSIS_ANSWER = "analysis->answer"
    FULL = "analysis->guidance->answer"
    GUIDANCE_ANSWER = "guidance->answer"

    @property
    def stages(self) -> tuple[Stage, ...]:
        return SHAPE_STAGES[self]


SHAPE_STAGES = {
    ChainShape.ANSWER_ONLY: (Stage.ANSWER,),
    ChainShape.ANALYSIS_ANSWER: (Stage.ANALYSIS, Stage.ANSWER),
    ChainShape.FULL: (Stage.ANALYSIS, Stage.GUIDANCE, Stage.ANSWER),
    ChainShape.GUIDANCE_ANSWER: (Stage.GUIDANCE, Stage.ANSWER),
}


def parse_stage(name: str) -> Stage:
    """Stage from its name ('analysis', 'guidance', 'answer', 'check'); error lists the valid ones."""
    key = name.strip().lower()
    if key == "response":
        key = "answer"
    if key not in STAGE_NAMES:
        raise ValueError(f"Unknown stage name {name!r}: use one of {sorted(STAGE_NAMES)}.")
    return STAGE_NAMES[key]


def shape_of(stages: tuple[Stage, ...] | list[Stage]) -> ChainShape:
    """The chain shape of an ordered list of stages; error when it is not one of the shapes."""
    for shape, expected in SHAPE_STAGES.items():
        if tuple(stages) == expected:
            return shape
    names = [s.name.lower() for s in stages]
    raise ValueError(
        f"Stages {names} are not a valid chain: use [answer], [analysis, answer], "
        "[analysis, guidance, answer] or [guidance, answer]."
    )


def allowed_next_stages(done: tuple[Stage, ...] | list[Stage]) -> tuple[Stage, ...]:
    """Stages that may open next after `done`, in stage order (constrains the model's own path):
    analysis, guidance or answer first; guidance or answer after analysis; answer after guidance."""
    done = tuple(done)
    if done and done[-1] is Stage.ANSWER:
        return ()
    following = {
        shape.stages[len(done)]
        for shape in ChainShape
        if len(shape.stages) > len(done) and shape.stages[: len(done)] == done
    }
    return tuple(sorted(following))


@dataclass(frozen=True)
class StageSegment:
    """One stage's text inside a chain."""

    stage: Stage
    text: str


def render_chain(segments: list[StageSegment]) -> str:
    """Chain text with markers, as the model writes it after the prompt."""
    return "".join(
        f"{START_MARKERS[seg.stage]}{seg.text}{END_MARKERS[seg.stage]}" for seg in segments
    )


def split_chain_text(text: str) -> list[StageSegment]:
    """Parse marker-delimited text back into stage segments (unclosed last stage allowed)."""
    segments: list[StageSegment] = []
    position = 0
    while position < len(text):
        starts = [(text.find(m, position), s, m) for s, m in START_MARKERS.items()]
        starts = [item for item in starts if item[0] >= 0]
        if not starts:
            break
        index, stage, marker = min(starts)
        body_start = index + len(marker)
        end = text.find(END_MARKERS[stage], body_start)
        body_end = len(text) if end < 0 else end
        segments.append(StageSegment(stage, text[body_start:body_end]))
        position = len(text) if end < 0 else end + len(END_MARKERS[stage])
    return segments
