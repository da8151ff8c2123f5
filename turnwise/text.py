"""Text hygiene shared by envs, trajectories and the CLI."""

from __future__ import annotations

import re

__all__ = ["clean_text"]

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` with lone surrogates (which no UTF-8 file can hold) replaced by U+FFFD.

    Everything else, control characters and NUL included, is kept as it is.

    Example:
        >>> clean_text("ok\\udc80!")
        'ok�!'
    """
    return _LONE_SURROGATE.sub("\ufffd", text)
