"""Baseline agents that need no model: the env's expert (the ceiling) and random play."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np

__all__ = ["ExpertAgent", "RandomAgent"]


class ExpertAgent:
    """Plays the env's oracle (`expert_action()`); the ceiling of any evaluation table.

    Example:
        >>> import turnwise
        >>> env = turnwise.make("turnwise/KeyDoor-v0")
        >>> _, info = env.reset(seed=0)
        >>> ExpertAgent(env).act({}, info) in info["admissible_actions"]
        True
    """

    def __init__(self, env: gymnasium.Env[Any, Any]) -> None:
        self.env = env

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        action = self.env.unwrapped.expert_action()  # type: ignore[attr-defined]
        if action is None:
            raise RuntimeError(f"{self.env.unwrapped} has no expert for its current state")
        return str(action)


class RandomAgent:
    """Picks uniformly among `info["admissible_actions"]` (or samples the action space, seeded
    with `seed`: GUI envs' spaces sample valid clicks, keys and text).

    Example:
        >>> RandomAgent(seed=0).act({}, {"admissible_actions": ["look", "go north"]})
        'go north'
    """

    def __init__(
        self, seed: int | None = None, action_space: gymnasium.spaces.Space[Any] | None = None
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.action_space = action_space
        if action_space is not None and seed is not None:
            action_space.seed(int(seed))  # sampled actions repeat with the agent's seed

    def reset(self, seed: int | None = None) -> None:
        """Reseed (a None seed keeps the current streams), so an episode can be replayed."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            if self.action_space is not None:
                self.action_space.seed(int(seed))

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        actions = info.get("admissible_actions")
        if actions:
            return str(actions[int(self.rng.integers(len(actions)))])
        if self.action_space is None:
            raise RuntimeError("no admissible_actions in info and no action_space to sample")
        return str(self.action_space.sample())
