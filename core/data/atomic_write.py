"""Write a file so that readers see the old content or the whole new one, never a part.

Why this shape (SQLite's and PostgreSQL's habit): the bytes go to a temp file created in the
destination folder (a rename is atomic only within one file system) with O_CREAT|O_EXCL, so the
open fails rather than writing through anything already at that name, such as a symlink planted
by another user of a shared folder; the temp name is random, so it cannot be predicted either.
The data is fsynced before the rename and the folder after it, so a power cut leaves the old or
the new file. A failure removes the temp file: no stray .partial is left behind.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

_TEMP_SUFFIX = ".partial"
_ATTEMPTS = 8
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)


def _create_exclusive(folder: Path, name: str) -> tuple[int, Path]:
    for _ in range(_ATTEMPTS):
        temp = folder / f".{name}.{secrets.token_hex(8)}{_TEMP_SUFFIX}"
        try:
            return os.open(temp, _OPEN_FLAGS, 0o644), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temp file next to {folder / name} ({_ATTEMPTS} names were taken): "
                          "check what is writing into that folder.")


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a folder; the rename is still atomic
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically (see the module docstring); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp = _create_exclusive(path.parent, path.name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path
