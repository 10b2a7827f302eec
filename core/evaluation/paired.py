"""Paired comparisons between subjects: each one against the base model, MoTE against each
baseline, and each prompting pipeline against the plain prompt of the same model.

Why paired: every subject answers the same prompts, so two subjects' separate intervals overlap
even when one is better on nearly every question. The difference is computed question by
question and its interval comes from resampling the questions once per replicate for both
subjects (core.evaluation.bootstrap.paired_difference). A difference is called significant only
when that interval excludes zero, and the report says it in words a reader can check against
the counts ("MoTE refuses 12 more of 110 harmful questions than the base model").
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, PairedDifference, paired_difference
from core.evaluation.metrics import METRIC_SPECS, MetricName, MetricTable

#: Subject labels that name the base model ('base:<model>' from the evaluate job, or 'base').
BASE_PREFIX = "base"
#: Subject labels that name MoTE ('mote:<run>' from the evaluate job, or 'MoTE').
MOTE_PREFIX = "mote"
#: Subject labels of prompting subjects ('prompt:<pipeline>:<model label>'), and of the plain prompt.
PROMPT_PREFIX = "prompt"
PLAIN_PROMPT_PREFIX = "prompt:plain:"


def find_subject(subjects: Sequence[str], prefix: str) -> str | None:
    """The first subject labelled `prefix` or `prefix:...` (case-insensitive), else None."""
    for subject in subjects:
        head = subject.strip().lower().split(":", 1)[0]
        if head == prefix:
            return subject
    return None


@dataclass(frozen=True)
class DifferenceRow:
    """`subject` minus `reference` on one metric, in the metric's reported scale."""

    subject: str
    reference: str
    metric: MetricName
    difference: PairedDifference | None
    """None when either side has no per-question values for the metric (see `note`)."""
    note: str = ""


def comparison_pairs(subjects: Sequence[str], base: str | None, mote: str | None) -> list[tuple[str, str]]:
    """(subject, reference) pairs: every other subject vs the base, then MoTE vs each baseline,
    then each prompting subject vs the plain prompt of the same model (the paper's Table 3)."""
    pairs = [(s, base) for s in subjects if base is not None and s != base]
    if mote is not None:
        pairs += [(mote, s) for s in subjects if s not in (mote, base)]
    return pairs + prompting_pairs(subjects)


def prompting_pairs(subjects: Sequence[str]) -> list[tuple[str, str]]:
    """('prompt:PIPELINE:X', 'prompt:plain:X') for every pipeline but plain whose model X was
    also evaluated with the plain prompt (labels as core.decoding.subject_ref.SubjectRef.label)."""
    plain = {s.split(":", 2)[2]: s for s in subjects if s.lower().startswith(PLAIN_PROMPT_PREFIX) and s.count(":") >= 2}
    pairs = []
    for subject in subjects:
        head, _, rest = subject.partition(":")
        pipeline, _, model = rest.partition(":")
        if head.lower() == PROMPT_PREFIX and pipeline.lower() != "plain" and model in plain:
            pairs.append((subject, plain[model]))
    return pairs


def paired_rows(tables: Mapping[str, MetricTable], pairs: Sequence[tuple[str, str]], columns: Sequence[MetricName], *,
                resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> list[DifferenceRow]:
    """One DifferenceRow per pair and metric, over the questions both subjects were scored on."""
    rows = []
    for subject, reference in pairs:
        for metric in columns:
            a, b = tables[reference].get(metric).units, tables[subject].get(metric).units
            shared = set(a) & set(b)
            if not shared:
                why = "no per-question values" if not a or not b else "no question scored for both"
                rows.append(DifferenceRow(subject, reference, metric, None, why))
                continue
            raw = paired_difference(a, b, resamples=resamples, seed=seed)
            scale = METRIC_SPECS[metric].scale
            rows.append(DifferenceRow(subject, reference, metric,
                                      PairedDifference(raw.difference * scale, raw.low * scale, raw.high * scale, raw.n)))
    return rows


def format_difference(difference: PairedDifference | None, digits: int = 2) -> str:
    """'+0.11 [0.05, 0.17] *' (the star marks significance), or 'n/a'."""
    if difference is None:
        return "n/a"
    star = " *" if difference.significant else ""
    return f"{difference.difference:+.{digits}f} [{difference.low:.{digits}f}, {difference.high:.{digits}f}]{star}"


_COUNTED = {
    MetricName.REFUSAL_HARMFUL: ("refuses", "harmful questions"),
    MetricName.REFUSAL_BENIGN: ("refuses", "benign (risky-looking) questions"),
    MetricName.NOT_OVERREFUSE: ("answers", "benign (risky-looking) questions"),
    MetricName.HARM: ("answers safely", "harmful questions"),
    MetricName.ANSWERED_HELPFUL: ("answers", "helpful questions"),
}
_POINTS = {
    MetricName.HELP: "helpfulness (1-10) on {n} helpful questions",
    MetricName.HARM_HELP: "helpfulness (1-10) on {n} harmful questions",
    MetricName.GOODNESS: "goodness@0.1 over {n} jailbroken harmful prompts",
    MetricName.GOODNESS_BINARY: "binary goodness@0.1 over {n} jailbroken harmful prompts",
}


def _name(subject: str, base: str | None) -> str:
    return "the base model" if subject == base else subject


def describe(row: DifferenceRow, base: str | None) -> str:
    """The difference in words, with its interval and whether it is significant."""
    subject, reference = _name(row.subject, base), _name(row.reference, base)
    d = row.difference
    if d is None:
        return f"{subject} vs {reference}, {METRIC_SPECS[row.metric].label}: no paired comparison ({row.note})."
    if row.metric in _COUNTED:
        verb, what = _COUNTED[row.metric]
        count = round(d.difference / METRIC_SPECS[row.metric].scale * d.n)
        amount = f"as many of {d.n} {what} as" if count == 0 else \
            f"{abs(count)} {'more' if count > 0 else 'fewer'} of {d.n} {what} than"
        head = f"{subject} {verb} {amount} {reference}"
    else:
        measured = _POINTS[row.metric].format(n=d.n)
        amount = "the same as" if d.difference == 0 else \
            f"{abs(d.difference):.2f} {'higher' if d.difference > 0 else 'lower'} than"
        head = f"{subject} scores {amount} {reference} in {measured}"
    verdict = "significant" if d.significant else "not significant (the interval includes zero)"
    return f"{head}, {format_difference(d).removesuffix(' *')}, {verdict}."
