"""What a software-engineering step costs: a command through the sandbox, and a workspace reset.

Measured in one process, side by side (median and p95 over `--repeats`):

* Command round trip: `true` through `BwrapSandbox.run` (as an argv, and as `bash -c true`)
  against a plain `subprocess.run(["true"])`; and `python -c pass` through a `python=True`
  sandbox against the same interpreter started directly. Target: at most 30 ms through the
  sandbox.
* Workspace reset on a realistic workspace (a copy of a pure-Python package from
  site-packages, about 300 files and a few MB): `restore()` after editing one file (and after a
  larger change: a folder deleted, files added), against rebuilding it by a full `cp -a` of
  the tree. Target: at most 200 ms.
* `turnwise/SWE-v0` (`env_resets`): a reset to the same task after an edit (the snapshot is
  restored), a reset to another task with nothing kept (a sandbox is built from the cached
  repository), and one step of each tool, `run_tests` included.

Usage: python benchmarks/swe.py [--repeats N] [--out benchmarks/results/swe.json]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Any

from _common import machine, summary_ms, timed_ms, write_result

ROUND_TRIP_TARGET_MS = 30.0
RESET_TARGET_MS = 200.0
#: Packages tried, in order, as the realistic workspace (the first with 150+ files is used).
WORKSPACE_CANDIDATES = ("setuptools", "pip/_vendor", "rich", "_pytest")


def _check(result: Any) -> None:
    if not result.ok:
        raise RuntimeError(f"benchmark command failed: {result}")


def round_trip(repeats: int) -> dict[str, Any]:
    from turnwise.sandboxes.bwrap import BwrapSandbox

    result: dict[str, Any] = {}
    with BwrapSandbox() as box:
        _check(box.run(["true"]))  # warm the page cache
        result["sandbox_true_argv"] = summary_ms(
            timed_ms(lambda: _check(box.run(["true"])), repeats)
        )
        result["sandbox_true_bash"] = summary_ms(timed_ms(lambda: _check(box.run("true")), repeats))
    result["plain_true"] = summary_ms(
        timed_ms(lambda: subprocess.run(["true"], check=True), repeats)
    )
    with BwrapSandbox(python=True) as box:
        _check(box.run(["python", "-c", "pass"]))
        result["sandbox_python_pass"] = summary_ms(
            timed_ms(lambda: _check(box.run(["python", "-c", "pass"])), repeats)
        )
    result["plain_python_pass"] = summary_ms(
        timed_ms(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), repeats)
    )
    return result


def realistic_tree(into: Path) -> dict[str, Any]:
    """Copy a pure-Python package from site-packages to `into` (no __pycache__); describe it."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    for name in WORKSPACE_CANDIDATES:
        src = purelib / name
        if src.is_dir() and sum(1 for _ in src.rglob("*.py")) >= 150:
            break
    else:
        raise RuntimeError(f"none of {WORKSPACE_CANDIDATES} is installed in {purelib}")
    shutil.copytree(src, into, ignore=shutil.ignore_patterns("__pycache__"))
    files = [p for p in into.rglob("*") if p.is_file()]
    edit = next(p for p in sorted(files) if p.suffix == ".py" and p.stat().st_size > 1000)
    return {
        "package": name,
        "files": len(files),
        "megabytes": round(sum(p.stat().st_size for p in files) / 1e6, 2),
        "edited_file": str(edit.relative_to(into)),
    }


def workspace_reset(repeats: int) -> dict[str, Any]:
    from turnwise.sandboxes.bwrap import BwrapSandbox

    scratch = Path(tempfile.mkdtemp(prefix="turnwise-bench-swe-"))
    try:
        tree = scratch / "tree"
        info = realistic_tree(tree)
        result: dict[str, Any] = {"workspace": info}
        with BwrapSandbox(tree) as box:
            result["snapshot"] = summary_ms(timed_ms(box.snapshot, max(3, repeats // 5)))
            edit = info["edited_file"]
            result["restore_after_one_edit"] = summary_ms(
                timed_ms(box.restore, repeats, before=lambda: _check(box.run(f"echo x >> {edit}")))
            )
            big_change = "rm -rf $(ls -d */ | head -1) && mkdir -p new/a && touch new/a/{1..20}"
            result["restore_after_big_change"] = summary_ms(
                timed_ms(
                    box.restore, max(3, repeats // 5), before=lambda: _check(box.run(big_change))
                )
            )
            result["restore_unchanged"] = summary_ms(timed_ms(box.restore, repeats))
        copy = scratch / "copy"

        def full_copy() -> None:
            subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(copy)], check=True)

        result["full_copy_cp_a"] = summary_ms(
            timed_ms(full_copy, repeats, before=lambda: shutil.rmtree(copy, ignore_errors=True))
        )
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------- env resets
def env_resets(repeats: int) -> dict[str, Any]:
    """`turnwise/SWE-v0` on a shipped inflection task: resets and the cost of each tool.

    * reset to the same task after an edit (a group of rollouts of one task): the pool
      restores the sandbox's snapshot;
    * reset to another task with `pool_size=1` (nothing kept): a sandbox is built from the
      cached repository (copy, chown, snapshot);
    * one step of `view`, `shell ls`, `str_replace` and `run_tests` (455 tests).
    """
    from turnwise.envs.swe import SWEEnv
    from turnwise.envs.swe.instances import shipped_instances

    tasks = [i for i in shipped_instances() if i.repo == "pypi/inflection"][:2]
    out: dict[str, Any] = {"task": tasks[0].instance_id}
    with SWEEnv(tasks, split=tasks[0].split, pool_size=4) as env:
        first = {"task_id": tasks[0].instance_id}
        env.reset(options=first)
        out["reset_same_task_after_edit"] = summary_ms(
            timed_ms(
                lambda: env.reset(options=first),
                repeats,
                before=lambda: env.step("create scratch.txt\nhello"),
            )
        )
        for name, action, n in (
            ("step_view", "view inflection/__init__.py 1-40", repeats),
            ("step_shell_ls", "shell ls", repeats),
            ("step_run_tests", "run_tests", max(3, repeats // 10)),
        ):
            env.reset(options=first)  # a fresh episode per tool: max_turns is never reached
            out[name] = summary_ms(timed_ms(lambda a=action: env.step(a), n))
    with SWEEnv(tasks, split="train", pool_size=1) as env:
        ids = [t.instance_id for t in tasks]
        env.reset(options={"task_id": ids[1]})
        flip = iter(range(10**6))
        out["reset_other_task_cold"] = summary_ms(
            timed_ms(
                lambda: env.reset(options={"task_id": ids[next(flip) % 2]}), max(5, repeats // 5)
            )
        )
    return out


def _verdict(name: str, median_ms: float, target_ms: float) -> str:
    met = "met" if median_ms <= target_ms else "NOT met"
    return f"{name}: median {median_ms:.1f} ms, target <= {target_ms:.0f} ms: {met}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/results/swe.json")
    args = parser.parse_args()
    from turnwise.sandboxes.bwrap import bwrap_available

    if (reason := bwrap_available()) is not None:
        raise SystemExit(f"cannot benchmark the sandbox: {reason}")
    result: dict[str, Any] = {"benchmark": "swe", "machine": machine()}
    result["round_trip"] = rt = round_trip(args.repeats)
    result["workspace_reset"] = reset = workspace_reset(args.repeats)
    result["env_resets"] = env_resets(args.repeats)
    result["machine_after"] = machine()["load_average"]

    print(f"\n{'measure':<44} {'median ms':>10} {'p95 ms':>9}")
    for section in (rt, reset, result["env_resets"]):
        for name, row in section.items():
            if isinstance(row, dict) and "median_ms" in row:
                print(f"{name:<44} {row['median_ms']:>10.2f} {row['p95_ms']:>9.2f}")
    ws = reset["workspace"]
    print(f"(workspace: {ws['package']}, {ws['files']} files, {ws['megabytes']} MB)")
    result["targets"] = {
        "round_trip_ms": ROUND_TRIP_TARGET_MS,
        "reset_ms": RESET_TARGET_MS,
        "round_trip_met": rt["sandbox_true_argv"]["median_ms"] <= ROUND_TRIP_TARGET_MS,
        "reset_met": reset["restore_after_one_edit"]["median_ms"] <= RESET_TARGET_MS,
        "env_reset_met": result["env_resets"]["reset_same_task_after_edit"]["median_ms"]
        <= RESET_TARGET_MS,
    }
    print(_verdict("round trip (true)", rt["sandbox_true_argv"]["median_ms"], ROUND_TRIP_TARGET_MS))
    print(
        _verdict("reset (one edit)", reset["restore_after_one_edit"]["median_ms"], RESET_TARGET_MS)
    )
    env_reset = result["env_resets"]["reset_same_task_after_edit"]["median_ms"]
    print(_verdict("SWE-v0 reset (same task)", env_reset, RESET_TARGET_MS))
    write_result(result, args.out)


if __name__ == "__main__":
    main()
