"""Faults with real processes: workers killed with SIGKILL, Ctrl-C (SIGINT) then --resume, and a
hanging env step cut by the time limit."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from turnwise import Env, StepResult
from turnwise.rollout import CollectConfig, collect, iter_trajectories
from turnwise.rollout.workers import Job, Limits, _Episode, _on_alarm, _TimeUp
from turnwise.trajectory import Trajectory

HARD = '{"difficulty": "hard"}'


def content(trajs: list[Trajectory]) -> dict[str, tuple[Any, ...]]:
    return {t.id: (t.group_id, t.actions(), [x.reward for x in t.turns], t.error) for t in trajs}


def busy_workers() -> list[int]:
    return [
        p.pid
        for p in multiprocessing.active_children()
        if p.name.startswith("turnwise-rollout-worker") and p.pid is not None
    ]


def kill_workers_while_running(out: Path, retries: int, max_kills: int) -> tuple[Any, int]:
    kills = 0

    def killer(traj: Trajectory) -> None:
        nonlocal kills
        if kills < max_kills:
            for pid in busy_workers()[:1]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # it exited between being listed and the kill: no kill landed
                kills += 1

    cfg = CollectConfig(
        policy="random",
        env_kwargs=HARD,
        tasks=8,
        workers=2,
        retries=retries,
        out=out,
        progress=False,
    )
    return collect(cfg, on_trajectory=killer), kills


def test_killed_workers_are_replaced_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    reference = CollectConfig(
        policy="random", env_kwargs=HARD, tasks=8, workers=2, out=tmp_path / "ref", progress=False
    )
    collect(reference)
    # One kill: with retries=1 a second kill could land on the same (retried) episode.
    result, kills = kill_workers_while_running(tmp_path / "killed", retries=1, max_kills=1)
    assert kills == 1 and result.restarts == 1
    trajs = list(iter_trajectories(tmp_path / "killed"))
    assert len(trajs) == len({t.id for t in trajs}) == 8
    # A retried episode replays from its seeds: the same trajectory as without the kill.
    assert content(trajs) == content(list(iter_trajectories(tmp_path / "ref")))


def test_an_episode_whose_worker_dies_again_is_recorded_failed(tmp_path: Path) -> None:
    # retries=0: the first death is final. Killing until one lands mid-episode.
    failed: list[Trajectory] = []
    for attempt in range(3):
        out = tmp_path / str(attempt)
        kill_workers_while_running(out, retries=0, max_kills=4)
        trajs = list(iter_trajectories(out))
        assert len(trajs) == len({t.id for t in trajs}) == 8
        failed = [t for t in trajs if t.error is not None]
        if failed:
            break
    assert failed, "no kill landed mid-episode in three runs"
    assert all("worker process died (exit code -9)" in (t.error or "") for t in failed)
    assert all(not t.turns and t.metadata["attempts"] == 1 for t in failed)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    args = [
        sys.executable, "-m", "turnwise", "collect", "--policy", "random", "--env-kwargs", HARD,
        "--tasks", "400", "--workers", "2", "--shard-size", "10", "--flush-seconds", "0.1",
    ]  # fmt: skip
    cut, full = tmp_path / "cut", tmp_path / "full"
    proc = subprocess.Popen([*args, "--out", str(cut)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while not list((cut / "shards").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "--resume" in err
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    written = manifest["counts"]["written"]
    assert 0 < written < 400
    assert not [p for p in cut.rglob("*") if p.name.endswith(".tmp")]
    assert len(list(iter_trajectories(cut))) == written  # what the manifest says is there

    resumed = subprocess.run([*args, "--out", str(cut), "--resume"], capture_output=True,
                             text=True, timeout=120)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"({written} already done)" in resumed.stdout
    subprocess.run([*args, "--out", str(full)], check=True, capture_output=True, timeout=120)
    a, b = list(iter_trajectories(cut)), list(iter_trajectories(full))
    assert len(a) == len({t.id for t in a}) == 400
    assert content(a) == content(b)


class HangingEnv(Env):
    """Its second step hangs (a stand-in for a wedged browser or sandbox call)."""

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return ["only"]

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        return "Say anything.", {}

    def _step(self, action: str) -> StepResult:
        if self.turn >= 2:
            time.sleep(30)
        return StepResult("ok", reward_terms={"progress": 0.1})


def test_a_hanging_step_is_cut_at_the_turn_time_limit() -> None:
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    try:
        job = Job("only", 0, seed=1, member=0, sampling_seed=2, group_id="g", trajectory_id="t")
        episode = _Episode(HangingEnv(), job, Limits(turn_seconds=0.2), "train", parser=None)
        assert not episode.step("a")
        started = time.monotonic()
        with pytest.raises(_TimeUp):
            episode.step("b")
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGALRM, previous)
    traj = episode.finished
    assert traj is not None and traj.truncated and traj.truncation_reason == "turn_time_limit"
    assert traj.num_turns == 1 and traj.turns[-1].truncated
