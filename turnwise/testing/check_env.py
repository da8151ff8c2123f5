"""`check_env`: the conformance checker every single-agent turnwise env passes.

It runs Gymnasium's own `check_env`, then turnwise's contract (DESIGN.md) as named checks:

=================  ===================================================================
`spaces`           `observation_space` is a `Dict` with a `String` "text"; actions are `String`
`gymnasium`        `gymnasium.utils.env_checker.check_env` (render check skipped); its warnings
                   count as failures, timing keys are hidden from its info comparison
`tasks`            `tasks(split)` is non-empty for every split; `task_id` picks that task,
                   `split` draws from that split, an unknown id raises an error naming it
`determinism`      the same seed (alone, or with the task it picked) replays the same
                   observations, rewards, flags and infos (timing keys aside), over actions
                   that mix admissible, expert, random and hostile ones
`hostile_actions`  every action of `turnwise.testing.hostile` is answered, never raised on,
                   with text saying what was wrong and `valid_action == False`
`episode_end`      an episode of invalid actions ends by `max_turns`; steps after the end
                   do not raise, are invalid, and keep the episode over
`expert`           `expert_action()` solves `n_tasks` tasks of every split (skipped when the
                   env has no expert)
`reset_info`       every reset during the checks returned the standard reset info
`step_info`        every step returned the standard step info, finite rewards equal to the
                   weighted sum of `reward_terms`, and `success` on the step that ended it
`close`            `close()` twice does not raise (so the env is closed afterwards)
=================  ===================================================================

Example:
    >>> import turnwise
    >>> from turnwise.testing import run_checks
    >>> report = run_checks(turnwise.make("turnwise/KeyDoor-v0"), n_tasks=1)
    >>> report.ok, report["hostile_actions"].passed
    (True, True)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

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
    strip_timing,
    transition_problems,
)
from turnwise.testing.hostile import hostile_actions

__all__ = ["check_env", "run_checks"]

# A determinism run stops after this many steps even if the episode goes on.
_DETERMINISM_STEPS = 30


class Probe(ProbeRecord):
    """Calls the env under test and checks every reset and step against `turnwise.info`."""

    def __init__(self, env: gymnasium.Env[Any, Any]) -> None:
        super().__init__()
        self.env = env

    def reset(
        self, where: str, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.resets += 1
        problems = observation_problems(obs, self.env.observation_space)
        problems += validate_reset_info(info) if isinstance(info, dict) else ["info is not a dict"]
        self.note(self.reset_problems, problems, where)
        self.over, self.turn = False, 0
        return obs, info if isinstance(info, dict) else {}

    def step(self, action: Any, where: str) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        expected_turn = None if self.over else self.turn + 1
        problems = transition_problems(
            obs, reward, terminated, truncated, info, self.env.observation_space, expected_turn
        )
        self.note(self.step_problems, problems, where)
        if not self.over:
            self.turn += 1
        self.over = self.over or bool(terminated or truncated)
        info = info if isinstance(info, dict) else {}
        return obs, reward, bool(terminated), bool(truncated), info


class _HideTiming(gymnasium.Wrapper[Any, Any, Any, Any]):
    """Hides timing info keys from Gymnasium's checker, which compares infos exactly."""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, strip_timing(info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, strip_timing(info)


# ---------------------------------------------------------------------------- the checks
class SingleAgentChecks(ContractChecks):
    """The checks of one single-agent env, sharing one `Probe`."""

    names = (
        "spaces", "gymnasium", "tasks", "determinism", "hostile_actions",
        "episode_end", "expert", "reset_info", "step_info", "close",
    )  # fmt: skip
    probe: Probe

    def env_name(self) -> str:
        spec = getattr(self.env, "spec", None)
        return str(
            spec.id
            if spec is not None
            else getattr(self.inner, "env_id", type(self.inner).__name__)
        )

    def _reset_to(self, where: str, options: dict[str, Any]) -> set[Any]:
        _, info = self.probe.reset(where, seed=self.seed, options=options)
        return {info.get("task_id")}

    def _max_turns(self, info: Mapping[str, Any]) -> int:
        value = info.get("max_turns", getattr(self.inner, "max_turns", None))
        assert isinstance(value, int), "the env reports no max_turns (reset info or attribute)"
        return value

    # -- checks
    def check_spaces(self) -> str:
        obs_space, act_space = self.env.observation_space, self.env.action_space
        problems = []
        if not isinstance(obs_space, gymnasium.spaces.Dict):
            problems.append(f"observation_space should be a Dict, got {obs_space!r}")
        elif not isinstance(obs_space.spaces.get("text"), String):
            problems.append(f"observation_space['text'] should be a String, got {obs_space!r}")
        if not isinstance(act_space, String):
            problems.append(f"action_space should be a turnwise.spaces.String, got {act_space!r}")
        return require(problems, f"observations Dict(text=String, ...), actions {act_space!r}")

    def check_gymnasium(self) -> str:
        return run_library_checker(
            lambda: gymnasium_check_env(
                _HideTiming(self.env), skip_render_check=True, skip_close_check=True
            )
        )

    def _play(
        self, actions: list[Any] | None, seed: int, task_id: str | None, label: str
    ) -> tuple[list[Any], list[Any]]:
        """Play one episode; record actions when `actions` is None, else replay them."""
        options = {"task_id": task_id} if task_id is not None else None
        obs, info = self.probe.reset(f"{label}: reset", seed=seed, options=options)
        record: list[Any] = [snapshot(obs, info)]
        chosen: list[Any] = []
        rng = np.random.default_rng(seed)
        hostile = [h.value for h in hostile_actions() if h.name != "megabyte"]
        self.env.action_space.seed(seed)
        for turn in range(len(actions) if actions is not None else _DETERMINISM_STEPS):
            if actions is not None:
                action = actions[turn]
            else:
                action = self._pick(int(rng.integers(4)), info, rng, hostile)
            chosen.append(action)
            obs, reward, terminated, truncated, info = self.probe.step(
                action, f"{label}: turn {turn + 1}"
            )
            record.append(snapshot(obs, reward, terminated, truncated, info))
            if terminated or truncated:
                break
        return chosen, record

    def _pick(
        self, kind: int, info: Mapping[str, Any], rng: np.random.Generator, hostile: list[Any]
    ) -> Any:
        admissible = info.get("admissible_actions") or []
        if kind == 0 and admissible:
            return admissible[int(rng.integers(len(admissible)))]
        if kind == 1 and callable(getattr(self.inner, "expert_action", None)):
            action = self.inner.expert_action()
            if action is not None:
                return action
        if kind == 2:
            return hostile[int(rng.integers(len(hostile)))]
        return self.env.action_space.sample()

    def check_determinism(self) -> str:
        actions, first = self._play(None, self.seed, None, "determinism run 1 (seed only)")
        task = first[0][1].get("task_id")
        _, again = self._play(actions, self.seed, None, "determinism run 2 (seed only)")
        _, named = self._play(actions, self.seed, task, "determinism run 3 (seed and task_id)")
        problems = []
        for label, other in (
            ("the same seed", again),
            (f"the same seed and task_id {task!r}", named),
        ):
            problem = _compare_runs(first, other, actions)
            if problem:
                problems.append(f"replaying {label}: {problem}")
        return require(problems, f"{len(actions)} turns of task {task!r} replayed identically")

    def check_hostile_actions(self) -> str:
        problems = []
        self.probe.reset("hostile actions: reset", seed=self.seed)
        for hostile in hostile_actions():
            if self.probe.over:
                self.probe.reset("hostile actions: reset", seed=self.seed)
            try:
                obs, _, _, _, info = self.probe.step(
                    hostile.value, f"hostile action {hostile.name!r}"
                )
            except Exception as exc:
                problems.append(
                    f"{hostile.name} ({hostile.describe()}) raised {describe_exception(exc)}"
                )
                self.probe.reset("hostile actions: reset after an exception", seed=self.seed)
                continue
            text = obs.get("text") if isinstance(obs, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append(
                    f"{hostile.name}: the observation has no text saying what was wrong"
                )
            if info.get("valid_action") is not False and hostile.name not in self.accept_hostile:
                problems.append(
                    f"{hostile.name} ({hostile.describe()}) was not flagged valid_action=False"
                )
        return require(
            problems, f"{len(hostile_actions())} hostile actions answered and flagged invalid"
        )

    def check_episode_end(self) -> str:
        _, info = self.probe.reset("episode end: reset", seed=self.seed)
        max_turns = self._max_turns(info)
        harmless = (info.get("admissible_actions") or ["look"])[0]
        problems = []
        steps, terminated, truncated = 0, False, False
        while not (terminated or truncated) and steps < max_turns:
            _, _, terminated, truncated, step_info = self.probe.step(
                None, "episode end: invalid action"
            )
            steps += 1
        if not (terminated or truncated):
            problems.append(f"the episode did not end after max_turns={max_turns} steps")
        elif truncated and step_info.get("turn") != max_turns:
            problems.append(
                f"truncated at turn {step_info.get('turn')}, but max_turns is {max_turns}"
            )
        for action in (harmless, None):
            where = f"step {action!r} after the episode ended"
            _, _, term, trunc, after = self.probe.step(action, where)
            if after.get("valid_action") is not False:
                problems.append(f"{where} was not flagged valid_action=False")
            if not (term or trunc):
                problems.append(f"{where} returned terminated=truncated=False")
        ending = "terminated" if terminated else "truncated"
        return require(problems, f"{ending} after {steps} invalid steps; later steps stay invalid")

    def _expert_episode(self, task: str) -> str | None:
        _, info = self.probe.reset(
            f"expert on {task!r}: reset", seed=self.seed, options={"task_id": task}
        )
        max_turns = self._max_turns(info)
        for turn in range(1, max_turns + 2):
            action = self.inner.expert_action()
            if action is None:
                return "no expert" if turn == 1 else f"expert_action() returned None at turn {turn}"
            _, _, terminated, truncated, info = self.probe.step(action, f"expert on {task!r}")
            if info.get("valid_action") is not True:
                return f"the expert's action {short(action)} at turn {turn} was invalid"
            if terminated or truncated:
                if info.get("success") is True:
                    return None
                return f"episode ended at turn {turn} without success (terminated={terminated})"
        return f"the episode did not end within max_turns={max_turns}"


def _compare_runs(first: list[Any], other: list[Any], actions: list[Any]) -> str | None:
    """Where two recorded episodes first differ, or None."""
    labels = ("observation", "reward", "terminated", "truncated", "info")
    for turn, (a, b) in enumerate(zip(first, other, strict=False)):
        where = "reset" if turn == 0 else f"turn {turn} (action {short(actions[turn - 1], 40)})"
        for label, x, y in zip(labels if turn else ("observation", "info"), a, b, strict=False):
            problem = difference(label, x, y)
            if problem:
                return f"{where}: {problem}"
    if len(first) != len(other):
        return f"one episode ended after {len(first) - 1} turns, the other after {len(other) - 1}"
    return None


# ---------------------------------------------------------------------------- entry points
def run_checks(
    env: gymnasium.Env[Any, Any],
    *,
    n_tasks: int = 3,
    seed: int = 0,
    expert: bool = True,
    accept_hostile: Collection[str] = (),
) -> CheckReport:
    """Run every check on `env` and return the report (never raises for a failed check).

    Args:
        env: a turnwise env, bare or wrapped (`turnwise.make`, `gymnasium.make`). The checks play
            it through its wrappers and reach `tasks`, `splits` and `expert_action` through
            `env.unwrapped`. It is closed at the end (the last check calls `close()` twice).
        n_tasks: tasks per split that `tasks` resets to and the expert must solve.
        seed: seeds every reset and every random choice, so a report can be reproduced.
        expert: run the expert check (it is skipped anyway where the env has no expert).
        accept_hostile: names of hostile actions (`turnwise.testing.hostile`) that this env
            may accept as valid, e.g. `"shell_rm"` for an env whose actions are shell commands
            run in a sandbox. They must still not raise.
    """
    if not isinstance(env, gymnasium.Env):
        hint = (
            " (a multi-agent env? use check_parallel_env)"
            if hasattr(env, "possible_agents")
            else ""
        )
        raise TypeError(f"check_env takes a gymnasium.Env, got {type(env).__name__}{hint}")
    checks = SingleAgentChecks(
        env, Probe(env), n_tasks=n_tasks, seed=seed, expert=expert, accept_hostile=accept_hostile
    )
    return checks.run()


def check_env(
    env: gymnasium.Env[Any, Any],
    *,
    n_tasks: int = 3,
    seed: int = 0,
    expert: bool = True,
    accept_hostile: Collection[str] = (),
) -> CheckReport:
    """Run every check on `env`; raise `EnvCheckError` listing each failed one.

    Takes the arguments of `run_checks` and returns the report when every check passed.

    Example:
        >>> import turnwise
        >>> from turnwise.testing import check_env
        >>> check_env(turnwise.make("turnwise/KeyDoor-v0"), n_tasks=1).ok
        True
    """
    report = run_checks(
        env, n_tasks=n_tasks, seed=seed, expert=expert, accept_hostile=accept_hostile
    )
    if not report.ok:
        raise EnvCheckError(report)
    return report
