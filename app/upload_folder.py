"""Where the browser's uploads land: a folder under the data directory, emptied of old files at
each start, instead of the system temp folder where Gradio would keep them for ever.

Why: an uploaded question file is copied into <home>/question_sets when imported, so the upload
itself is only needed while its page is open; left in /tmp it outlives the app, is readable by
whoever can read /tmp, and piles up. An operator who set GRADIO_TEMP_DIR keeps that folder and
its contents: the app never cleans a folder it did not choose.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

GRADIO_TEMP_ENV = "GRADIO_TEMP_DIR"
UPLOADS_DIR = "uploads"
#: Uploads older than this are removed at start: a page left open longer must upload again.
UPLOAD_MAX_AGE_S = 24 * 3600

_chosen_by_app: set[str] = set()


def _remove_old_files(folder: Path, max_age_s: float) -> int:
    """Delete files older than `max_age_s` under `folder`, then the folders left empty."""
    cutoff, removed = time.time() - max_age_s, 0
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_symlink() or path.is_file():
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        except OSError:  # in use, or removed by another process meanwhile
            continue
    return removed


def use_upload_folder(home: Path, max_age_s: float = UPLOAD_MAX_AGE_S) -> Path:
    """Point Gradio's upload folder at <home>/uploads (unless the operator chose one) and remove
    old uploads from it. Call before the app's Blocks are built: Gradio reads it then."""
    chosen = os.environ.get(GRADIO_TEMP_ENV)
    if chosen and chosen not in _chosen_by_app:
        return Path(chosen)
    folder = (Path(home) / UPLOADS_DIR).resolve()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.environ[GRADIO_TEMP_ENV] = str(folder)
    _chosen_by_app.add(str(folder))
    _remove_old_files(folder, max_age_s)
    return folder
