"""Every ```python block in the README and docs/ runs as written.

Blocks of one file share a namespace and run in order, in a scratch folder. A block preceded by
the line `<!-- notest -->` is not run (for code that needs hardware or a service we lack).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"(?P<skip><!-- notest -->\n)?```python\n(?P<code>.*?)```", re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    return [m["code"] for m in BLOCK.finditer(path.read_text()) if not m["skip"]]


WITH_CODE = [p for p in FILES if python_blocks(p)]


@pytest.mark.parametrize("path", WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = python_blocks(path)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{path.name}[block {i}]", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{path.name}, python block {i} failed: {exc!r}\n{code}") from exc


def test_the_quickstarts_are_among_the_tested_files() -> None:
    names = {str(p.relative_to(ROOT)) for p in WITH_CODE}
    assert {"README.md", "docs/env-contract.md", "docs/writing-an-env.md"} <= names
