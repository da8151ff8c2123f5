"""Statistics of evaluation results."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bootstrap_ci"]


def bootstrap_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`.

    Example:
        >>> bootstrap_ci([1.0] * 10)
        (1.0, 1.0)
        >>> low, high = bootstrap_ci([0.0, 1.0] * 20)
        >>> 0.3 < low < 0.5 < high < 0.7
        True
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2
    return (float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail)))
