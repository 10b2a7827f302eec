"""Prompting subjects (the paper's Table 3): a model that answers through a pipeline of prompts.

Why: Table 3 asks how much of MoTE's gain the structured prompting alone gives, before any
training. A prompting subject answers each question with a few plain chat turns built from the
stage templates that self-generation uses (core.synthesis.prompts, read through its public
functions: the same files, so the comparison measures the prompts the chains were written
with), each turn run for a whole batch of questions at once as plain completions on the one
scheduler (core.decoding.completions). The last turn's text is the answer the judges see; the
earlier turns are kept as the reply's reasoning stages for the drill-down.

    plain             answer(question)
    cot               answer(question), the reply opened with "Let's think step by step."
                      (zero-shot chain of thought, Kojima et al. 2022); the answer is what follows
    critique-revise   draft = answer(question); critique(question, draft); revise(question, draft,
                      critique) -- critique and revise are assets/prompts/pipelines/*.txt
    analysis-answer   analysis(question); answer(question, analysis)
    guidance-answer   guidance(question, no analysis); answer(question, guidance)
    aligncot          analysis(question); guidance(question, analysis); answer(question, analysis, guidance)

A trained run answers the same way, every turn written by its answer expert (plus the shared
one), as a plain chat turn without stage markers.
"""
from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from core.decoding.chain_programs import GenerationSettings, StageEvent, StageEventKind
from core.decoding.completions import Completion, CompletionRequest, FinishReason, LocalGenerator, TextGenerator
from core.decoding.sampling import fresh_seed
from core.decoding.scheduler import mote_forward
from core.decoding.subject_ref import PromptingPipeline, SubjectRef, SubjectRefKind
from core.decoding.subjects import BaseSubject, ChatSubject, MoteSubject, Say, StageText, SubjectReply, load_subject
from core.experts.model import MoteModel
from core.stages import ChainShape, Stage
from core.synthesis.prompts import PROMPTS_DIR, PromptSet, StageTemplate, TemplateError, load_prompt_set, parse_template

#: Templates of the pipelines that are not AlignCoT stages (critique-then-revise).
PIPELINE_PROMPTS_DIR = PROMPTS_DIR / "pipelines"
PIPELINE_TEMPLATE_NAMES = ("critique", "revise")
#: The zero-shot chain-of-thought trigger (Kojima et al. 2022, "Large Language Models are Zero-Shot Reasoners").
ZERO_SHOT_COT_TRIGGER = "Let's think step by step."
#: What guidance-answer puts in the guidance template's {analysis}: that pipeline writes no analysis.
NO_ANALYSIS = "(none was written: base the guidance on the question alone)"

GeneratorFactory = Callable[[int], TextGenerator]
"""A text generator that decodes `batch_size` requests together."""


@dataclass(frozen=True)
class PromptStep:
    """One chat turn of a pipeline."""

    output: str
    """The name its text is passed to later turns under ({analysis}, {guidance}, {draft}, {critique})."""
    template: str
    """The template it fills: a stage template or one of PIPELINE_TEMPLATE_NAMES."""
    stage: Stage
    """The reply stage it is shown as; turns sharing a stage are shown as one, under their headings."""
    heading: str
    response_prefix: str = ""
    """Text the reply is opened with (not part of the answer); else the template's assistant_prefix."""
    fixed_values: tuple[tuple[str, str], ...] = ()


_ANALYSIS = PromptStep("analysis", "analysis", Stage.ANALYSIS, "Analysis")
_GUIDANCE = PromptStep("guidance", "guidance", Stage.GUIDANCE, "Guidance")
_ANSWER = PromptStep("answer", "answer", Stage.ANSWER, "Answer")

PIPELINE_STEPS: dict[PromptingPipeline, tuple[PromptStep, ...]] = {
    PromptingPipeline.PLAIN: (_ANSWER,),
    PromptingPipeline.COT: (PromptStep("answer", "answer", Stage.ANSWER, "Answer", response_prefix=ZERO_SHOT_COT_TRIGGER),),
    # The draft and its critique are both a review of an answer: shown together as the check stage.
    PromptingPipeline.CRITIQUE_REVISE: (PromptStep("draft", "answer", Stage.CHECK, "Draft answer"),
                                        PromptStep("critique", "critique", Stage.CHECK, "Critique"),
                                        PromptStep("answer", "revise", Stage.ANSWER, "Revised answer")),
    PromptingPipeline.ANALYSIS_ANSWER: (_ANALYSIS, _ANSWER),
    PromptingPipeline.GUIDANCE_ANSWER: (PromptStep("guidance", "guidance", Stage.GUIDANCE, "Guidance",
                                                   fixed_values=(("analysis", NO_ANALYSIS),)), _ANSWER),
    PromptingPipeline.ALIGNCOT: (_ANALYSIS, _GUIDANCE, _ANSWER),
}

#: The chain shape a pipeline's stages form, where they form one.
PIPELINE_SHAPES: dict[PromptingPipeline, ChainShape] = {
    PromptingPipeline.PLAIN: ChainShape.ANSWER_ONLY,
    PromptingPipeline.ANALYSIS_ANSWER: ChainShape.ANALYSIS_ANSWER,
    PromptingPipeline.ALIGNCOT: ChainShape.FULL,
}


@dataclass(frozen=True)
class PipelineTemplates:
    """The stage templates (shared with self-generation) and the critique/revise templates."""

    stages: PromptSet
    extra: Mapping[str, StageTemplate]

    def __getitem__(self, name: str) -> StageTemplate:
        return self.extra[name] if name in self.extra else self.stages[name]


def load_pipeline_templates(prompts_folder: str | Path | None = None) -> PipelineTemplates:
    """The stage templates of `prompts_folder` (default: the bundled ones self-generation uses)
    and the critique/revise templates of its pipelines/ subfolder (default: the bundled ones)."""
    stages = load_prompt_set(prompts_folder)
    folder = Path(prompts_folder) / "pipelines" if prompts_folder else PIPELINE_PROMPTS_DIR
    extra = {}
    for name in PIPELINE_TEMPLATE_NAMES:
        path = folder / f"{name}.txt"
        if not path.is_file():
            raise TemplateError(f"Prompt folder {folder} has no {name}.txt; copy it from {PIPELINE_PROMPTS_DIR}.")
        extra[name] = parse_template(name, path.read_text(encoding="utf-8"))
    return PipelineTemplates(stages, extra)


class RoutedLocalGenerator(LocalGenerator):
    """LocalGenerator for a trained run: every token is routed by its stage id, and plain
    completions carry the answer stage's id, so the answer expert (plus the shared one) writes."""

    def __init__(self, mote: MoteModel, *, batch_size: int, model_id: str) -> None:
        super().__init__(mote.model, mote.tokenizer, batch_size=batch_size, model_id=model_id)
        self._forward = mote_forward(mote)  # replaces the plain causal-LM step LocalGenerator set up


def generator_factory(subject: ChatSubject) -> GeneratorFactory:
    """How `subject`'s model writes plain completions, `batch_size` at a time."""
    if isinstance(subject, BaseSubject):
        return lambda batch_size: LocalGenerator(subject.model, subject.tokenizer, batch_size=batch_size, model_id=subject.label)
    if isinstance(subject, MoteSubject):
        return lambda batch_size: RoutedLocalGenerator(subject.mote, batch_size=batch_size, model_id=subject.label)
    raise TypeError(f"{type(subject).__name__} {subject.label!r} cannot write plain completions: prompt a base model "
                    "or a trained run.")


class PromptingSubject(ChatSubject):
    """A model answering through a prompting pipeline (module docstring). `settings`: each turn's
    token limit is `settings.limit(stage)` of the stage it is shown as; temperature, top_p and the
    seed apply to every turn (turn n samples with seed + n); system_prompt, path and
    min_stage_tokens do not apply (the templates carry their own system prompts)."""

    def __init__(self, pipeline: PromptingPipeline, generator_for: GeneratorFactory, *, label: str,
                 templates: PipelineTemplates | None = None, inner: ChatSubject | None = None) -> None:
        super().__init__()
        self.pipeline, self.generator_for, self.label = pipeline, generator_for, label
        self.templates = templates or load_pipeline_templates()
        self.steps = PIPELINE_STEPS[pipeline]
        self.inner = inner
        """The subject whose model writes the turns (kept so its model stays loaded)."""
        self.kind = inner.kind if inner is not None else BaseSubject.kind

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase | None:
        """The tokenizer of the model that writes the turns (the server counts prompt tokens with
        it, core.serving.limits); None when no local model writes them."""
        if isinstance(self.inner, BaseSubject):
            return self.inner.tokenizer
        if isinstance(self.inner, MoteSubject):
            return self.inner.mote.tokenizer
        return None

    def completion_budget(self, settings: GenerationSettings) -> int:
        """Every turn of the pipeline at its stage's limit (a critique-revise reply writes three)."""
        return sum(settings.limit(step.stage) for step in self.steps)

    @classmethod
    def around(cls, inner: ChatSubject, pipeline: PromptingPipeline, *, label: str | None = None,
               templates: PipelineTemplates | None = None) -> PromptingSubject:
        """`inner`'s model answering through `pipeline`."""
        return cls(pipeline, generator_factory(inner), label=label or f"prompt:{pipeline.value}:{inner.label}",
                   templates=templates, inner=inner)

    def request(self, step: PromptStep, number: int, values: Mapping[str, str], settings: GenerationSettings,
                seed: int, key: int) -> CompletionRequest:
        """Turn `number` of one question, filled from the question and the earlier turns' texts."""
        template = self.templates[step.template]
        messages = template.messages(**{**values, **dict(step.fixed_values)})
        return CompletionRequest(messages, settings.limit(step.stage), response_prefix=step.response_prefix or template.assistant_prefix,
                                 temperature=settings.temperature, top_p=settings.top_p, seed=seed + number,
                                 stage=step.output, key=key)

    def _generate(self, question: str, settings: GenerationSettings, reply: SubjectReply) -> Iterator[StageEvent]:
        """One question, turn by turn; each stage's events are sent once its turns are done."""
        run = _PipelineRun(self, [question], settings, batch_size=1)
        shown = 0
        try:
            for number in run.turns(lambda: False):
                finished = self.steps[number + 1].stage is not self.steps[number].stage if number + 1 < len(self.steps) else True
                if not finished:
                    continue
                stages = run.replies[0].stages
                for part in stages[shown:]:
                    yield from _stage_events(part)
                shown = len(stages)
        finally:
            _copy_reply(run.replies[0], reply)

    def _answer_batched(self, parsed: list[tuple[str, GenerationSettings]], batch_size: int,
                        should_stop: Callable[[], bool]) -> Iterator[tuple[int, SubjectReply]]:
        """`batch_size` questions at a time (with the same settings), each turn decoded as one batch."""
        for start in range(0, len(parsed), batch_size):
            chunk = parsed[start:start + batch_size]
            # system_prompt does not apply, so questions that differ only there share their turns
            groups = itertools.groupby(range(len(chunk)), key=lambda i: dataclasses.replace(chunk[i][1], system_prompt=None))
            for _, indices in groups:
                indices = list(indices)
                run = _PipelineRun(self, [chunk[i][0] for i in indices], chunk[indices[0]][1], batch_size=batch_size)
                for _ in run.turns(should_stop):
                    pass
                if not run.complete:
                    return
                for index, reply in zip(indices, run.replies):
                    yield start + index, reply


class _PipelineRun:
    """One pipeline over a list of questions: its turns, one batch each, and the replies so far."""

    def __init__(self, subject: PromptingSubject, questions: Sequence[str], settings: GenerationSettings, *,
                 batch_size: int) -> None:
        self.subject, self.settings = subject, settings
        self.generator = subject.generator_for(batch_size)
        seeds = [settings.seed if settings.seed is not None else fresh_seed() for _ in questions]
        self.values = [{"question": question} for question in questions]
        self.replies = [SubjectReply(seed=seed, shape=None) for seed in seeds]
        self.done: list[list[tuple[PromptStep, Completion]]] = [[] for _ in questions]
        self.complete = False

    def turns(self, should_stop: Callable[[], bool]) -> Iterator[int]:
        """Run each turn for every question; yields the turn's number once all its answers are in."""
        for number, step in enumerate(self.subject.steps):
            requests = [self.subject.request(step, number, values, self.settings, reply.seed, index)
                        for index, (values, reply) in enumerate(zip(self.values, self.replies))]
            completions = _complete(self.generator, requests, should_stop)
            if completions is None:
                return
            for index, (request, completion) in enumerate(zip(requests, completions)):
                self.values[index][step.output] = completion.text
                self.done[index].append((step, completion))
                self._fill(index, request)
            yield number
        self.complete = True

    def _fill(self, index: int, request: CompletionRequest) -> None:
        reply, turns = self.replies[index], self.done[index]
        reply.stages = [_stage_text(stage, list(group)) for stage, group in itertools.groupby(turns, key=lambda t: t[0].stage)]
        reply.completion_tokens = sum(completion.tokens for _, completion in turns)
        if isinstance(self.generator, LocalGenerator):
            reply.prompt_tokens += len(self.generator.prompt_ids(request))
        if len(turns) == len(self.subject.steps):
            reply.shape = PIPELINE_SHAPES.get(self.subject.pipeline)


def _stage_text(stage: Stage, turns: list[tuple[PromptStep, Completion]]) -> StageText:
    """One reply stage from its turns; several turns are shown under their headings."""
    if len(turns) == 1:
        text = turns[0][1].text
    else:
        text = "\n\n".join(f"{step.heading}:\n{completion.text}" for step, completion in turns)
    return StageText(stage, "+".join(step.output for step, _ in turns), text,
                     tokens=sum(completion.tokens for _, completion in turns),
                     hit_limit=any(completion.finish_reason == FinishReason.LENGTH.value for _, completion in turns))


def _stage_events(part: StageText) -> Iterator[StageEvent]:
    yield StageEvent(StageEventKind.START, part.stage, expert=part.expert)
    if part.text:
        yield StageEvent(StageEventKind.TEXT, part.stage, part.text, part.expert)
    yield StageEvent(StageEventKind.END, part.stage, part.text, part.expert)


def _copy_reply(source: SubjectReply, target: SubjectReply) -> None:
    target.stages, target.shape, target.seed = source.stages, source.shape, source.seed
    target.prompt_tokens, target.completion_tokens = source.prompt_tokens, source.completion_tokens


def _complete(generator: TextGenerator, requests: Sequence[CompletionRequest],
              should_stop: Callable[[], bool]) -> list[Completion] | None:
    """Every request's completion in order (request keys are their positions), or None when stopped."""
    pending = list(reversed(requests))
    done: dict[int, Completion] = {}
    generator.run(lambda: pending.pop() if pending else None,
                  lambda request, completion: done.__setitem__(request.key, completion), should_stop)
    if len(done) < len(requests):
        if should_stop():
            return None
        raise RuntimeError(f"Generator {generator.id} returned without completing {len(requests) - len(done)} request(s).")
    return [done[request.key] for request in requests]


def load_prompting_subject(ref: SubjectRef, *, home: Path | None = None, say: Say = print,
                           templates: PipelineTemplates | None = None) -> PromptingSubject:
    """The subject a 'prompt:PIPELINE:SUBJECT' reference names (its inner subject loaded by
    core.decoding.subjects.load_subject; a job: inside must be resolved to its run folder first)."""
    if ref.kind is not SubjectRefKind.PROMPT:
        raise ValueError(f"'{ref}' is not a prompting reference: write prompt:<pipeline>:<subject>.")
    inner = load_subject(ref.inner, home=home, say=say)
    return PromptingSubject.around(inner, ref.pipeline, label=ref.label, templates=templates)


def load_any_subject(spec: str | SubjectRef, *, home: Path | None = None, say: Say = print) -> ChatSubject:
    """Every subject spelling, prompting pipelines included: what the evaluate job and the server load."""
    ref = spec if isinstance(spec, SubjectRef) else SubjectRef.parse(spec)
    if ref.kind is SubjectRefKind.PROMPT:
        return load_prompting_subject(ref, home=home, say=say)
    return load_subject(ref, home=home, say=say)
