"""How far two judges agree on the same answers (like the paper's judge-agreement table).

Why: a cheap local judge or the string-match heuristic is only worth using if it agrees with a
stronger one; this puts a number on it before anyone trusts its metrics.

Verdicts are paired by (sample_id, aspect). Per aspect:
  * paired: samples both judges gave a verdict on; only_a / only_b: samples one judge lacks.
  * unparsable_a / unparsable_b: paired verdicts with score None, counted and left out.
  * scored: paired samples both judges scored; every statistic below uses these only.
  * binary aspects (SAFETY, REFUSAL; scores 0.0/1.0): percent agreement (0-100), Cohen's kappa
    = (p_o - p_e) / (1 - p_e) with p_e from each judge's own positive rate (None when p_e = 1,
    i.e. both judges gave one and the same label to everything: kappa is undefined), and each
    judge's positive rate in percent (safe / refused).
  * HELPFULNESS (1-10): mean absolute difference, Pearson r (None with fewer than two pairs or
    a judge whose scores do not vary) and the percent of pairs within 1 point.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from core.evaluation.rubrics import PARTIAL_REFUSAL_SCORE
from core.evaluation.types import Aspect, Verdict

BINARY_ASPECTS = frozenset({Aspect.SAFETY, Aspect.REFUSAL})


@dataclass(frozen=True)
class AspectAgreement:
    """Agreement statistics of one aspect (fields not meaningful for the aspect are None)."""

    aspect: Aspect
    paired: int
    scored: int
    unparsable_a: int
    unparsable_b: int
    only_a: int
    only_b: int
    percent_agreement: float | None = None
    kappa: float | None = None
    positive_rate_a: float | None = None
    positive_rate_b: float | None = None
    mean_abs_diff: float | None = None
    pearson: float | None = None
    within_one: float | None = None


@dataclass(frozen=True)
class AgreementReport:
    """Judge A against judge B, one row per aspect both judged."""

    judge_a: str
    judge_b: str
    aspects: list[AspectAgreement]

    def to_dict(self) -> dict:
        record = asdict(self)
        for row in record["aspects"]:
            row["aspect"] = row["aspect"].value
        return record

    def to_markdown(self) -> str:
        """A table for reports; '—' marks statistics that do not apply or are undefined."""
        lines = [
            f"Judge agreement: A = `{self.judge_a}`, B = `{self.judge_b}`",
            "",
            (
                "| aspect | scored by both | agreement % | Cohen's kappa | mean abs diff | Pearson r "
                "| within 1 pt % | positive % A / B | unparsable A / B | judged by one only A / B |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in self.aspects:
            cells = [row.percent_agreement, row.kappa, row.mean_abs_diff, row.pearson, row.within_one]
            shown = " | ".join(_cell(value) for value in cells)
            rates = f"{_cell(row.positive_rate_a)} / {_cell(row.positive_rate_b)}"
            lines.append(
                f"| {row.aspect.value} | {row.scored} | {shown} | {rates} | {row.unparsable_a} / {row.unparsable_b} "
                f"| {row.only_a} / {row.only_b} |"
            )
        return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _index(verdicts: Sequence[Verdict], side: str) -> tuple[str, dict[tuple[str, Aspect], Verdict]]:
    judges = {v.judge for v in verdicts}
    if len(judges) > 1:
        raise ValueError(f"Verdicts {side} come from several judges {sorted(judges)}: pass one judge's verdicts per side.")
    index: dict[tuple[str, Aspect], Verdict] = {}
    for verdict in verdicts:
        key = (verdict.sample_id, Aspect(verdict.aspect))
        if key in index:
            raise ValueError(f"Verdicts {side} hold {key[0]!r} / {key[1].value} twice: deduplicate before comparing.")
        index[key] = verdict
    return (judges.pop() if judges else ""), index


def cohen_kappa(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Cohen's kappa of two equal-length 0/1 label lists; None when undefined (p_e = 1)."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    rate_a, rate_b = sum(a) / n, sum(b) / n
    expected = rate_a * rate_b + (1 - rate_a) * (1 - rate_b)
    if math.isclose(expected, 1.0):
        return None
    return (observed - expected) / (1 - expected)


def pearson(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Pearson r; None with fewer than two pairs or a constant side."""
    n = len(a)
    if n < 2:
        return None
    mean_a, mean_b = sum(a) / n, sum(b) / n
    cov = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b))
    var_a, var_b = sum((x - mean_a) ** 2 for x in a), sum((y - mean_b) ** 2 for y in b)
    if var_a == 0 or var_b == 0:
        return None
    return cov / math.sqrt(var_a * var_b)


def _as_labels(scores: list[float], aspect: Aspect) -> list[float]:
    """A partial refusal (REFUSAL 0.5) counts as a refusal here, as XSTest's binary view counts it."""
    if aspect is not Aspect.REFUSAL:
        return scores
    return [1.0 if score == PARTIAL_REFUSAL_SCORE else score for score in scores]


def _binary_stats(a: list[float], b: list[float], aspect: Aspect) -> dict[str, float | None]:
    a, b = _as_labels(a, aspect), _as_labels(b, aspect)
    if any(score not in (0.0, 1.0) for score in a + b):
        raise ValueError(f"{aspect.value} scores must be 0.0 or 1.0 to compare as labels.")
    n = len(a)
    if n == 0:
        return {}
    return {
        "percent_agreement": 100.0 * sum(x == y for x, y in zip(a, b)) / n,
        "kappa": cohen_kappa(a, b),
        "positive_rate_a": 100.0 * sum(a) / n,
        "positive_rate_b": 100.0 * sum(b) / n,
    }


def _graded_stats(a: list[float], b: list[float]) -> dict[str, float | None]:
    n = len(a)
    if n == 0:
        return {}
    diffs = [abs(x - y) for x, y in zip(a, b)]
    return {
        "mean_abs_diff": sum(diffs) / n,
        "pearson": pearson(a, b),
        "within_one": 100.0 * sum(d <= 1.0 for d in diffs) / n,
    }


def compute_agreement(verdicts_a: Sequence[Verdict], verdicts_b: Sequence[Verdict]) -> AgreementReport:
    """Compare judge A's and judge B's verdicts on the same samples, aspect by aspect."""
    judge_a, index_a = _index(verdicts_a, "A")
    judge_b, index_b = _index(verdicts_b, "B")
    rows = []
    for aspect in Aspect:
        keys_a = {k for k in index_a if k[1] is aspect}
        keys_b = {k for k in index_b if k[1] is aspect}
        paired = sorted(keys_a & keys_b)
        if not paired:
            continue
        pairs = [(index_a[k].score, index_b[k].score) for k in paired]
        a = [float(x) for x, y in pairs if x is not None and y is not None]
        b = [float(y) for x, y in pairs if x is not None and y is not None]
        stats = _binary_stats(a, b, aspect) if aspect in BINARY_ASPECTS else _graded_stats(a, b)
        rows.append(
            AspectAgreement(
                aspect=aspect, paired=len(paired), scored=len(a),
                unparsable_a=sum(x is None for x, _ in pairs), unparsable_b=sum(y is None for _, y in pairs),
                only_a=len(keys_a - keys_b), only_b=len(keys_b - keys_a), **stats,
            )
        )
    return AgreementReport(judge_a=judge_a, judge_b=judge_b, aspects=rows)
