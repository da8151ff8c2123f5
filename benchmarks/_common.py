"""What every benchmark script records: the machine it ran on, and where the JSON went."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["machine", "write_result"]


def machine() -> dict[str, Any]:
    """The facts that make two runs comparable: CPU, core count, Python, load when measured."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def write_result(result: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write `result` as indented JSON to `out` (creating folders) and say where."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path


def quantile(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_ms(times_ms: list[float]) -> dict[str, Any]:
    """Count, median and p95 of timings in milliseconds."""
    return {
        "n": len(times_ms),
        "median_ms": round(statistics.median(times_ms), 2),
        "p95_ms": round(quantile(times_ms, 0.95), 2),
    }


def timed_ms(fn: Callable[[], Any], n: int, before: Callable[[], Any] | None = None) -> list[float]:
    """Milliseconds of each of `n` calls of `fn`; `before` runs untimed ahead of each."""
    times = []
    for _ in range(n):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times
