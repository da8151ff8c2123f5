"""Hostile actions: the inputs every turnwise env must survive without raising.

An LLM agent can send anything: nothing at all, a megabyte of text, control characters, half of a
UTF-16 surrogate pair, terminal escape codes, text that reverses its own display direction, shell
or HTML injection, or (through a buggy harness) something that is not a string. The contract
(DESIGN.md) is that bad agent input never raises: the step is invalid (`info["valid_action"]` is
False) and the observation says what was wrong. `turnwise.testing.check_env` sends each action
below and checks exactly that.

None of these is a valid action in an env with a command grammar. An env whose actions are free
text (a shell, a chat message) may accept some of them on purpose; it names those in
`check_env(..., accept_hostile=[...])` instead of weakening the list, or, when every user of the
env should accept them, in its `accepted_hostile_actions` attribute (`free_text_hostile()` lists
the string actions a chat env takes as said).

Example:
    >>> from turnwise.testing.hostile import hostile_actions
    >>> names = [h.name for h in hostile_actions()]
    >>> "empty" in names and "lone_surrogate" in names and "none" in names
    True
    >>> len(next(h for h in hostile_actions() if h.name == "megabyte").value)
    1048576
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HostileAction", "free_text_hostile", "hostile_actions"]

#: Length of the `megabyte` action: far beyond any sensible `max_action_length`.
MEGABYTE = 1 << 20
#: Length of the `long_token` action: under the default limit of 4096, so it reaches the env.
LONG_TOKEN = 4000


@dataclass(frozen=True)
class HostileAction:
    """One hostile input: a short stable `name` (used in reports), the `value`, and `why`."""

    name: str
    value: object
    why: str

    def describe(self) -> str:
        """A short rendering of the value for failure messages, in ASCII so that no terminal
        interprets it (a bidi override would reverse the rest of the line)."""
        text = ascii(self.value)
        return text if len(text) <= 60 else f"{text[:57]}..."


def hostile_actions() -> list[HostileAction]:
    """The hostile actions, freshly built (some values are mutable), in a fixed order."""
    return [
        # --- degenerate strings
        HostileAction("empty", "", "the empty string"),
        HostileAction("whitespace", " \t\n \r\n\u00a0\u3000 ", "only whitespace, Unicode included"),
        HostileAction("megabyte", "x" * MEGABYTE, "a 1 MiB string"),
        HostileAction("long_token", "A" * LONG_TOKEN, "one very long token"),
        # --- characters that break parsers, terminals and files
        HostileAction("nul", "look\x00north", "an embedded NUL byte"),
        HostileAction(
            "control_chars",
            "".join(chr(c) for c in range(1, 32)) + "\x7f",
            "every C0 control character and DEL",
        ),
        HostileAction("lone_surrogate", "go \ud800north", "a lone high surrogate (not UTF-8)"),
        HostileAction("reversed_surrogates", "\udc00\ud800", "a low surrogate before a high one"),
        HostileAction("ansi_escape", "\x1b[2J\x1b[31mlook\x1b[0m\x1b]0;pwned\x07", "ANSI escapes"),
        HostileAction("rtl_override", "look \u202eht\u202dron og\u202c", "bidi overrides"),
        HostileAction("zalgo", "l" + "\u0301\u0336" * 200 + "ook", "400 combining marks"),
        # --- injection attempts: must be treated as text, never executed or rendered
        HostileAction("shell_rm", "; rm -rf / #", "shell command injection"),
        HostileAction("shell_subst", "$(reboot)", "shell command substitution"),
        HostileAction("shell_backticks", "`cat /etc/passwd`", "backtick substitution"),
        HostileAction("html_script", "<script>alert(1)</script>", "HTML/JS injection"),
        HostileAction("html_img", '<img src=x onerror="alert(1)">', "HTML attribute injection"),
        HostileAction("sql", "'; DROP TABLE tasks; --", "SQL injection"),
        HostileAction("format_string", "{0.__class__.__mro__}%s%n{}", "format-string injection"),
        HostileAction("path_traversal", "../../../../etc/passwd", "path traversal"),
        # --- not strings at all (a harness bug, or a parser that returned nothing)
        HostileAction("none", None, "None instead of a string"),
        HostileAction("int", 123, "an int"),
        HostileAction("bytes", b"look", "bytes that would decode to a plausible action"),
        HostileAction("bad_bytes", b"\xff\xfe\xc3", "bytes that are not UTF-8"),
        HostileAction("list", ["look"], "a list holding a plausible action"),
    ]


def free_text_hostile() -> tuple[str, ...]:
    """Names of the hostile strings that are fine as free text: neither blank nor over-long.

    A chat env takes these as something said (and an env that runs them, such as a shell,
    should not accept them this way: it must contain them).
    """
    return tuple(
        h.name
        for h in hostile_actions()
        if isinstance(h.value, str) and h.value.strip() and len(h.value) < MEGABYTE
    )
