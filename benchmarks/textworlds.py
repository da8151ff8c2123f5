"""Text worlds: turnwise's overhead over the raw engines, on the same games and actions.

Runs the TextWorld and ALFWorld benchmarks side by side in one process. Each replays the same
expert action sequences on the same games, once through the raw engine and once through turnwise,
and reports reset and step latency (median and p95) and turnwise's overhead. Target: at most 5%.

Usage: python benchmarks/textworlds.py [--episodes N] [--out benchmarks/results/textworlds.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Sibling scripts, importable once this folder is on the path.
import alfworld_bench
import textworld_bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/textworlds.json")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "textworlds",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "textworld": textworld_bench.run(args.episodes),
        "alfworld": alfworld_bench.run(args.episodes),
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
