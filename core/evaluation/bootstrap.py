"""Percentile bootstrap confidence intervals for metric means.

Why a bootstrap: evaluation sets are small (hundreds of prompts) and the scores are bounded and
lumpy (0/1 safety, 1-10 helpfulness), so a normal-theory interval would mislead. The caller passes
one value per resampling unit (one per question; for goodness@0.1 one per harmful prompt), so the
interval reflects which questions happened to be asked. The seed is fixed so the same judgements
always give the same interval.
"""
from __future__ import annotations

from collections.abc import Sequence
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
