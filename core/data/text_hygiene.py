"""Invisible and unsafe characters in imported text: what is stripped, what rejects a row.

Why: a question set feeds generation, training and evaluation, and a person reviews it on screen.
Text a person cannot see (NULs, zero-width spaces, BOMs, terminal escapes) is noise to strip; a
question made only of it is empty and rejected. Bidi overrides and isolates are rejected rather
than stripped: they make a prompt display in another order than the model reads it (the "Trojan
Source" trick), so the row is shown to the importer instead of being silently rewritten. A lone
surrogate is not valid Unicode and cannot be written as UTF-8, so its row is rejected.

Kept on purpose: tab and newline; zero-width joiner/non-joiner (U+200D/U+200C, needed by emoji
sequences and by Persian and Indic scripts); left-to-right/right-to-left marks (U+200E/U+200F,
ordinary in right-to-left text and unable to reorder what follows).
"""
from __future__ import annotations

import functools
import re
import sys
import unicodedata

#: Terminal escape sequences removed whole, so no '[31m' is left behind: CSI (ESC [ ... final
#: byte) and terminated OSC (ESC ] ... BEL or ESC \\); a stray ESC is stripped as a control.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")
#: Bidi embeddings, overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Format characters that are kept (see the module docstring).
_KEPT_FORMAT = frozenset("\u200c\u200d\u200e\u200f")
_KEPT_CONTROL = frozenset("\t\n\r")
#: A visible character is a letter, number, punctuation mark or symbol.
_VISIBLE_CATEGORIES = ("L", "N", "P", "S")


class UnsafeText(ValueError):
    """Text that must reject its row; the message is the reason shown to the importer."""


def _is_invisible(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cc":
        return char not in _KEPT_CONTROL
    if category == "Cf":
        return char not in _KEPT_FORMAT and char not in BIDI_CONTROLS
    return False


@functools.cache
def _invisible_characters() -> re.Pattern[str]:
    """One character class of every stripped code point (built once: a regex strips a 16 Mi
    character field in milliseconds, where a per-character loop takes seconds)."""
    ranges: list[list[int]] = []
    for code in range(sys.maxunicode + 1):
        if _is_invisible(chr(code)):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    parts = (re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)
    return re.compile("[" + "".join(parts) + "]+")


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_BIDI_CONTROL = re.compile("[" + "".join(sorted(BIDI_CONTROLS)) + "]")


def clean_text(text: str, what: str = "text") -> str:
    """`text` without control and invisible characters; raises UnsafeText for a lone surrogate
    or a bidi control. `what` names the field in the reason ('question', 'id', ...)."""
    surrogate = _LONE_SURROGATE.search(text)
    if surrogate is not None:
        raise UnsafeText(f"{what} holds a lone surrogate (U+{ord(surrogate.group()):04X}), which is not valid "
                         "Unicode: fix the row, or re-save the file as UTF-8")
    bidi = _BIDI_CONTROL.search(text)
    if bidi is not None:
        raise UnsafeText(f"{what} holds a bidi control character (U+{ord(bidi.group()):04X}), which can make the "
                         "text display in another order than a model reads it: remove it")
    return _invisible_characters().sub("", _ANSI_ESCAPE.sub("", text))


def has_visible_text(text: str) -> bool:
    """True when a person would see something: at least one letter, number, punctuation or symbol."""
    return any(unicodedata.category(char)[0] in _VISIBLE_CATEGORIES for char in text)
