"""Matches: agents named by spec strings play the seats of a multi-agent env.

`load_seat_agent(spec, env, seat)` builds the agent of one seat from a spec:

================== ==============================================================================
spec               the agent
================== ==============================================================================
a model spec       `hf:PATH`, `vllm:PATH`, `openai:URL#MODEL`, in an `LLMAgent` with the social
                   template
``random``         uniform over the seat's admissible actions (else a sample of its action space)
``expert``         the env's oracle for the seat, where it has one
a partner name     one of the env's scripted partners, `env.partners` (e.g. ``tit-for-tat`` in
                   `turnwise/Dilemma-v0`); `partner_names(env)` lists them
================== ==============================================================================

`play_match` plays episodes with one agent per seat and returns a `MatchResult` per episode:
each seat's return and success and, in envs with a judge, the judge's verdict. `turnwise match`
is its command line.

Example:
    >>> from turnwise.envs.dilemma import DilemmaEnv
    >>> env = DilemmaEnv()
    >>> agents = {seat: load_seat_agent("tit-for-tat", env, seat) for seat in env.possible_agents}
    >>> [r.returns for r in play_match(env, agents, task_ids=["classic-3"])]
    [{'player_0': 9.0, 'player_1': 9.0}]
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from turnwise.episode import Agent, reset_agent

__all__ = ["MatchResult", "SeatExpert", "load_seat_agent", "partner_names", "play_match"]

_SEATS_MAX = 1000  # seat seeds are episode_seed * _SEATS_MAX + seat index


class SeatExpert:
    """The env's oracle for one seat (`env.expert_action(seat)`)."""

    def __init__(self, env: Any, seat: str) -> None:
        self.env, self.seat = env, seat

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        action = getattr(self.env, "unwrapped", self.env).expert_action(self.seat)
        if action is None:
            raise RuntimeError(f"{self.env} has no expert for {self.seat} in its current state")
        return str(action)


def partner_names(env: Any) -> list[str]:
    """The scripted partners an env offers (`env.partners`: name -> "module:Class")."""
    return sorted(getattr(getattr(env, "unwrapped", env), "partners", {}) or {})


def load_seat_agent(spec: str, env: Any, seat: str, *, seed: int | None = None) -> Agent:
    """The agent named by `spec` (see the module docstring) for `seat` of `env`."""
    from turnwise.agents.baselines import RandomAgent
    from turnwise.agents.specs import AGENT_FORMS, load_agent, parse_spec

    if seat not in env.possible_agents:
        raise ValueError(f"{seat!r} is not a seat of {env}; seats: {list(env.possible_agents)}")
    partners = getattr(getattr(env, "unwrapped", env), "partners", {}) or {}
    if spec in partners:
        module, _, name = str(partners[spec]).partition(":")
        agent = getattr(importlib.import_module(module), name)()
        reset_agent(agent, seed)
        return agent
    if spec == "random":
        return RandomAgent(seed=seed, action_space=env.action_space(seat))
    if spec == "expert":
        return SeatExpert(env, seat)
    try:
        parse_spec(spec)
    except ValueError:
        known = [*AGENT_FORMS, *sorted(partners)]
        raise ValueError(
            f"unknown agent spec {spec!r} for {seat}; a spec is one of: {', '.join(known)}"
        ) from None
    return load_agent(spec, env)


@dataclass
class MatchResult:
    """One episode of a match."""

    task_id: str
    seed: int | None
    turns: int
    returns: dict[str, float]
    success: dict[str, bool]
    judge: dict[str, Any] = field(default_factory=dict)
    """Per seat, the judge's verdict at the end (envs with a judge)."""
    transcript: str | None = None
    """The conversation, in envs that keep one."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def play_match(
    env: Any,
    agents: Mapping[str, Agent],
    *,
    episodes: int | None = None,
    seed: int = 0,
    task_ids: Sequence[str] | None = None,
    split: str | None = None,
) -> list[MatchResult]:
    """Play episodes of `env` with `agents[seat]` in every seat.

    Episodes are the `task_ids` (each once, seeded `seed + i`), or `episodes` seeded draws from
    `split` (seeds `seed`, `seed + 1`, ...). Before each episode every seat's agent is reset
    with a seed of its own, derived from the episode's seed and the seat's index.
    """
    missing = [s for s in env.possible_agents if s not in agents]
    if missing:
        raise ValueError(f"no agent for the seats {missing}")
    if task_ids is None and episodes is None:
        episodes = 1
    plan: list[tuple[int, str | None]] = (
        [(seed + i, t) for i, t in enumerate(task_ids)]
        if task_ids is not None
        else [(seed + i, None) for i in range(int(episodes or 0))]
    )
    results = []
    for episode_seed, task in plan:
        options: dict[str, Any] = {}
        if task is not None:
            options["task_id"] = task
        if split is not None:
            options["split"] = split
        for i, seat in enumerate(env.possible_agents):
            # One seed per seat: two random agents must not mirror each other's moves.
            reset_agent(agents[seat], episode_seed * _SEATS_MAX + i)
        obs, infos = env.reset(seed=episode_seed, options=options or None)
        task_id = str(next(iter(infos.values()))["task_id"])
        returns = dict.fromkeys(env.possible_agents, 0.0)
        success = dict.fromkeys(env.possible_agents, False)
        judge: dict[str, Any] = {}
        turns = 0
        while env.agents:
            moves = {seat: agents[seat].act(obs[seat], infos[seat]) for seat in env.agents}
            obs, rewards, _, _, infos = env.step(moves)
            turns += 1
            for seat, reward in rewards.items():
                returns[seat] += float(reward)
                info = infos.get(seat, {})
                if "success" in info:
                    success[seat] = bool(info["success"])
                if not env.agents and "judge" in info:
                    judge[seat] = info["judge"]
        transcript = getattr(getattr(env, "unwrapped", env), "transcript", None)
        results.append(
            MatchResult(
                task_id=task_id,
                seed=episode_seed,
                turns=turns,
                returns=returns,
                success=success,
                judge=judge,
                transcript=transcript() if callable(transcript) else None,
            )
        )
    return results
