"""What evaluation and verification cost: `turnwise eval` and `turnwise leaderboard verify` on a
suite, side by side in one run.

For each policy (the expert and the random agent by default), on one suite (default
`turnwise-text-v0`):

1. **eval**: the wall time of `evaluate` (every episode through the rollout collector, the
   summary written), and the env turns it played per second;
2. **verify**: the wall time of `verify` on that submission (every episode's actions replayed in
   a fresh env, the summary recomputed), and the turns it replayed per second.

Replaying needs no policy and no worker processes, so verification should cost less than the
evaluation it checks; the ratio is the figure to watch.

Usage: python benchmarks/eval.py [--suite turnwise-text-v0] [--policies expert random]
       [--workers 4] [--out benchmarks/results/eval.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine, write_result

from turnwise.eval.run import EvalConfig, evaluate
from turnwise.eval.verify import verify


def measure(suite: str, policy: str, workers: int, scratch: Path) -> dict[str, Any]:
    out = scratch / policy.replace(":", "-")
    started = time.perf_counter()
    summary = evaluate(EvalConfig(suite=suite, policy=policy, out=out, workers=workers))
    eval_seconds = time.perf_counter() - started
    turns = summary["overall"]["turns_mean"] * summary["overall"]["episodes"]
    started = time.perf_counter()
    report = verify(out)
    verify_seconds = time.perf_counter() - started
    if not report.ok:
        raise SystemExit(f"{policy}: its own submission did not verify: {report.rejections[0]}")
    return {
        "policy": policy,
        "episodes": summary["overall"]["episodes"],
        "turns": int(turns),
        "success_rate": summary["overall"]["success_rate"],
        "eval_seconds": round(eval_seconds, 2),
        "eval_turns_per_second": round(turns / eval_seconds, 1),
        "verify_seconds": round(verify_seconds, 2),
        "verify_turns_per_second": round(turns / verify_seconds, 1),
        "verify_over_eval": round(verify_seconds / eval_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="turnwise-text-v0")
    parser.add_argument("--policies", nargs="+", default=["expert", "random"])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/eval.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for policy in args.policies:
            row = measure(args.suite, policy, args.workers, Path(scratch))
            rows.append(row)
            print(
                f"{policy:>10}: {row['episodes']} episodes, {row['turns']} turns | eval "
                f"{row['eval_seconds']:.1f} s ({row['eval_turns_per_second']} turns/s) | verify "
                f"{row['verify_seconds']:.1f} s ({row['verify_turns_per_second']} turns/s) | "
                f"verify/eval {row['verify_over_eval']:.2f}"
            )
    write_result({"suite": args.suite, "machine": machine(), "runs": rows}, args.out)


if __name__ == "__main__":
    main()
