"""Conventions for turnwise multi-agent (social) envs, and `ParallelEnv`, their base class.

A turnwise multi-agent env is a PettingZoo `ParallelEnv` (all seats act every turn; a strictly
turn-based game can still be one, where only the seat to move gets a non-trivial prompt, or an
AEC env converted with `pettingzoo.utils.conversions`). Per agent it keeps the single-agent
contract of `turnwise.Env`, so agents, wrappers and trainers treat every seat alike:

* **Seats.** `possible_agents` is fixed at construction, in a fixed order (`player_0`, ...).
  The game ends for every seat at once: `terminated` when it is over, `truncated` at
  `max_turns`; then `agents` is empty until the next `reset`.
* **Observations.** Each agent's is a dict `{"text": str}` (raw text, never a prompt) in
  `observation_space(agent) == Dict(text=String)`.
* **Actions.** Strings, `action_space(agent) == String(max_action_length)`. Invalid input never
  raises: a non-string, an over-long string or a missing action is an invalid move *for that
  agent only* (a seat with nothing to do, `admissible_actions == []`, may send nothing); the
  game goes on and decides what an invalid move means (a forfeit, a pass),
  which each env documents. Lone surrogates are replaced by U+FFFD as in `turnwise.Env`.
* **Infos.** Per agent, the keys of `turnwise.info`: `task_id`, `instruction`, `max_turns`,
  `split`, `state_key` (and `admissible_actions` where known) at reset; `valid_action`,
  `reward_terms` (with the `valid` term), `reward_weights`, `state_key`, `turn` at every step,
  and `success` on the step that ends the game. Each agent's reward is the weighted sum of its
  terms; instructions may differ per seat (private goals).
* **Tasks and seeds.** Env-level `tasks(split)`, `splits`, `max_turns`;
  `reset(seed=..., options={"task_id": ..., "split": ...})`. A seed alone picks a task; the
  same task and seed replay the same game for the same actions.
* **Oracle.** Optional `expert_action(agent) -> str | None`; all seats playing it reach
  `success`.

`ParallelEnv` implements all of this; a game implements `tasks`, `_reset_task` and `_step` (and
optionally `admissible_actions`, `state_key`, `expert_action`, `_close`).
`turnwise.testing.check_parallel_env` checks an env against these conventions and
`turnwise.wrappers.SingleAgent` turns one seat into a `turnwise.Env`.

Example:
    >>> from turnwise.envs.dilemma import DilemmaEnv
    >>> env = DilemmaEnv()
    >>> obs, infos = env.reset(seed=0, options={"task_id": "classic-3"})
    >>> obs, rewards, terms, truncs, infos = env.step({"player_0": "cooperate", "player_1": 7})
    >>> rewards["player_1"], infos["player_1"]["valid_action"], infos["player_0"]["reward_terms"]
    (-0.1, False, {'payoff': 3.0, 'valid': 0.0})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import numpy as np
import pettingzoo
from gymnasium.utils import seeding

from turnwise.core import (
    VALID_TERM,
    Observation,
    action_problem,
    as_observation,
    score_terms,
)
from turnwise.selection import TaskSelector
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, text_observation_space
from turnwise.text import clean_text

__all__ = ["JointStep", "ParallelEnv"]

AgentInfos = dict[str, dict[str, Any]]
#: What `step` returns: per agent, observations, rewards, terminations, truncations and infos.
JointResult = tuple[
    dict[str, Observation], dict[str, float], dict[str, bool], dict[str, bool], AgentInfos
]


@dataclass
class JointStep:
    """What a game's `_step` returns for one turn of all seats."""

    observations: Mapping[str, str | Observation]
    """Every live agent's next observation."""
    reward_terms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per agent, the game's reward terms (the base adds `valid`)."""
    valid: Mapping[str, bool] = field(default_factory=dict)
    """Per agent, whether its move was legal in the game (missing: True)."""
    terminated: bool = False
    """The game is over (for every seat)."""
    success: Mapping[str, bool] = field(default_factory=dict)
    """Per agent, whether it accomplished its goal (read when `terminated`; missing: False)."""
    infos: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per agent, extra env-specific info keys."""


class ParallelEnv(pettingzoo.ParallelEnv[str, Observation, str]):
    """Base class of turnwise multi-agent envs: PettingZoo's parallel API, turnwise's contract.

    Args:
        possible_agents: the seats, in order.
        split: the split `reset()` draws tasks from unless `options["split"]` says otherwise.
        max_turns: every seat is truncated after this many joint steps.
        reward_weights: weight of each reward term (overrides the class defaults; 1.0 if absent).
        max_action_length: longer actions are invalid moves (never truncated silently).
        render_mode: `"ansi"` (return the text) or `"human"` (print it).
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "turnwise_parallel",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }
    family: ClassVar[str] = "social"
    default_reward_weights: ClassVar[Mapping[str, float]] = {VALID_TERM: 0.1}
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(
        self,
        possible_agents: Sequence[str],
        *,
        split: str = "train",
        max_turns: int = 50,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        if not possible_agents or len(set(possible_agents)) != len(possible_agents):
            raise ValueError(f"possible_agents must be distinct names, got {possible_agents!r}")
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self._selector = TaskSelector(self.tasks, self.splits, lambda: self.env_id)
        self._selector.check_split(split)
        self.possible_agents = list(possible_agents)
        self.agents: list[str] = []
        self.split = split
        self.max_turns = int(max_turns)
        self.reward_weights: dict[str, float] = {
            **self.default_reward_weights,
            **(reward_weights or {}),
        }
        self.render_mode = render_mode
        # One space object per seat, returned every time (PettingZoo requires it for seeding).
        self.observation_spaces = {
            a: text_observation_space(DEFAULT_MAX_LENGTH) for a in self.possible_agents
        }
        self.action_spaces = {a: String(max_action_length) for a in self.possible_agents}
        self._np_random: np.random.Generator | None = None
        self._task_id: str | None = None
        self._turn = 0
        self._end_flags = (False, False)
        self._success: dict[str, bool] = {}
        self._last_obs: dict[str, Observation] = {}
        self._closed = False

    # ------------------------------------------------------------------ to implement
    def tasks(self, split: str | None = None) -> Sequence[str]:
        """Task ids of `split` (default: this env's split), in a fixed order."""
        raise NotImplementedError

    def _reset_task(
        self, task_id: str
    ) -> tuple[Mapping[str, str | Observation], Mapping[str, Mapping[str, Any]]]:
        """Start `task_id`: each seat's first observation and info (with its `instruction`).

        `self.np_random` is already seeded: draw any game randomness from it.
        """
        raise NotImplementedError

    def _step(self, moves: Mapping[str, str | None]) -> JointStep:
        """Play one turn. `moves[agent]` is its action text, or None where the base rejected it
        (not a string, too long, missing): the game decides what that means and must not raise.
        """
        raise NotImplementedError

    def admissible_actions(self, agent: str) -> list[str] | None:
        """The actions valid for `agent` now, or None if the game cannot list them."""
        return None

    def state_key(self, agent: str) -> str:
        """A canonical string of the state as `agent` faces it (default: its observation text)."""
        return str(self._last_obs.get(agent, {}).get("text", ""))

    def expert_action(self, agent: str) -> str | None:
        """An oracle's next action for `agent`, or None if the game has no oracle."""
        return None

    def _close(self) -> None:
        """Release resources; called once, however often `close()` is."""

    # ------------------------------------------------------------------ the contract
    @property
    def np_random(self) -> np.random.Generator:
        """The game's random generator, seeded by `reset(seed=...)`."""
        if self._np_random is None:
            self._np_random, _ = seeding.np_random()
        return self._np_random

    @property
    def env_id(self) -> str:
        """The registered id, from `metadata["name"]`."""
        return str(self.metadata.get("name", type(self).__name__))

    @property
    def task_id(self) -> str | None:
        return self._task_id

    @property
    def turn(self) -> int:
        """Joint steps taken in the current episode."""
        return self._turn

    def observation_space(self, agent: str) -> gymnasium.spaces.Space[Any]:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space[Any]:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Observation], AgentInfos]:
        """Start an episode; `options` may name a `task_id` or a `split` to draw from."""
        if seed is not None:
            self._np_random, _ = seeding.np_random(seed)
        # The same task selection as turnwise.Env: the seed alone picks the task, and naming the
        # task it would pick gives the identical game.
        self._task_id, split = self._selector.select(options, self.split, seed, self.np_random)
        self._turn = 0
        self._end_flags = (False, False)
        self._success = {}
        self.agents = list(self.possible_agents)
        observations, extras = self._reset_task(self._task_id)
        self._last_obs = {a: as_observation(observations[a], self) for a in self.agents}
        infos: AgentInfos = {}
        for agent in self.agents:
            info = {"task_id": self._task_id, "split": split, "max_turns": self.max_turns}
            info.update(extras.get(agent, {}))
            info.setdefault("instruction", "")
            self._add_state(agent, info)
            infos[agent] = info
        return {a: dict(o) for a, o in self._last_obs.items()}, infos

    def step(self, actions: dict[str, str]) -> JointResult:
        """One joint turn. Bad input from an agent never raises: it is that agent's invalid move."""
        if self._task_id is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        if not isinstance(actions, Mapping):
            raise TypeError(f"step() takes a dict of agent -> action, got {type(actions).__name__}")
        if not self.agents:
            return self._after_end(actions)
        self._turn += 1
        problems: dict[str, str] = {}
        moves: dict[str, str | None] = {}
        for agent in self.agents:
            if agent not in actions and self.admissible_actions(agent) == []:
                moves[agent] = ""  # a seat with nothing to do this turn need not send anything
                continue
            action: object = actions.get(agent)
            limit = self.action_spaces[agent].max_length
            problem = action_problem(action, limit) if agent in actions else "no action was given."
            if problem is not None:
                problems[agent] = problem
            moves[agent] = clean_text(action) if isinstance(action, str) and not problem else None
        result = self._step(moves)
        terminated = bool(result.terminated)
        truncated = not terminated and self._turn >= self.max_turns
        if terminated or truncated:
            self._end_flags = (terminated, truncated)
        obs, rewards, infos = {}, {}, {}
        for agent in self.agents:
            obs[agent], rewards[agent], infos[agent] = self._agent_result(
                agent, result, problems.get(agent)
            )
        # Only now, with every seat's observation in place, can state keys be computed.
        for agent, info in infos.items():
            self._add_state(agent, info, ended=terminated or truncated)
        agents = list(self.agents)
        if terminated or truncated:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return (
            obs,
            rewards,
            dict.fromkeys(agents, terminated),
            dict.fromkeys(agents, truncated),
            infos,
        )

    def _agent_result(
        self, agent: str, result: JointStep, problem: str | None
    ) -> tuple[Observation, float, dict[str, Any]]:
        """One seat's observation, reward and info for a turn the game played."""
        if agent not in result.observations:
            raise RuntimeError(f"{type(self).__name__}._step gave no observation for {agent!r}")
        observation = as_observation(result.observations[agent], self)
        if problem is not None:
            observation = {
                **observation,
                "text": f"Invalid action: {problem}\n{observation['text']}",
            }
        self._last_obs[agent] = observation
        valid = problem is None and bool(result.valid.get(agent, True))
        terms, weights, reward = score_terms(
            result.reward_terms.get(agent, {}), valid, self.reward_weights
        )
        info: dict[str, Any] = {
            **result.infos.get(agent, {}),
            "valid_action": valid,
            "reward_terms": terms,
            "reward_weights": weights,
            "turn": self._turn,
        }
        terminated, truncated = self._end_flags
        if terminated or truncated:
            self._success[agent] = terminated and bool(result.success.get(agent, False))
            info["success"] = self._success[agent]
            if truncated:
                info["truncation_reason"] = "max_turns"
        return dict(observation), reward, info

    def render(self) -> str | None:
        text = "\n\n".join(f"[{a}]\n{o.get('text', '')}" for a, o in self._last_obs.items())
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Release resources. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._close()

    # ------------------------------------------------------------------ helpers
    def _add_state(self, agent: str, info: dict[str, Any], ended: bool = False) -> None:
        info["state_key"] = self.state_key(agent)
        admissible = self.admissible_actions(agent)
        if admissible is not None:
            info["admissible_actions"] = [] if ended else list(admissible)

    def _after_end(self, actions: Mapping[str, Any]) -> JointResult:
        """Steps after the game ended, for the seats named in `actions`: as in `turnwise.Env`,
        not part of the episode (no reward) but flagged invalid so agents notice."""
        named = [a for a in self.possible_agents if a in actions]
        text = "Invalid action: the episode is over; call reset() to start another."
        infos: AgentInfos = {}
        for agent in named:
            infos[agent] = {
                "valid_action": False,
                "reward_terms": {},
                "reward_weights": {},
                "turn": self._turn,
                "success": self._success.get(agent, False),
                "state_key": self.state_key(agent),
                "episode_over": True,
            }
        terminated, truncated = self._end_flags
        return (
            {a: {"text": text} for a in named},
            dict.fromkeys(named, 0.0),
            dict.fromkeys(named, terminated),
            dict.fromkeys(named, truncated),
            infos,
        )
