"""ALFWorld: turnwise's overhead over alfworld's raw TextWorld-PDDL engine, and where time goes.

On the same generated games (`turnwise/ALFWorldGen-v0`: small scenes, and full kitchens with
every receptacle of the floorplan) and the same action sequences, in one process:

* raw: the wrapper chain alfworld's `AlfredTWEnv` plays games through (TextWorld's
  `GenericEnvironment` + alfworld's `AlfredDemangler` and `AlfredInfos`, with its `EnvInfos`),
  called directly (no `textworld.gym` batching, so the baseline is as fast as it gets);
* turnwise: `ALFWorldGenEnv.reset` / `step` (engine + progress, state key, admissible actions,
  the standard info and reward terms).

Two action sequences per game: the expert's winning walkthrough, and the same with an invalid
command after every second step (which turnwise answers without the engine). Reset is timed
with the game already loaded on both sides. Also reported: a profile of the raw engine's step in
a full kitchen, by the part of the engine the time is spent in.

Usage: python benchmarks/alfworld_bench.py [--episodes N] [--out benchmarks/results/alfworld.json]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

from _common import machine, write_result

from turnwise.envs.alfworld import ALFWorldGenEnv

KITCHEN_TYPES = ("pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep")
INVALID = "fly to the moon"


def _raw_engine() -> Any:
    import textworld
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos
    from textworld.envs.wrappers import GenericEnvironment

    request = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    return AlfredInfos(AlfredDemangler(shuffle=False)(GenericEnvironment(request)))


def _games(env: ALFWorldGenEnv, n: int) -> list[tuple[str, Path, list[str]]]:
    out = []
    for task_id in env.tasks("train")[:n]:
        game = env.game_file(task_id)  # generated and checked on first use, then cached
        traj = json.loads(game.with_name("traj_data.json").read_text())
        out.append((task_id, game, traj["turnwise"]["expert_walkthrough"]))
    return out


def _with_invalid(actions: list[str]) -> list[str]:
    out = []
    for i, action in enumerate(actions):
        out.append(action)
        if i % 2 == 1 and i < len(actions) - 1:
            out.append(INVALID)
    return out


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in seconds)
    return {
        "median_ms": round(statistics.median(ms), 3),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 3),
        "n": len(ms),
    }


def _overhead(ours: dict[str, float], raw: dict[str, float]) -> float:
    return round(100.0 * (ours["median_ms"] - raw["median_ms"]) / raw["median_ms"], 2)


class _EngineClock:
    """Times the engine calls made inside turnwise's `reset`/`step`, to attribute the rest.

    Side-by-side medians on a shared 2-core machine move by tens of percent from run to run;
    the time a turnwise call spends outside the engine, measured within that same call, does not.
    """

    def __init__(self, env: ALFWorldGenEnv) -> None:
        self.spent = 0.0
        inner = env.engine._env  # the textworld wrapper chain the Engine drives
        for name in ("reset", "step"):
            setattr(inner, name, self._timed(getattr(inner, name)))

    def _timed(self, method: Any) -> Any:
        def call(*args: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args)
            finally:
                self.spent += time.perf_counter() - start

        return call


def _compare(env: ALFWorldGenEnv, games: list[tuple[str, Path, list[str]]], repeats: int) -> dict:
    raw = _raw_engine()
    clock = _EngineClock(env)
    times: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    def timed_turnwise(key: str, call: Any) -> Any:
        clock.spent = 0.0
        start = time.perf_counter()
        out = call()
        total = time.perf_counter() - start
        record(f"turnwise/{key}", total)
        record(f"own/{key}", total - clock.spent)
        record(f"engine/{key}", clock.spent)
        return out

    for _ in range(repeats):
        for task_id, game, walkthrough in games:
            raw.load(str(game))
            env.reset(options={"task_id": task_id})  # loads the game, untimed
            for label, actions in (("expert", walkthrough), ("mixed", _with_invalid(walkthrough))):
                # Alternate raw and turnwise episode by episode, so drift hits both alike.
                start = time.perf_counter()
                raw.reset()
                record("raw/reset", time.perf_counter() - start)
                for action in actions:
                    start = time.perf_counter()
                    state, _, _ = raw.step(action)
                    record(f"raw/step/{label}", time.perf_counter() - start)
                assert state["won"], f"{task_id}: the walkthrough did not win the raw engine"
                timed_turnwise("reset", lambda t=task_id: env.reset(options={"task_id": t}))
                for action in actions:
                    *_, terminated, _, info = timed_turnwise(
                        f"step/{label}", lambda a=action: env.step(a)
                    )
                assert terminated and info["success"], f"{task_id}: turnwise did not win"
    raw.close()
    result: dict[str, Any] = {"games": [t for t, _, _ in games]}
    for part in ("reset", "step/expert", "step/mixed"):
        ours, base = _summary(times[f"turnwise/{part}"]), _summary(times[f"raw/{part}"])
        engine = sum(times[f"engine/{part}"])
        own = sum(times[f"own/{part}"])
        result[part] = {
            "raw": base,
            "turnwise": ours,
            "overhead_pct": _overhead(ours, base),
            "turnwise_outside_engine": _summary(times[f"own/{part}"]),
            # turnwise's own time over the engine time of the same calls (noise-free overhead).
            "attributed_overhead_pct": round(100 * own / engine, 2) if engine else None,
        }
    return result


def _profile_raw_step(game: Path, actions: list[str]) -> dict[str, Any]:
    """Where the raw engine's step time goes, as shares of the total."""
    raw = _raw_engine()
    raw.load(str(game))
    raw.reset()
    profile = cProfile.Profile()
    profile.enable()
    for action in actions:
        raw.step(action)
    profile.disable()
    raw.close()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]

    def cumulative(file_part: str, function: str) -> float:
        return sum(
            row[3]
            for (path, _, name), row in stats.items()
            if file_part in path and name == function
        )

    total = cumulative("envs/pddl/pddl.py", "step")
    parts = {
        "admissible commands (PddlEnv._gather_infos: every applicable action's text)": cumulative(
            "envs/pddl/pddl.py", "_gather_infos"
        ),
        "  of which parsing grammar templates and queries (tatsu)": cumulative(
            "tatsu/contexts.py", "parse"
        ),
        "  of which fast-downward applicable operators": cumulative(
            "envs/pddl/logic/__init__.py", "all_applicable_actions"
        ),
        "applying the action (fast-downward)": cumulative("envs/pddl/logic/__init__.py", "apply"),
    }
    return {
        "step_ms": round(1e3 * total / len(actions), 2),
        "shares_pct": {k: round(100 * v / total, 1) for k, v in parts.items()},
    }


def run(episodes: int, kitchen_episodes: int | None = None, repeats: int = 2) -> dict[str, Any]:
    """Benchmark `episodes` small-scene games and `kitchen_episodes` full kitchens.

    Games are generated (and checked by the expert) on first use and cached, so a first run
    takes minutes longer. `kitchen_episodes` defaults to `min(episodes, 2)`.
    """
    kitchens = min(episodes, 2) if kitchen_episodes is None else kitchen_episodes
    small_env = ALFWorldGenEnv("small", max_turns=1000)  # room for the mixed runs
    kitchen_env = ALFWorldGenEnv("full", task_types=KITCHEN_TYPES, max_turns=1000)
    small = _games(small_env, episodes)
    full = _games(kitchen_env, kitchens)
    result: dict[str, Any] = {
        "small_scene": _compare(small_env, small, repeats),
        "full_kitchen": _compare(kitchen_env, full, repeats),
    }
    if full:
        _, game, walkthrough = full[0]
        result["full_kitchen"]["receptacles"] = sum(
            1
            for line in json.loads(game.read_text())["pddl_problem"].splitlines()
            if line.endswith(" - receptacle")
        )
        result["full_kitchen"]["raw_step_profile"] = _profile_raw_step(game, walkthrough)
    small_env.close()
    kitchen_env.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--kitchen-episodes", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/alfworld.json")
    args = parser.parse_args()
    result = {
        "benchmark": "alfworld",
        "machine": machine(),
        **run(args.episodes, args.kitchen_episodes, args.repeats),
    }
    print(json.dumps(result, indent=2))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
