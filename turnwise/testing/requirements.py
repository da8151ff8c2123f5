"""What this machine lacks for the tests marked `gpu`, `vllm`, `docker`, `browser`, `gui`, `ray`, `sandbox`.

Each function returns None when the requirement is met, else a sentence naming what is missing
and how to get it; turnwise's test suite skips marked tests with that sentence as the reason.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from collections.abc import Callable

__all__ = [
    "REQUIREMENTS",
    "missing",
    "missing_browser",
    "missing_docker",
    "missing_gpu",
    "missing_gui",
    "missing_ray",
    "missing_sandbox",
    "missing_vllm",
]


@functools.cache
def missing_gpu() -> str | None:
    if importlib.util.find_spec("torch") is None:
        return "needs a CUDA GPU: torch is not installed"
    import torch

    return None if torch.cuda.is_available() else "needs a CUDA GPU: none is visible to torch"


@functools.cache
def missing_vllm() -> str | None:
    if importlib.util.find_spec("vllm") is None:
        return "needs vLLM (pip install 'turnwise[vllm]', CUDA only)"
    return missing_gpu()


@functools.cache
def missing_docker() -> str | None:
    if importlib.util.find_spec("docker") is None:
        return "needs the docker SDK (pip install docker) and a running Docker engine"
    import docker

    try:
        docker.from_env().ping()  # type: ignore[attr-defined]  # mypy sees the repo's docker/ folder
    except Exception as exc:
        return f"needs a running Docker engine: {type(exc).__name__}"
    return None


@functools.cache
def missing_browser() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "needs playwright (pip install 'turnwise[web]')"
    path = os.environ.get("TURNWISE_CHROMIUM") or shutil.which("chromium")
    return None if path else "needs Chromium (apt-get install chromium, or set TURNWISE_CHROMIUM)"


@functools.cache
def missing_ray() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "needs Ray (pip install 'turnwise[ray]')"
    return None


@functools.cache
def missing_gui() -> str | None:
    if shutil.which("Xvfb") is None:
        return "needs Xvfb (scripts/install-system-deps.sh gui, or apt-get install xvfb)"
    for module, package in (("Xlib", "python-xlib"), ("mss", "mss"), ("jeepney", "jeepney")):
        if importlib.util.find_spec(module) is None:
            return f"needs {package} (pip install 'turnwise[gui]')"
    from turnwise.sandboxes.a11y import AccessibilityError, find_bus_launcher

    try:
        find_bus_launcher()
    except AccessibilityError:
        return "needs AT-SPI (scripts/install-system-deps.sh gui)"
    if shutil.which("dbus-daemon") is None:
        return "needs dbus-daemon (scripts/install-system-deps.sh gui)"
    return None


@functools.cache
def missing_sandbox() -> str | None:
    from turnwise.sandboxes.bwrap import bwrap_available

    # bwrap, prlimit and setpriv installed, and namespaces allowed (a container may block them)
    problem = bwrap_available()
    return None if problem is None else f"needs a working bubblewrap: {problem}"


REQUIREMENTS: dict[str, Callable[[], str | None]] = {
    "gpu": missing_gpu,
    "vllm": missing_vllm,
    "docker": missing_docker,
    "browser": missing_browser,
    "gui": missing_gui,
    "ray": missing_ray,
    "sandbox": missing_sandbox,
}


def missing(marker: str) -> str | None:
    """What is missing for tests marked `marker` (None if nothing, or if the marker is unknown)."""
    check = REQUIREMENTS.get(marker)
    return None if check is None else check()
