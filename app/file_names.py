"""Names users give to things the app saves as files (question sets, training configs).

Why one rule: a name becomes a file name in the data directory, so it must not hold path
separators or start with a dot, and both places should say the same thing when it does.
"""
from __future__ import annotations

import re

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def checked_name(name: str | None, what: str) -> str:
    """`name` stripped, or ValueError naming `what` (e.g. 'Set') and the allowed characters."""
    name = (name or "").strip()
    if not _NAME.match(name):
        raise ValueError(f"{what} name {name!r} is not usable: use letters, digits, '_', '-' or '.', "
                         "starting with a letter or digit (at most 64 characters).")
    return name
