"""Where a self-written text starts repeating itself, and the text cut back to before that.

Why: a small model decoding greedily often falls into a loop ("use dialogue to convey emotion, use
dialogue to convey emotion, ...") and keeps looping until its token limit. Measured on the
bundled SmolLM2-135M-Instruct's own 320 chains (session 7): 68 of 159 helpful and 15 of 122
harmful Safe Answers ended in such a loop, up to 256 tokens of it. Trained on, they teach the
experts to loop: the trained model answered 32 of 90 evaluation questions with an endless "I'm not
able to help with that. I'm not able to help with that...". A run of `run_words` words said a
second time marks the loop's start; the text is cut back to the last whole sentence before it,
and the decoder can stop there (nothing after the first repeat would be kept).

Six words: a restated phrase ("the volume of a cylinder") is shorter; a looping clause is longer.
On those 320 chains six words trims 127 of 275 kept answers and leaves 4 too short to keep.
"""
from __future__ import annotations

import re

#: A run of this many words said a second time starts a loop (module docstring).
REPEAT_RUN_WORDS = 6
_WORD = re.compile(r"[\w']+")
_SENTENCE_END = re.compile(r"[.!?\u2026][\"')\]*_`]*(?=\s|$)")


def repeat_onset(text: str, run_words: int = REPEAT_RUN_WORDS) -> int | None:
    """Character offset where `text` first says again a run of `run_words` words it already said
    (case and punctuation ignored); None when it never does or `run_words` is 0."""
    if run_words <= 0:
        return None
    words = [(match.group().lower(), match.start()) for match in _WORD.finditer(text)]
    seen: set[tuple[str, ...]] = set()
    for i in range(len(words) - run_words + 1):
        run = tuple(word for word, _ in words[i:i + run_words])
        if run in seen:
            return words[i][1]
        seen.add(run)
    return None


def last_whole_sentences(text: str) -> str:
    """`text` up to the end of its last complete sentence; the whole text, stripped, when it has none."""
    ends = list(_SENTENCE_END.finditer(text))
    return text[:ends[-1].end()].strip() if ends else text.strip().rstrip(",;:-").rstrip()


def trim_repetition(text: str, run_words: int = REPEAT_RUN_WORDS, *, hit_limit: bool = False) -> str:
    """`text` without its loop: cut before the first repeated run, back to a sentence end. With
    `hit_limit` (the decoder ran out of tokens mid-sentence) the unfinished last sentence goes too.
    Unchanged when it neither loops nor hit the limit, or when `run_words` is 0."""
    if run_words <= 0:
        return text
    onset = repeat_onset(text, run_words)
    if onset is not None:
        return last_whole_sentences(text[:onset])
    return last_whole_sentences(text) if hit_limit else text
