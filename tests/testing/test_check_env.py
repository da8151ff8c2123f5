"""`turnwise.testing.check_env`: passes good envs, and names the defect of each broken one."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, SupportsFloat

import gymnasium
import pytest

import turnwise
from turnwise import Env, StepResult
from turnwise.envs.dilemma import DilemmaEnv
from turnwise.testing import (
    CheckReport,
    EnvCheckError,
    check_env,
    hostile_actions,
    run_checks,
    run_parallel_checks,
)
from turnwise.testing.common import TIMING_KEY, strip_timing

CHECKS = [
    "spaces", "gymnasium", "tasks", "determinism", "hostile_actions",
    "episode_end", "expert", "reset_info", "step_info", "close",
]  # fmt: skip


class Stairs(Env):
    """Climb `n` steps by saying `up`; `down` goes back. A good, contract-following env."""

    default_reward_weights = {"valid": 0.1, "progress": 0.5}  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_turns", 12)
        super().__init__(**kwargs)
        self.height = self.goal = 0

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return [f"{split or self.split}-{n}" for n in (2, 3, 4, 5)]

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self.goal, self.height = int(task_id.rsplit("-", 1)[1]), 0
        wind = ["calm", "windy"][int(self.np_random.integers(2))]
        return f"{wind} stairs, {self.goal} steps", {"instruction": f"climb {self.goal} steps"}

    def _step(self, action: str) -> StepResult:
        move = {"up": 1, "down": -1}.get(action.strip().lower())
        if move is None:
            return StepResult(f"say up or down, not {action[:20]!r}", valid=False)
        self.height = max(0, self.height + move)
        done = self.height >= self.goal
        terms = {"outcome": float(done), "progress": move / self.goal}
        return StepResult(f"height {self.height}", terms, terminated=done, success=done)

    def admissible_actions(self) -> list[str]:
        return ["up", "down"]

    def state_key(self) -> str:
        return f"{self.task_id}:{self.height}"

    def expert_action(self) -> str | None:
        return "up"


def failed(report: CheckReport) -> set[str]:
    return {r.name for r in report.failures}


# ---------------------------------------------------------------------------- good envs
def test_a_good_env_passes_every_check() -> None:
    report = check_env(Stairs())
    assert [r.name for r in report.results] == CHECKS
    assert report.ok and not report.failures
    assert all(r.seconds is not None and r.seconds >= 0 for r in report.results)
    assert "the expert solved 6 tasks" in report["expert"].detail


def test_a_wrapped_env_from_gymnasium_make_passes() -> None:
    gymnasium.register("turnwise-test/Stairs-v0", entry_point=Stairs)
    try:
        env = gymnasium.make("turnwise-test/Stairs-v0")
        assert env.unwrapped is not env
        report = check_env(env, n_tasks=1)
        assert report.env_id == "turnwise-test/Stairs-v0"
    finally:
        gymnasium.registry.pop("turnwise-test/Stairs-v0")


def test_keydoor_passes() -> None:
    pytest.importorskip("turnwise.envs.keydoor", reason="KeyDoor is not written yet")
    report = run_checks(turnwise.make("turnwise/KeyDoor-v0"), n_tasks=2)
    assert report.ok, report.table()


def test_expert_check_is_skipped_without_an_expert() -> None:
    class NoExpert(Stairs):
        def expert_action(self) -> str | None:
            return None

    report = check_env(NoExpert())
    assert report["expert"].skipped and "no oracle" in report["expert"].detail
    assert check_env(Stairs(), expert=False)["expert"].skipped


def test_timing_keys_may_differ_between_replays() -> None:
    clock = itertools.count()

    class Timed(Stairs):
        def _step(self, action: str) -> StepResult:
            result = super()._step(action)
            result.info["step_seconds"] = float(next(clock))
            return result

    assert check_env(Timed()).ok
    assert TIMING_KEY.search("step_seconds") and TIMING_KEY.search("elapsed")
    assert strip_timing({"a": 1, "wall_time": 2, "x": {"latency_ms": 3}}) == {"a": 1, "x": {}}


def test_the_report_reads_as_a_table_and_the_error_lists_failures() -> None:
    class Leaky(Stairs):
        def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
            obs, reward, terminated, truncated, info = super().step(action)
            info.pop("turn")
            return obs, reward, terminated, truncated, info

    report = run_checks(Leaky())
    table = report.table()
    assert table.splitlines()[0] == "Leaky"
    assert "step_info        FAIL" in table and "info is missing 'turn'" in table
    with pytest.raises(EnvCheckError) as caught:
        check_env(Leaky())
    assert isinstance(caught.value, AssertionError)
    assert "- step_info: info is missing 'turn'" in str(caught.value)
    assert caught.value.report.failures


# ---------------------------------------------------------------------------- broken envs
def test_catches_a_nondeterministic_observation() -> None:
    episodes = itertools.count()

    class Drifting(Stairs):
        def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
            obs, info = super()._reset_task(task_id)
            return f"{obs} (episode {next(episodes)})", info

    report = run_checks(Drifting())
    assert "determinism" in failed(report)
    assert "reset: observation" in report["determinism"].detail


def test_catches_nondeterministic_info_and_a_task_drawn_differently() -> None:
    nonce = itertools.count()

    class Nonce(Stairs):
        def _step(self, action: str) -> StepResult:
            result = super()._step(action)
            result.info["nonce"] = next(nonce)
            return result

    report = run_checks(Nonce())
    assert failed(report) >= {"determinism"}
    assert "info['nonce']" in report["determinism"].detail

    class NamedTaskDiffers(Stairs):
        """The episode depends on whether the task was named or drawn by the seed."""

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            self.named = bool(options and "task_id" in options)
            return super().reset(seed=seed, options=options)

        def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
            obs, info = super()._reset_task(task_id)
            return (f"{obs} (as requested)" if self.named else obs), info

    detail = run_checks(NamedTaskDiffers())["determinism"].detail
    assert "replaying the same seed and task_id" in detail
    assert "replaying the same seed:" not in detail


def test_catches_an_env_that_raises_on_hostile_input() -> None:
    class Fragile(Stairs):
        def _step(self, action: str) -> StepResult:
            action.encode("ascii")  # lone surrogates, NUL-free but non-ASCII text: raises
            if "\x00" in action:
                raise ValueError("embedded NUL")
            return super()._step(action)

    report = run_checks(Fragile())
    assert "hostile_actions" in failed(report)
    detail = report["hostile_actions"].detail
    assert "nul (" in detail and "raised ValueError: embedded NUL" in detail
    assert "rtl_override" in detail and "UnicodeEncodeError" in detail


def test_catches_hostile_input_flagged_valid() -> None:
    class Gullible(Stairs):
        def _step(self, action: str) -> StepResult:
            result = super()._step(action)
            return StepResult(result.observation, result.reward_terms, valid=True)

    report = run_checks(Gullible())
    assert "hostile_actions" in failed(report)
    assert "empty ('') was not flagged valid_action=False" in report["hostile_actions"].detail
    # Non-strings are rejected by the base class before `_step`, so they stay invalid.
    assert "none (" not in report["hostile_actions"].detail


def test_accept_hostile_allows_named_actions_only() -> None:
    class Shell(Stairs):
        def _step(self, action: str) -> StepResult:
            if action in ("; rm -rf / #", "$(reboot)"):
                return StepResult("sandboxed shell: nothing happened")
            return super()._step(action)

    assert "hostile_actions" in failed(run_checks(Shell()))
    assert run_checks(Shell(), accept_hostile=["shell_rm", "shell_subst"]).ok


def test_catches_reward_that_is_not_the_weighted_sum() -> None:
    class Bonus(Stairs):
        def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
            obs, reward, terminated, truncated, info = super().step(action)
            return obs, float(reward) + 1.0, terminated, truncated, info

    report = run_checks(Bonus())
    assert "step_info" in failed(report)
    assert "is not the weighted sum of reward_terms" in report["step_info"].detail


def test_catches_non_finite_rewards() -> None:
    class Infinite(Stairs):
        def _step(self, action: str) -> StepResult:
            result = super()._step(action)
            result.reward_terms["outcome"] = float("inf")
            return result

    report = run_checks(Infinite())
    assert {"step_info", "gymnasium"} <= failed(report)
    assert "not a finite number" in report["step_info"].detail


def test_catches_close_twice_raising() -> None:
    class CloseOnce(Stairs):
        def close(self) -> None:
            if getattr(self, "_was_closed", False):
                raise RuntimeError("already closed")
            self._was_closed = True
            super().close()

    report = run_checks(CloseOnce())
    assert failed(report) == {"close"}
    assert "RuntimeError: already closed" in report["close"].detail


def test_catches_an_expert_that_fails() -> None:
    class Lost(Stairs):
        def expert_action(self) -> str | None:
            return "down"

    report = run_checks(Lost())
    assert failed(report) == {"expert"}
    assert "without success" in report["expert"].detail or "did not end" in report["expert"].detail

    class Quits(Stairs):
        def expert_action(self) -> str | None:
            return "up" if self.turn == 0 else None

    report = run_checks(Quits())
    assert "expert_action() returned None at turn 2" in report["expert"].detail

    class Clumsy(Stairs):
        def expert_action(self) -> str | None:
            return "jump"

    assert "was invalid" in run_checks(Clumsy())["expert"].detail


def test_catches_missing_info_keys() -> None:
    class Forgetful(Stairs):
        def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
            obs, info = super().reset(**kwargs)
            del info["max_turns"]
            return obs, info

        def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
            obs, reward, terminated, truncated, info = super().step(action)
            info.pop("success", None)
            info["valid_action"] = int(info["valid_action"])
            return obs, reward, terminated, truncated, info

    report = run_checks(Forgetful())
    assert {"reset_info", "step_info"} <= failed(report)
    assert "info is missing 'max_turns'" in report["reset_info"].detail
    step_detail = report["step_info"].detail
    assert "missing 'success' on the step that ends the episode" in step_detail
    assert "info['valid_action'] should be <class 'bool'>" in step_detail


def test_catches_bad_task_selection() -> None:
    class Stubborn(Stairs):
        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            # Ignores the task asked for, and never complains about unknown ones.
            return super().reset(seed=seed)

    report = run_checks(Stubborn())
    assert "tasks" in failed(report)
    detail = report["tasks"].detail
    assert "reset(task_id='no-such-task-☃') did not raise" in detail
    assert "played" in detail

    class EmptySplit(Stairs):
        def tasks(self, split: str | None = None) -> Sequence[str]:
            return [] if split == "test" else super().tasks(split)

    assert "tasks('test') is empty" in run_checks(EmptySplit())["tasks"].detail


def test_catches_wrong_spaces() -> None:
    class Charset(Stairs):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.action_space = gymnasium.spaces.Text(64)

    report = run_checks(Charset())
    assert "spaces" in failed(report)
    assert "action_space should be a turnwise.spaces.String" in report["spaces"].detail


def test_catches_an_episode_that_never_ends_and_live_steps_after_the_end() -> None:
    class Endless(Stairs):
        def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
            obs, reward, terminated, _, info = super().step(action)
            info.pop("truncation_reason", None)
            if self._ended and not terminated:
                info.pop("success", None)
                info["valid_action"] = True
            return obs, reward, terminated, False, info

    report = run_checks(Endless())
    assert "episode_end" in failed(report)
    detail = report["episode_end"].detail
    assert "did not end after max_turns=12 steps" in detail
    assert "was not flagged valid_action=False" in detail


def test_gymnasium_checker_failures_are_reported() -> None:
    shared: dict[str, Any] = {}

    class Reuses(Stairs):
        def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
            obs, info = super().reset(**kwargs)
            shared.clear()
            shared.update(info)
            return obs, shared  # the same dict object every time

    report = run_checks(Reuses())
    assert failed(report) == {"gymnasium"}
    assert "share an object" in report["gymnasium"].detail


def test_hostile_list_covers_the_contract() -> None:
    names = {h.name for h in hostile_actions()}
    assert {"empty", "whitespace", "megabyte", "nul", "control_chars", "lone_surrogate"} <= names
    assert {"ansi_escape", "rtl_override", "shell_rm", "shell_subst", "html_script"} <= names
    assert {"long_token", "none", "int", "bytes"} <= names
    assert len(names) == len(hostile_actions())


def test_the_wrong_checker_says_which_one_to_use() -> None:

    with pytest.raises(TypeError, match="use check_parallel_env"):
        run_checks(DilemmaEnv())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="use check_env"):
        run_parallel_checks(Stairs())  # type: ignore[arg-type]
