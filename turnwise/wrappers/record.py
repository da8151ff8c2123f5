"""`RecordTrajectory`: record every episode of any env as a `turnwise.Trajectory`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, SupportsFloat

import gymnasium

from turnwise.trajectory import Trajectory, Turn

__all__ = ["RecordTrajectory"]

# Info keys that have their own `Turn` field, or that are too large to keep on every turn.
_NOT_KEPT = frozenset(
    {"valid_action", "reward_terms", "reward_weights", "state_key", "turn", "success"}
)


class RecordTrajectory(gymnasium.Wrapper[Any, Any, Any, Any]):
    """Record each episode: the observations, actions, rewards and reward terms of every turn.

    A trajectory starts at `reset` and is finished when the episode terminates or is truncated;
    finished ones are appended to `trajectories` and passed to `on_episode_end`. An episode
    abandoned by a new `reset` is dropped (it never ended, so it is not a trajectory).

    Args:
        env: any env; observations may be `{"text": ...}` dicts or plain strings.
        policy: the policy spec to store in each trajectory.
        on_episode_end: called with each finished trajectory (e.g. to write it out).
        keep_info: also store the JSON-serialisable info keys without a `Turn` field of their
            own (`raw_action`, `admissible_actions`, ...) in `Turn.info`.

    Example:
        >>> import turnwise
        >>> from turnwise.wrappers import RecordTrajectory
        >>> env = RecordTrajectory(turnwise.make("turnwise/KeyDoor-v0"), policy="expert")
        >>> _ = env.reset(seed=1)
        >>> done = False
        >>> while not done:
        ...     *_, terminated, truncated, _ = env.step(env.unwrapped.expert_action())
        ...     done = terminated or truncated
        >>> traj = env.trajectories[-1]
        >>> traj.success, traj.num_turns == len(traj.actions())
        (True, True)
    """

    def __init__(
        self,
        env: gymnasium.Env[Any, Any],
        *,
        policy: str = "",
        on_episode_end: Callable[[Trajectory], None] | None = None,
        keep_info: bool = True,
    ) -> None:
        super().__init__(env)
        self.policy = policy
        self.on_episode_end = on_episode_end
        self.keep_info = keep_info
        self.trajectories: list[Trajectory] = []
        self.current: Trajectory | None = None
        self._obs_text = ""
        self._last_step_end: float | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        spec = self.env.spec
        self.current = Trajectory(
            env_id=spec.id if spec is not None else type(self.env.unwrapped).__name__,
            task_id=str(info.get("task_id", "")),
            seed=seed,
            instruction=str(info.get("instruction", "")),
            policy=self.policy,
            metadata={k: info[k] for k in ("split", "gold_answer", "gold_action") if k in info},
        )
        self._obs_text = _text(obs)
        self._last_step_end = time.perf_counter()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.current is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        started = time.perf_counter()
        obs, reward, terminated, truncated, info = self.env.step(action)
        finished = time.perf_counter()
        policy_seconds = started - self._last_step_end if self._last_step_end else None
        self._last_step_end = finished
        extra = _json_info(info) if self.keep_info else {}
        self.current.turns.append(
            Turn(
                index=len(self.current.turns),
                observation=self._obs_text,
                action=action if isinstance(action, str) else repr(action),
                reward=float(reward),
                reward_terms={k: float(v) for k, v in info.get("reward_terms", {}).items()},
                reward_weights={k: float(v) for k, v in info.get("reward_weights", {}).items()},
                valid=bool(info.get("valid_action", True)),
                state_key=info.get("state_key"),
                terminated=bool(terminated),
                truncated=bool(truncated),
                env_seconds=finished - started,
                policy_seconds=policy_seconds,
                info=extra,
            )
        )
        self._obs_text = _text(obs)
        if terminated or truncated:
            traj = self.current
            traj.success = bool(info.get("success", False))
            traj.terminated = bool(terminated)
            traj.truncated = bool(truncated)
            traj.truncation_reason = info.get("truncation_reason") if truncated else None
            traj.final_observation = self._obs_text
            self.current = None
            self.trajectories.append(traj)
            if self.on_episode_end is not None:
                self.on_episode_end(traj)
        return obs, reward, terminated, truncated, info

    def annotate_last_turn(self, **fields: Any) -> None:
        """Attach policy-side data (token ids, log-probs, timings) to the turn just taken.

        `info` is merged into the turn's info; every other field is replaced.
        """
        traj = self.current if self.current is not None else self.trajectories[-1]
        if not traj.turns:
            raise RuntimeError("no turn to annotate yet")
        turn = traj.turns[-1]
        for name, value in fields.items():
            if not hasattr(turn, name):
                raise AttributeError(f"Turn has no field {name!r}")
            if name == "info":
                turn.info.update(value)
            else:
                setattr(turn, name, value)
        turn.__post_init__()


def _text(obs: Any) -> str:
    if isinstance(obs, dict):
        return str(obs.get("text", ""))
    return obs if isinstance(obs, str) else repr(obs)


def _json_info(info: dict[str, Any]) -> dict[str, Any]:
    kept = {}
    for key, value in info.items():
        if key in _NOT_KEPT:
            continue
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept
