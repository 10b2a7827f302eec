"""The last phase of an evaluation: metric tables, comparison reports, charts and judge agreement.

Why one view per judge: two judges (say the heuristic and an LLM) can disagree, and mixing
their scores in one table would hide which number came from where. Each judge gets its own
comparison (subjects x metrics, on the aspects it scores) in its own folder; when there are two
or more judges an agreement report compares them on the same answers (the paper's Table 5).
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evaluation.agreement import compute_agreement
from core.evaluation.charts import plot_comparison, plot_headline
from core.evaluation.headline import Headline, build_headline
from core.evaluation.metrics import MetricTable, compute_metrics
from core.evaluation.report import (
    build_comparison,
    build_drilldown,
    comparison_markdown,
    write_report,
)
from core.evaluation.types import Answer, Aspect, Judge, Verdict
from core.training.sweep import SweepResult

HEADLINE_CHART = "headline.png"


@dataclass
class EvaluationSummary:
    """What an evaluation produced: per judge, each subject's metric table; files written."""

    tables: dict[str, dict[str, MetricTable]] = field(default_factory=dict)
    """judge id -> subject label -> MetricTable."""
    files: dict[str, str] = field(default_factory=dict)
    agreement_markdown: str = ""
    markdown: str = ""
    """Every judge's comparison table, for the job log and the README."""
    warnings: list[str] = field(default_factory=list)
    """Subjects whose answers are mostly degenerate (the same for every judge), in words."""
    headline: Headline | None = None
    """The answer in words, from the main judge's numbers (core.evaluation.headline)."""
    sweep: SweepResult | None = None
    """The study's sweep, when it ran one: every value's held-out loss and the value kept."""

    def to_dict(self) -> dict[str, Any]:
        return {"tables": {j: {s: t.to_dict() for s, t in subjects.items()} for j, subjects in self.tables.items()},
                "files": self.files, "agreement_markdown": self.agreement_markdown, "markdown": self.markdown,
                "warnings": self.warnings,
                "headline": {"judge": self.headline.judge, "sentences": list(self.headline.sentences)} if self.headline else None,
                "sweep": self.sweep.to_dict() if self.sweep else None}

    def opening_markdown(self) -> str:
        """The report's first section: the answer in words and its chart, then the sweep."""
        parts = []
        if self.headline is not None:
            chart = f"\n\n![{HEADLINE_CHART}]({HEADLINE_CHART})" if HEADLINE_CHART in self.files else ""
            parts.append(f"## The answer (judge `{self.headline.judge}`)\n\n{self.headline.to_markdown()}{chart}")
        if self.sweep is not None:
            parts.append(self.sweep.to_markdown())
        return "\n\n".join(parts)


def judge_folder_name(judge_id: str) -> str:
    """A file-system-safe folder name for a judge id such as 'llm:/models/x#y'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", judge_id).strip("_")[:80] or "judge"


def summarise(answers: Mapping[str, Sequence[Answer]], verdicts: Mapping[str, Sequence[Verdict]],
              judges: Sequence[Judge], folder: str | Path, *, resamples: int = 1000, seed: int = 1234,
              sweep: SweepResult | None = None) -> EvaluationSummary:
    """Write the reports of every judge into `folder`; `answers` and `verdicts` are keyed by subject.
    summary.md opens with the answer in words and one chart, from the first judge that scores
    refusals (the main judge), then the sweep (if the study ran one), then every judge's tables."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summary = EvaluationSummary(sweep=sweep)
    drilldown = build_drilldown(answers, verdicts)
    sections = []
    for judge in judges:
        mapping = {aspect: judge.id for aspect in judge.aspects}
        tables = {subject: compute_metrics(answers[subject], verdicts.get(subject, []), mapping,
                                           resamples=resamples, seed=seed) for subject in answers}
        comparison = build_comparison(tables)
        judge_dir = out / judge_folder_name(judge.id)
        written = write_report(comparison, drilldown, judge_dir)
        charts = plot_comparison(comparison, judge_dir / "charts")
        summary.tables[judge.id] = tables
        summary.warnings = summary.warnings or comparison.warnings()
        summary.files.update({f"{judge_dir.name}/{name}": str(path) for name, path in written.items()})
        summary.files.update({f"{judge_dir.name}/charts/{name}.png": str(path) for name, path in charts.paths.items()})
        if summary.headline is None and Aspect.REFUSAL in judge.aspects:
            _add_headline(summary, comparison, judge.id, out)
        kind = "heuristic judge" if judge.heuristic else "judge"
        sections.append(f"### {kind} `{judge.id}`\n\n{comparison_markdown(comparison)}")
    if len(judges) >= 2:
        summary.agreement_markdown = _agreement(judges, verdicts)
        (out / "agreement.md").write_text(summary.agreement_markdown, encoding="utf-8")
        summary.files["agreement.md"] = str(out / "agreement.md")
    summary.markdown = "\n\n".join([summary.opening_markdown()] * bool(summary.opening_markdown()) + sections)
    (out / "summary.md").write_text(summary.markdown + ("\n\n" + summary.agreement_markdown if summary.agreement_markdown else "") + "\n",
                                    encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    summary.files.update({"summary.md": str(out / "summary.md"), "summary.json": str(out / "summary.json")})
    return summary


def _add_headline(summary: EvaluationSummary, comparison, judge_id: str, out: Path) -> None:
    """The headline sentences and chart of one judge's comparison (nothing without base and MoTE)."""
    summary.headline = build_headline(comparison, judge_id)
    if summary.headline is not None:
        chart = plot_headline(comparison, out / HEADLINE_CHART)
        summary.files.update({HEADLINE_CHART: str(path) for path in chart.paths.values()})


def _agreement(judges: Sequence[Judge], verdicts: Mapping[str, Sequence[Verdict]]) -> str:
    """Each later judge against the first, over every subject's answers (ids made unique per subject)."""
    def of(judge: Judge) -> list[Verdict]:
        return [dataclasses.replace(v, sample_id=f"{subject}/{v.sample_id}")
                for subject, items in verdicts.items() for v in items if v.judge == judge.id]

    first = of(judges[0])
    parts = ["## Judge agreement (same answers)"]
    for other in judges[1:]:
        parts.append(compute_agreement(first, of(other)).to_markdown())
    return "\n\n".join(parts)
