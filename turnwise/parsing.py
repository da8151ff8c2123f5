"""Extracting an env action from model text, without ever raising.

The agents layer builds on these; they live in the core so that the `format` process-reward hook
and the agents agree on what a well-formed reply is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["ByNumber", "Choices", "ParseResult", "check_choices", "parse_tagged"]

Choices = Literal["text", "number"]
"""How an agent names its action: it writes the command (`text`), or it answers with the number
of one of the admissible actions its prompt lists (`number`, parsed by `ByNumber`)."""


def check_choices(value: object, name: str = "choices") -> None:
    """Raise a clear error unless `value` is one of `Choices` (`name` is the option's name)."""
    if value not in ("text", "number"):
        raise ValueError(f"{name} must be 'text' or 'number', got {value!r}")


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


_NUMBER = re.compile(r"\d{1,6}")


@dataclass(frozen=True)
class ByNumber:
    """A parser for agents that answer with the number of an admissible action.

    The prompt lists the env's admissible actions numbered from 1 (a `PromptTemplate` with
    `choices="number"`); the reply's action is then a number, and `resolve` turns it into the
    listed command, which is what the env receives (`ParseAction` does this with the list the
    env gave on the same turn). A number outside the list is a format error and reaches the env
    as an empty, invalid action; an action that is not a bare number passes through as written.

    Args:
        parser: extracts the action from the reply (default: ReAct tags).

    Example:
        >>> parse = ByNumber()
        >>> listed = ["go to desk 1", "go to shelf 1"]
        >>> parse.resolve(parse("<action>2</action>"), listed)
        ParseResult(action='go to shelf 1', ok=True, error=None)
        >>> parse.resolve(parse("<action>7</action>"), listed).error
        'choice 7 is not listed (the actions are numbered 1 to 2)'
        >>> parse.resolve(parse("<action>look</action>"), listed).action
        'look'
    """

    parser: Callable[[str], ParseResult] = parse_tagged

    def __call__(self, text: str) -> ParseResult:
        return self.parser(text)

    def resolve(self, parsed: ParseResult, listed: Sequence[str]) -> ParseResult:
        """`parsed` with a bare-number action replaced by the listed action it names."""
        choice = parsed.action.strip().rstrip(".")
        if not _NUMBER.fullmatch(choice):
            return parsed
        index = int(choice)
        if 1 <= index <= len(listed):
            return ParseResult(str(listed[index - 1]), parsed.ok, parsed.error)
        if not listed:
            return ParseResult("", False, f"choice {index}: the env lists no actions this turn")
        error = f"choice {index} is not listed (the actions are numbered 1 to {len(listed)})"
        return ParseResult("", False, error)
