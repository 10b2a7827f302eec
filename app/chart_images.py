"""Report charts as images for a gallery, not as file paths.

Why: a report's charts live in the data directory (HOME/runs/job-N/report/...), and Gradio
serves a returned path only from the working directory, the temp folder or `allowed_paths`; with
`--home` anywhere else the Evaluate tab failed with InvalidPathError. Widening allowed_paths to
the runs folder would also expose run files (weights, chains) through Gradio's file route on a
demo link, so the pixels are handed over instead and Gradio caches them itself.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from PIL import Image


class Chart(Protocol):
    path: str
    caption: str


def gallery_items(charts: Iterable[Chart]) -> list[tuple[Image.Image, str]]:
    """(image, caption) for each chart whose file exists (a report being rewritten may lack one)."""
    items = []
    for chart in charts:
        path = Path(chart.path)
        if not path.is_file():
            continue
        with Image.open(path) as image:
            image.load()
            items.append((image.copy(), chart.caption))
    return items
