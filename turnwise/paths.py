"""Where turnwise keeps files it can rebuild: generated games, built task sets, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """`$TURNWISE_CACHE_DIR/<parts>` (default `$XDG_CACHE_HOME/turnwise`, else `~/.cache/turnwise`).

    The folder is created. Everything under it can be deleted at any time and is rebuilt
    deterministically when needed.

    Example:
        >>> import os, tempfile
        >>> saved = os.environ.get("TURNWISE_CACHE_DIR")
        >>> os.environ["TURNWISE_CACHE_DIR"] = root = tempfile.mkdtemp()
        >>> cache_dir("textworld", "games") == Path(root, "textworld", "games")
        True
        >>> if saved is None: del os.environ["TURNWISE_CACHE_DIR"]
        ... else: os.environ["TURNWISE_CACHE_DIR"] = saved
    """
    root = os.environ.get("TURNWISE_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "turnwise"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
