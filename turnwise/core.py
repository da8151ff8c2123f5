"""`turnwise.Env`: the one contract every single-agent turnwise environment follows.

A subclass supplies the world (`tasks`, `_reset_task`, `_step`, and optionally
`admissible_actions`, `state_key`, `expert_action`); the base class supplies everything the
contract promises on top, identically for every env:

* task selection: `reset(options={"task_id": ...})`, or a seed alone picks one deterministically
  from the split; the same task and seed always give the same episode;
* action hygiene: non-strings, over-long strings and lone surrogates never reach the subclass and
  never raise; they come back as an invalid step whose observation says what was wrong;
* the standard `info` keys of `turnwise.info`, the `valid` reward term, `reward` as the weighted
  sum of `reward_terms`, truncation at `max_turns`, and steps after the episode ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, SupportsFloat

import gymnasium

from turnwise.info import weighted_reward
from turnwise.selection import TaskSelector, UnknownTaskError
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, text_observation_space
from turnwise.text import clean_text

__all__ = [
    "Env",
    "Observation",
    "StepResult",
    "UnknownTaskError",
    "action_problem",
    "as_observation",
    "score_terms",
]

Observation = dict[str, Any]
"""`{"text": str}`, plus `"image"` (uint8 H×W×3) in visual envs."""

#: The reward term every env reports for action validity: 0.0 when valid, `INVALID_PENALTY` when not.
VALID_TERM = "valid"
INVALID_PENALTY = -1.0


def action_problem(action: object, max_length: int) -> str | None:
    """Why `action` cannot reach env code (not a string, too long), or None if it can.

    Example:
        >>> action_problem(b"look", 10)
        'an action is a string, got bytes.'
        >>> action_problem("look", 10) is None
        True
    """
    if not isinstance(action, str):
        return f"an action is a string, got {type(action).__name__}."
    if len(action) > max_length:
        return f"the action is {len(action)} characters long; the limit is {max_length}."
    return None


def as_observation(obs: str | Observation, owner: object) -> Observation:
    """`obs` as an observation dict with clean text (`owner` names the env in the error)."""
    if isinstance(obs, str):
        return {"text": clean_text(obs)}
    if "text" not in obs:
        raise TypeError(f"{type(owner).__name__} returned an observation without 'text'")
    return {**obs, "text": clean_text(str(obs["text"]))}


def score_terms(
    game_terms: Mapping[str, float], valid: bool, reward_weights: Mapping[str, float]
) -> tuple[dict[str, float], dict[str, float], float]:
    """A step's reward terms (the game's plus `valid`), the weights that apply, and the reward.

    Example:
        >>> score_terms({"outcome": 1.0}, valid=False, reward_weights={"valid": 0.1})
        ({'outcome': 1.0, 'valid': -1.0}, {'valid': 0.1}, 0.9)
    """
    terms = {name: float(v) for name, v in game_terms.items()}
    terms[VALID_TERM] = 0.0 if valid else INVALID_PENALTY
    weights = {k: reward_weights[k] for k in terms if k in reward_weights}
    return terms, weights, weighted_reward(terms, weights)


@dataclass
class StepResult:
    """What a subclass's `_step` returns; the base class turns it into Gymnasium's 5-tuple."""

    observation: str | Observation
    reward_terms: dict[str, float] = field(default_factory=dict)
    valid: bool = True
    terminated: bool = False
    success: bool | None = None
    """Whether the task is accomplished (needed when `terminated`; False is assumed otherwise)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Extra, env-specific info keys."""


class Env(gymnasium.Env[Observation, str]):
    """Base class of single-agent turnwise environments (text in, text out).

    Subclasses set `family` and implement `tasks`, `_reset_task` and `_step`; they may override
    `admissible_actions`, `state_key`, `expert_action` and `_close`.

    Args:
        split: the split that `reset()` draws tasks from unless `options["split"]` says otherwise.
        max_turns: the episode is truncated after this many steps.
        reward_weights: weight of each reward term in `reward` (overrides the class defaults;
            a term without a weight counts 1.0).
        max_action_length: longer actions are rejected as invalid (never truncated silently).
        render_mode: `"ansi"` (return the observation text) or `"human"` (print it).
    """

    metadata = {"render_modes": ["ansi", "human"], "render_fps": None}  # noqa: RUF012
    #: One of "text", "web", "gui", "swe", "social", or "other".
    family: str = "other"
    #: Default weights of this env's reward terms.
    default_reward_weights: ClassVar[Mapping[str, float]] = {VALID_TERM: 0.1}
    #: Splits this env has tasks for.
    splits: tuple[str, ...] = ("train", "test")

    def __init__(
        self,
        *,
        split: str = "train",
        max_turns: int = 50,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        if max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self._selector = TaskSelector(self.tasks, self.splits, lambda: self.env_id)
        self._selector.check_split(split)
        self.split = split
        self.max_turns = int(max_turns)
        self.reward_weights: dict[str, float] = {
            **self.default_reward_weights,
            **(reward_weights or {}),
        }
        self.render_mode = render_mode
        self.observation_space = text_observation_space(DEFAULT_MAX_LENGTH)
        self.action_space = String(max_action_length)
        self._task_id: str | None = None
        self._turn = 0
        self._ended = False
        self._end_flags = (False, False)
        self._success = False
        self._last_obs: Observation = {"text": ""}
        self._closed = False

    # ------------------------------------------------------------------ to implement
    def tasks(self, split: str | None = None) -> Sequence[str]:
        """Task ids of `split` (default: this env's split), in a fixed order."""
        raise NotImplementedError

    def _reset_task(self, task_id: str) -> tuple[str | Observation, dict[str, Any]]:
        """Start `task_id`; return the first observation and an info with `instruction`.

        `self.np_random` is already seeded: draw any episode randomness from it.
        """
        raise NotImplementedError

    def _step(self, action: str) -> StepResult:
        """Apply a well-formed action string (any content: it may still be invalid)."""
        raise NotImplementedError

    def admissible_actions(self) -> list[str] | None:
        """The actions valid in the current state, or None if the env cannot list them."""
        return None

    def state_key(self) -> str:
        """A canonical string of the current underlying state (default: the observation text).

        Override it with the real state wherever the text alone can mislead (the same state
        described differently, or different states described alike).
        """
        return str(self._last_obs.get("text", ""))

    def expert_action(self) -> str | None:
        """An oracle's next action from the current state, or None if the env has no oracle."""
        return None

    def _close(self) -> None:
        """Release resources; called once, however often `close()` is."""

    # ------------------------------------------------------------------ the contract
    @property
    def env_id(self) -> str:
        """The registered id (`turnwise/Name-vN`), or the class name if built directly."""
        return self.spec.id if self.spec is not None else type(self).__name__

    @property
    def task_id(self) -> str | None:
        """The task of the current episode (None before the first reset)."""
        return self._task_id

    @property
    def turn(self) -> int:
        """Steps taken in the current episode."""
        return self._turn

    @property
    def ended(self) -> bool:
        """Whether the current episode has terminated or been truncated."""
        return self._ended

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Start an episode.

        Args:
            seed: seeds the episode's randomness (and, without a task id, picks the task).
            options: `task_id` to play a given task; `split` to draw from another split.
        """
        super().reset(seed=seed)
        self._task_id, split = self._selector.select(options, self.split, seed, self.np_random)
        self._turn = 0
        self._ended = False
        self._end_flags = (False, False)
        self._success = False
        obs, extra = self._reset_task(self._task_id)
        self._last_obs = as_observation(obs, self)
        info: dict[str, Any] = {
            "task_id": self._task_id,
            "split": split,
            "max_turns": self.max_turns,
            **extra,
        }
        info.setdefault("instruction", "")
        info["state_key"] = self.state_key()
        admissible = self.admissible_actions()
        if admissible is not None:
            info["admissible_actions"] = list(admissible)
        return self._last_obs, info

    def step(self, action: str) -> tuple[Observation, SupportsFloat, bool, bool, dict[str, Any]]:
        """Take one turn. Bad agent input never raises: it is an invalid step."""
        if self._task_id is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        if self._ended:
            return self._after_end()
        self._turn += 1
        problem = action_problem(action, self.action_space.max_length)  # type: ignore[attr-defined]
        if problem is not None:
            result = StepResult(self._invalid_observation(problem), valid=False)
        else:
            result = self._step(clean_text(action))
        obs = as_observation(result.observation, self)
        terms, weights, reward = score_terms(result.reward_terms, result.valid, self.reward_weights)
        terminated = bool(result.terminated)
        truncated = not terminated and self._turn >= self.max_turns
        info: dict[str, Any] = {
            **result.info,
            "valid_action": bool(result.valid),
            "reward_terms": terms,
            "reward_weights": weights,
            "turn": self._turn,
        }
        if terminated or truncated:
            self._ended = True
            self._end_flags = (terminated, truncated)
            self._success = bool(result.success) if terminated else False
            info["success"] = self._success
            if truncated:
                info["truncation_reason"] = "max_turns"
        info["state_key"] = self.state_key()
        admissible = self.admissible_actions()
        if admissible is not None:
            info["admissible_actions"] = list(admissible) if not self._ended else []
        self._last_obs = obs
        if self.render_mode == "human":
            self.render()
        return obs, reward, terminated, truncated, info

    def render(self) -> str | None:
        text = str(self._last_obs.get("text", ""))
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        """Release resources. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._close()
        super().close()

    # ------------------------------------------------------------------ helpers
    def _invalid_observation(self, problem: str) -> str | Observation:
        """The observation of a step rejected before reaching `_step` (overridable)."""
        return f"Invalid action: {problem}"

    def _after_end(self) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        # Not part of the episode: no reward, but flagged invalid so agents notice.
        terminated, truncated = self._end_flags
        info: dict[str, Any] = {
            "valid_action": False,
            "reward_terms": {},
            "reward_weights": {},
            "turn": self._turn,
            "success": self._success,
            "state_key": self.state_key(),
            "episode_over": True,
        }
        obs = as_observation(
            self._invalid_observation("the episode is over; call reset() to start another."), self
        )
        return obs, 0.0, terminated, truncated, info
