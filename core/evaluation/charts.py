"""Bar charts of a study comparison: one PNG per metric, subjects on the x axis, 95% CI error bars.

Why the object API with the Agg canvas instead of pyplot: reports are drawn in worker processes
and tests with no display, and pyplot's global figure state and backend switching would leak
between jobs. A subject whose metric is missing gets no bar (an 'n/a' mark instead) and a note;
a metric missing for every subject gets no chart and a note. Nothing missing is drawn as 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from core.evaluation.metrics import METRIC_SPECS, MetricName
from core.evaluation.report import Comparison

BAR_COLOR = "#4C72B0"
DPI = 120


@dataclass(frozen=True)
class Bars:
    """What one metric's chart draws: bars only for subjects that have a value."""

    metric: MetricName
    subjects: list[str]
    """Every subject, in comparison order (the x axis)."""
    positions: list[int]
    """x positions (indexes into `subjects`) that get a bar."""
    values: list[float]
    err_low: list[float]
    err_high: list[float]
    skipped: dict[str, str]
    """Subject -> why it has no bar."""


@dataclass
class Charts:
    paths: dict[str, Path] = field(default_factory=dict)
    """Metric name -> PNG written."""
    notes: list[str] = field(default_factory=list)
    """Metrics or subjects left out, and why."""


def bar_data(comparison: Comparison, metric: MetricName) -> Bars:
    """The bars of one metric; missing values are listed in `skipped`, never given a height."""
    positions, values, low, high, skipped = [], [], [], [], {}
    for index, subject in enumerate(comparison.subjects):
        value = comparison.value(subject, metric)
        if value.value is None or value.low is None or value.high is None:
            skipped[subject] = value.note or "missing"
            continue
        positions.append(index)
        values.append(value.value)
        low.append(max(0.0, value.value - value.low))
        high.append(max(0.0, value.high - value.value))
    return Bars(metric, comparison.subjects, positions, values, low, high, skipped)


def _draw(bars: Bars, path: Path) -> None:
    spec = METRIC_SPECS[bars.metric]
    figure = Figure(figsize=(max(4.0, 1.2 * len(bars.subjects) + 2.0), 3.6), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(bars.positions, bars.values, yerr=[bars.err_low, bars.err_high], capsize=4,
             color=BAR_COLOR)
    for index, subject in enumerate(bars.subjects):
        if subject in bars.skipped:
            axes.annotate("n/a", (index, 0), xytext=(0, 4), textcoords="offset points",
                          ha="center", color="gray")
    axes.set_xticks(range(len(bars.subjects)), bars.subjects, rotation=20 if len(bars.subjects) > 4 else 0)
    axes.set_xlim(-0.6, len(bars.subjects) - 0.4)
    axes.set_ylabel(f"{spec.label} ({spec.unit})")
    direction = "higher" if spec.higher_is_better else "lower"
    axes.set_title(f"{spec.label} — {direction} is better; bars: 95% CI", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, format="png")


def plot_comparison(comparison: Comparison, folder: str | Path,
                    metrics: list[MetricName] | None = None) -> Charts:
    """Write '<metric>.png' per metric into `folder`; returns the paths and what was left out."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    charts = Charts()
    for metric in metrics if metrics is not None else comparison.columns:
        bars = bar_data(comparison, metric)
        label = METRIC_SPECS[metric].label
        if not bars.positions:
            charts.notes.append(f"{label}: not plotted, missing for every subject")
            continue
        charts.notes += [f"{label}: no bar for {s} ({why})" for s, why in bars.skipped.items()]
        path = out / f"{metric.value}.png"
        _draw(bars, path)
        charts.paths[metric.value] = path
    return charts


#: The rates the headline chart groups per subject (all 0-1, higher is better).
HEADLINE_METRICS: tuple[MetricName, ...] = (MetricName.REFUSAL_HARMFUL, MetricName.ANSWERED_HELPFUL,
                                            MetricName.NOT_OVERREFUSE)
HEADLINE_COLORS = ("#C44E52", "#55A868", "#4C72B0")


def plot_headline(comparison: Comparison, path: str | Path) -> Charts:
    """One chart of the study's answer: per subject, its harmful-refusal, helpful-answered and
    not-over-refused rates side by side, each with its 95% interval. A missing rate gets an 'n/a'
    mark and a note, never a bar; the chart is drawn even when every rate is missing, because the
    report's opening shows it (a chart of n/a marks says so at a glance)."""
    charts = Charts()
    series = [bar_data(comparison, metric) for metric in HEADLINE_METRICS]
    subjects = comparison.subjects
    width = 0.8 / len(series)
    figure = Figure(figsize=(max(5.0, 1.6 * len(subjects) + 2.0), 3.8), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for offset, (bars, color) in enumerate(zip(series, HEADLINE_COLORS)):
        shift = (offset - (len(series) - 1) / 2) * width
        axes.bar([p + shift for p in bars.positions], bars.values, width, yerr=[bars.err_low, bars.err_high],
                 capsize=3, color=color, label=METRIC_SPECS[bars.metric].label)
        for index, subject in enumerate(subjects):
            if subject in bars.skipped:
                axes.annotate("n/a", (index + shift, 0), xytext=(0, 3), textcoords="offset points", ha="center",
                              color="gray", fontsize=7)
                charts.notes.append(f"headline chart: no {METRIC_SPECS[bars.metric].label} bar for {subject}")
    axes.set_xticks(range(len(subjects)), subjects, rotation=20 if len(subjects) > 4 else 0)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("rate (0-1), higher is better")
    axes.set_title("Refuses harmful · answers helpful · does not over-refuse benign; bars: 95% CI", fontsize=9)
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    charts.paths["headline"] = out
    return charts
