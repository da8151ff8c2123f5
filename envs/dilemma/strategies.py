"""Classic fixed strategies for the dilemma, as `turnwise.episode.Agent`s.

They read only what any agent gets (the observation and the step's info, whose
`opponent_move` is the other seat's last move), so they can play a seat of `DilemmaEnv` or be the
partners of `turnwise.wrappers.SingleAgent`.

Example:
    >>> from turnwise.envs.dilemma import DilemmaEnv
    >>> from turnwise.envs.dilemma.strategies import AlwaysDefect, TitForTat
    >>> env = DilemmaEnv()
    >>> obs, infos = env.reset(options={"task_id": "classic-3"})
    >>> players = {"player_0": TitForTat(), "player_1": AlwaysDefect()}
    >>> while env.agents:
    ...     moves = {a: players[a].act(obs[a], infos[a]) for a in env.agents}
    ...     obs, rewards, _, _, infos = env.step(moves)
    >>> infos["player_0"]["scores"]
    {'player_0': 2.0, 'player_1': 7.0}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from turnwise.envs.dilemma.game import COOPERATE, DEFECT, MOVES, tit_for_tat

__all__ = ["AlwaysCooperate", "AlwaysDefect", "RandomMoves", "TitForTat"]


class AlwaysCooperate:
    """Cooperates every round."""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return COOPERATE


class AlwaysDefect:
    """Defects every round (the one-shot equilibrium)."""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return DEFECT


class TitForTat:
    """Cooperates first, then copies the opponent's last move (a forfeit counts as cooperate)."""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        last = info.get("opponent_move")
        return tit_for_tat([] if last is None else [DEFECT if last == DEFECT else COOPERATE])


class RandomMoves:
    """Cooperates with probability `p`; `reset(seed=...)` makes it repeatable."""

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        self.p = p
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        return MOVES[0] if self.rng.random() < self.p else MOVES[1]
