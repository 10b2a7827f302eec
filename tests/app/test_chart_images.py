"""Report charts reach the gallery as images, so a data directory outside the working directory
and the temp folder (Gradio's only servable places) still shows them."""
from __future__ import annotations

from types import SimpleNamespace

from PIL import Image

from app.chart_images import gallery_items


def test_charts_become_images_with_their_captions_and_missing_files_are_skipped(tmp_path):
    path = tmp_path / "harm.png"
    Image.new("RGB", (30, 20), "red").save(path)
    charts = [SimpleNamespace(path=str(path), caption="Harm"), SimpleNamespace(path=str(tmp_path / "gone.png"), caption="x")]
    [(image, caption)] = gallery_items(charts)
    assert caption == "Harm" and image.size == (30, 20) and image.getpixel((0, 0)) == (255, 0, 0)
    path.unlink()  # the image does not hold the file: a rewritten report can replace it
    assert gallery_items(charts) == []
