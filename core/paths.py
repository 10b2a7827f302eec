"""Where the project's bundled files live, found once from this file's place in the tree.

Why one module: modules moved between subpackages used to count `.parent` hops to reach
assets/; a move then silently pointed them at a folder that does not exist.
"""
from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"
DOCS_DIR = PROJECT_ROOT / "docs"
