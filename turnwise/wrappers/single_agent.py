"""`SingleAgent`: one seat of a turnwise multi-agent env, as a single-agent `turnwise.Env`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from turnwise.core import VALID_TERM, Env, Observation, StepResult
from turnwise.episode import Agent, reset_agent

__all__ = ["SingleAgent", "make_single_agent"]

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
    * **Turn-based games.** While the learner has nothing to do (its `admissible_actions` is
      `[]`: another seat's turn), the wrapper plays on by itself: the partners move, the learner
      sends nothing, and its next observation gathers the text of every step in between. So each
      `step` is one move of the learner's, also at `reset` when a partner moves first. If the
      partners end the game before the learner's first move, that first `step` ends the
      episode (its action is not played, and is flagged invalid).
    * **Rewards.** The learner's reward terms pass through from the inner env, summed over the
      inner steps a `step` covers, and the weights are the inner env's (the base class adds
      `valid` for the learner's own move, as the inner env does).
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
        self._pending: dict[str, float] = {}
        self._pending_end: tuple[Any, dict[str, Any]] | None = None
        self._flags = (False, False)  # the learner's (terminated, truncated) at the last step
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

    @classmethod
    def from_specs(
        cls,
        env: str | Any = "turnwise/Dilemma-v0",
        partners: Mapping[str, str] | str = "random",
        *,
        learner: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> SingleAgent:
        """Build from names: `env` a registered multi-agent id (or env), partners by spec.

        `partners` maps each other seat to an agent spec of `turnwise.matches.load_seat_agent`
        (a model spec, `random`, `expert` or one of the env's scripted partners); one string
        puts the same spec in every other seat. `learner` defaults to the first seat; with no
        arguments, it is the first seat of `turnwise/Dilemma-v0` against a random partner. This is
        what `turnwise.make("turnwise/SingleAgent-v0", env=..., partners=...)` calls, so the
        trainers and the evaluator can use one seat of any social env by id.
        """
        from turnwise.matches import load_seat_agent

        if isinstance(env, str):
            from turnwise.registry import make

            env = make(env, **dict(env_kwargs or {}))
        elif env_kwargs:
            raise TypeError("env_kwargs only applies when env is an id")
        seats = list(env.possible_agents)
        learner = seats[0] if learner is None else learner
        if learner not in seats:
            raise ValueError(f"learner {learner!r} is not a seat of {env}; seats: {seats}")
        others = [s for s in seats if s != learner]
        specs = dict.fromkeys(others, partners) if isinstance(partners, str) else dict(partners)
        if set(specs) != set(others):
            raise ValueError(
                f"partners must name exactly the other seats {others}; got {sorted(specs)}"
            )
        agents = {seat: load_seat_agent(str(specs[seat]), env, seat, seed=seed) for seat in others}
        return cls(env, learner, agents, **kwargs)

    # ------------------------------------------------------------------ turnwise.Env
    @property
    def accepted_hostile_actions(self) -> tuple[str, ...]:
        """The inner env's free-text actions (`turnwise.testing.hostile`)."""
        inner = getattr(self.parallel_env, "unwrapped", self.parallel_env)
        return tuple(getattr(inner, "accepted_hostile_actions", ()))

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
        self._flags = (False, False)
        self._obs, self._infos = dict(obs), {a: dict(i) for a, i in infos.items()}
        info = {k: v for k, v in self._infos[self.learner].items() if k not in _OWN_RESET_KEYS}
        texts = [str(obs[self.learner].get("text", ""))]
        # In a turn-based game the partners may move first: the learner sees what they did.
        self._pending, self._pending_end = self._advance(texts), None
        if not self.parallel_env.agents:
            self._pending_end = (self._obs[self.learner], dict(self._infos[self.learner]))
        return _joined(self._obs[self.learner], texts), info

    def _partner_moves(self) -> dict[str, Any]:
        return {
            seat: self.partners[seat].act(self._obs[seat], self._infos[seat])
            for seat in self.parallel_env.agents
            if seat != self.learner
        }

    def _inner_step(self, joint: dict[str, Any]) -> tuple[dict[str, bool], dict[str, bool]]:
        obs, _, terminated, truncated, infos = self.parallel_env.step(joint)
        self._obs.update(obs)
        self._infos.update({a: dict(i) for a, i in infos.items()})
        self._flags = (bool(terminated[self.learner]), bool(truncated[self.learner]))
        return terminated, truncated

    def _waiting(self) -> bool:
        """The learner has nothing to do this turn (a turn-based game's other seat moves)."""
        live = self.learner in self.parallel_env.agents
        return live and self._infos[self.learner].get("admissible_actions") == []

    def _advance(self, texts: list[str]) -> dict[str, float]:
        """Play the partners' turns while the learner waits; sum the learner's reward terms."""
        terms: dict[str, float] = {}
        while self._waiting():
            self._inner_step({**self._partner_moves(), self.learner: ""})
            texts.append(str(self._obs[self.learner].get("text", "")))
            for name, value in self._infos[self.learner]["reward_terms"].items():
                if name != VALID_TERM:
                    terms[name] = terms.get(name, 0.0) + float(value)
        return terms

    def _step(self, action: str) -> StepResult:
        terms = dict(self._pending)
        self._pending = {}
        if self._pending_end is not None:  # the game ended before the learner's first move
            obs, info = self._pending_end
            return self._result(obs, terms, info, [str(obs.get("text", ""))], valid=False)
        joint: dict[str, Any] = {**self._partner_moves(), self.learner: action}
        self._inner_step(joint)
        info = self._infos[self.learner]
        valid = bool(info["valid_action"])
        for name, value in info["reward_terms"].items():
            if name != VALID_TERM:
                terms[name] = terms.get(name, 0.0) + float(value)
        texts = [str(self._obs[self.learner].get("text", ""))]
        for name, value in self._advance(texts).items():
            terms[name] = terms.get(name, 0.0) + value
        return self._result(
            self._obs[self.learner], terms, self._infos[self.learner], texts, valid=valid
        )

    def _result(
        self,
        obs: Observation,
        terms: dict[str, float],
        info: dict[str, Any],
        texts: list[str],
        *,
        valid: bool,
    ) -> StepResult:
        extra = {k: v for k, v in info.items() if k not in _OWN_STEP_KEYS}
        ended, truncated = self._flags
        if truncated and self.turn < self.max_turns:
            # The inner env stopped early for its own reason (its turn limit counts every
            # seat's turns): the episode cannot go on, and the base class would not truncate
            # it, so it ends here without success.
            ended = True
            extra["truncation_reason"] = info.get("truncation_reason", "inner env truncated")
        return StepResult(
            observation=_joined(obs, texts),
            reward_terms=terms,
            valid=valid,
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


def _joined(observation: Observation, texts: list[str]) -> Observation:
    """`observation` with the text of every inner step it covers, one after another."""
    return {**observation, "text": "\n".join(t for t in texts if t)}


def make_single_agent(**kwargs: Any) -> SingleAgent:
    """The entry point of `turnwise/SingleAgent-v0`: `SingleAgent.from_specs(**kwargs)`."""
    return SingleAgent.from_specs(**kwargs)
