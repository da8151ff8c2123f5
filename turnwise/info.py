"""The standard `info` keys of every turnwise env, defined once.

`reset` returns `ResetInfo`; `step` returns `StepInfo`. Envs may add their own keys, but the ones
below always mean the same thing everywhere, so agents, wrappers, trainers and the checker can
rely on them. `validate_reset_info` / `validate_step_info` return a list of problems (empty when
the info is well formed); `turnwise.testing.check_env` uses them.

Reward convention: `reward == sum(reward_weights.get(k, 1.0) * v for k, v in reward_terms.items())`.
Terms are stored raw (before weighting) so trainers can gate or re-weight them (e.g. G-RA).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, TypedDict

__all__ = [
    "RESET_KEYS",
    "STEP_KEYS",
    "ResetInfo",
    "StepInfo",
    "validate_reset_info",
    "validate_step_info",
    "weighted_reward",
]


class ResetInfo(TypedDict, total=False):
    """What `reset` returns as `info`."""

    task_id: str
    """The task being played; `reset(options={"task_id": ...})` plays it again."""
    instruction: str
    """The goal, in words, as the agent should see it."""
    admissible_actions: list[str]
    """Actions that are valid now (only where the env knows them)."""
    max_turns: int
    """The episode is truncated after this many steps."""
    split: str
    """The split the task belongs to (`train`, `test`, ...)."""
    state_key: str
    """Canonical string of the initial state (see `StepInfo.state_key`)."""


class StepInfo(TypedDict, total=False):
    """What `step` returns as `info`."""

    valid_action: bool
    """False when the action was malformed, unknown or impossible (the observation says why)."""
    reward_terms: dict[str, float]
    """The named parts of the reward, unweighted (`outcome`, `progress`, `valid`, ...)."""
    reward_weights: dict[str, float]
    """Weight of each term in `reward`; a term missing here has weight 1.0."""
    success: bool
    """Whether the task was accomplished; present on the step that ends the episode."""
    state_key: str
    """Canonical string of the underlying state after the step: equal strings mean equal
    states, whatever the text said. Trainers group steps by it (GiGPO anchor states)."""
    admissible_actions: list[str]
    """Actions that are valid in the new state (only where the env knows them)."""
    turn: int
    """Number of steps taken so far in this episode (1 after the first step)."""
    truncation_reason: str
    """Why the episode was truncated (e.g. `max_turns`), when it was."""
    episode_over: bool
    """True on a step taken after the episode had already ended (it changes nothing)."""
    missing_terms: list[str]
    """Process-reward hooks that could not score this step (e.g. a judge with no usable
    answer): their terms are absent, not zero."""


#: Required reset keys and their types. `admissible_actions` and `state_key` are optional.
RESET_KEYS: dict[str, type | tuple[type, ...]] = {
    "task_id": str,
    "instruction": str,
    "max_turns": int,
}
#: Required step keys and their types. `admissible_actions` and `success` are conditional.
STEP_KEYS: dict[str, type | tuple[type, ...]] = {
    "valid_action": bool,
    "reward_terms": dict,
    "state_key": str,
    "turn": int,
}
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "admissible_actions": list,
    "reward_weights": dict,
    "success": bool,
    "split": str,
    "state_key": str,
    "truncation_reason": str,
    "episode_over": bool,
    "missing_terms": list,
}


def weighted_reward(
    terms: Mapping[str, float], weights: Mapping[str, float] | None = None
) -> float:
    """`sum(weights.get(name, 1.0) * value)` over the terms: the reward they add up to.

    Example:
        >>> weighted_reward({"outcome": 1.0, "valid": -1.0}, {"valid": 0.1})
        0.9
    """
    weights = weights or {}
    return float(sum(weights.get(name, 1.0) * value for name, value in terms.items()))


def _check_types(info: Mapping[str, Any], required: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, typ in required.items():
        if key not in info:
            problems.append(f"info is missing {key!r}")
        elif not isinstance(info[key], typ) or (typ is int and isinstance(info[key], bool)):
            problems.append(f"info[{key!r}] should be {typ}, got {type(info[key]).__name__}")
    for key, typ in _OPTIONAL.items():
        if key in info and key not in required and not isinstance(info[key], typ):
            problems.append(f"info[{key!r}] should be {typ}, got {type(info[key]).__name__}")
    admissible = info.get("admissible_actions")
    if isinstance(admissible, list) and not all(isinstance(a, str) for a in admissible):
        problems.append("info['admissible_actions'] should hold only strings")
    return problems


def validate_reset_info(info: Mapping[str, Any]) -> list[str]:
    """Problems with a reset `info` (empty list when it follows the contract)."""
    return _check_types(info, RESET_KEYS)


def validate_step_info(info: Mapping[str, Any], reward: float, ended: bool) -> list[str]:
    """Problems with a step `info`, its reward and (when the episode `ended`) its `success`."""
    problems = _check_types(info, STEP_KEYS)
    terms = info.get("reward_terms")
    weights = info.get("reward_weights", {})
    if isinstance(terms, dict):
        numeric = True
        for name, value in terms.items():
            if not isinstance(name, str) or isinstance(value, bool):
                problems.append(f"reward term {name!r} should map a str to a float")
                numeric = False
            elif not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"reward term {name!r} is not a finite number: {value!r}")
                numeric = False
        if numeric and isinstance(weights, dict):
            expected = weighted_reward(terms, weights)
            if not math.isclose(expected, reward, rel_tol=1e-9, abs_tol=1e-9):
                problems.append(
                    f"reward {reward!r} is not the weighted sum of reward_terms ({expected!r})"
                )
    if ended and "success" not in info:
        problems.append("info is missing 'success' on the step that ends the episode")
    return problems
