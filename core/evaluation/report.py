"""Study reports: the paper's comparison tables, a per-category breakdown and a per-sample drill-down.

Why these shapes: Table 1 of the paper (subjects x Help / Harm / Harm-Help / goodness@0.1 /
not_overrefuse) and Table 4 (harmless rate per ablation) are what a reader compares against; the
per-sample drill-down is how a reader checks a number, by reading the answers and each judge's raw
output behind it. Every cell is 'value [low, high]' (95% bootstrap interval) and a missing metric
reads 'n/a' with its reason in the notes, never 0. Differences between subjects (each against the
base model, MoTE against each baseline) come from a paired bootstrap over the same questions
(core.evaluation.paired) and are also said in words. Files are written with the csv and json stdlib.
"""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evaluation.metrics import METRIC_SPECS, MetricName, MetricTable, MetricValue
from core.evaluation.paired import (
    BASE_PREFIX,
    MOTE_PREFIX,
    DifferenceRow,
    comparison_pairs,
    describe,
    find_subject,
    format_difference,
    paired_rows,
)
from core.evaluation.types import Answer, Aspect, Verdict
from core.stages import STAGE_NAMES, ChainShape

#: Table 1 columns, in order.
COMPARISON_COLUMNS: tuple[MetricName, ...] = tuple(MetricName)
#: Table 4 (ablations) reports the harmless rate of each method.
ABLATION_METRIC = MetricName.HARM
MISSING_CELL = "n/a"
HEURISTIC_NOTE = "heuristic (string matching, not a model's reading); treat as a first pass"
#: Above this share of degenerate answers a subject's report opens with a warning.
DEGENERATE_WARNING_RATE = 0.20
DEGENERATE_COLUMN = "Degenerate answers"


def _in_order(names: set[str], order: list[str]) -> list[str]:
    """`names` in the canonical `order` (stages, chain shapes), unknown names last by name."""
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def format_cell(value: MetricValue, digits: int = 2) -> str:
    """'value [low, high]', or 'n/a' for a missing metric; ' · k/n degenerate' is added when some of
    the metric's answers were degenerate (they are excluded from the value)."""
    degenerate = f" · {value.n_degenerate}/{value.n_pool} degenerate" if value.n_degenerate else ""
    if value.value is None or value.low is None or value.high is None:
        return MISSING_CELL + degenerate
    return f"{value.value:.{digits}f} [{value.low:.{digits}f}, {value.high:.{digits}f}]" + degenerate


def degenerate_cell(table: MetricTable) -> str:
    """'k/n (p%)' of a subject's answers that were degenerate."""
    rate = table.degenerate_rate
    return f"{table.n_degenerate}/{table.n_answers} ({100 * rate:.0f}%)" if rate is not None else MISSING_CELL


@dataclass
class Comparison:
    """Subjects (rows, in the given order) and their metric tables."""

    tables: dict[str, MetricTable]
    columns: tuple[MetricName, ...] = COMPARISON_COLUMNS
    base: str | None = None
    """The base model's subject; every other subject is compared with it. None: no base row."""
    mote: str | None = None
    """MoTE's subject; it is compared with every baseline (the subjects that are neither)."""
    resamples: int = 1000
    seed: int = 1234

    @property
    def subjects(self) -> list[str]:
        return list(self.tables)

    def value(self, subject: str, metric: MetricName) -> MetricValue:
        return self.tables[subject].get(metric)

    def rows(self) -> list[dict[str, str]]:
        """Table 1: one row per subject, one 'value [low, high]' cell per metric label."""
        return [{"subject": s, **{METRIC_SPECS[m].label: format_cell(self.value(s, m)) for m in self.columns},
                 DEGENERATE_COLUMN: degenerate_cell(self.tables[s])} for s in self.subjects]

    def warnings(self) -> list[str]:
        """One sentence per subject whose degenerate rate is above DEGENERATE_WARNING_RATE."""
        lines = []
        for subject, table in self.tables.items():
            rate = table.degenerate_rate
            if rate is None or rate <= DEGENERATE_WARNING_RATE:
                continue
            kinds = ", ".join(f"{reason}: {count}" for reason, count in table.degenerate_reasons.items())
            lines.append(
                f"{subject}: {100 * rate:.0f}% of its answers ({table.n_degenerate} of {table.n_answers}) are degenerate "
                f"({kinds}). They are not refusals and not safe; its metrics cover only the other "
                f"{table.n_answers - table.n_degenerate} answers and say little about the model. Read its answers in "
                "samples.csv; raise min_stage_tokens or check the run's training.")
        return lines

    def ablation_rows(self) -> list[dict[str, str]]:
        """Table 4: the harmless rate (%) of each subject, with the number of prompts behind it."""
        label = METRIC_SPECS[ABLATION_METRIC].label
        return [{"subject": s, f"{label} (harmless %)": format_cell(self.value(s, ABLATION_METRIC)),
                 "n": str(self.value(s, ABLATION_METRIC).n)} for s in self.subjects]

    def category_rows(self) -> list[dict[str, str]]:
        """One row per (subject, category): each metric's cell and its n."""
        rows = []
        for subject, table in self.tables.items():
            for category, values in table.per_category.items():
                row = {"subject": subject, "category": category}
                for metric in self.columns:
                    row[METRIC_SPECS[metric].label] = format_cell(values[metric.value])
                    row[f"n {metric.value}"] = str(values[metric.value].n)
                rows.append(row)
        return rows

    def judge_legend(self) -> list[str]:
        """Which judge scored which aspect; flags heuristic judges and judges that differ by subject."""
        heuristic = {j for t in self.tables.values() for j in t.heuristic_judges}
        lines = []
        for aspect in Aspect:
            users: dict[str, list[str]] = {}
            for subject, table in self.tables.items():
                if aspect.value in table.judges:
                    users.setdefault(table.judges[aspect.value], []).append(subject)
            if not users:
                lines.append(f"{aspect.value}: no judge chosen")
                continue
            parts = [f"`{j}`" + (f" — {HEURISTIC_NOTE}" if j in heuristic else "")
                     + (f" (for {', '.join(s)})" if len(users) > 1 else "") for j, s in users.items()]
            warning = "; judges differ by subject, so this column is not comparable" if len(users) > 1 else ""
            lines.append(f"{aspect.value}: " + "; ".join(parts) + warning)
        return lines

    def differences(self) -> list[DifferenceRow]:
        """Paired differences: each subject minus the base, then MoTE minus each baseline."""
        pairs = comparison_pairs(self.subjects, self.base, self.mote)
        return paired_rows(self.tables, pairs, self.columns, resamples=self.resamples, seed=self.seed)

    def difference_rows(self) -> list[dict[str, str]]:
        """One row per compared pair: 'difference [low, high]' per metric, '*' where significant."""
        by_pair: dict[tuple[str, str], dict[str, str]] = {}
        for row in self.differences():
            cells = by_pair.setdefault((row.subject, row.reference), {"comparison": f"{row.subject} − {row.reference}"})
            cells[METRIC_SPECS[row.metric].label] = format_difference(row.difference)
        return list(by_pair.values())

    def difference_sentences(self) -> list[str]:
        """Every paired difference that could be computed, in words, significant ones first
        (the others read 'n/a' in the table, with the reason in the notes)."""
        rows = [r for r in self.differences() if r.difference is not None]
        ordered = sorted(rows, key=lambda r: not r.difference.significant)
        return [describe(row, self.base) for row in ordered]

    def score_bases(self) -> list[str]:
        """What each subject's goodness@0.1 scores were computed from (continuous or binary)."""
        lines = []
        for metric in self.columns:
            bases = {s: self.value(s, metric).basis for s in self.subjects if self.value(s, metric).basis}
            if bases:
                shown = "; ".join(f"{s}: {b}" for s, b in bases.items())
                lines.append(f"{METRIC_SPECS[metric].label} scores: {shown}")
        return lines

    def notes(self) -> list[str]:
        """Why a cell is missing, and what was excluded from cells that are not."""
        return [f"{s} / {METRIC_SPECS[m].label}: {'missing — ' if self.value(s, m).missing else ''}"
                f"{self.value(s, m).note}" for s in self.subjects for m in self.columns
                if self.value(s, m).note or self.value(s, m).missing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "subjects": self.subjects,
            "columns": [m.value for m in self.columns],
            "labels": {m.value: METRIC_SPECS[m].label for m in self.columns},
            "table1": self.rows(),
            "ablation": self.ablation_rows(),
            "judges": self.judge_legend(),
            "notes": self.notes(),
            "base": self.base,
            "mote": self.mote,
            "differences": [{"subject": r.subject, "reference": r.reference, "metric": r.metric.value,
                             "difference": None if r.difference is None else r.difference.difference,
                             "low": None if r.difference is None else r.difference.low,
                             "high": None if r.difference is None else r.difference.high,
                             "n": 0 if r.difference is None else r.difference.n,
                             "significant": r.difference is not None and r.difference.significant,
                             "note": r.note} for r in self.differences()],
            "warnings": self.warnings(),
            "tables": {s: t.to_dict() for s, t in self.tables.items()},
        }


def build_comparison(tables: Mapping[str, MetricTable], *, base: str | None = None, mote: str | None = None,
                     resamples: int = 1000, seed: int = 1234) -> Comparison:
    """Comparison of subjects (e.g. 'base', 'MoTE', 'LoRA', 'SFT'), rows in the mapping's order.

    `base` and `mote` default to the subjects labelled 'base' / 'base:...' and 'mote' / 'mote:...'
    (the labels evaluate jobs give), so paired differences need no extra wiring."""
    if not tables:
        raise ValueError("No metric tables to compare: evaluate at least one subject first.")
    blank = [s for s in tables if not str(s).strip()]
    if blank:
        raise ValueError("A subject has an empty name: name every evaluated model or adapter.")
    for role, name in (("base", base), ("mote", mote)):
        if name is not None and name not in tables:
            raise ValueError(f"{role}={name!r} is not one of the subjects {list(tables)}: name an evaluated subject.")
    subjects = list(tables)
    return Comparison(tables=dict(tables), base=base or find_subject(subjects, BASE_PREFIX),
                      mote=mote or find_subject(subjects, MOTE_PREFIX), resamples=resamples, seed=seed)


# --- per-sample drill-down -----------------------------------------------------------------------

@dataclass(frozen=True)
class SampleRow:
    """One answer of one subject with every verdict any judge gave it."""

    subject: str
    answer: Answer
    verdicts: tuple[Verdict, ...] = ()


@dataclass
class Drilldown:
    rows: list[SampleRow] = field(default_factory=list)

    def stage_names(self) -> list[str]:
        return _in_order({stage for row in self.rows for stage in row.answer.stages}, list(STAGE_NAMES))

    def verdict_keys(self) -> list[tuple[str, str]]:
        """(aspect, judge) pairs present, in Aspect order then judge id."""
        keys = {(v.aspect, v.judge) for row in self.rows for v in row.verdicts}
        aspects = list(Aspect)
        return [(a.value, j) for a, j in sorted(keys, key=lambda k: (aspects.index(k[0]), k[1]))]

    def flat_rows(self) -> list[dict[str, str]]:
        """One CSV-ready row per sample; verdict columns are '<aspect> [<judge>] score/raw'."""
        stages, keys = self.stage_names(), self.verdict_keys()
        rows = []
        for row in self.rows:
            a = row.answer
            flat = {"subject": row.subject, "sample_id": a.sample_id, "kind": a.kind,
                    "category": a.category, "wrapper": a.wrapper or "", "question": a.question,
                    "prompt": a.prompt, "shape": a.shape}
            flat |= {f"stage {s}": a.stages.get(s, "") for s in stages}
            flat["answer"] = a.answer
            by_key = {(v.aspect.value, v.judge): v for v in row.verdicts}
            for aspect, judge in keys:
                verdict = by_key.get((aspect, judge))
                score = "" if verdict is None or verdict.score is None else f"{verdict.score:g}"
                flat[f"{aspect} [{judge}] score"] = score
                flat[f"{aspect} [{judge}] raw"] = "" if verdict is None else verdict.raw_output
            rows.append(flat)
        return rows

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready record per sample, answer and verdicts in full."""
        return [{"subject": r.subject, "sample_id": r.answer.sample_id, **r.answer.to_dict(),
                 "verdicts": [v.to_dict() for v in r.verdicts]} for r in self.rows]


def build_drilldown(answers: Mapping[str, Sequence[Answer]],
                    verdicts: Mapping[str, Sequence[Verdict]]) -> Drilldown:
    """Pair each subject's answers with their verdicts (matched by sample id)."""
    rows = []
    for subject, subject_answers in answers.items():
        by_sample: dict[str, list[Verdict]] = {a.sample_id: [] for a in subject_answers}
        for verdict in verdicts.get(subject, ()):
            if verdict.sample_id not in by_sample:
                raise ValueError(f"Verdict for sample {verdict.sample_id!r} of subject {subject!r} "
                                 "matches none of its answers: pass each subject's own verdicts.")
            by_sample[verdict.sample_id].append(verdict)
        rows += [SampleRow(subject, a, tuple(by_sample[a.sample_id])) for a in subject_answers]
    stray = set(verdicts) - set(answers)
    if stray:
        raise ValueError(f"Verdicts given for subjects without answers: {sorted(stray)}.")
    return Drilldown(rows)


# --- files ---------------------------------------------------------------------------------------

def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    header = list(rows[0])
    lines = ["| " + " | ".join(_md_escape(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_escape(str(r.get(h, ""))) for h in header) + " |" for r in rows]
    return lines


def _chain_rows(comparison: Comparison) -> list[dict[str, str]]:
    shapes = _in_order({s for t in comparison.tables.values() for s in t.shape_distribution},
                       [c.value for c in ChainShape])
    stages = _in_order({s for t in comparison.tables.values() for s in t.stage_tokens}, list(STAGE_NAMES))
    rows = []
    for subject, table in comparison.tables.items():
        row = {"subject": subject}
        row |= {f"share {s}": f"{table.shape_distribution.get(s, 0.0):.2f}" for s in shapes}
        row |= {f"tokens {s}": (f"{table.stage_tokens[s]:.1f}" if s in table.stage_tokens else MISSING_CELL)
                for s in stages}
        rows.append(row)
    return rows if shapes or stages else []


def _differences_markdown(comparison: Comparison) -> list[str]:
    """The paired-differences table and the same differences in words."""
    rows = comparison.difference_rows()
    if not rows:
        reason = ("only one subject" if len(comparison.subjects) < 2 else
                  "no subject is labelled as the base model ('base:...') or as MoTE ('mote:...')")
        return ["", "## Paired differences", "", f"No paired comparison: {reason}."]
    return ["", "## Paired differences (same questions)", "", *_md_table(rows), "",
            ("Cells: subject minus reference, mean difference over the questions both were scored on, "
             "[95% paired-bootstrap interval] (the same questions resampled for both subjects). "
             "'*' = significant: the interval excludes zero."), "", "### In words", "",
            *[f"- {sentence}" for sentence in comparison.difference_sentences()]]


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison as Markdown: Table 1, Table 4, chain statistics, legend, judges and notes."""
    lines = ["# Evaluation comparison", ""]
    lines += [f"> **Warning:** {warning}" for warning in comparison.warnings()]
    lines += [""] if comparison.warnings() else []
    lines += [*_md_table(comparison.rows()), "",
             ("Cells: value [low, high] = mean with its 95% percentile-bootstrap interval over "
              f"questions (goodness@0.1: over harmful prompts). '{MISSING_CELL}' = no usable "
              "sample (reason in the notes), never 0. '· k/n degenerate': k of the metric's n answers were "
              "degenerate (empty, whitespace, one token, repeated or cut off) and are left out of its value; "
              f"'{DEGENERATE_COLUMN}': the subject's share over all its answers."), ""]
    lines += [f"- **{METRIC_SPECS[m].label}** ({METRIC_SPECS[m].unit}, "
              f"{'higher' if METRIC_SPECS[m].higher_is_better else 'lower'} is better): "
              f"{METRIC_SPECS[m].description} Judged aspect: {METRIC_SPECS[m].aspect.value}."
              for m in comparison.columns]
    lines += _differences_markdown(comparison)
    lines += ["", "## Harmless rate per method (ablation view)", "", *_md_table(comparison.ablation_rows())]
    chain = _chain_rows(comparison)
    if chain:
        lines += ["", "## Chain shapes and stage lengths (mean tokens)", "", *_md_table(chain)]
    lines += ["", "## Judges", ""] + [f"- {line}" for line in comparison.judge_legend()]
    lines += [f"- {line}" for line in comparison.score_bases()]
    notes = comparison.notes()
    if notes:
        lines += ["", "## Notes", ""] + [f"- {_md_escape(n)}" for n in notes]
    return "\n".join(lines) + "\n"


def _write_csv(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> None:
    fields = header if header is not None else (list(rows[0]) if rows else [])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_report(comparison: Comparison, drilldown: Drilldown, folder: str | Path) -> dict[str, Path]:
    """Write every report file into `folder` (created if needed); file name -> path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("comparison.csv", "comparison.json", "comparison.md",
                                           "per_category.csv", "differences.csv", "samples.csv", "samples.jsonl")}
    _write_csv(paths["comparison.csv"], comparison.rows())
    paths["comparison.json"].write_text(json.dumps(comparison.to_dict(), indent=2, ensure_ascii=False),
                                        encoding="utf-8")
    paths["comparison.md"].write_text(comparison_markdown(comparison), encoding="utf-8")
    _write_csv(paths["per_category.csv"], comparison.category_rows())
    _write_csv(paths["differences.csv"], comparison.difference_rows(), header=None if comparison.difference_rows() else ["comparison"])
    _write_csv(paths["samples.csv"], drilldown.flat_rows(),
               header=None if drilldown.rows else ["subject", "sample_id"])
    with paths["samples.jsonl"].open("w", encoding="utf-8") as handle:
        for record in drilldown.records():
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return paths
