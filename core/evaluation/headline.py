"""The answer a study report opens with, in words built from the stored numbers.

Why: a reader deciding whether MoTE is worth their GPU time asks one question — does it refuse
harmful questions it used to answer, while still helping? — and should not have to assemble the
answer from eight columns. The sentences here are written from the metric tables and paired
differences of one judge (never typed by hand), so they change when the numbers do:

    MoTE refuses 52 of 110 harmful questions (base: 9), difference +0.39 [0.30, 0.48] (95% paired
    interval); it answers 104 of 110 helpful ones (base: 110), ...; it does not over-refuse 99 of 110
    benign-but-risky ones (base: 108), ...
    MoTE answers safely 60 of 110 harmful questions (lora: 41): harmless rate difference +17.27
    [8.18, 26.36] points (95% paired interval).
"""
from __future__ import annotations

from dataclasses import dataclass

from core.evaluation.metrics import METRIC_SPECS, MetricName, MetricValue
from core.evaluation.paired import DifferenceRow, format_difference
from core.evaluation.report import Comparison

#: The three rates of the first sentence, with how each is said.
HEADLINE_RATES: tuple[tuple[MetricName, str, str], ...] = (
    (MetricName.REFUSAL_HARMFUL, "refuses", "harmful questions"),
    (MetricName.ANSWERED_HELPFUL, "answers", "helpful ones"),
    (MetricName.NOT_OVERREFUSE, "does not over-refuse", "benign-but-risky ones"),
)
#: The metric MoTE is compared on with every other trained method (Table 1/4's harmless rate).
VERSUS_METRIC = MetricName.HARM


def count_of(value: MetricValue, metric: MetricName) -> int | None:
    """How many of the value's n questions the rate counts (rate x n, the rate unscaled first)."""
    if value.value is None:
        return None
    return round(value.value / METRIC_SPECS[metric].scale * value.n)


@dataclass(frozen=True)
class Headline:
    """The opening sentences of a study report, and which judge's numbers they read."""

    judge: str
    sentences: tuple[str, ...]

    def to_markdown(self) -> str:
        return "\n".join(f"- {sentence}" for sentence in self.sentences)


def _difference(rows: list[DifferenceRow], subject: str, reference: str, metric: MetricName) -> DifferenceRow | None:
    return next((row for row in rows if row.subject == subject and row.reference == reference and row.metric is metric),
                None)


def _counted(comparison: Comparison, subject: str, metric: MetricName) -> str:
    value = comparison.value(subject, metric)
    count = count_of(value, metric)
    return f"{count} of {value.n}" if count is not None else f"n/a ({value.note or 'no verdicts'})"


def _reference_count(comparison: Comparison, subject: str, metric: MetricName) -> str:
    count = count_of(comparison.value(subject, metric), metric)
    return str(count) if count is not None else "n/a"


def _difference_words(row: DifferenceRow | None, unit: str = "") -> str:
    if row is None or row.difference is None:
        return f"difference n/a ({row.note if row is not None else 'no paired comparison'})"
    significant = "" if row.difference.significant else ", not significant"
    return f"difference {format_difference(row.difference).removesuffix(' *')}{unit} (95% paired interval{significant})"


def against_base(comparison: Comparison, rows: list[DifferenceRow], mote: str, base: str) -> str:
    """'MoTE refuses X of N harmful questions (base: Y), difference ...; it answers ...'."""
    parts = []
    for index, (metric, verb, what) in enumerate(HEADLINE_RATES):
        subject = "MoTE" if index == 0 else "it"
        counted = _counted(comparison, mote, metric)
        parts.append(f"{subject} {verb} {counted} {what} (base: {_reference_count(comparison, base, metric)}), "
                     f"{_difference_words(_difference(rows, mote, base, metric))}")
    return "; ".join(parts) + "."


def against_method(comparison: Comparison, rows: list[DifferenceRow], mote: str, other: str) -> str:
    """'MoTE answers safely X of N harmful questions (lora: Y), difference ... points ...'."""
    row = _difference(rows, mote, other, VERSUS_METRIC)
    return (f"MoTE answers safely {_counted(comparison, mote, VERSUS_METRIC)} harmful questions "
            f"({other}: {_reference_count(comparison, other, VERSUS_METRIC)}): harmless rate "
            f"{_difference_words(row, ' points')}.")


def build_headline(comparison: Comparison, judge: str) -> Headline | None:
    """The headline of one judge's comparison; None without both a base and a MoTE subject."""
    mote, base = comparison.mote, comparison.base
    if mote is None or base is None:
        return None
    others = [s for s in comparison.subjects if s not in (mote, base) and not s.lower().startswith("prompt:")]
    rows = comparison.differences()  # one paired bootstrap for every sentence
    sentences = [against_base(comparison, rows, mote, base)]
    sentences += [against_method(comparison, rows, mote, other) for other in others]
    return Headline(judge, tuple(sentences))
