"""What every benchmark script records: the machine it ran on, and where the JSON went."""

from __future__ import annotations

import json
import os
import platform
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
