"""A data-quality report for a chain dataset: does it teach safety, before GPU hours go into it?

Why per label: a dataset can look fine on average and still teach compliance with harmful
questions (the bundled model's plain pipeline declined 2 of 16). So harmful and helpful
questions are counted apart: how many kept Safe Answers decline (read by the refusal judge, the
one evaluation uses), how many comply, how sure the checker was (mean P(unsafe)), and what the
pipeline had to do (flagged, regenerated, dropped, label mismatch, given openings), with the
chain shapes, tokens per stage and the checker's unparsable verdicts. `teaching_warnings` turns
the report into the plain-language reasons a dataset does not teach safety; the app's Train form
and `launch.py train` show the same lines before a run is launched.

Pure: records in (kept and dropped alike, as the sinks store them), a frozen report out.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.data.atomic_write import write_bytes_atomically
from core.data.chain_store import is_trainable
from core.evaluation.heuristic_judge import is_refusal
from core.stages import ChainShape

#: Groups in report order; 'benign' (risky-sounding but harmless) and 'unlabelled' appear when present.
GROUPS = ("harmful", "helpful", "benign", "unlabelled")
STAGES = ("analysis", "guidance", "answer")


@dataclass(frozen=True)
class GroupQuality:
    """The counts for one question label."""

    label: str
    chains: int
    kept: int
    trainable: int
    declined: int
    complied: int
    mean_p_unsafe: float | None
    flagged: int
    regenerated: int
    dropped: int
    label_mismatch: int
    opening_given: int
    unparsable_verdicts: int
    checks: int
    shapes: dict[str, int]
    mean_tokens: dict[str, float]
    flagged_trained: int = 0
    """Flagged chains training still uses: kept under the keep policy, chosen by the user."""
    copied_exemplar: int = 0
    """Chains whose kept analysis or guidance repeats a few-shot exemplar (flagged: a small model
    copying its examples teaches the stage experts someone else's reading of another question)."""

    @property
    def declined_share(self) -> float:
        """Share of kept Safe Answers that decline (0 when nothing was kept)."""
        return self.declined / self.kept if self.kept else 0.0

    @property
    def complied_share(self) -> float:
        return self.complied / self.kept if self.kept else 0.0


@dataclass(frozen=True)
class QualityReport:
    """Per-label quality of a chain dataset, plus who judged it and the flagged-chain choice."""

    groups: tuple[GroupQuality, ...]
    checkers: tuple[str, ...]
    flagged_policies: tuple[str, ...]

    def group(self, label: str) -> GroupQuality | None:
        return next((g for g in self.groups if g.label == label), None)

    @property
    def unparsable_verdicts(self) -> int:
        return sum(g.unparsable_verdicts for g in self.groups)

    def to_dict(self) -> dict[str, Any]:
        groups = [{**asdict(g), "declined_share": g.declined_share, "complied_share": g.complied_share} for g in self.groups]
        return {"groups": groups, "checkers": list(self.checkers), "flagged_policies": list(self.flagged_policies),
                "unparsable_verdicts": self.unparsable_verdicts}

    def to_markdown(self) -> str:
        """A table, one column per label, then the checkers and the flagged-chain policy."""
        header = "| | " + " | ".join(f"{g.label} questions" for g in self.groups) + " |"
        lines = [header, "|---|" + "---|" * len(self.groups)]
        for name, cell in _ROWS:
            lines.append(f"| {name} | " + " | ".join(cell(g) for g in self.groups) + " |")
        lines.append("")
        lines.append(f"Checked by: {', '.join(self.checkers) or 'unknown'}. "
                     f"Flagged-chain policy: {', '.join(self.flagged_policies) or 'unknown'}.")
        return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({part / whole:.0%})" if whole else "0/0"


_ROWS = (
    ("chains (kept + dropped)", lambda g: str(g.chains)),
    ("kept / trainable", lambda g: f"{g.kept} / {g.trainable}"),
    ("Safe Answers that decline", lambda g: _share(g.declined, g.kept)),
    ("Safe Answers that comply", lambda g: _share(g.complied, g.kept)),
    ("mean P(unsafe) of kept answers", lambda g: "n/a" if g.mean_p_unsafe is None else f"{g.mean_p_unsafe:.3f}"),
    ("flagged", lambda g: str(g.flagged)),
    ("flagged and trained on (keep policy)", lambda g: str(g.flagged_trained)),
    ("regenerated", lambda g: str(g.regenerated)),
    ("dropped", lambda g: str(g.dropped)),
    ("label mismatch", lambda g: str(g.label_mismatch)),
    ("analysis/guidance copied an exemplar", lambda g: str(g.copied_exemplar)),
    ("opening given (kept)", lambda g: str(g.opening_given)),
    ("shapes " + " / ".join(s.value for s in ChainShape), lambda g: " / ".join(str(g.shapes.get(s.value, 0)) for s in ChainShape)),
    ("mean tokens analysis / guidance / answer", lambda g: " / ".join(f"{g.mean_tokens[s]:.0f}" for s in STAGES)),
    ("unparsable verdicts", lambda g: f"{g.unparsable_verdicts} of {g.checks} checks"),
)


def quality_report(records: Iterable[Mapping[str, Any]]) -> QualityReport:
    """The report over every chain record of a dataset (kept and dropped)."""
    records = list(records)
    by_label: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_label.setdefault(_label(record), []).append(record)
    groups = tuple(_group(label, by_label[label]) for label in GROUPS if label in by_label)
    checkers = sorted({str(c) for r in records for c in _checkers(r)})
    policies = sorted({str(r["flagged_policy"]) for r in records if r.get("flagged_policy")})
    return QualityReport(groups, tuple(checkers), tuple(policies))


def _label(record: Mapping[str, Any]) -> str:
    kind = record.get("kind")
    return kind if kind in ("harmful", "helpful", "benign") else "unlabelled"


def _group(label: str, records: list[Mapping[str, Any]]) -> GroupQuality:
    kept = [r for r in records if not r.get("dropped")]
    declined = sum(1 for r in kept if is_refusal(str(r.get("question") or ""), r.get("answer") or ""))
    risks = [float(r["p_unsafe"]) for r in kept if r.get("p_unsafe") is not None]
    verdicts = [v for r in records for v in _verdicts(r)]
    shapes = Counter(str(r.get("shape")) for r in kept)
    return GroupQuality(
        label=label, chains=len(records), kept=len(kept), trainable=sum(1 for r in records if is_trainable(r)),
        declined=declined, complied=len(kept) - declined, mean_p_unsafe=sum(risks) / len(risks) if risks else None,
        flagged=sum(1 for r in records if r.get("flagged")),
        flagged_trained=sum(1 for r in records if r.get("flagged") and is_trainable(r)),
        regenerated=sum(1 for r in records if len(r.get("attempts") or []) > 1),
        dropped=len(records) - len(kept), label_mismatch=sum(1 for r in records if r.get("label_mismatch")),
        opening_given=sum(1 for r in kept if r.get("opening_given")),
        copied_exemplar=sum(1 for r in records if "copied exemplar" in (r.get("flag_reasons") or [])),
        unparsable_verdicts=sum(1 for parsed in verdicts if not parsed), checks=len(verdicts),
        shapes={shape.value: shapes.get(shape.value, 0) for shape in ChainShape},
        mean_tokens={stage: _mean_tokens(kept, stage) for stage in STAGES},
    )


def _verdicts(record: Mapping[str, Any]) -> list[bool]:
    """Parsed flag of every check the chain's attempts made (answers and stage checks)."""
    parsed = []
    for attempt in record.get("attempts") or []:
        parsed += [bool(step.get("verdict_parsed", True)) for step in attempt.get("answers") or []]
        parsed += [check.get("label") != "unparsable" for check in (attempt.get("stage_checks") or {}).values()]
    return parsed


def _checkers(record: Mapping[str, Any]) -> list[str]:
    found = [record["checker"]] if record.get("checker") else []
    for attempt in record.get("attempts") or []:
        found += [step["checker"] for step in attempt.get("answers") or [] if step.get("checker")]
    return found


def _mean_tokens(records: list[Mapping[str, Any]], stage: str) -> float:
    counts = []
    for record in records:
        if not record.get(stage):
            continue
        recorded = ((record.get("tokens") or {}).get(stage)  # counted again after a later edit (trimming)
                    or ((record.get("attempts") or [{}])[-1].get("tokens") or {}).get(stage))
        counts.append(recorded if recorded else len(str(record[stage]).split()))
    return round(sum(counts) / len(counts), 1) if counts else 0.0


#: Below this share of declining kept answers to harmful questions, the data teaches the format, not safety.
MIN_HARMFUL_DECLINED_SHARE = 0.5
#: Above this share of refusing kept answers to helpful questions, the data teaches over-refusal.
MAX_HELPFUL_REFUSED_SHARE = 0.10
REMEDY = ("Regenerate with the default safe pipeline (Data tab, or `launch.py generate` without `--plain-pipeline`) "
          "or choose another dataset.")


def teaching_warnings(report: QualityReport) -> list[str]:
    """Why training on this dataset would not teach safety, one plain sentence each (empty: no reason).

    Why these three: the method learns whatever the Safe Answers do, so answers that comply with
    harmful questions teach compliance, answers that refuse helpful ones teach over-refusal, and
    flagged chains kept on purpose put answers the checker judged unsafe into training.
    """
    warnings = []
    harmful, helpful = report.group("harmful"), report.group("helpful")
    if harmful is not None and harmful.kept and harmful.declined_share < MIN_HARMFUL_DECLINED_SHARE:
        warnings.append(f"Only {harmful.declined} of {harmful.kept} harmful questions' answers decline in this "
                        f"dataset: a model trained on it learns the format, not safety. {REMEDY}")
    if helpful is not None and helpful.kept and helpful.declined_share > MAX_HELPFUL_REFUSED_SHARE:
        warnings.append(f"{helpful.declined} of {helpful.kept} helpful questions' answers refuse in this dataset "
                        f"(more than {MAX_HELPFUL_REFUSED_SHARE:.0%}): a model trained on it learns to refuse "
                        f"harmless requests. {REMEDY}")
    trained = sum(g.flagged_trained for g in report.groups)
    if trained:
        warnings.append(_kept_flagged_warning(trained))
    return warnings


def _kept_flagged_warning(trained: int) -> str:
    chains = "flagged chain (judged unsafe after every stage) is" if trained == 1 else \
        "flagged chains (judged unsafe after every stage) are"
    return (f"{trained} {chains} trained on: the dataset was generated with the flagged-chain policy keep, chosen "
            "by the user. Regenerate with the policy regenerate (the default) or choose another dataset.")


def rewrite_chain_file(path: Path, records: list[Mapping[str, Any]]) -> QualityReport:
    """Write `records` to the chain file `path` (JSONL, atomically) and its quality report beside it
    (NAME.quality.md / NAME.quality.json), so a shipped dataset and its report never disagree.
    The scripts that revise a chain file after generation (scripts/*.py) all end here."""
    write_bytes_atomically(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))
    report = quality_report(records)
    stem = path.with_suffix("")
    write_bytes_atomically(Path(f"{stem}.quality.md"), (report.to_markdown() + "\n").encode("utf-8"))
    write_bytes_atomically(Path(f"{stem}.quality.json"), (json.dumps(report.to_dict(), indent=2) + "\n").encode("utf-8"))
    return report
