"""The distribution: what `pip install turnwise` ships, and what `import turnwise` costs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAPPED = {
    "turnwise": "turnwise",
    "envs": "turnwise/envs",
    "agents": "turnwise/agents",
    "trainers": "turnwise/trainers",
    "sandboxes": "turnwise/sandboxes",
}
HEAVY = ["torch", "transformers", "playwright", "vllm", "ray", "docker", "pyarrow", "pettingzoo"]


def _modules_loaded_by(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import turnwise",
        "import turnwise.envs, turnwise.agents, turnwise.trainers, turnwise.sandboxes",
        "import turnwise.wrappers, turnwise.trajectory, turnwise.rewards",
        "import turnwise; turnwise.make('turnwise/KeyDoor-v0').reset(seed=0)",
    ],
)
def test_import_stays_light(code: str) -> None:
    loaded = _modules_loaded_by(code)
    heavy = [m for m in HEAVY if m in loaded]
    assert heavy == [], f"`{code}` imported {heavy}"


@pytest.mark.slow
def test_wheel_ships_every_module(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", "build", "dist", "*.egg-info", ".venv", "runs", "__pycache__", ".*_cache"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = (tmp_path / "dist").glob("turnwise-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, target in MAPPED.items():
        for path in (ROOT / folder).rglob("*.py"):
            expected.add(f"{target}/{path.relative_to(ROOT / folder).as_posix()}")
    assert expected, "found no modules to check"
    missing = sorted(expected - names)
    assert missing == [], f"not in the wheel: {missing}"
    assert "turnwise/py.typed" in names
    # Nothing is installed as a top-level `envs`, `agents`, ... package.
    tops = {n.split("/")[0] for n in names if not n.startswith("turnwise-")}
    assert tops == {"turnwise"}
