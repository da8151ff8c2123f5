"""Env worker processes: one env per process, reused across episodes, driven over a pipe.

A worker owns one env (made with `turnwise.make` inside the process, so nothing env-specific is
pickled) and plays episodes on request. Two ways to play:

* on start the worker makes its env and says `("ready",)` (or `("error", text)`);
* `("play", job)`: the worker plays the whole episode itself with a baseline agent (`expert`
  needs the env's state, `random` needs nothing) and answers `("done", trajectory)`;
* `("reset", job)` then `("step", reply, turn_fields)` per turn: the policy lives in the main
  process, which batches the requests of many workers; the worker answers `("obs", obs, info)`
  until the episode ends, then `("done", trajectory)`.

An exception raised by the env is answered `("error", text)` and the env is rebuilt (its state is
unknown). Time limits are enforced here with `SIGALRM`, so an env step that hangs in Python code
is interrupted without killing the process; the episode is then truncated after its last complete
turn. The main process ignores nothing: it watches each worker's sentinel, so a worker that dies
(kill -9, a segfault in a native env) is noticed at once.

Workers ignore SIGINT: Ctrl-C in a terminal reaches the whole process group, and it is the main
process that decides how to stop (keep what is finished, stop the workers).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import signal
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from turnwise.trajectory import Trajectory

__all__ = [
    "TIME_LIMIT_REASONS",
    "Job",
    "Limits",
    "Worker",
    "WorkerCore",
    "WorkerHandle",
    "install_signal_handlers",
    "worker_main",
]

#: `truncation_reason` values set by the collector (the env itself may add `max_turns`).
TIME_LIMIT_REASONS = ("turn_time_limit", "episode_time_limit")


@dataclass(frozen=True)
class Limits:
    """Per-episode limits, the same for every episode of a run."""

    max_turns: int | None = None
    """Stop after this many turns (`agent_max_turns`), even if the env would go on."""
    turn_seconds: float | None = None
    """Wall-clock limit of one turn: the policy's answer plus the env step."""
    episode_seconds: float | None = None
    """Wall-clock limit of a whole episode."""


@dataclass
class Job:
    """One episode to play: a member of the group of `(task_id, seed)`."""

    task_id: str
    task_index: int
    seed: int
    member: int
    sampling_seed: int
    group_id: str
    trajectory_id: str
    attempts: int = 0
    """How many times a worker died (or failed) while playing it."""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int, int]:
        """What identifies the episode in a run: `(task_id, seed, member)`."""
        return (self.task_id, self.seed, self.member)


class _TimeUp(Exception):
    """Raised by the SIGALRM handler inside a turn that ran out of time."""


class _Episode:
    """The worker side of one episode: the recorder, the clocks and the limits."""

    def __init__(self, env: Any, job: Job, limits: Limits, split: str, parser: Any) -> None:
        from turnwise.wrappers.parse_action import ParseAction
        from turnwise.wrappers.record import RecordTrajectory

        inner = ParseAction(env, parser) if callable(parser) else env
        self.recorder = RecordTrajectory(inner)
        self.limits = limits
        self.job = job
        self.started = time.monotonic()
        self.turn_started = self.started
        self.obs, self.info = self.recorder.reset(
            seed=job.seed, options={"task_id": job.task_id, "split": split}
        )
        self.finished: Trajectory | None = None

    def deadline(self) -> tuple[float, str] | None:
        """The earliest wall-clock deadline of the running turn, and its reason."""
        found: list[tuple[float, str]] = []
        if self.limits.turn_seconds is not None:
            found.append((self.turn_started + self.limits.turn_seconds, "turn_time_limit"))
        if self.limits.episode_seconds is not None:
            found.append((self.started + self.limits.episode_seconds, "episode_time_limit"))
        return min(found) if found else None

    def step(self, action: str, fields: Mapping[str, Any] | None = None) -> bool:
        """Take one turn within the time limits; True when the episode is over."""
        limit = self.deadline()
        if limit is not None and limit[0] <= time.monotonic():
            # The reply came too late (a slow policy): the turn does not happen.
            self._truncate(limit[1])
            return True
        try:
            if limit is not None:
                signal.setitimer(signal.ITIMER_REAL, max(limit[0] - time.monotonic(), 1e-3))
            try:
                obs, _, terminated, truncated, info = self.recorder.step(action)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _TimeUp:
            assert limit is not None
            self._truncate(limit[1])
            raise  # the env was interrupted mid-step: the caller rebuilds it
        if fields:
            self.recorder.annotate_last_turn(**fields)
        self.obs, self.info = obs, info
        self.turn_started = time.monotonic()
        if terminated or truncated:
            self.finished = self.recorder.trajectories[-1]
            return True
        current = self.recorder.current
        assert current is not None
        if self.limits.max_turns is not None and current.num_turns >= self.limits.max_turns:
            self._truncate("agent_max_turns")
            return True
        return False

    def _truncate(self, reason: str) -> None:
        traj = self.recorder.current
        assert traj is not None
        traj.truncated = True
        traj.truncation_reason = reason
        if traj.turns:
            traj.turns[-1].truncated = True
        obs = self.obs
        traj.final_observation = str(obs.get("text", "")) if isinstance(obs, dict) else str(obs)
        self.finished = traj


def _on_alarm(signum: int, frame: Any) -> None:
    raise _TimeUp()


def _baseline(kind: str, env: Any, job: Job) -> Callable[[Any, Any], str]:
    from turnwise.agents.baselines import ExpertAgent, RandomAgent

    if kind == "expert":
        return ExpertAgent(env).act
    if kind == "random":
        return RandomAgent(seed=job.sampling_seed, action_space=env.action_space).act
    raise ValueError(f"no in-worker agent {kind!r}")


class WorkerCore:
    """The env side of a worker, whatever carries its messages (a pipe, a Ray actor).

    It answers each message of the protocol (see the module docstring) with one reply, and
    rebuilds its env after an exception or an interrupted step (its state is then unknown).
    """

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], split: str, limits: Limits) -> None:
        self.env_id = env_id
        self.env_kwargs = env_kwargs
        self.split = split
        self.limits = limits
        self.env: Any = None
        self.episode: _Episode | None = None

    def start(self) -> tuple[Any, ...]:
        """Make the env: `("ready",)`, or `("error", traceback)` if it cannot be made.

        Made before any job, so the main process can wait until every worker is warm (and batch
        the first turns of all of them together) and learn at once of an env that cannot be
        made at all.
        """
        import turnwise

        try:
            self.env = turnwise.make(self.env_id, **self.env_kwargs)
            return ("ready",)
        except Exception:
            return ("error", traceback.format_exc(limit=8))

    def handle(self, message: tuple[Any, ...]) -> tuple[Any, ...]:
        """The reply to one message."""
        import turnwise

        try:
            if self.env is None:
                self.env = turnwise.make(self.env_id, **self.env_kwargs)
            kind = message[0]
            if kind == "play":
                _, job, agent_kind = message
                self.episode = episode = _Episode(self.env, job, self.limits, self.split, None)
                act = _baseline(agent_kind, self.env, job)
                while not episode.step(act(episode.obs, episode.info)):
                    pass
                assert episode.finished is not None
                return ("done", episode.finished)
            if kind == "reset":
                _, job, parser = message
                self.episode = episode = _Episode(self.env, job, self.limits, self.split, parser)
                return ("obs", episode.obs, episode.info)
            if kind == "step":
                _, reply, fields = message
                if self.episode is None:
                    raise RuntimeError("step before reset")
                if self.episode.step(reply, fields):
                    assert self.episode.finished is not None
                    return ("done", self.episode.finished)
                return ("obs", self.episode.obs, self.episode.info)
            raise ValueError(f"unknown worker message {kind!r}")
        except _TimeUp:
            assert self.episode is not None and self.episode.finished is not None
            self.close()
            return ("done", self.episode.finished)
        except Exception:
            self.close()
            return ("error", traceback.format_exc(limit=8))

    def close(self) -> None:
        """Close the env (it may be broken: errors are ignored); the next message makes a new one."""
        env, self.env = self.env, None
        _discard(env)


def install_signal_handlers() -> None:
    """In a worker: ignore Ctrl-C (the main process decides how to stop) and let SIGALRM end a
    turn that ran out of time."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGALRM, _on_alarm)


def worker_main(
    conn: multiprocessing.connection.Connection,
    env_id: str,
    env_kwargs: dict[str, Any],
    split: str,
    limits: Limits,
) -> None:
    """The body of a worker process (see the module docstring for the protocol)."""
    install_signal_handlers()
    core = WorkerCore(env_id, env_kwargs, split, limits)
    try:
        conn.send(core.start())
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the main process went away
                return
            if message is None:
                return
            conn.send(core.handle(message))
    finally:
        core.close()


def _discard(env: Any) -> None:
    """Close an env whose state can no longer be trusted; the next message makes a fresh one."""
    if env is not None:
        # It is being thrown away because it is broken; closing may fail too.
        with contextlib.suppress(Exception):
            env.close()


class Worker(Protocol):
    """What the collector's loop needs of a worker slot, local process or Ray actor."""

    slot: int
    restarts: int
    conn: multiprocessing.connection.Connection | None

    @property
    def pid(self) -> int | None: ...
    def send(self, message: Any) -> None: ...
    def waitables(self) -> list[Any]: ...
    def death(self) -> str: ...
    def restart(self) -> None: ...
    def stop(self, timeout: float = 2.0) -> None: ...


class WorkerHandle:
    """The main process's end of one worker slot: the process, its pipe, and restarts."""

    def __init__(
        self,
        ctx: Any,
        slot: int,
        env_id: str,
        env_kwargs: dict[str, Any],
        split: str,
        limits: Limits,
    ) -> None:
        self.ctx = ctx
        self.slot = slot
        self._args = (env_id, env_kwargs, split, limits)
        self.restarts = 0
        self.process: Any = None
        self.conn: multiprocessing.connection.Connection | None = None
        self.start()

    def start(self) -> None:
        """Start (or restart) the process of this slot."""
        ours, theirs = self.ctx.Pipe(duplex=True)
        self.process = self.ctx.Process(
            target=worker_main,
            args=(theirs, *self._args),
            name=f"turnwise-rollout-worker-{self.slot}",
            daemon=True,
        )
        self.process.start()
        theirs.close()
        self.conn = ours

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def waitables(self) -> list[Any]:
        """What the main loop waits on: the pipe, and the process sentinel (ready when it dies)."""
        assert self.conn is not None and self.process is not None
        return [self.conn, self.process.sentinel]

    def death(self) -> str:
        """Why the worker stopped answering (its exit code: -9 is SIGKILL)."""
        process = self.process
        if process is not None:
            process.join(timeout=1.0)  # reap it, so its exit code is known
        code = process.exitcode if process is not None else None
        return f"worker process died (exit code {code})"

    def send(self, message: Any) -> None:
        assert self.conn is not None
        self.conn.send(message)

    def restart(self) -> None:
        """Kill what is left of the process and start a fresh one in its place."""
        self.kill()
        self.restarts += 1
        self.start()

    def kill(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(timeout=5)
            self.process = None

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the worker to exit (it closes its env), then kill it if it does not."""
        if self.conn is not None:
            with contextlib.suppress(BrokenPipeError, ConnectionError, OSError):  # already gone
                self.conn.send(None)
        if self.process is not None:
            self.process.join(timeout=timeout)
        self.kill()
