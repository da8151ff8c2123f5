"""Text worlds: turnwise's overhead over the raw engines, on the same games and actions.

Runs the TextWorld and ALFWorld benchmarks side by side in one process. Each replays the same
expert action sequences on the same games, once through the raw engine and once through turnwise,
and reports reset and step latency (median and p95) and turnwise's overhead. Target: at most 5%.

Usage: python benchmarks/textworlds.py [--episodes N] [--out benchmarks/results/textworlds.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Sibling scripts, importable once this folder is on the path.
import alfworld_bench
import textworld_bench
from _common import machine, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/textworlds.json")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "benchmark": "textworlds",
        "machine": machine(),
        "textworld": textworld_bench.run(args.episodes),
        "alfworld": alfworld_bench.run(args.episodes),
    }
    print(json.dumps(result, indent=2))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
