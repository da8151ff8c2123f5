"""Extracting an env action from model text, without ever raising.

The agents layer builds on these; they live in the core so that the `format` process-reward hook
and the agents agree on what a well-formed reply is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ParseResult", "parse_tagged"]


@dataclass(frozen=True)
class ParseResult:
    """An action extracted from model text."""

    action: str
    """The action to send to the env ('' when nothing usable was found)."""
    ok: bool
    """Whether the text followed the expected format."""
    error: str | None = None
    """What was wrong with the format, for the agent and the `format` reward term."""


def parse_tagged(text: str, tag: str = "action", *, think_tag: str | None = "think") -> ParseResult:
    """Extract `<tag>…</tag>` from a ReAct-style reply (`<think>…</think><action>…</action>`).

    The reply is well formed when it holds exactly one action block, optionally preceded by one
    think block, and nothing else outside them but whitespace. A malformed reply still yields the
    content of its last action block (or '') so the episode can go on.

    Example:
        >>> parse_tagged("<think>the door is locked</think><action>take key</action>")
        ParseResult(action='take key', ok=True, error=None)
        >>> parse_tagged("take key").ok
        False
    """
    pattern = re.compile(rf"<{tag}>(.*?)</{tag}>", re.DOTALL)
    blocks = pattern.findall(text)
    if not blocks:
        return ParseResult("", False, f"no <{tag}>…</{tag}> block in the reply")
    action = blocks[-1].strip()
    if len(blocks) > 1:
        return ParseResult(action, False, f"{len(blocks)} <{tag}> blocks; expected one")
    rest = pattern.sub("", text)
    if think_tag is not None:
        rest = re.sub(rf"<{think_tag}>.*?</{think_tag}>", "", rest, count=1, flags=re.DOTALL)
    if rest.strip():
        return ParseResult(action, False, f"text outside the <{tag}> block: {rest.strip()[:40]!r}")
    if not action:
        return ParseResult(action, False, f"the <{tag}> block is empty")
    return ParseResult(action, True)
