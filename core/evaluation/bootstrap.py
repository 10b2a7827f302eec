"""Percentile bootstrap confidence intervals for metric means.

Why a bootstrap: evaluation sets are small (hundreds of prompts) and the scores are bounded and
lumpy (0/1 safety, 1-10 helpfulness), so a normal-theory interval would mislead. Differences
between subjects use a paired bootstrap over the same questions (`paired_difference`). The
caller passes one value per resampling unit (one per question; for goodness@0.1 one per harmful prompt), so the
interval reflects which questions happened to be asked. The seed is fixed so the same judgements
always give the same interval.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 1234
DEFAULT_CONFIDENCE = 0.95
_BLOCK_CELLS = 1_000_000


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def bootstrap_mean(
    values: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Interval:
    """Percentile-bootstrap interval of the mean of `values` (one value per resampling unit).

    Draws `resamples` samples of len(values) units with replacement (numpy PCG64 seeded with
    `seed`), takes each sample's mean, and returns the (1-confidence)/2 and (1+confidence)/2
    percentiles of those means.
    """
    if len(values) == 0:
        raise ValueError("Cannot bootstrap zero values: report the metric as missing instead.")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}.")
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.Generator(np.random.PCG64(seed))
    # Draw in blocks of about a million indices so large sets do not need resamples x n memory.
    block = max(1, _BLOCK_CELLS // len(data))
    means = np.concatenate([
        data[rng.integers(0, len(data), size=(min(block, resamples - start), len(data)))].mean(axis=1)
        for start in range(0, resamples, block)
    ])
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return Interval(low=float(low), high=float(high))


@dataclass(frozen=True)
class PairedDifference:
    """Mean of (b - a) over the units both subjects have, with a paired bootstrap interval."""

    difference: float
    low: float
    high: float
    n: int
    """Units (questions or prompts) both subjects were scored on."""

    @property
    def significant(self) -> bool:
        """True only when the interval excludes zero."""
        return self.low > 0.0 or self.high < 0.0


def paired_difference(
    a: Mapping[str, float],
    b: Mapping[str, float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDifference:
    """Difference b - a over the units (question ids) both scored, with a PAIRED percentile bootstrap.

    Why paired: every subject answers the same prompts, so most of the spread between questions
    is shared; resampling the question indices once per replicate and applying them to both
    subjects cancels it, where two independent intervals would overlap and hide a real
    difference. The mean of the resampled differences equals mean(b[idx]) - mean(a[idx]).
    """
    shared = sorted(set(a) & set(b))
    if not shared:
        raise ValueError("The two subjects share no scored question: compare subjects evaluated on the same prompts.")
    differences = [float(b[key]) - float(a[key]) for key in shared]
    interval = bootstrap_mean(differences, resamples=resamples, seed=seed, confidence=confidence)
    mean = float(np.mean(differences))
    # A constant difference (up to float rounding of b - a) has a zero-width interval; report it so.
    constant = float(np.ptp(differences)) <= 1e-12 * max(1.0, abs(mean))
    low, high = (mean, mean) if constant else (interval.low, interval.high)
    return PairedDifference(mean, low, high, len(shared))
