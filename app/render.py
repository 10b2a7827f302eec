"""HTML the tabs show: chat panes as collapsible stage blocks, the training progress bar, and the
app's CSS (Gradio 6 takes it at launch).

Why each streamed piece is its own <span>: with "colour by expert" on, every token shows which
expert wrote it (the span carries the expert as a class and a tooltip), and with it off the
spans are plain text. All model and user text is escaped.
"""
from __future__ import annotations

import html
import re

from collections.abc import Sequence

from app.chat_runtime import ChatTurn, PaneState, StageBlock

STAGE_COLOURS = {"analysis": "#3b82f6", "guidance": "#a855f7", "answer": "#10b981", "check": "#f59e0b"}
EXPERT_CLASSES = ("analysis", "guidance", "answer", "base")
#: What each token colour means, for the legend (class suffix, legend text).
EXPERT_LEGEND = (("analysis", "analysis expert"), ("guidance", "guidance expert"), ("answer", "answer expert"),
                 ("base", "base model (no expert)"), ("other", "other"))

CSS = """
.mote-pane {min-height: 120px}
.mote-pane .pane-title {font-weight: 600; margin-bottom: 4px}
.mote-pane .pane-status {color: var(--body-text-color-subdued); font-size: 0.85em; margin-bottom: 6px}
.mote-pane details.stage {border-left: 4px solid var(--stage-colour, #999); padding: 2px 8px; margin: 6px 0;
  background: var(--block-background-fill)}
.mote-pane details.stage summary {cursor: pointer; font-weight: 600}
.mote-pane details.stage summary code {font-weight: 400}
.mote-pane .stage-text {white-space: pre-wrap; overflow-wrap: anywhere; margin-top: 4px}
.mote-pane .verdict {margin-top: 6px; font-weight: 600}
.mote-pane .verdict.safe {color: #059669}
.mote-pane .verdict.unsafe {color: #dc2626}
.mote-pane .check-text {color: var(--body-text-color-subdued); font-size: 0.85em; white-space: pre-wrap}
.mote-pane .stage-cut {color: #b45309; font-size: 0.85em; margin-top: 4px}
.mote-pane .turn + .turn {border-top: 1px solid var(--border-color-primary); margin-top: 10px; padding-top: 8px}
.mote-pane .turn-question {font-weight: 600; white-space: pre-wrap; overflow-wrap: anywhere}
.mote-pane .turn-question::before {content: "you: "; color: var(--body-text-color-subdued); font-weight: 400}
.expert-legend {display: flex; flex-wrap: wrap; gap: 6px 14px; font-size: 0.85em}
.expert-legend .tok {padding: 0 6px; border-radius: 3px}
.mote-pane .pane-error {color: #dc2626; white-space: pre-wrap}
.mote-pane .pane-seed {color: var(--body-text-color-subdued); font-size: 0.8em; margin-top: 6px}
.colour-experts .tok.x-analysis, .expert-legend .tok.x-analysis {background: rgba(59,130,246,.22)}
.colour-experts .tok.x-guidance, .expert-legend .tok.x-guidance {background: rgba(168,85,247,.22)}
.colour-experts .tok.x-answer, .expert-legend .tok.x-answer {background: rgba(16,185,129,.22)}
.colour-experts .tok.x-base, .expert-legend .tok.x-base {background: rgba(120,120,120,.22)}
.colour-experts .tok.x-other, .expert-legend .tok.x-other {background: rgba(245,158,11,.22)}
.mote-progress {height: 10px; background: var(--block-background-fill); border-radius: 5px; overflow: hidden}
.mote-progress > div {height: 100%; background: var(--color-accent)}
#jobs-detail textarea, #jobs-log textarea, #train-log textarea {font-family: var(--font-mono); font-size: 0.85em}
.mote-notice {border-left: 4px solid #f59e0b; padding: 4px 10px}
@media (max-width: 640px) {#intro {display: none}}
"""


def expert_class(expert: str) -> str:
    """'analysis + shared' -> 'x-analysis'; an unknown expert name -> 'x-other'."""
    first = re.split(r"[^a-z]+", expert.lower().strip())[0] if expert.strip() else ""
    return f"x-{first}" if first in EXPERT_CLASSES else "x-other"


def _block(block: StageBlock) -> str:
    css = expert_class(block.expert)
    title = html.escape(f"expert: {block.expert}")
    text = "".join(f'<span class="tok {css}" title="{title}">{html.escape(piece)}</span>' for piece in block.pieces)
    state = "" if block.done else " (writing…)"
    cut = (f'<div class="stage-cut">cut at the token limit ({block.tokens} tokens): raise "max tokens per stage" '
           f'to read on</div>') if block.cut else ""
    return (f'<details class="stage stage-{block.stage}" open style="--stage-colour: {STAGE_COLOURS.get(block.stage, "#999")}">'
            f'<summary>{html.escape(block.label)} · expert <code>{html.escape(block.expert)}</code>{state}</summary>'
            f'<div class="stage-text">{text}</div>{cut}</details>')


def expert_legend() -> str:
    """What the token colours mean (shown while "colour tokens by expert" is on)."""
    items = "".join(f'<span class="tok x-{name}">{html.escape(text)}</span>' for name, text in EXPERT_LEGEND)
    return f'<div class="expert-legend"><span>token colours:</span>{items}</div>'


def _reply(pane: PaneState) -> list[str]:
    """One reply's inner parts: status, a collapsible block per stage, the self-check, the seed."""
    parts = [f'<div class="pane-status">{html.escape(pane.status)}</div>']
    parts += [_block(block) for block in pane.blocks]
    if pane.check is not None:
        check = pane.check
        parts.append(f'<details class="stage stage-check" open style="--stage-colour: {STAGE_COLOURS["check"]}">'
                     f'<summary>Safety Checking · no expert (base weights)</summary>'
                     f'<div class="verdict {check.verdict}">verdict: {check.verdict} · P(unsafe) = {check.p_unsafe:.2f}</div>'
                     f'<div class="check-text">the checker\'s probability of " unsafe" against " safe" after '
                     f'"VERDICT:"; unsafe from {check.threshold:.2f}</div></details>')
    if pane.error:
        parts.append(f'<div class="pane-error">{html.escape(pane.error)}</div>')
    if pane.seed is not None:
        parts.append(f'<div class="pane-seed" title="type it into the seed field to get this reply again">seed {pane.seed}</div>')
    return parts


def render_pane(pane: PaneState | None, colour: bool = False, placeholder: str = "") -> str:
    """One chat pane with one reply: title, status, stage blocks, self-check verdict, and the
    sampling seed in its footer (so a sampled reply can be reproduced)."""
    if pane is None:
        return f'<div class="mote-pane"><div class="pane-status">{html.escape(placeholder)}</div></div>'
    return "".join([f'<div class="mote-pane{" colour-experts" if colour else ""}">',
                    f'<div class="pane-title">{html.escape(pane.title or pane.spec)}</div>', *_reply(pane)]) + "</div>"


def render_conversation(turns: Sequence[ChatTurn], index: int, colour: bool = False, placeholder: str = "") -> str:
    """Pane `index` over a whole conversation: each turn's question, then that pane's reply with
    its stage blocks (earlier turns stay as they were)."""
    replies = [(turn.question, turn.panes[index] if index < len(turn.panes) else None) for turn in turns]
    if not any(reply for _, reply in replies):
        return render_pane(None, placeholder=placeholder)
    title = next(reply.title or reply.spec for _, reply in reversed(replies) if reply is not None)
    parts = [f'<div class="mote-pane{" colour-experts" if colour else ""}">',
             f'<div class="pane-title">{html.escape(title)}</div>']
    for question, reply in replies:
        body = _reply(reply) if reply is not None else ['<div class="pane-status">no model in this pane for this turn</div>']
        parts.append(f'<div class="turn"><div class="turn-question">{html.escape(question)}</div>{"".join(body)}</div>')
    return "".join(parts) + "</div>"


def progress_bar(fraction: float, text: str) -> str:
    width = max(0.0, min(1.0, fraction)) * 100
    return f'<div class="mote-progress"><div style="width: {width:.1f}%"></div></div><div>{html.escape(text)}</div>'


def notice(text: str) -> str:
    return f'<div class="mote-notice">{html.escape(text)}</div>' if text else ""
