"""`SingleAgent`: one seat of a turnwise multi-agent env, as a single-agent `turnwise.Env`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnwise.core import VALID_TERM, Env, Observation, StepResult
from turnwise.episode import Agent, reset_agent

__all__ = ["SingleAgent"]

# Keys the base class computes itself; the inner env's values for them are not passed through.
_OWN_RESET_KEYS = frozenset({"task_id", "split", "max_turns", "state_key", "admissible_actions"})
_OWN_STEP_KEYS = frozenset(
    {"valid_action", "reward_terms", "reward_weights", "turn", "success", "state_key",
     "admissible_actions", "truncation_reason"}
)  # fmt: skip
_SEED_RANGE = 2**31 - 1


class SingleAgent(Env):
    """Play seat `learner` of a multi-agent env; `partners` play every other seat.

    It is a `turnwise.Env`, so the whole single-agent contract holds (and
    `turnwise.testing.check_env` passes): each `step(action)` collects the partners' moves from
    their own observations and infos, steps the inner env once, and returns the learner's side.

    * **Tasks, splits, turn limit** come from the inner env (`tasks`, `splits`, `max_turns`).
    * **Seeds.** `reset(seed=s)` derives the inner env's seed, and a seed for every partner whose
      `reset` takes a `seed` argument, from `s`; partners are reset before every episode. So an
      episode is as deterministic as the partners are given their seed.
    * **Rewards.** The learner's reward terms pass through from the inner env, and the weights
      are the inner env's (the base class adds `valid` exactly as the inner env does), so the
      reward equals the inner env's reward for the learner whenever the inner env was stepped.
      An action the base class rejects (not a string, too long) consumes a turn without
      stepping the inner env, as in any `turnwise.Env`.
    * **Expert** is the inner env's `expert_action(learner)`, where it has one.
    * **Self-play**: pass the learner's own policy as the partner (`SingleAgent.self_play`). An
      agent that keeps per-episode state should not share one object between seats; pass one
      instance per seat built on the same model instead.

    Args:
        env: a multi-agent env following `turnwise.multiagent` (e.g. `turnwise.make` of a
            `social` id); it is closed with this env.
        learner: the seat played through `step`.
        partners: an `Agent` for every other seat.
        split: the split to draw tasks from (default: the inner env's).
        render_mode: as for `turnwise.Env`.

    Example:
        >>> from turnwise.envs.dilemma import DilemmaEnv
        >>> from turnwise.envs.dilemma.strategies import TitForTat
        >>> env = SingleAgent(DilemmaEnv(), "player_0", {"player_1": TitForTat()})
        >>> obs, info = env.reset(seed=0, options={"task_id": "classic-3"})
        >>> obs, reward, terminated, truncated, info = env.step("defect")
        >>> reward, info["reward_terms"]
        (5.0, {'payoff': 5.0, 'valid': 0.0})
        >>> env.step("cooperate")[1], env.expert_action()
        (0.0, 'defect')
    """

    family = "social"

    def __init__(
        self,
        env: Any,
        learner: str,
        partners: Mapping[str, Agent],
        *,
        split: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        seats = list(env.possible_agents)
        if learner not in seats:
            raise ValueError(f"learner {learner!r} is not a seat of {env}; seats: {seats}")
        others = [s for s in seats if s != learner]
        if set(partners) != set(others):
            raise ValueError(
                f"partners must play exactly the other seats {others}; got {sorted(partners)}"
            )
        for seat, agent in partners.items():
            if not callable(getattr(agent, "act", None)):
                raise TypeError(f"the partner of {seat!r} is not an Agent (it has no act())")
        self.parallel_env = env
        self.learner = learner
        self.partners: dict[str, Agent] = dict(partners)
        self.splits = tuple(env.splits)
        self._obs: dict[str, Any] = {}
        self._infos: dict[str, dict[str, Any]] = {}
        super().__init__(
            split=split or env.split,
            max_turns=env.max_turns,
            reward_weights=dict(env.reward_weights),
            max_action_length=env.action_space(learner).max_length,
            render_mode=render_mode,
        )

    @classmethod
    def self_play(cls, env: Any, learner: str, agent: Agent, **kwargs: Any) -> SingleAgent:
        """`learner`'s seat through `step`, and `agent` (the same object) in every other seat."""
        others = [s for s in env.possible_agents if s != learner]
        return cls(env, learner, dict.fromkeys(others, agent), **kwargs)

    # ------------------------------------------------------------------ turnwise.Env
    @property
    def env_id(self) -> str:
        inner = getattr(self.parallel_env, "env_id", type(self.parallel_env).__name__)
        return f"SingleAgent({inner}, {self.learner})"

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self.parallel_env.tasks(split or self.split)

    def _reset_task(self, task_id: str) -> tuple[str | Observation, dict[str, Any]]:
        # Drawn from the freshly seeded self.np_random, so they follow from the outer seed.
        inner_seed = int(self.np_random.integers(_SEED_RANGE))
        for seat in sorted(self.partners):
            reset_agent(self.partners[seat], int(self.np_random.integers(_SEED_RANGE)))
        obs, infos = self.parallel_env.reset(seed=inner_seed, options={"task_id": task_id})
        self._obs, self._infos = dict(obs), {a: dict(i) for a, i in infos.items()}
        info = self._infos[self.learner]
        return obs[self.learner], {k: v for k, v in info.items() if k not in _OWN_RESET_KEYS}

    def _step(self, action: str) -> StepResult:
        joint: dict[str, Any] = {self.learner: action}
        for seat in self.parallel_env.agents:
            if seat != self.learner:
                joint[seat] = self.partners[seat].act(self._obs[seat], self._infos[seat])
        obs, _, terminated, truncated, infos = self.parallel_env.step(joint)
        self._obs.update(obs)
        self._infos.update({a: dict(i) for a, i in infos.items()})
        info = self._infos[self.learner]
        extra = {k: v for k, v in info.items() if k not in _OWN_STEP_KEYS}
        terms = {k: float(v) for k, v in info["reward_terms"].items() if k != VALID_TERM}
        ended = bool(terminated[self.learner])
        if truncated[self.learner] and self.turn < self.max_turns:
            # The inner env stopped early for its own reason: the episode cannot go on, and the
            # base class would not truncate it, so it ends here without success.
            ended = True
            extra["truncation_reason"] = info.get("truncation_reason", "inner env truncated")
        return StepResult(
            observation=obs[self.learner],
            reward_terms=terms,
            valid=bool(info["valid_action"]),
            terminated=ended,
            success=bool(info.get("success", False)) if ended else None,
            info=extra,
        )

    def admissible_actions(self) -> list[str] | None:
        actions = self._infos.get(self.learner, {}).get("admissible_actions")
        return None if actions is None else list(actions)

    def state_key(self) -> str:
        key = getattr(self.parallel_env, "state_key", None)
        if callable(key):
            return str(key(self.learner))
        return super().state_key()

    def expert_action(self) -> str | None:
        expert = getattr(self.parallel_env, "expert_action", None)
        if not callable(expert) or self.learner not in self.parallel_env.agents:
            return None
        action = expert(self.learner)
        return None if action is None else str(action)

    def _close(self) -> None:
        self.parallel_env.close()
