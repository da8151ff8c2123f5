"""`ParseAction`: the env receives the action; the raw model reply is kept in `info`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium

from turnwise.parsing import ByNumber, ParseResult, parse_tagged

__all__ = ["ParseAction"]


class ParseAction(gymnasium.Wrapper[dict[str, Any], str, dict[str, Any], str]):
    """Parse each raw model reply into an env action before stepping.

    Adds `info["raw_action"]` (the reply), `info["env_action"]` (what the env was sent, which
    `turnwise leaderboard verify` replays), `info["format_ok"]` and, when the format was off,
    `info["format_error"]`, which the `Format` hook and the agents read. A reply with no action
    at all is still sent (as an empty action), so the env flags it invalid and the turn counts.

    Args:
        env: the env to wrap.
        parser: text -> `ParseResult` (default: ReAct `<think>…</think><action>…</action>` tags).
            A `ByNumber` parser's number names one of the admissible actions the env listed in
            the `info` of the turn before (reset's for the first step); the env is sent that
            action.

    Example:
        >>> import turnwise
        >>> from turnwise.wrappers import ParseAction
        >>> env = ParseAction(turnwise.make("turnwise/KeyDoor-v0"))
        >>> _ = env.reset(seed=0)
        >>> *_, info = env.step("<think>where am I?</think><action>look</action>")
        >>> info["valid_action"], info["format_ok"]
        (True, True)
    """

    def __init__(
        self,
        env: gymnasium.Env[dict[str, Any], str],
        parser: Callable[[str], ParseResult] = parse_tagged,
    ) -> None:
        super().__init__(env)
        self.parser = parser
        self._listed: list[str] = []

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._listed = list(info.get("admissible_actions") or ())
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], SupportsFloat, bool, bool, dict[str, Any]]:
        if isinstance(action, str):
            parsed = self.parser(action)
        else:
            parsed = ParseResult("", False, f"a reply is a string, got {type(action).__name__}")
        if isinstance(self.parser, ByNumber):
            parsed = self.parser.resolve(parsed, self._listed)
        obs, reward, terminated, truncated, info = self.env.step(parsed.action)
        self._listed = list(info.get("admissible_actions") or ())
        info = {**info, "raw_action": action, "env_action": parsed.action, "format_ok": parsed.ok}
        if parsed.error is not None:
            info["format_error"] = parsed.error
        return obs, reward, terminated, truncated, info
