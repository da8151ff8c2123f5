"""The plain agent loop: one episode of one agent in one env, recorded as a `Trajectory`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium

from turnwise.trajectory import Trajectory
from turnwise.wrappers.parse_action import ParseAction
from turnwise.wrappers.record import RecordTrajectory

__all__ = ["Agent", "reset_agent", "run_episode"]


@runtime_checkable
class Agent(Protocol):
    """Anything that picks the next action from an observation and the step's info.

    Optional extras, used by `run_episode` and the rollout collector when present:

    * `reset()` or `reset(seed=None)`: called before each episode (with its seed when it takes one);
    * `parser`: text -> `turnwise.parsing.ParseResult`. An agent with a parser returns its raw
      reply from `act`, and the env is wrapped in `ParseAction(env, parser)`, so the env sees the
      parsed action while the trajectory and the `format` hook see the reply;
    * `turn_record()`: `Turn` fields to attach to the turn just taken (generated token ids,
      log-probs, the prompt delta, timings; `info` entries are merged).
    """

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str: ...


def reset_agent(agent: object, seed: int | None) -> None:
    """Call the agent's optional `reset()`, with `seed=` when its signature takes one."""
    reset = getattr(agent, "reset", None)
    if not callable(reset):
        return
    try:
        takes_seed = "seed" in inspect.signature(reset).parameters
    except (TypeError, ValueError):  # builtins and C extensions may have no signature
        takes_seed = False
    if takes_seed:
        reset(seed=seed)
    else:
        reset()


def run_episode(
    env: gymnasium.Env[Any, Any],
    agent: Agent,
    *,
    seed: int | None = None,
    task_id: str | None = None,
    policy: str = "",
    max_turns: int | None = None,
) -> Trajectory:
    """Play one episode of `agent` in `env` and return its trajectory.

    Args:
        env: the env (it is not closed).
        agent: picks each action.
        seed: the reset seed.
        task_id: play this task (else the seed picks one).
        policy: a name for the agent, stored in the trajectory.
        max_turns: stop after this many turns even if the env has not (recorded as truncated).

    Example:
        >>> import turnwise
        >>> from turnwise.agents.baselines import ExpertAgent
        >>> env = turnwise.make("turnwise/KeyDoor-v0")
        >>> traj = run_episode(env, ExpertAgent(env), seed=3, policy="expert")
        >>> traj.success
        True
    """
    parser = getattr(agent, "parser", None)
    recorder = RecordTrajectory(
        ParseAction(env, parser) if callable(parser) else env, policy=policy
    )
    turn_record = getattr(agent, "turn_record", None)
    reset_agent(agent, seed)
    options = {"task_id": task_id} if task_id is not None else None
    obs, info = recorder.reset(seed=seed, options=options)
    while True:
        obs, _, terminated, truncated, info = recorder.step(agent.act(obs, info))
        if callable(turn_record):
            fields = turn_record()
            if fields:
                recorder.annotate_last_turn(**fields)
        if terminated or truncated:
            return recorder.trajectories[-1]
        current = recorder.current
        if max_turns is not None and current is not None and current.num_turns >= max_turns:
            current.truncated = True
            current.truncation_reason = "agent_max_turns"
            current.turns[-1].truncated = True
            current.final_observation = str(obs.get("text", "")) if isinstance(obs, dict) else ""
            return current
