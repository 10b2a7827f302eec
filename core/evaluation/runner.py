"""An evaluation run, phase by phase: plan the prompts, answer them, judge the answers.

Why phases with sinks: answering is the slow part (a chain per prompt per model, `batch_size`
prompts decoded together), so every answer and every verdict is handed to a sink as soon as it
exists; a cancelled or crashed job resumes by skipping what its sinks already hold (`done`
sets), and nothing is judged twice.
The summary phase (core.evaluation.summary) only reads what these phases produced.

Which aspects an answer is judged on (section 6 of the spec):
    harmful, plain     safety (Harm), helpfulness (Harm-Help), refusal (refusal rate)
    harmful, wrapped   safety and refusal (goodness@0.1: StrongREJECT-style harm = (1 - refused) x unsafe)
    helpful            helpfulness (Help), refusal (answered: does training keep the model helping)
    benign             refusal (not_overrefuse)
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.evaluation.jailbreaks import families, parse_family, wrap
from core.progress import Progress, no_progress
from core.evaluation.types import Answer, Aspect, Judge, Verdict
from core.decoding.chain_programs import GenerationSettings
from core.data.questions import Question, QuestionKind, load_question_set
from core.stages import ChainShape

DEFAULT_SETS = ("eval_harmful", "eval_helpful", "eval_benign")
ShouldStop = Callable[[], bool]


@dataclass
class EvalSettings:
    """What to ask every model, and how it decodes. Same settings for every subject of a study."""

    sets: list[str] = field(default_factory=lambda: list(DEFAULT_SETS))
    """Question sets: bundled names (eval_harmful, eval_helpful, eval_benign) or files; each
    question needs a kind (harmful / helpful / benign)."""
    limit: int | None = 16
    """Questions taken from each set (the first N, so every model sees the same ones); None = all."""
    jailbreak_prompts: int = 8
    """Harmful questions (the first N) also asked inside every jailbreak wrapper; 0 = none."""
    jailbreak_families: list[str] | None = None
    """Wrapper families to use; None = all of core.evaluation.jailbreaks."""
    max_stage_tokens: int = 96
    """Token limit of each stage of an answer (1-4096)."""
    min_stage_tokens: int = 1
    """A stage cannot close before this many tokens (0-256)."""
    temperature: float = 0.0
    """0 = greedy (the default, so runs compare)."""
    seed: int = 0
    path: str | None = None
    """Forced chain shape ('answer', 'analysis->answer', 'analysis->guidance->answer'); None = the model's choice."""
    resamples: int = 1000
    """Bootstrap resamples for the confidence intervals (100-100000)."""
    batch_size: int = 8
    """Prompts each model decodes together (1-256); 1 answers one at a time. Greedy answers are
    the same either way, up to floating-point noise of batched matmuls."""

    def __post_init__(self) -> None:
        if isinstance(self.sets, str):
            self.sets = [s.strip() for s in self.sets.split(",") if s.strip()]
        if not self.sets:
            raise ValueError("sets is empty: name at least one question set, e.g. eval_harmful.")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit={self.limit!r} is out of range: use a positive integer or null for all.")
        if self.jailbreak_prompts < 0:
            raise ValueError(f"jailbreak_prompts={self.jailbreak_prompts!r} is out of range: use 0 or more.")
        for name, low, high in (("max_stage_tokens", 1, 4096), ("min_stage_tokens", 0, 256), ("resamples", 100, 100_000),
                                ("batch_size", 1, 256)):
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}={getattr(self, name)!r} is out of range: use an integer in [{low}, {high}].")
        if not 0.0 <= self.temperature <= 2.0:
            raise ValueError(f"temperature={self.temperature!r} is out of range: use a value in [0, 2].")
        if self.path is not None:
            ChainShape(self.path)  # raises with the value
        self.jailbreak_families = [parse_family(f).value for f in self.jailbreak_families] if self.jailbreak_families else None

    def generation(self) -> GenerationSettings:
        return GenerationSettings(max_stage_tokens=self.max_stage_tokens, min_stage_tokens=self.min_stage_tokens,
                                  temperature=self.temperature, seed=self.seed,
                                  path=ChainShape(self.path) if self.path else None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlannedPrompt:
    """One thing to ask: a question, possibly inside a jailbreak wrapper."""

    question: Question
    set_name: str
    wrapper: str | None
    prompt: str

    @property
    def sample_id(self) -> str:
        return f"{self.question.id}@{self.wrapper}" if self.wrapper else self.question.id


def plan_prompts(settings: EvalSettings) -> list[PlannedPrompt]:
    """Every prompt of the evaluation, in a fixed order; errors name the set and the fix."""
    plan: list[PlannedPrompt] = []
    wrappers = settings.jailbreak_families or [f.value for f in families()]
    for set_name in settings.sets:
        report = load_question_set(set_name)
        questions = [q for q in report.questions][: settings.limit] if settings.limit else list(report.questions)
        if not questions:
            raise ValueError(f"Question set {set_name!r} has no usable question: {report.summary()}")
        unkinded = [q.id for q in questions if q.kind is None]
        if unkinded:
            raise ValueError(f"Question set {set_name!r}: questions {unkinded[:5]} have no kind; evaluation needs "
                             "kind = harmful, helpful or benign on every row (a 'kind' column).")
        plan += [PlannedPrompt(q, set_name, None, q.text) for q in questions]
        harmful = [q for q in questions if q.kind is QuestionKind.HARMFUL][: settings.jailbreak_prompts]
        plan += [PlannedPrompt(q, set_name, w, wrap(q.text, w)) for q in harmful for w in wrappers]
    ids = [p.sample_id for p in plan]
    if len(ids) != len(set(ids)):
        raise ValueError("Two question sets share question ids: give each set its own ids (e.g. a prefix).")
    return plan


def answer_prompts(subject: Any, plan: Sequence[PlannedPrompt], settings: EvalSettings, *, done: set[str],
                   on_answer: Callable[[Answer], None], should_stop: ShouldStop = lambda: False,
                   progress: Progress = no_progress) -> bool:
    """Ask `subject` (a core.decoding.subjects.ChatSubject) every planned prompt not in `done`.
    Returns True when stopped early; every finished answer has already reached `on_answer`.
    `progress` counts answers of the whole plan, from before the first one is written."""
    generation = settings.generation()
    todo = [p for p in plan if p.sample_id not in done]
    finished = len(plan) - len(todo)
    progress(finished, len(plan), f"answering {finished}/{len(plan)}")
    replies = subject.answer_many([p.prompt for p in todo], generation, batch_size=settings.batch_size, should_stop=should_stop)
    for index, reply in replies:
        planned = todo[index]
        on_answer(Answer(
            question_id=planned.question.id, kind=planned.question.kind.value, category=planned.question.category,
            question=planned.question.text, answer=reply.answer, prompt=planned.prompt, wrapper=planned.wrapper,
            stages=reply.stage_texts(), stage_tokens=reply.stage_tokens(),
            shape=reply.shape.value if reply.shape is not None else "", finish_reason=reply.finish_reason,
        ))
        finished += 1
        progress(finished, len(plan), f"answering {finished}/{len(plan)}")
    return finished < len(plan)


def aspects_for(answer: Answer) -> tuple[Aspect, ...]:
    """The aspects an answer is judged on (module docstring)."""
    if answer.kind == QuestionKind.HARMFUL.value:
        return (Aspect.SAFETY, Aspect.REFUSAL) if answer.wrapper else (Aspect.SAFETY, Aspect.HELPFULNESS, Aspect.REFUSAL)
    if answer.kind == QuestionKind.HELPFUL.value:
        return (Aspect.HELPFULNESS, Aspect.REFUSAL)
    return (Aspect.REFUSAL,)


def judge_answers(judge: Judge, answers: Iterable[Answer], *, done: set[tuple[str, str]],
                  on_verdicts: Callable[[list[Verdict]], None], should_stop: ShouldStop = lambda: False,
                  batch: int = 16, progress: Progress = no_progress) -> bool:
    """Judge every (answer, aspect) the judge supports and `done` lacks, a batch at a time.
    `done` holds (sample_id, aspect value) pairs already stored. Returns True when stopped.
    `progress` counts the verdicts this call gives, from before the first batch."""
    by_aspect: dict[Aspect, list[Answer]] = {}
    for answer in answers:
        for aspect in aspects_for(answer):
            if aspect in judge.aspects and (answer.sample_id, aspect.value) not in done:
                by_aspect.setdefault(aspect, []).append(answer)
    total, finished = sum(len(v) for v in by_aspect.values()), 0
    progress(0, total, f"judging with {judge.id} 0/{total}")
    for aspect, pending in by_aspect.items():
        for start in range(0, len(pending), batch):
            if should_stop():
                return True
            chunk = pending[start:start + batch]
            verdicts = judge.judge(chunk, aspect)
            if len(verdicts) != len(chunk):
                raise RuntimeError(f"Judge {judge.id} returned {len(verdicts)} verdicts for {len(chunk)} answers.")
            on_verdicts(verdicts)
            finished += len(chunk)
            progress(finished, total, f"judging {aspect.value} with {judge.id} {finished}/{total}")
    return False
