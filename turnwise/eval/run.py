"""`turnwise eval`: play a suite with a policy and summarise it.

The episodes run through the rollout collector (concurrent env workers, resumable), one
collection per (entry, seed) under `OUT/collect/`. Then:

    OUT/episodes.jsonl   every episode's full trajectory, in suite order, with its suite
                         coordinates in `metadata` (`suite_entry`, `suite_seed`, `family`)
    OUT/suite.json       the suite played, resolved (what a verifier checks a suite that is
                         not built in against)
    OUT/summary.json     success rate with a 95% bootstrap interval, mean reward, turns,
                         tokens, wall time and errors: overall, per family and per env; plus
                         the suite id and digest, the engine versions, the policy and a label

The two files are a submission: `turnwise leaderboard build` ranks summaries and
`turnwise leaderboard verify` replays the episodes. Evaluation samples at temperature 0 by
default, so a deterministic policy gives the same numbers run after run (wall time aside).
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turnwise.eval.stats import bootstrap_ci
from turnwise.eval.suites import Suite, installed_versions, load_suite
from turnwise.parsing import Choices, check_choices
from turnwise.trajectory import Trajectory

__all__ = ["SCHEMA", "EvalConfig", "evaluate", "summarize"]

SCHEMA = "turnwise-eval/1"
EPISODES = "episodes.jsonl"
SUMMARY = "summary.json"
SUITE = "suite.json"


@dataclass
class EvalConfig:
    """Evaluate a policy on a suite (`turnwise eval --suite NAME --policy SPEC --out DIR`)."""

    suite: str = "turnwise-text-v0"
    """A built-in suite id (`turnwise-text-v0`, `turnwise-web-v0`, `turnwise-bench-v0`) or a
    suite's .json file."""
    policy: str = "expert"
    """The policy: `expert`, `random`, `hf:PATH` (`hf:tiny` for the tiny offline model),
    `vllm:PATH` or `openai:URL#MODEL`."""
    out: Path = Path("runs/eval")
    """Output folder: episodes.jsonl and summary.json (and the collections under collect/)."""
    label: str = ""
    """The name shown on leaderboards (default: the policy spec)."""
    workers: int = 4
    """Env worker processes (their turns are batched into one generation call)."""
    temperature: float = 0.0
    """Sampling temperature (0: greedy, so a deterministic policy repeats its numbers)."""
    max_tokens: int = 256
    """Most tokens generated per turn."""
    choices: Choices = "text"
    """How a model policy names its action: `text` (it writes the command) or `number` (the
    prompt numbers the env's admissible actions; see `turnwise.agents.PromptTemplate`)."""
    images: bool = False
    """Attach each turn's screenshot to the model's prompt (GUI suites, with a vision model
    behind an OpenAI-compatible server: `openai:URL#MODEL`)."""
    resume: bool = False
    """Carry on an evaluation cut short (its finished episodes are kept)."""

    def __post_init__(self) -> None:
        if self.workers < 1 or self.max_tokens < 1:
            raise ValueError("--workers and --max-tokens must be at least 1")
        if self.temperature < 0:
            raise ValueError("--temperature must be >= 0")
        check_choices(self.choices, "--choices")
        self.out = Path(self.out)


def evaluate(config: EvalConfig, *, policy: Any = None, progress: bool = False) -> dict[str, Any]:
    """Play every episode of `config.suite` and write the episodes and the summary.

    Args:
        config: what to evaluate and where.
        policy: an already loaded `Policy` to use for `config.policy` (which is still the spec
            recorded).
        progress: show the collector's progress bars.

    Returns:
        The summary (as written to `OUT/summary.json`).

    Raises:
        FileExistsError: `out` holds an evaluation and `resume` is off.
    """
    from turnwise.rollout import CollectConfig, collect, iter_trajectories
    from turnwise.rollout.collector import BASELINES

    suite = load_suite(config.suite)
    out = config.out
    if (out / SUMMARY).exists() or (out / "collect").exists():
        if not config.resume:
            raise FileExistsError(
                f"{out} already holds an evaluation: pass --resume to finish it, or choose "
                "another --out"
            )
        if (out / SUMMARY).exists():  # finished: nothing left to play
            return dict(json.loads((out / SUMMARY).read_text(encoding="utf-8")))
    if policy is None and config.policy not in BASELINES:
        policy = _load_policy(config.policy)
    trajectories: list[Trajectory] = []
    for k, entry in enumerate(suite.entries):
        for seed in entry.seeds:
            folder = out / "collect" / f"{k:02d}-{_slug(entry.env)}-seed{seed}"
            collect_config = CollectConfig(
                env=entry.env, env_kwargs=json.dumps(dict(entry.env_kwargs)),
                policy=config.policy, out=folder, split=entry.split,
                task_ids=entry.task_ids, group_size=1, workers=config.workers, seed=seed,
                temperature=config.temperature, max_tokens=config.max_tokens,
                max_turns=entry.max_turns, choices=config.choices, images=config.images,
                progress=progress,
                resume=(folder / "manifest.json").is_file(),
            )  # fmt: skip
            collect(collect_config, policy=policy)
            order = {task: i for i, task in enumerate(entry.task_ids)}
            played = sorted(iter_trajectories(folder), key=lambda t: order[t.task_id])
            for traj in played:
                traj.metadata.update(suite_entry=k, suite_seed=seed, family=entry.family)
            trajectories += played
    from turnwise.trajectory import write_jsonl

    write_jsonl(trajectories, out / EPISODES)
    (out / SUITE).write_text(json.dumps(suite.to_dict(), indent=2) + "\n", encoding="utf-8")
    summary = summarize(trajectories, suite, policy=config.policy, label=config.label)
    tmp = out / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / SUMMARY)
    shutil.rmtree(out / "collect", ignore_errors=True)  # kept for --resume until now
    return summary


def summarize(
    trajectories: Sequence[Trajectory], suite: Suite, *, policy: str, label: str = ""
) -> dict[str, Any]:
    """The summary of a suite's episodes (see the module docstring for its fields)."""
    from turnwise._version import __version__

    by_family: dict[str, list[Trajectory]] = {f: [] for f in suite.families}
    by_env: dict[str, list[Trajectory]] = {e.env: [] for e in suite.entries}
    for traj in trajectories:
        entry = suite.entries[int(traj.metadata.get("suite_entry", 0))]
        by_family[entry.family].append(traj)
        by_env[entry.env].append(traj)
    return {
        "schema": SCHEMA,
        "suite": {
            "id": suite.id,
            "name": suite.name,
            "version": suite.version,
            "digest": suite.digest,
        },
        "policy": policy,
        "label": label or policy,
        "engines": {"turnwise": __version__, **installed_versions(sorted(suite.engines))},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "overall": stats(trajectories),
        "families": {name: stats(trajs) for name, trajs in by_family.items()},
        "envs": {name: stats(trajs) for name, trajs in by_env.items()},
    }


def stats(trajectories: Sequence[Trajectory], *, seed: int = 0) -> dict[str, Any]:
    """Success rate with its 95% bootstrap interval (resampled with `seed`), means and totals
    of some episodes."""
    n = len(trajectories)
    successes = [float(t.success) for t in trajectories]
    low, high = bootstrap_ci(successes, seed=seed) if n else (0.0, 0.0)
    turns = [t.num_turns for t in trajectories]
    return {
        "episodes": n,
        "success_rate": sum(successes) / n if n else 0.0,
        "ci_low": low,
        "ci_high": high,
        "reward_mean": sum(t.total_reward for t in trajectories) / n if n else 0.0,
        "turns_mean": sum(turns) / n if n else 0.0,
        "tokens": sum(len(turn.token_ids or ()) for t in trajectories for turn in t.turns),
        "wall_seconds": sum(
            (turn.env_seconds or 0.0) + (turn.policy_seconds or 0.0)
            for t in trajectories
            for turn in t.turns
        ),
        "errors": sum(t.error is not None for t in trajectories),
    }


def _load_policy(spec: str) -> Any:
    """`load_policy`, where `hf:NAME` may also name a tiny offline model (`hf:tiny`)."""
    from turnwise.agents.specs import load_policy, parse_spec

    parsed = parse_spec(spec)
    if parsed.kind == "hf" and not Path(parsed.target).exists():
        from turnwise.agents.tiny import PRESETS, default_checkpoint

        if parsed.target in PRESETS:
            return load_policy(f"hf:{default_checkpoint(parsed.target)}")
    return load_policy(spec)


def _slug(env_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", env_id).strip("-")
