"""`check_parallel_env`: the conformance checker of turnwise multi-agent (PettingZoo) envs.

The same checks as `check_env`, per agent, for an env that follows the conventions of
`turnwise.multiagent`:

=================  ===================================================================
`spaces`           every seat observes `Dict(text=String)` and acts in `String`, and the
                   same space object comes back on every call (PettingZoo needs it)
`pettingzoo`       `pettingzoo.test.parallel_api_test`; its warnings count as failures
`aec`              `pettingzoo.test.api_test` on the env converted to AEC
                   (`parallel_to_aec`), seen through numeric spaces: it expects arrays
`tasks`            as in `check_env`, with every seat's info naming the task
`determinism`      the same seed replays the same game, turn by turn, for every seat, over
                   joint actions mixing admissible, expert, random and hostile ones
`hostile_actions`  each hostile action, sent by each seat in turn (the others play a
                   harmless move), and a missing action, are that seat's invalid move
`episode_end`      a game of invalid moves ends by `max_turns` for every seat at once and
                   empties `agents`; later steps do not raise and are invalid
`expert`           every seat playing `expert_action(agent)` reaches `success`
`reset_info`       every seat's reset info, at every reset, follows `turnwise.info`
`step_info`        every seat's step info, reward and flags, at every step
`close`            `close()` twice does not raise
=================  ===================================================================

PettingZoo's test passes `reset(options={"options": 1})` to probe the signature; turnwise envs
reject unknown options, so that one key is dropped on the way (and nothing else is changed: the
text spaces need no numeric view for `parallel_api_test`; `api_test` gets one). A seat with nothing to do this turn
(`admissible_actions == []`, as the waiting seat of a turn-based game) may ignore its action, so
hostile actions from it only need to be answered. An AEC env can be checked by converting it,
`run_parallel_checks(turn_based_aec_to_parallel(aec_env))`, if every seat's info carries the
turnwise keys at every step; PettingZoo's `api_test(aec_env)` covers its AEC side.

Example:
    >>> from turnwise.envs.dilemma import DilemmaEnv
    >>> from turnwise.testing import run_parallel_checks
    >>> report = run_parallel_checks(DilemmaEnv(), n_tasks=1)
    >>> report.ok, report["expert"].detail
    (True, 'the expert solved 2 tasks (all seats)')
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import gymnasium
import numpy as np
import pettingzoo
from gymnasium import spaces
from pettingzoo.test import api_test, parallel_api_test
from pettingzoo.utils.conversions import parallel_to_aec

from turnwise.info import validate_reset_info
from turnwise.spaces import String
from turnwise.testing.common import (
    CheckReport,
    ContractChecks,
    EnvCheckError,
    ProbeRecord,
    describe_exception,
    difference,
    observation_problems,
    require,
    run_library_checker,
    short,
    snapshot,
    transition_problems,
)
from turnwise.testing.hostile import hostile_actions

__all__ = ["check_parallel_env", "run_parallel_checks"]

_DETERMINISM_STEPS = 30
Joint = dict[str, Any]


class ParallelProbe(ProbeRecord):
    """Calls the env under test and checks every seat's results against `turnwise.info`."""

    def __init__(self, env: pettingzoo.ParallelEnv[Any, Any, Any]) -> None:
        super().__init__()
        self.env = env

    def reset(
        self, where: str, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Joint, Joint]:
        obs, infos = self.env.reset(seed=seed, options=options)
        self.resets += 1
        problems = []
        for agent in self.env.agents:
            if agent not in obs or agent not in infos:
                problems.append(f"{agent}: reset returned no observation or info")
                continue
            space = self.env.observation_space(agent)
            found = observation_problems(obs[agent], space) + validate_reset_info(infos[agent])
            problems += [f"{agent}: {p}" for p in found]
        self.note(self.reset_problems, problems, where)
        self.over, self.turn = False, 0
        return obs, infos

    def step(self, actions: Joint, where: str) -> tuple[Joint, Joint, Joint, Joint, Joint]:
        live = list(self.env.agents)
        result = self.env.step(actions)
        obs, rewards, terminated, truncated, infos = result
        self.steps += 1
        expected = set(live) if live else {a for a in self.env.possible_agents if a in actions}
        problems = []
        for name, part in zip(
            ("observations", "rewards", "terminations", "truncations", "infos"),
            result,
            strict=False,
        ):
            if set(part) != expected:
                problems.append(
                    f"step returned {name} for {sorted(part)}, expected {sorted(expected)}"
                )
        for agent in sorted(expected & set(obs) & set(rewards) & set(infos)):
            found = transition_problems(
                obs[agent], rewards[agent], terminated.get(agent), truncated.get(agent),
                infos[agent], self.env.observation_space(agent), None if self.over else self.turn + 1,
            )  # fmt: skip
            problems += [f"{agent}: {p}" for p in found]
        ended = {a for a in expected if terminated.get(a) or truncated.get(a)}
        if live and ended and (ended != set(live) or self.env.agents):
            problems.append("the game ended for some seats only, or `agents` was not emptied")
        self.note(self.step_problems, problems, where)
        if not self.over:
            self.turn += 1
        self.over = self.over or bool(ended) or not live
        return obs, rewards, terminated, truncated, infos


class _PettingZooView(pettingzoo.ParallelEnv[Any, Any, Any]):
    """The env, minus PettingZoo's `{"options": 1}` signature probe, for `parallel_api_test`."""

    def __init__(self, env: pettingzoo.ParallelEnv[Any, Any, Any]) -> None:
        self.env = env
        self.possible_agents = list(env.possible_agents)
        self.metadata = env.metadata

    @property
    def agents(self) -> list[Any]:
        return list(self.env.agents)

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        options = {k: v for k, v in (options or {}).items() if k != "options"}
        return self.env.reset(seed=seed, options=options or None)

    def step(self, actions: dict[Any, Any]) -> Any:
        return self.env.step(actions)

    def observation_space(self, agent: Any) -> Any:
        return self.env.observation_space(agent)

    def action_space(self, agent: Any) -> Any:
        return self.env.action_space(agent)


class _NumericView(_PettingZooView):
    """Numeric spaces for PettingZoo's AEC `api_test`, which expects arrays, not strings.

    Observations are the UTF-8 bytes of the text in a fixed-size uint8 array (cut to
    `OBS_BYTES`); an action is 0 (an empty string) or 1 (the checker's harmless move).
    """

    OBS_BYTES = 4096

    def __init__(self, env: pettingzoo.ParallelEnv[Any, Any, Any], harmless: Any) -> None:
        super().__init__(env)
        self.render_mode = getattr(env, "render_mode", None)
        self._harmless = harmless
        self._infos: dict[Any, Any] = {}
        self._obs_spaces = {
            a: spaces.Box(0, 255, (self.OBS_BYTES,), np.uint8) for a in self.possible_agents
        }
        self._act_spaces = {a: spaces.Discrete(2) for a in self.possible_agents}

    def _encode(self, observations: Mapping[Any, Any]) -> dict[Any, np.ndarray]:
        encoded = {}
        for agent, obs in observations.items():
            text = obs.get("text", "") if isinstance(obs, Mapping) else str(obs)
            data = str(text).encode("utf-8", "replace")[: self.OBS_BYTES]
            array = np.zeros(self.OBS_BYTES, dtype=np.uint8)
            array[: len(data)] = np.frombuffer(data, dtype=np.uint8)
            encoded[agent] = array
        return encoded

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        obs, infos = super().reset(seed=seed, options=options)
        self._infos = dict(infos)
        return self._encode(obs), infos

    def step(self, actions: dict[Any, Any]) -> Any:
        joint = {
            a: self._harmless(a, self._infos.get(a, {})) if int(act) == 1 else ""
            for a, act in actions.items()
        }
        obs, rewards, terminated, truncated, infos = self.env.step(joint)
        self._infos.update(infos)
        return self._encode(obs), rewards, terminated, truncated, infos

    def observation_space(self, agent: Any) -> Any:
        return self._obs_spaces[agent]

    def action_space(self, agent: Any) -> Any:
        return self._act_spaces[agent]


class ParallelChecks(ContractChecks):
    """The checks of one multi-agent env, sharing one `ParallelProbe`."""

    names = (
        "spaces", "pettingzoo", "aec", "tasks", "determinism", "hostile_actions",
        "episode_end", "expert", "reset_info", "step_info", "close",
    )  # fmt: skip
    expert_scope = " (all seats)"
    probe: ParallelProbe

    @property
    def seats(self) -> list[str]:
        return list(self.env.possible_agents)

    def env_name(self) -> str:
        return str(self.inner.metadata.get("name", type(self.inner).__name__))

    def _reset_to(self, where: str, options: dict[str, Any]) -> set[Any]:
        _, infos = self.probe.reset(where, seed=self.seed, options=options)
        return {infos.get(a, {}).get("task_id") for a in self.env.agents}

    def _max_turns(self) -> int:
        value = getattr(self.inner, "max_turns", None)
        assert isinstance(value, int), "the env has no int `max_turns`"
        return value

    def _harmless(self, agent: str, info: Mapping[str, Any]) -> Any:
        """A move that should be fine: admissible, else the expert's, else an empty string."""
        admissible = info.get("admissible_actions") or []
        if admissible:
            return admissible[0]
        expert = getattr(self.inner, "expert_action", None)
        action = expert(agent) if callable(expert) else None
        return "" if action is None else action

    # -- checks
    def check_spaces(self) -> str:
        problems = []
        for agent in self.seats:
            obs_space, act_space = self.env.observation_space(agent), self.env.action_space(agent)
            if not (
                isinstance(obs_space, spaces.Dict)
                and isinstance(obs_space.spaces.get("text"), String)
            ):
                problems.append(
                    f"{agent}: observation_space should be Dict(text=String), got {obs_space!r}"
                )
            if not isinstance(act_space, String):
                problems.append(f"{agent}: action_space should be a String, got {act_space!r}")
            if (
                self.env.observation_space(agent) is not obs_space
                or self.env.action_space(agent) is not act_space
            ):
                problems.append(
                    f"{agent}: observation_space/action_space return a new object each call"
                )
        return require(problems, f"{len(self.seats)} seats: {', '.join(map(str, self.seats))}")

    def check_pettingzoo(self) -> str:
        cycles = min(self._max_turns() + 1, 200)
        return run_library_checker(
            lambda: parallel_api_test(_PettingZooView(self.env), num_cycles=cycles)
        )

    def check_aec(self) -> str:
        cycles = min(self._max_turns() + 1, 200)
        return run_library_checker(
            lambda: api_test(
                parallel_to_aec(_NumericView(self.env, self._harmless)), num_cycles=cycles
            )
        )

    def _play(
        self, actions: list[Joint] | None, task_id: str | None, label: str
    ) -> tuple[list[Joint], list[Any]]:
        """Play one game; record joint actions when `actions` is None, else replay them."""
        options = {"task_id": task_id} if task_id is not None else None
        obs, infos = self.probe.reset(f"{label}: reset", seed=self.seed, options=options)
        record: list[Any] = [snapshot(obs, infos)]
        chosen: list[Joint] = []
        rng = np.random.default_rng(self.seed)
        hostile = [h.value for h in hostile_actions() if h.name != "megabyte"]
        for i, agent in enumerate(self.seats):
            self.env.action_space(agent).seed(self.seed + i)
        for turn in range(len(actions) if actions is not None else _DETERMINISM_STEPS):
            if not self.env.agents:
                break
            if actions is not None:
                joint = actions[turn]
            else:
                joint = {a: self._pick(a, infos.get(a, {}), rng, hostile) for a in self.env.agents}
            chosen.append(joint)
            obs, rewards, terminated, truncated, infos = self.probe.step(
                joint, f"{label}: turn {turn + 1}"
            )
            record.append(snapshot(obs, rewards, terminated, truncated, infos))
        return chosen, record

    def _pick(
        self, agent: str, info: Mapping[str, Any], rng: np.random.Generator, hostile: list[Any]
    ) -> Any:
        kind = int(rng.integers(4))
        if kind == 0:
            return self._harmless(agent, info)
        if kind == 1 and callable(getattr(self.inner, "expert_action", None)):
            action = self.inner.expert_action(agent)
            if action is not None:
                return action
        if kind == 2:
            return hostile[int(rng.integers(len(hostile)))]
        return self.env.action_space(agent).sample()

    def check_determinism(self) -> str:
        actions, first = self._play(None, None, "determinism run 1 (seed only)")
        reset_infos: Joint = first[0][1]
        task = next(iter(reset_infos.values()), {"task_id": None}).get("task_id")
        _, again = self._play(actions, None, "determinism run 2 (seed only)")
        _, named = self._play(actions, task, "determinism run 3 (seed and task_id)")
        problems = []
        labels = ("observations", "rewards", "terminations", "truncations", "infos")
        for label, other in (
            ("the same seed", again),
            (f"the same seed and task_id {task!r}", named),
        ):
            for turn, (a, b) in enumerate(zip(first, other, strict=False)):
                where = (
                    "reset"
                    if turn == 0
                    else f"turn {turn} (actions {short(actions[turn - 1], 80)})"
                )
                found = [
                    difference(n, x, y)
                    for n, x, y in zip(labels if turn else labels[::4], a, b, strict=False)
                ]
                if any(found):
                    problems.append(f"replaying {label}: {where}: {next(f for f in found if f)}")
                    break
            else:
                if len(first) != len(other):
                    problems.append(
                        f"replaying {label}: the game lasted {len(other) - 1} turns, not {len(first) - 1}"
                    )
        return require(
            problems, f"{len(actions)} joint turns of task {task!r} replayed identically"
        )

    def check_hostile_actions(self) -> str:
        problems: list[str] = []
        cases = [(h.name, h.value, h.describe(), True) for h in hostile_actions()]
        cases.append(("missing", None, "no action at all", False))
        infos = self._fresh("hostile actions: reset")
        for name, value, shown, given in cases:
            for agent in self.seats:
                if not self.env.agents:
                    infos = self._fresh("hostile actions: reset")
                waiting = infos.get(agent, {}).get("admissible_actions") == []
                joint = {
                    a: self._harmless(a, infos.get(a, {})) for a in self.env.agents if a != agent
                }
                if given:
                    joint[agent] = value
                try:
                    obs, _, _, _, infos = self.probe.step(
                        joint, f"hostile action {name!r} from {agent}"
                    )
                except Exception as exc:
                    problems.append(
                        f"{name} ({shown}) from {agent} raised {describe_exception(exc)}"
                    )
                    infos = self._fresh("hostile actions: reset after an exception")
                    continue
                text = obs.get(agent, {}).get("text") if isinstance(obs.get(agent), dict) else None
                if not isinstance(text, str) or not text.strip():
                    problems.append(
                        f"{name} from {agent}: the observation has no text saying what was wrong"
                    )
                flagged = infos.get(agent, {}).get("valid_action") is False
                if not (flagged or waiting or name in self.accept_hostile):
                    problems.append(
                        f"{name} ({shown}) from {agent} was not flagged valid_action=False"
                    )
        return require(
            problems,
            f"{len(cases)} hostile actions from each of {len(self.seats)} seats flagged invalid",
        )

    def _fresh(self, where: str) -> Joint:
        return self.probe.reset(where, seed=self.seed)[1]

    def check_episode_end(self) -> str:
        infos = self._fresh("episode end: reset")
        max_turns = self._max_turns()
        harmless = {a: self._harmless(a, infos.get(a, {})) for a in self.seats}
        problems = []
        steps = 0
        while self.env.agents and steps < max_turns:
            self.probe.step(dict.fromkeys(self.env.agents), "episode end: invalid moves")
            steps += 1
        if self.env.agents:
            problems.append(f"the game did not end after max_turns={max_turns} steps")
        for joint in (harmless, dict.fromkeys(self.seats)):
            where = f"step {short(joint)} after the game ended"
            _, _, terminated, truncated, after = self.probe.step(joint, where)
            for agent in self.seats:
                if after.get(agent, {}).get("valid_action") is not False:
                    problems.append(f"{where}: {agent} was not flagged valid_action=False")
                if not (terminated.get(agent) or truncated.get(agent)):
                    problems.append(f"{where}: {agent} got terminated=truncated=False")
        return require(
            problems, f"ended for all seats after {steps} invalid turns; later steps stay invalid"
        )

    def _expert_episode(self, task: str) -> str | None:
        self.probe.reset(f"expert on {task!r}: reset", seed=self.seed, options={"task_id": task})
        for turn in range(1, self._max_turns() + 2):
            joint = {a: self.inner.expert_action(a) for a in self.env.agents}
            if any(action is None for action in joint.values()):
                return "no expert" if turn == 1 else f"expert_action() returned None at turn {turn}"
            *_, infos = self.probe.step(joint, f"expert on {task!r}")
            invalid = sorted(a for a, info in infos.items() if info.get("valid_action") is not True)
            if invalid:
                return (
                    f"the expert's moves {short(joint)} at turn {turn} were invalid for {invalid}"
                )
            if not self.env.agents:
                failed = sorted(a for a, info in infos.items() if info.get("success") is not True)
                return (
                    f"the game ended at turn {turn} without success for {failed}"
                    if failed
                    else None
                )
        return f"the game did not end within max_turns={self._max_turns()}"


def run_parallel_checks(
    env: pettingzoo.ParallelEnv[Any, Any, Any],
    *,
    n_tasks: int = 3,
    seed: int = 0,
    expert: bool = True,
    accept_hostile: Collection[str] = (),
) -> CheckReport:
    """Run every check on a multi-agent env and return the report (never raises for a failure).

    The arguments mean what they mean in `turnwise.testing.run_checks`; the env is closed at
    the end.
    """
    if not hasattr(env, "possible_agents") or not callable(getattr(env, "step", None)):
        hint = " (a single-agent env? use check_env)" if isinstance(env, gymnasium.Env) else ""
        raise TypeError(f"check_parallel_env takes a PettingZoo ParallelEnv{hint}, got {env!r}")
    checks = ParallelChecks(
        env,
        ParallelProbe(env),
        n_tasks=n_tasks,
        seed=seed,
        expert=expert,
        accept_hostile=accept_hostile,
    )
    return checks.run()


def check_parallel_env(
    env: pettingzoo.ParallelEnv[Any, Any, Any],
    *,
    n_tasks: int = 3,
    seed: int = 0,
    expert: bool = True,
    accept_hostile: Collection[str] = (),
) -> CheckReport:
    """Run every check on a multi-agent env; raise `EnvCheckError` listing each failed one.

    Example:
        >>> from turnwise.envs.dilemma import DilemmaEnv
        >>> from turnwise.testing import check_parallel_env
        >>> check_parallel_env(DilemmaEnv(split="test"), n_tasks=1).ok
        True
    """
    report = run_parallel_checks(
        env, n_tasks=n_tasks, seed=seed, expert=expert, accept_hostile=accept_hostile
    )
    if not report.ok:
        raise EnvCheckError(report)
    return report
