"""TextWorld: turnwise's overhead over the raw textworld engine, on the same games and actions.

For each benchmark game (one per challenge, generated into the normal cache on first use), the
expert's action sequence is recorded once, then replayed episode after episode, alternating
between the raw engine (`textworld.start` with the same `EnvInfos` turnwise requests, `seed`,
`reset`, `step`) and turnwise (`env.reset(seed=..., options={"task_id": ...})`, `env.step`), so
both see the same machine load. Reset and step latencies are reported as median and p95 (ms), with
turnwise's overhead over the engine in percent (of the medians, and of the totals).

Usage: python benchmarks/textworld_bench.py [--episodes N] [--out FILE.json]
(`benchmarks/textworlds.py` runs it next to the ALFWorld benchmark.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from typing import Any

from turnwise.envs.textworld import TextWorldEnv
from turnwise.envs.textworld.env import engine_infos
from turnwise.envs.textworld.games import textworld_version

#: (name, challenge, settings) of the benchmark games; each plays its train task 0.
GAMES: list[tuple[str, str, dict[str, Any]]] = [
    ("coin_collector_l10", "tw-coin_collector", {"level": 10}),
    ("treasure_hunter_l10", "tw-treasure_hunter", {"level": 10}),
    ("simple_dense", "tw-simple", {"rewards": "dense", "goal": "detailed"}),
    ("cooking_r2t2_go6", "tw-cooking", {"recipe": 2, "take": 2, "go": 6, "open": True}),
    ("custom_r5_q5", "custom", {"nb_rooms": 5, "nb_objects": 10, "quest_length": 5}),
]
_SIZES = {"train": 1, "valid": 1, "test": 1}


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(1000 * s for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"median_ms": statistics.median(ms), "p95_ms": p95, "mean_ms": statistics.fmean(ms)}


def _overhead(ours: list[float], raw: list[float]) -> dict[str, float]:
    return {
        "median_pct": 100 * (statistics.median(ours) / statistics.median(raw) - 1),
        "total_pct": 100 * (sum(ours) / sum(raw) - 1),
    }


def _expert_actions(env: TextWorldEnv, task_id: str) -> list[str]:
    env.reset(seed=0, options={"task_id": task_id})
    actions = []
    while (action := env.expert_action()) is not None:
        actions.append(action)
        env.step(action)
    if not env.ended:
        raise RuntimeError(f"the expert did not finish {task_id}")
    return actions


class _EngineTimer:
    """Times the calls turnwise makes into its engine, to separate its own time from the engine's."""

    def __init__(self, engine: Any) -> None:
        self.inner: list[float] = []
        for name in ("reset", "step"):
            method = getattr(engine, name)
            setattr(engine, name, self._timed(method))

    def _timed(self, method: Any) -> Any:
        def call(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.inner.append(time.perf_counter() - start)

        return call


def bench_game(challenge: str, settings: dict[str, Any], episodes: int) -> dict[str, Any]:
    """Time `episodes` raw and turnwise episodes of one game's expert walkthrough."""
    import textworld

    env = TextWorldEnv(challenge, settings, split_sizes=_SIZES)
    task_id = env.tasks()[0]
    actions = _expert_actions(env, task_id)
    timer = _EngineTimer(env.engine)  # the same engine plays every episode of this task
    path = str(env.store.path(env.store.record(task_id)))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Game .* is not fully supported")
        raw = textworld.start(path, engine_infos())
    keys = ("raw_reset", "raw_step", "tw_reset", "tw_step", "own_reset", "own_step")
    times: dict[str, list[float]] = {key: [] for key in keys}
    clock = time.perf_counter
    for episode in range(episodes + 1):  # episode 0 warms both up and is not counted
        for who in ("raw", "tw") if episode % 2 else ("tw", "raw"):
            resets, steps = [], []
            timer.inner.clear()
            if who == "raw":
                start = clock()
                raw.seed(episode + 1)
                raw.reset()
                resets.append(clock() - start)
                for action in actions:
                    start = clock()
                    raw.step(action)
                    steps.append(clock() - start)
            else:
                start = clock()
                env.reset(seed=episode + 1, options={"task_id": task_id})
                resets.append(clock() - start)
                for action in actions:
                    start = clock()
                    env.step(action)
                    steps.append(clock() - start)
                # turnwise's own time: each call less the engine call inside it.
                own = [
                    total - inner for total, inner in zip(resets + steps, timer.inner, strict=True)
                ]
                if episode:
                    times["own_reset"] += own[:1]
                    times["own_step"] += own[1:]
            if episode:
                times[f"{who}_reset"] += resets
                times[f"{who}_step"] += steps
    raw.close()
    env.close()
    return {
        "task_id": task_id,
        "steps_per_episode": len(actions),
        **_report(times),
        "_times": times,
    }


def _report(times: dict[str, list[float]]) -> dict[str, Any]:
    # The engine's share of turnwise's calls; medians, since a preemption that lands in
    # turnwise's few microseconds would otherwise weigh as much as the whole engine call.
    engine_reset = statistics.median(
        t - o for t, o in zip(times["tw_reset"], times["own_reset"], strict=True)
    )
    engine_step = statistics.median(
        t - o for t, o in zip(times["tw_step"], times["own_step"], strict=True)
    )
    return {
        "raw": {"reset": _summary(times["raw_reset"]), "step": _summary(times["raw_step"])},
        "turnwise": {"reset": _summary(times["tw_reset"]), "step": _summary(times["tw_step"])},
        # End to end: noisy on a shared machine, since two runs never see the same load.
        "overhead": {
            "reset": _overhead(times["tw_reset"], times["raw_reset"]),
            "step": _overhead(times["tw_step"], times["raw_step"]),
        },
        # Attributed: the time spent in turnwise itself, around the engine calls of the same
        # runs (median), over the median engine call. Immune to load drift between runs.
        "own_time": {
            "reset_median_us": 1e6 * statistics.median(times["own_reset"]),
            "step_median_us": 1e6 * statistics.median(times["own_step"]),
            "step_p95_us": 1000 * _summary(times["own_step"])["p95_ms"],
            "reset_pct": 100 * statistics.median(times["own_reset"]) / engine_reset,
            "step_pct": 100 * statistics.median(times["own_step"]) / engine_step,
        },
    }


def run(episodes: int) -> dict[str, Any]:
    """Benchmark every game of `GAMES` for `episodes` episodes; return the JSON-ready result."""
    games = {}
    pooled: dict[str, list[float]] = {}
    for name, challenge, settings in GAMES:
        result = bench_game(challenge, settings, episodes)
        for key, values in result.pop("_times").items():
            pooled.setdefault(key, []).extend(values)
        games[name] = result
    return {
        "engine": f"textworld {textworld_version()}",
        "episodes_per_game": episodes,
        "games": games,
        "all_games": _report(pooled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--out", default=None, help="also write the result to this JSON file")
    args = parser.parse_args()
    result = run(args.episodes)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
