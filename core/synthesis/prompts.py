"""Stage prompt templates: plain, versioned text files that users can edit.

Why files: the prompts that write a self-alignment dataset decide its quality, so they must be
readable, editable in the UI, and recorded (by hash) with every chain they produced.

File format: `# ` comment lines on top (one may be `# version: N`), then sections introduced by
`### name` lines: `system`, `user`, optional `assistant_prefix` (text the model continues, for
local models), optional `context_analysis` / `context_guidance` (answer template), and optional
few-shot pairs `example_user` / `example_assistant` (repeatable, in order). Placeholders use
Python format syntax: {question}, {analysis}, {guidance}, {answer}, {context}.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from core.paths import ASSETS_DIR

PROMPTS_DIR = ASSETS_DIR / "prompts"
TEMPLATE_NAMES = ("analysis", "guidance", "answer", "check")
_SECTION = re.compile(r"^### (\w+)\s*$")
_KNOWN = {"system", "user", "assistant_prefix", "context_analysis", "context_guidance", "example_user", "example_assistant"}


class TemplateError(ValueError):
    """A template file that cannot be used; the message names the file and the fix."""


@dataclass
class StageTemplate:
    """One stage's prompt."""

    name: str
    text: str
    version: str
    sections: dict[str, str]
    examples: list[tuple[str, str]] = field(default_factory=list)

    def messages(self, exemplars: int = 0, **values: str) -> list[dict[str, str]]:
        """Chat messages for this stage: system, the first `exemplars` few-shot pairs, user.
        Generation only: training sees the bare question (context distillation)."""
        values = {**values, "context": self._context(values)}
        messages = []
        if self.sections.get("system"):
            messages.append({"role": "system", "content": self._fill("system", self.sections["system"], values)})
        for user, assistant in self.examples[:exemplars]:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        messages.append({"role": "user", "content": self._fill("user", self.sections["user"], values)})
        return messages

    @property
    def assistant_prefix(self) -> str:
        return self.sections.get("assistant_prefix", "").strip()

    def _context(self, values: dict[str, str]) -> str:
        parts = []
        for stage in ("analysis", "guidance"):
            if values.get(stage) and f"context_{stage}" in self.sections:
                parts.append(self._fill(f"context_{stage}", self.sections[f"context_{stage}"], values))
        return "".join(parts)

    def _fill(self, section: str, text: str, values: dict[str, str]) -> str:
        try:
            return text.format(**values).strip() + ("\n\n" if section.startswith("context_") else "")
        except KeyError as error:
            raise TemplateError(
                f"Template {self.name!r}, section {section!r} uses the unknown placeholder {error}; "
                "use {question}, {analysis}, {guidance}, {answer} or {context}."
            ) from None


def parse_template(name: str, text: str) -> StageTemplate:
    """Parse a template's text; errors name the template and what is wrong."""
    sections: dict[str, str] = {}
    examples: list[tuple[str, str]] = []
    version, current, lines = "0", None, []
    pending_user: str | None = None

    def close() -> None:
        nonlocal pending_user
        if current is None:
            return
        body = "\n".join(lines).strip("\n")
        if current == "example_user":
            pending_user = body
        elif current == "example_assistant":
            if pending_user is None:
                raise TemplateError(f"Template {name!r}: an example_assistant section needs an example_user before it.")
            examples.append((pending_user, body))
            pending_user = None
        else:
            sections[current] = body

    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            close()
            current, lines = match.group(1), []
            if current not in _KNOWN:
                raise TemplateError(f"Template {name!r}: unknown section '### {current}'; use one of {sorted(_KNOWN)}.")
        elif current is None:
            if line.startswith("# version:"):
                version = line.split(":", 1)[1].strip()
        else:
            lines.append(line)
    close()
    if not sections.get("user", "").strip():
        raise TemplateError(f"Template {name!r} has no '### user' section; add one with the stage's instruction.")
    return StageTemplate(name, text, version, sections, examples)


@dataclass
class PromptSet:
    """The four stage templates used for one generation run."""

    templates: dict[str, StageTemplate]

    def __getitem__(self, name: str) -> StageTemplate:
        return self.templates[name]

    @property
    def hash(self) -> str:
        """Short content hash recorded with every chain, so a dataset names its prompts."""
        digest = hashlib.sha256()
        for name in TEMPLATE_NAMES:
            digest.update(name.encode() + b"\0" + self.templates[name].text.encode() + b"\0")
        return digest.hexdigest()[:16]

    @property
    def versions(self) -> dict[str, str]:
        return {name: template.version for name, template in self.templates.items()}


OPENINGS_FILE = "openings.txt"


def load_openings(folder: str | Path | None = None) -> list[str]:
    """Declining answer openings, one a line (`#` comments skipped), from `folder`/openings.txt,
    else the bundled file. Each is the start of a Safe Answer; the model writes the rest."""
    path = Path(folder) / OPENINGS_FILE if folder else PROMPTS_DIR / OPENINGS_FILE
    path = path if path.exists() else PROMPTS_DIR / OPENINGS_FILE
    openings = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    if not openings:
        raise TemplateError(f"{path} holds no openings: write one declining answer opening per line.")
    return openings


def load_prompt_set(folder: str | Path | None = None) -> PromptSet:
    """Read analysis/guidance/answer/check templates from `folder` (default: bundled)."""
    folder = Path(folder) if folder else PROMPTS_DIR
    templates = {}
    for name in TEMPLATE_NAMES:
        path = folder / f"{name}.txt"
        if not path.exists():
            raise TemplateError(f"Prompt folder {folder} has no {name}.txt; copy it from {PROMPTS_DIR}.")
        templates[name] = parse_template(name, path.read_text(encoding="utf-8"))
    return PromptSet(templates)
