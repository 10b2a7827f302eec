"""Markdown the app shows as it was written: no e-mail links made out of metric names.

Why: Gradio renders Markdown with GitHub's extensions, which turn any `word@word.word` into a
mailto link, so the metric "goodness@0.1" in an evaluation report showed as an e-mail address.
The '@' of such text is written as the HTML entity `&#64;`: it reads the same, and the autolink
rule, which looks at the raw text, no longer matches. Code spans and fenced blocks are left as
they are (an entity there would show literally, and they are never autolinked anyway).
"""
from __future__ import annotations

import re

#: Code that Markdown shows verbatim: fenced blocks, then inline code spans (any backtick run).
_CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$|(`+).+?\2", re.DOTALL | re.MULTILINE)
#: The '@' of GitHub's extended e-mail autolink: local part, '@', dotted domain.
_AUTOLINK_AT = re.compile(r"(?<=[A-Za-z0-9._+-])@(?=[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+)")
AT_ENTITY = "&#64;"


def without_autolinks(markdown: str) -> str:
    """`markdown` with every text an e-mail autolink would take (like "goodness@0.1") kept as text."""
    parts, start = [], 0
    for code in _CODE.finditer(markdown):
        parts += [_AUTOLINK_AT.sub(AT_ENTITY, markdown[start:code.start()]), code.group(0)]
        start = code.end()
    parts.append(_AUTOLINK_AT.sub(AT_ENTITY, markdown[start:]))
    return "".join(parts)
