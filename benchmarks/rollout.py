"""What the rollout collector buys: env steps/s across workers, batched policy calls, and what
the Ray backend costs.

Each comparison runs in one run of this script:

1. **env steps/s with the expert**, on KeyDoor (`--difficulty`, default hard: ~11 turns an
   episode of ~0.1 ms steps: the collector's own overhead dominates) and on TextWorld
   (`tw-simple`, ~17 ms engine steps: a real text engine): the collector with 2 workers vs 1
   worker, and a plain sequential Gymnasium loop (`env.reset`/`env.step` with the expert, no
   recording, no output). Rates are steady-state: turns finished between the first and the last
   trajectory, over that time, so worker start-up is left out (the wall time including it is
   reported too). A warm-up run first starts the forkserver and fills the TextWorld game cache.
2. **turns/s with the tiny `hf` policy**: the collector with `--hf-workers` envs whose turns are
   answered in one batched `generate` call, vs one env at a time (`workers=1`: every call has one
   request). Same tasks, seeds and greedy decoding in both.
3. **Ray backend overhead**: a policy in the main process that answers at once, so every turn is
   a round trip main -> env worker -> main; microseconds per turn with Ray actors vs local
   processes (2 workers each, Ray started locally beforehand), and the expert played inside the
   workers on both backends.
4. **kept workers** (`WorkerPool`): seconds per collection of `--pool-rounds` expert
   collections in a row on small ALFWorldGen scenes (`--pool-tasks` episodes, 4 workers, games
   generated beforehand), each starting its workers vs reusing the workers of the one before
   (the first round of each is left out: both start their workers there).

Usage: python benchmarks/rollout.py [--tasks 300] [--tw-tasks 24] [--hf-tasks 16]
       [--hf-workers 8] [--ray-tasks 100] [--pool-tasks 8] [--pool-rounds 4]
       [--only pool] [--out benchmarks/results/rollout.json]

`--only pool` runs section 4 alone and writes `benchmarks/results/rollout_pool.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import turnwise
from turnwise.rollout import CollectConfig, collect


def timed_collect(config: CollectConfig, policy: Any = None) -> dict[str, Any]:
    """Run `collect` and measure steady-state turns/s from the trajectories' finish times."""
    stamps: list[tuple[float, int]] = []
    started = time.perf_counter()
    result = collect(
        config,
        policy=policy,
        on_trajectory=lambda t: stamps.append((time.perf_counter(), t.num_turns)),
    )
    wall = time.perf_counter() - started
    steady_turns = sum(n for _, n in stamps[1:])
    steady_seconds = stamps[-1][0] - stamps[0][0]
    return {
        "workers": config.workers,
        "episodes": result.collected,
        "turns": result.turns,
        "tokens": result.tokens,
        "wall_seconds": round(wall, 3),
        "turns_per_second_wall": round(result.turns / wall, 1),
        "turns_per_second": round(steady_turns / steady_seconds, 1),
    }


def sequential_loop(
    env_id: str, env_kwargs: dict[str, Any], task_ids: list[str], seeds: list[int]
) -> dict[str, Any]:
    """The plain Gymnasium loop: one env, the expert, nothing recorded."""
    env = turnwise.make(env_id, **env_kwargs)
    turns = 0
    started = time.perf_counter()
    for task_id, seed in zip(task_ids, seeds, strict=True):
        env.reset(seed=seed, options={"task_id": task_id})
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(env.unwrapped.expert_action())
            done = terminated or truncated
            turns += 1
    seconds = time.perf_counter() - started
    env.close()
    return {
        "turns": turns,
        "seconds": round(seconds, 3),
        "turns_per_second": round(turns / seconds, 1),
    }


def scaling(env_id: str, env_kwargs: dict[str, Any], tasks: int, scratch: Path) -> dict[str, Any]:
    """Expert turns/s: the collector with 2 workers vs 1, and the sequential loop."""
    from turnwise.rollout.collector import _inspect_env, plan_jobs

    def expert(workers: int, name: str) -> CollectConfig:
        return CollectConfig(
            env=env_id, env_kwargs=json.dumps(env_kwargs), policy="expert", tasks=tasks,
            workers=workers, out=scratch / f"{env_id.split('/')[-1]}-{name}", progress=False,
            shard_size=1000,
        )  # fmt: skip

    collect(expert(2, "warm-up"))  # starts the forkserver; generates and caches games
    one = timed_collect(expert(1, "1"))
    two = timed_collect(expert(2, "2"))
    task_ids, _ = _inspect_env(expert(1, "plan"), env_kwargs)
    jobs = plan_jobs(expert(1, "plan"), task_ids)
    plain = sequential_loop(env_id, env_kwargs, [j.task_id for j in jobs], [j.seed for j in jobs])
    return {
        "env": env_id,
        "env_kwargs": env_kwargs,
        "workers_1": one,
        "workers_2": two,
        "sequential_gymnasium_loop": plain,
        "speedup_2_vs_1": round(two["turns_per_second"] / one["turns_per_second"], 2),
        "speedup_2_vs_sequential": round(two["turns_per_second"] / plain["turns_per_second"], 2),
        "target_2_vs_1": 1.7,
    }


class Instant:
    """A policy in the main process that answers every request at once with the same action."""

    name = "instant"
    tokenizer = None

    def generate(self, requests: Any) -> list[Any]:
        from turnwise.agents.policy import Generation

        return [Generation("<action>look</action>", [], None, "stop") for _ in requests]


def ray_overhead(env_kwargs: dict[str, Any], tasks: int, scratch: Path) -> dict[str, Any]:
    """Per-turn cost of a main -> worker -> main round trip on Ray actors vs local processes."""
    try:
        import ray
    except ImportError:
        return {"skipped": "ray is not installed (pip install 'turnwise[ray]')"}
    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    spec = "openai:http://127.0.0.1:9/v1#instant"  # recorded only; the Instant policy answers
    results: dict[str, Any] = {}
    try:
        for backend in ("local", "ray"):
            common = {
                "env_kwargs": json.dumps(env_kwargs), "tasks": tasks, "workers": 2,
                "backend": backend, "progress": False, "shard_size": 1000,
            }  # fmt: skip
            collect(CollectConfig(**common, max_turns=2, out=scratch / f"{backend}-warm-up"))
            turn = timed_collect(
                CollectConfig(**common, policy=spec, max_turns=10, out=scratch / f"{backend}-rt"),
                Instant(),
            )
            turn["microseconds_per_turn"] = round(1e6 / turn["turns_per_second"], 1)
            play = timed_collect(CollectConfig(**common, out=scratch / f"{backend}-expert"))
            results[backend] = {"main_process_policy": turn, "expert_in_workers": play}
    finally:
        ray.shutdown()
    local_us = results["local"]["main_process_policy"]["microseconds_per_turn"]
    ray_us = results["ray"]["main_process_policy"]["microseconds_per_turn"]
    results["ray_overhead_microseconds_per_turn"] = round(ray_us - local_us, 1)
    return results


def kept_workers(tasks: int, rounds: int, scratch: Path) -> dict[str, Any]:
    """Seconds per collection, starting workers every time vs keeping them in a `WorkerPool`."""
    from turnwise.rollout import WorkerPool

    env_kwargs = {
        "scene": "small", "n_receptacles": 3, "n_distractors": 0,
        "task_types": ["pick_and_place_simple"], "max_turns": 12,
    }  # fmt: skip
    made = turnwise.make("turnwise/ALFWorldGen-v0", **env_kwargs)
    made.unwrapped.prepare("train", count=tasks, workers=2)
    made.close()

    def rounds_of(pool: WorkerPool | None, name: str) -> list[float]:
        seconds = []
        for k in range(rounds):
            config = CollectConfig(
                env="turnwise/ALFWorldGen-v0", env_kwargs=json.dumps(env_kwargs), tasks=tasks,
                workers=4, out=scratch / f"pool-{name}-{k}", progress=False,
            )  # fmt: skip
            started = time.perf_counter()
            collect(config, pool=pool)
            seconds.append(time.perf_counter() - started)
        return seconds

    fresh = rounds_of(None, "fresh")
    with WorkerPool() as pool:
        kept = rounds_of(pool, "kept")
    mean_fresh = sum(fresh[1:]) / max(len(fresh) - 1, 1)
    mean_kept = sum(kept[1:]) / max(len(kept) - 1, 1)
    return {
        "env": "turnwise/ALFWorldGen-v0",
        "env_kwargs": env_kwargs,
        "episodes_per_collection": tasks,
        "workers": 4,
        "fresh_seconds": [round(x, 3) for x in fresh],
        "kept_seconds": [round(x, 3) for x in kept],
        "fresh_mean_after_first": round(mean_fresh, 3),
        "kept_mean_after_first": round(mean_kept, 3),
        "speedup": round(mean_fresh / mean_kept, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--difficulty", default="hard")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--tw-tasks", type=int, default=24)
    parser.add_argument("--hf-tasks", type=int, default=16)
    parser.add_argument("--ray-tasks", type=int, default=100)
    parser.add_argument("--hf-workers", type=int, default=8)
    parser.add_argument("--hf-max-turns", type=int, default=4)
    parser.add_argument("--hf-max-tokens", type=int, default=16)
    parser.add_argument("--pool-tasks", type=int, default=8)
    parser.add_argument("--pool-rounds", type=int, default=4)
    parser.add_argument("--only", choices=("all", "pool"), default="all")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="turnwise-bench-rollout-"))
    machine = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    if args.only == "pool":
        out = args.out or Path("benchmarks/results/rollout_pool.json")
        report: dict[str, Any] = {
            "benchmark": "rollout (kept workers)",
            "machine": machine,
            "load_average": os.getloadavg(),
            "kept_workers": kept_workers(args.pool_tasks, args.pool_rounds, scratch),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    env_kwargs = {"difficulty": args.difficulty}

    # ------------------------------------------------------------ 1. expert, env steps/s
    keydoor = scaling("turnwise/KeyDoor-v0", env_kwargs, args.tasks, scratch)
    textworld = scaling("turnwise/TextWorld-v0", {"challenge": "tw-simple"}, args.tw_tasks, scratch)

    # ------------------------------------------------------------ 2. tiny hf, turns/s
    from turnwise.agents.specs import load_policy
    from turnwise.agents.tiny import default_checkpoint

    spec = f"hf:{default_checkpoint()}"
    policy = load_policy(spec)

    def hf(workers: int) -> CollectConfig:
        return CollectConfig(
            env_kwargs=json.dumps(env_kwargs), policy=spec, tasks=args.hf_tasks, workers=workers,
            temperature=0.0, max_turns=args.hf_max_turns, max_tokens=args.hf_max_tokens,
            out=scratch / f"hf-{workers}", progress=False,
        )  # fmt: skip

    single = timed_collect(hf(1), policy)
    batched = timed_collect(hf(args.hf_workers), policy)

    report = {
        "benchmark": "rollout",
        "machine": machine,
        "load_average": os.getloadavg(),
        "expert": {"keydoor": keydoor, "textworld": textworld},
        "tiny_hf": {
            "policy": "tiny (turnwise.agents.tiny.default_checkpoint), greedy",
            "one_env_at_a_time": single,
            "batched": batched,
            "speedup": round(batched["turns_per_second"] / single["turns_per_second"], 2),
            "target": 4.0,
        },
        "ray": ray_overhead(env_kwargs, args.ray_tasks, scratch),
        "kept_workers": kept_workers(args.pool_tasks, args.pool_rounds, scratch),
    }
    out = args.out or Path("benchmarks/results/rollout.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
