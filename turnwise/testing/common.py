"""What the single- and multi-agent checkers share: the report, and checks of single values.

`CheckReport` is what `run_checks` and `run_parallel_checks` return; each check is a function
that returns a one-line detail when it passes and raises (usually through `require`, listing every
problem) when it fails, so one broken check never stops the others.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import re
import time
import traceback
import warnings
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium.utils.env_checker import data_equivalence

from turnwise.info import validate_step_info

__all__ = [
    "TIMING_KEY",
    "CheckReport",
    "CheckResult",
    "CheckSkipped",
    "ContractChecks",
    "EnvCheckError",
    "ProbeRecord",
    "describe_exception",
    "difference",
    "observation_problems",
    "require",
    "run_check",
    "run_library_checker",
    "short",
    "snapshot",
    "strip_timing",
    "transition_problems",
]

#: Info keys that may differ between identical replays because they measure wall time.
TIMING_KEY = re.compile(
    r"(?:^|_)(?:time|times|timing|timings|timestamp|elapsed|duration|latency|seconds|secs|wall)"
    r"(?:_|$)|_(?:s|ms|us|ns)$"
)
# Gymnasium warns about this whenever a wrapper is passed, which is on purpose here.
# Advice rather than faults: a wrapper's attribute access, and PettingZoo's naming preference.
_BENIGN_WARNINGS = (
    "is different from the unwrapped version",
    "We recommend agents to be named in the format",
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ---------------------------------------------------------------------------- the report
@dataclass
class CheckResult:
    """The outcome of one named check."""

    name: str
    passed: bool
    detail: str = ""
    """What was checked (when it passed) or every problem found (when it failed)."""
    seconds: float | None = None
    skipped: bool = False
    """The check did not apply (e.g. no expert); `passed` is True."""

    @property
    def status(self) -> str:
        """`ok`, `skip` or `FAIL`."""
        return "skip" if self.skipped else "ok" if self.passed else "FAIL"


@dataclass
class CheckReport:
    """All check results for one env; `ok` when every check passed (or was skipped)."""

    env_id: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; checks: {[r.name for r in self.results]}")

    def table(self) -> str:
        """The report as a plain-text table, one row per check (as `turnwise check` prints)."""
        width = max([len(r.name) for r in self.results] + [5])
        lines = [f"{self.env_id}", f"{'check':<{width}}  result  time     detail"]
        for r in self.results:
            secs = f"{r.seconds:6.2f}s" if r.seconds is not None else "      -"
            first, *rest = (r.detail or "").splitlines() or [""]
            lines.append(f"{r.name:<{width}}  {r.status:<6}  {secs}  {first}")
            lines += [f"{'':<{width + 18}}{line}" for line in rest]
        skipped = sum(r.skipped for r in self.results)
        passed = sum(r.passed for r in self.results) - skipped
        lines.append(f"{passed} passed, {len(self.failures)} failed, {skipped} skipped")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class EnvCheckError(AssertionError):
    """An env failed `check_env`; the message lists every failed check, `report` has them all."""

    def __init__(self, report: CheckReport) -> None:
        self.report = report
        lines = [f"{report.env_id} failed {len(report.failures)} of {len(report.results)} checks:"]
        for r in report.failures:
            first, *rest = r.detail.splitlines() or [""]
            lines.append(f"- {r.name}: {first}")
            lines += [f"    {line}" for line in rest]
        super().__init__("\n".join(lines))


class CheckSkipped(Exception):
    """Raised inside a check that does not apply to this env; the message says why."""


def run_check(name: str, fn: Callable[[], str]) -> CheckResult:
    """Run one check: its return value is the detail; an exception is a failure, not a crash."""
    start = time.perf_counter()
    try:
        detail = fn()
    except CheckSkipped as exc:
        return CheckResult(name, True, str(exc), time.perf_counter() - start, skipped=True)
    except AssertionError as exc:
        return CheckResult(name, False, str(exc) or describe_exception(exc), _since(start))
    except Exception as exc:
        return CheckResult(name, False, f"raised {describe_exception(exc)}", _since(start))
    return CheckResult(name, True, detail, _since(start))


def _since(start: float) -> float:
    return time.perf_counter() - start


def describe_exception(exc: BaseException) -> str:
    """`Type: message (at file:line in function)`, pointing at where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = (
        f" (at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name})" if frames else ""
    )
    message = str(exc).splitlines()[0][:300] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}"


def require(problems: list[str], done: str) -> str:
    """Fail with every problem, one per line, or return `done` as the detail."""
    assert not problems, "\n".join(problems)
    return done


# ---------------------------------------------------------------------------- comparing data
def strip_timing(data: Any) -> Any:
    """`data` with every dict key matching `TIMING_KEY` removed, recursively.

    Containers without such keys come back as the same objects, so that Gymnasium's check that
    an env never returns one object twice still sees through it.

    Example:
        >>> strip_timing({"turn": 2, "step_seconds": 0.1, "sub": {"latency_ms": 3}})
        {'turn': 2, 'sub': {}}
    """
    if isinstance(data, Mapping):
        kept = {k: strip_timing(v) for k, v in data.items() if not TIMING_KEY.search(str(k))}
        same = len(kept) == len(data) and all(kept[k] is data[k] for k in kept)
        return data if same else kept
    if isinstance(data, (list, tuple)):
        items = [strip_timing(v) for v in data]
        return data if all(a is b for a, b in zip(items, data, strict=True)) else type(data)(items)
    return data


def snapshot(*parts: Any) -> tuple[Any, ...]:
    """A deep copy of one reset's or step's results, its info (the last part) minus timing keys.

    Copied, so that an env that reuses and mutates its objects cannot rewrite the record.
    """
    *head, info = parts
    return copy.deepcopy((*head, strip_timing(info)))


def short(value: Any, limit: int = 60) -> str:
    """`ascii(value)` (safe to print whatever the env sent), cut to `limit` characters."""
    text = ascii(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def difference(label: str, a: Any, b: Any) -> str | None:
    """None if `a` and `b` are exactly equal, else where they first differ."""
    if data_equivalence(a, b, exact=True):
        return None
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = sorted(
            str(k) for k in set(a) | set(b) if not data_equivalence(a.get(k), b.get(k), exact=True)
        )
        parts = [difference(f"{label}[{k!r}]", a.get(k), b.get(k)) for k in keys[:3]]
        return "; ".join(p for p in parts if p) or f"{label} differs"
    if isinstance(a, str) and isinstance(b, str):
        at = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        return f"{label} differs at character {at}: {short(a[at : at + 40])} vs {short(b[at : at + 40])}"
    return f"{label} differs: {short(a)} vs {short(b)}"


# ---------------------------------------------------------------------------- the probe
def observation_problems(obs: Any, space: gymnasium.spaces.Space[Any]) -> list[str]:
    """Problems with one turnwise observation (a dict with str "text", inside `space`)."""
    if not isinstance(obs, dict):
        return [f"observation should be a dict, got {type(obs).__name__}"]
    if not isinstance(obs.get("text"), str):
        return [f"observation['text'] should be a str, got {type(obs.get('text')).__name__}"]
    try:
        inside = bool(space.contains(obs))
    except Exception as exc:
        return [f"observation_space.contains(observation) raised {describe_exception(exc)}"]
    return [] if inside else ["observation is not inside observation_space"]


def transition_problems(
    obs: Any,
    reward: Any,
    terminated: Any,
    truncated: Any,
    info: Any,
    space: gymnasium.spaces.Space[Any],
    expected_turn: int | None,
) -> list[str]:
    """Problems with one step's results (of one agent, in a multi-agent env).

    `expected_turn` is what `info["turn"]` should be (None after the episode ended).
    """
    problems = observation_problems(obs, space)
    for name, flag in (("terminated", terminated), ("truncated", truncated)):
        if not isinstance(flag, (bool, np.bool_)):
            problems.append(f"{name} should be a bool, got {type(flag).__name__}")
    numeric = not isinstance(reward, bool) and isinstance(reward, (int, float, np.number))
    if not numeric:
        problems.append(f"reward should be a float, got {type(reward).__name__}")
    elif not math.isfinite(float(reward)):
        problems.append(f"reward is not finite: {reward!r}")
    if not isinstance(info, dict):
        problems.append(f"info should be a dict, got {type(info).__name__}")
    else:
        ended = bool(terminated or truncated)
        problems += validate_step_info(info, float(reward) if numeric else math.nan, ended)
        turn = info.get("turn")
        if expected_turn is not None and isinstance(turn, int) and turn != expected_turn:
            problems.append(f"info['turn'] is {turn}, expected {expected_turn}")
    return problems


def run_library_checker(check: Callable[[], None]) -> str:
    """Run Gymnasium's or PettingZoo's checker, turning its warnings into failures."""
    saved = gymnasium.logger.min_level
    gymnasium.logger.min_level = gymnasium.logger.WARN
    try:
        # PettingZoo prints "Passed ..." on success; the report says so instead.
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("always")
            check()
    finally:
        gymnasium.logger.min_level = saved
    messages = dict.fromkeys(_ANSI.sub("", str(w.message)).removeprefix("WARN: ") for w in caught)
    serious = [m for m in messages if not any(b in m for b in _BENIGN_WARNINGS)]
    return require([f"warning: {m}" for m in serious], "passed, no warnings")


# ---------------------------------------------------------------------------- shared machinery
class ProbeRecord:
    """What a probe remembers: every problem found (with where it was first seen), and counts.

    A probe calls the env under test for the checks and validates every result, so the
    `reset_info` and `step_info` checks cover every call any check made.
    """

    def __init__(self) -> None:
        self.reset_problems: dict[str, str] = {}
        self.step_problems: dict[str, str] = {}
        self.resets = 0
        self.steps = 0
        self.over = False
        """The current episode has ended."""
        self.turn = 0
        """Steps taken in the current episode (what `info["turn"]` should have said)."""

    @staticmethod
    def note(seen: dict[str, str], problems: list[str], where: str) -> None:
        for problem in problems:
            seen.setdefault(problem, where)


class ContractChecks:
    """The checks both checkers share; a subclass adds the others and the env-specific hooks.

    Each `check_<name>` returns a one-line detail or raises (see `run_check`); `run` runs those
    named in `names`, in order, into a `CheckReport`.
    """

    names: ClassVar[tuple[str, ...]] = ()
    #: Appended to the expert check's detail (e.g. "(all seats)").
    expert_scope: ClassVar[str] = ""

    def __init__(
        self,
        env: Any,
        probe: ProbeRecord,
        *,
        n_tasks: int,
        seed: int,
        expert: bool,
        accept_hostile: Collection[str],
    ) -> None:
        self.env = env
        self.inner: Any = env.unwrapped
        self.probe = probe
        self.n_tasks, self.seed, self.expert = n_tasks, seed, expert
        # An env whose actions are free text names the hostile strings it accepts as actions.
        accepted = getattr(self.inner, "accepted_hostile_actions", ())
        self.accept_hostile = frozenset(accept_hostile) | frozenset(accepted)

    # -- hooks
    def env_name(self) -> str:
        raise NotImplementedError

    def _reset_to(self, where: str, options: dict[str, Any]) -> set[Any]:
        """Reset (seeded) with `options`; the task id(s) the reset info(s) name."""
        raise NotImplementedError

    def _expert_episode(self, task: str) -> str | None:
        """Play `task` with the expert: None on success, "no expert", or what went wrong."""
        raise NotImplementedError

    # -- running
    def run(self) -> CheckReport:
        report = CheckReport(self.env_name())
        for name in self.names:
            report.results.append(run_check(name, getattr(self, f"check_{name}")))
        return report

    def _splits(self) -> list[str]:
        splits = list(getattr(self.inner, "splits", ()) or ())
        assert splits, f"{type(self.inner).__name__} has no `splits`"
        return splits

    def _sample_tasks(self, split: str) -> list[str]:
        """Up to `n_tasks` task ids of `split`, the same ones for the same seed."""
        ids = list(self.inner.tasks(split))
        rng = np.random.default_rng([self.seed, len(ids)])
        picks = rng.choice(len(ids), size=min(self.n_tasks, len(ids)), replace=False)
        return [str(ids[i]) for i in sorted(picks)]

    # -- shared checks
    def check_tasks(self) -> str:
        problems: list[str] = []
        counts = []
        for split in self._splits():
            ids = list(self.inner.tasks(split))
            counts.append(f"{split}: {len(ids)}")
            if not ids:
                problems.append(f"tasks({split!r}) is empty")
                continue
            if not all(isinstance(t, str) for t in ids) or len(set(ids)) != len(ids):
                problems.append(f"tasks({split!r}) should hold distinct str ids")
            if list(self.inner.tasks(split)) != ids:
                problems.append(f"tasks({split!r}) changes order between calls")
            for task in self._sample_tasks(split):
                played = self._reset_to(f"reset to task {task!r}", {"task_id": task})
                if played != {task}:
                    problems.append(f"reset(task_id={task!r}) played {sorted(map(str, played))}")
            played = self._reset_to(f"reset to split {split!r}", {"split": split})
            if not played <= set(ids):
                problems.append(
                    f"reset(split={split!r}) played {sorted(map(str, played))}, not in that split"
                )
        bogus = "no-such-task-\u2603"
        try:
            self.env.reset(seed=self.seed, options={"task_id": bogus})
            problems.append(f"reset(task_id={bogus!r}) did not raise")
        except Exception as exc:
            if bogus not in str(exc):
                problems.append(
                    f"the error for an unknown task does not name it: {describe_exception(exc)}"
                )
        return require(problems, f"tasks per split: {', '.join(counts)}")

    def check_expert(self) -> str:
        if not self.expert:
            raise CheckSkipped("skipped (expert=False)")
        if not callable(getattr(self.inner, "expert_action", None)):
            raise CheckSkipped("skipped: the env has no expert_action")
        problems: list[str] = []
        solved = 0
        for split in self._splits():
            for task in self._sample_tasks(split):
                problem = self._expert_episode(task)
                if problem == "no expert" and solved == 0 and not problems:
                    raise CheckSkipped("skipped: expert_action() returns None (no oracle)")
                if problem:
                    problems.append(f"task {task!r}: {problem}")
                else:
                    solved += 1
        return require(problems, f"the expert solved {solved} tasks{self.expert_scope}")

    def check_reset_info(self) -> str:
        problems = [f"{p} (first in {where})" for p, where in self.probe.reset_problems.items()]
        return require(problems, f"{self.probe.resets} resets checked")

    def check_step_info(self) -> str:
        problems = [f"{p} (first in {where})" for p, where in self.probe.step_problems.items()]
        return require(problems, f"{self.probe.steps} steps checked")

    def check_close(self) -> str:
        self.env.close()
        self.env.close()
        return "close() twice did not raise"
