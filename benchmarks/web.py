"""What a web step costs, and how many MiniWoB episodes a machine gets through per minute.

Measured in one run, on `turnwise/MiniWoB-v0` (pages with experts: click-button, enter-text,
click-checkboxes, click-link, focus-text):

* step latency (median, p95) of one action + observation: a `click` of an element that does
  not end the episode (a text field on enter-text), timed around `env.step`, and the split of a
  reset (fresh context, page load, seeding, first observation);
* episodes per minute with the expert playing whole episodes, with 1 and with 4 workers. Each
  worker is a process with its own Chromium (Playwright's sync API is bound to one thread, and
  one browser per worker is the design), so 4 workers measure what the machine's cores allow.

Usage: python benchmarks/web.py [--steps N] [--seconds S] [--out benchmarks/results/web.json]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from typing import Any

from _common import machine, write_result

PAGES = ["click-button", "enter-text", "click-checkboxes", "click-link", "focus-text"]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def step_latency(steps: int) -> dict[str, Any]:
    """Latency of click + observe, and of reset, in milliseconds."""
    from turnwise.envs.web.miniwob import MiniWoBEnv

    env = MiniWoBEnv(pages=["enter-text"], max_turns=steps + 1)
    resets = []
    for i in range(4):
        start = time.perf_counter()
        env.reset(options={"task_id": f"enter-text/train/{i:04d}"})
        resets.append((time.perf_counter() - start) * 1000)
    field = env.id_of("#tt")
    click = f"click({field})"
    env.step(click)  # warm up
    times = []
    for _ in range(steps - 1):
        start = time.perf_counter()
        _, _, terminated, truncated, info = env.step(click)
        times.append((time.perf_counter() - start) * 1000)
        assert info["valid_action"] and not (terminated or truncated)
    env.close()
    return {
        "action": "click(<text field>) on enter-text, then the observation",
        "steps": len(times),
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(_quantile(times, 0.95), 1),
        "reset_median_ms": round(statistics.median(resets[1:]), 1),
    }


def _worker(args: tuple[int, float]) -> tuple[int, int, float]:
    """Play expert episodes for `seconds`; return (episodes, successes, seconds)."""
    worker, seconds = args
    from turnwise.envs.web.miniwob import MiniWoBEnv

    env = MiniWoBEnv(pages=PAGES)
    env.reset(options={"task_id": "click-button/train/0000"})  # launch outside the clock
    episodes = successes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        page = PAGES[(worker + episodes) % len(PAGES)]
        env.reset(options={"task_id": f"{page}/train/{worker * 100 + episodes:04d}"})
        info: dict[str, Any] = {}
        while (action := env.expert_action()) is not None:
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        episodes += 1
        successes += bool(info.get("success"))
    elapsed = time.perf_counter() - start
    env.close()
    return episodes, successes, elapsed


def throughput(workers: int, seconds: float) -> dict[str, Any]:
    """Episodes per minute of `workers` processes, each with its own browser."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        results = pool.map(_worker, [(w, seconds) for w in range(workers)])
    episodes = sum(r[0] for r in results)
    successes = sum(r[1] for r in results)
    elapsed = max(r[2] for r in results)
    return {
        "workers": workers,
        "episodes": episodes,
        "success_rate": round(successes / max(episodes, 1), 3),
        "episodes_per_min": round(episodes / elapsed * 60, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0, help="per throughput run")
    parser.add_argument("--out", default="benchmarks/results/web.json")
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "web", "machine": machine()}
    result["step"] = step_latency(args.steps)
    print("step", result["step"])
    result["throughput"] = [throughput(n, args.seconds) for n in (1, 4)]
    print("throughput", result["throughput"])
    result["machine_after"] = machine()["load_average"]
    write_result(result, args.out)


if __name__ == "__main__":
    main()
