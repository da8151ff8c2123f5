"""The Dockerfiles in docker/ stay in step with the packaging they install.

No Docker engine runs here, so the images are not built: `make lint` runs hadolint on them, and
these tests check that what they install is what the project declares. The pip extras they name
exist in pyproject.toml, the project image installs the Makefile's extras and torch pin, the
extras they give scripts/install-system-deps.sh are extras of the project, and docker/README.md
shows how to build and run each image.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("*.Dockerfile"))
EXTRAS = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
)


def makefile_value(name: str) -> str:
    match = re.search(rf"^{name} \?= (.+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match.group(1).strip()


def pip_extras(dockerfile: Path) -> set[str]:
    found = re.findall(r'pip install [^"\n]*-e "\.\[([a-z0-9,]+)\]"', dockerfile.read_text())
    assert found, f"{dockerfile.name} installs no turnwise extras"
    return {extra for group in found for extra in group.split(",")}


def test_the_three_images_exist_and_the_readme_builds_and_runs_each() -> None:
    names = {p.name for p in DOCKERFILES}
    assert names == {"turnwise.Dockerfile", "train-gpu.Dockerfile", "swe-sandbox.Dockerfile"}
    readme = (ROOT / "docker" / "README.md").read_text()
    for name in names:
        tag = re.search(r"docker build -f docker/" + re.escape(name) + r" -t (\S+) \.", readme)
        assert tag, f"docker/README.md does not build {name}"
        assert "docker run --rm" in readme and tag.group(1) in readme.split(tag.group(0), 1)[1]


@pytest.mark.parametrize(
    "dockerfile", [p for p in DOCKERFILES if "sandbox" not in p.name], ids=lambda p: p.name
)
def test_every_extra_an_image_installs_is_declared(dockerfile: Path) -> None:
    assert pip_extras(dockerfile) <= EXTRAS
    for extras in re.findall(
        r"install-system-deps\.sh ([a-z ,]+?)\s*\\?\n", dockerfile.read_text()
    ):
        assert set(re.split(r"[ ,]+", extras.strip())) <= EXTRAS | {"all"}


def test_the_project_image_installs_what_make_test_does() -> None:
    text = (ROOT / "docker" / "turnwise.Dockerfile").read_text()
    assert pip_extras(ROOT / "docker" / "turnwise.Dockerfile") == set(
        makefile_value("EXTRAS").split(",")
    )
    assert f'"{makefile_value("TORCH")}"' in text
    assert "install-system-deps.sh all" in text  # every family's system packages


def test_the_gpu_image_has_vllm_and_the_trainers() -> None:
    assert {"vllm", "train"} <= pip_extras(ROOT / "docker" / "train-gpu.Dockerfile")
    assert "nvidia/cuda" in (ROOT / "docker" / "train-gpu.Dockerfile").read_text()


def test_every_extra_with_system_packages_is_a_project_extra() -> None:
    script = ROOT / "scripts" / "install-system-deps.sh"
    table = re.search(r"PACKAGE_TABLE='\n(.*?)'", script.read_text(), re.DOTALL)
    assert table
    named = {line.split()[0] for line in table.group(1).splitlines() if line.strip()}
    assert named - {"core"} <= EXTRAS
    printed = subprocess.run(
        ["bash", str(script), "--print", "all"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert {"chromium", "xvfb", "bubblewrap"} <= set(printed)  # what the project image promises
