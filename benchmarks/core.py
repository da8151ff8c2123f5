"""What the core contract and its wrappers cost, and how fast trajectories are stored.

Measured side by side in one process, on the built-in KeyDoor env (medium):

* step latency of the same expert episodes through four layers: the bare world rules
  (`World.moves`), `KeyDoorEnv` built directly (rules + text + the `turnwise.Env` contract),
  `turnwise.make` (adds Gymnasium's order-enforcing and passive-checker wrappers), and that plus
  `ProcessRewards([Format(), ValidAction()])` and `RecordTrajectory`;
* writing and reading 1,000 trajectories of 20 turns as Parquet and as JSON Lines.

Usage: python benchmarks/core.py [--episodes N] [--out benchmarks/results/core.json]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, write_result

import turnwise
from turnwise.envs.keydoor import KeyDoorEnv
from turnwise.rewards import Format, ValidAction
from turnwise.trajectory import (
    Trajectory,
    Turn,
    read_jsonl,
    read_parquet,
    write_jsonl,
    write_parquet,
)
from turnwise.wrappers import ProcessRewards, RecordTrajectory


def _episodes(n: int) -> list[tuple[str, list[str]]]:
    env = KeyDoorEnv()
    out = []
    for task_id in env.tasks("train")[:n]:
        env.reset(options={"task_id": task_id})
        out.append((task_id, env.world.solution()))
    return out


def _time_layer(make_env: Any, episodes: list[tuple[str, list[str]]], repeats: int) -> dict:
    env = make_env()
    per_step: list[float] = []
    for _ in range(repeats):
        for task_id, actions in episodes:
            env.reset(seed=0, options={"task_id": task_id})
            start = time.perf_counter()
            for action in actions:
                env.step(action)
            per_step.append((time.perf_counter() - start) / len(actions))
    env.close()
    return _summary(per_step)


def _time_rules(episodes: list[tuple[str, list[str]]], repeats: int) -> dict:
    env = KeyDoorEnv()
    per_step: list[float] = []
    for _ in range(repeats):
        for task_id, actions in episodes:
            env.reset(options={"task_id": task_id})
            world, state = env.world, env.world.initial
            start = time.perf_counter()
            for action in actions:
                state = world.moves(state)[action].state
            per_step.append((time.perf_counter() - start) / len(actions))
    return _summary(per_step)


def _summary(seconds: list[float]) -> dict:
    us = sorted(s * 1e6 for s in seconds)
    return {
        "median_us": round(statistics.median(us), 2),
        "p95_us": round(us[int(0.95 * (len(us) - 1))], 2),
        "episodes": len(us),
    }


def _trajectories(n: int, turns: int) -> list[Trajectory]:
    text = "You are in the kitchen. You see a red key. Exits: north (locked, red door), east."
    return [
        Trajectory(
            env_id="turnwise/KeyDoor-v0",
            task_id=f"medium-train-{i:05d}",
            seed=i,
            policy="bench",
            turns=[
                Turn(
                    index=t,
                    observation=text,
                    action="take red key",
                    reward=0.125,
                    reward_terms={"outcome": 0.0, "progress": 0.25, "valid": 0.0},
                    reward_weights={"valid": 0.1, "progress": 0.5},
                    state_key="room=kitchen;inventory=red key;unlocked=",
                    token_ids=list(range(24)),
                    logprobs=[-0.5] * 24,
                )
                for t in range(turns)
            ],
        )
        for i in range(n)
    ]


def _time_io(n: int, turns: int) -> dict:
    trajs = _trajectories(n, turns)
    out: dict[str, Any] = {"trajectories": n, "turns_each": turns}
    with tempfile.TemporaryDirectory() as tmp:
        for name, write, read in (
            ("parquet", write_parquet, read_parquet),
            ("jsonl", write_jsonl, read_jsonl),
        ):
            path = Path(tmp) / f"t.{name}"
            start = time.perf_counter()
            write(trajs, path)
            wrote = time.perf_counter() - start
            start = time.perf_counter()
            back = read(path)
            read_s = time.perf_counter() - start
            assert back == trajs
            out[name] = {
                "write_s": round(wrote, 3),
                "read_s": round(read_s, 3),
                "mb": round(path.stat().st_size / 1e6, 2),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/core.json")
    args = parser.parse_args()

    episodes = _episodes(args.episodes)
    layers = {
        "world rules only": lambda: None,
        "KeyDoorEnv (direct)": KeyDoorEnv,
        "turnwise.make": lambda: turnwise.make("turnwise/KeyDoor-v0"),
        "turnwise.make + ProcessRewards + RecordTrajectory": lambda: RecordTrajectory(
            ProcessRewards(turnwise.make("turnwise/KeyDoor-v0"), [Format(), ValidAction()])
        ),
    }
    steps = {}
    for name, factory in layers.items():
        if name == "world rules only":
            steps[name] = _time_rules(episodes, args.repeats)
        else:
            steps[name] = _time_layer(factory, episodes, args.repeats)
    result = {
        "benchmark": "core",
        "machine": machine(),
        "turnwise": turnwise.__version__,
        "step_latency": steps,
        "trajectory_io": _time_io(1000, 20),
    }
    print(f"{'layer':52} {'median µs/step':>15} {'p95':>8}")
    for name, row in steps.items():
        print(f"{name:52} {row['median_us']:>15.1f} {row['p95_us']:>8.1f}")
    io = result["trajectory_io"]
    for fmt in ("parquet", "jsonl"):
        row = io[fmt]
        print(
            f"{fmt:8} 1000×20 turns: write {row['write_s']:.3f}s, read {row['read_s']:.3f}s, "
            f"{row['mb']} MB"
        )
    write_result(result, args.out)


if __name__ == "__main__":
    main()
