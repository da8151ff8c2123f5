"""`turnwise demo`: the project's main job, end to end, in a few seconds.

For now: the expert (the ceiling) and a random agent (the floor) play the same held-out tasks
with the same seeds; a table compares them and every trajectory is written as JSON Lines and
Parquet. Later issues put a trained model between the two, with the same table and files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import tyro

from turnwise.cli._common import (
    DEFAULT_ENV,
    CLIError,
    EnvKwargs,
    console,
    env_entry,
    make_env,
    parse_env_kwargs,
)

if TYPE_CHECKING:
    from turnwise.trajectory import Trajectory

__all__ = ["AgentSummary", "DemoConfig", "DemoResult", "demo", "run_demo"]


@dataclass
class DemoConfig:
    """Evaluate the expert and a random agent on the same held-out tasks and seeds, print a
    comparison table, and write every trajectory as JSON Lines and Parquet."""

    env: Annotated[str, tyro.conf.arg(metavar="ENV_ID")] = DEFAULT_ENV
    """The env to evaluate on."""
    episodes: Annotated[int, tyro.conf.arg(metavar="N")] = 20
    """Episodes per agent (tasks are drawn without repeats while the split has enough)."""
    split: str = "test"
    """The split whose tasks are played (a held-out one, so later trained agents are fair)."""
    out: Annotated[Path, tyro.conf.arg(metavar="DIR")] = Path("runs/demo")
    """Folder for trajectories.jsonl, trajectories.parquet and summary.json."""
    seed: int = 0
    """Picks the tasks and seeds the episodes and the random agent."""
    env_kwargs: EnvKwargs = ""
    """Constructor keyword arguments, as a JSON object."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"--episodes must be at least 1, got {self.episodes}")
        parse_env_kwargs(self.env_kwargs)


@dataclass
class AgentSummary:
    """One row of the demo table."""

    agent: str
    episodes: int
    success_rate: float
    mean_reward: float
    mean_turns: float
    valid_rate: float
    """Share of turns whose action the env accepted."""


@dataclass
class DemoResult:
    """What `run_demo` produced: the table rows, the trajectories and where they were written."""

    summaries: list[AgentSummary]
    trajectories: list[Trajectory]
    files: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0


def demo(config: DemoConfig) -> int:
    """Run the demo and print its table and output files; exit code 0."""
    from rich.table import Table

    out = console()
    with out.status(
        f"playing {config.episodes} episodes per agent on {config.env} ...", spinner="dots"
    ):
        result = run_demo(config)
    table = Table(
        title=f"{config.env}, split {config.split!r}: {config.episodes} episodes per agent "
        f"(same tasks and seeds)",
        title_justify="left",
    )
    for name in ("agent", "episodes", "success rate", "mean reward", "mean turns", "valid actions"):
        table.add_column(name, justify="left" if name == "agent" else "right")
    for row in result.summaries:
        table.add_row(
            row.agent,
            str(row.episodes),
            f"{row.success_rate:.1%}",
            f"{row.mean_reward:+.3f}",
            f"{row.mean_turns:.1f}",
            f"{row.valid_rate:.1%}",
        )
    out.print(table)
    out.print(f"Wrote {len(result.trajectories)} trajectories in {result.seconds:.1f} s:")
    for kind, path in result.files.items():
        out.print(f"  {kind:<8} {path}", markup=False)
    out.print("Reload them with turnwise.trajectory.read_jsonl / read_parquet.")
    return 0


def run_demo(config: DemoConfig) -> DemoResult:
    """Play every agent on the same (task, seed) pairs and write the trajectories."""
    import json

    from turnwise.agents.baselines import ExpertAgent, RandomAgent
    from turnwise.episode import run_episode
    from turnwise.trajectory import write_jsonl, write_parquet

    started = time.perf_counter()
    env_entry(config.env, single_agent_for="demo")
    env = make_env(config.env, parse_env_kwargs(config.env_kwargs))
    try:
        plan = _plan(env, config)
        # The rows of the table, in order; a trained policy will join them between the two.
        agents: dict[str, Any] = {
            "expert": ExpertAgent(env),
            "random": RandomAgent(seed=config.seed),
        }
        trajectories: list[Trajectory] = []
        summaries = []
        for name, agent in agents.items():
            played = []
            for task_id, seed in plan:
                try:
                    traj = run_episode(env, agent, seed=seed, task_id=task_id, policy=name)
                except RuntimeError as exc:
                    # The baselines raise RuntimeError only when the env cannot serve them (no
                    # oracle for the expert, no actions to draw for random): a usage problem.
                    raise CLIError(f"{config.env}: the {name} agent cannot play: {exc}") from None
                traj.metadata["demo_seed"] = config.seed
                played.append(traj)
            summaries.append(_summarise(name, played))
            trajectories.extend(played)
    finally:
        env.close()
    out_dir = Path(config.out)
    files = {
        "jsonl": write_jsonl(trajectories, out_dir / "trajectories.jsonl"),
        "parquet": write_parquet(trajectories, out_dir / "trajectories.parquet"),
    }
    seconds = time.perf_counter() - started
    summary = {
        "env": config.env,
        "split": config.split,
        "episodes": config.episodes,
        "seed": config.seed,
        "seconds": round(seconds, 3),
        "agents": [vars(s) for s in summaries],
    }
    files["summary"] = out_dir / "summary.json"
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return DemoResult(summaries, trajectories, files, seconds)


def _plan(env: Any, config: DemoConfig) -> list[tuple[str, int]]:
    """The (task id, seed) pairs every agent plays: a seeded draw from the split."""
    import numpy as np

    unwrapped = env.unwrapped
    splits = getattr(unwrapped, "splits", ())
    if splits and config.split not in splits:
        raise CLIError(f"{config.env} has no split {config.split!r}; it has {', '.join(splits)}")
    tasks = list(unwrapped.tasks(config.split))
    if not tasks:
        raise CLIError(f"{config.env} has no tasks in split {config.split!r}")
    rng = np.random.default_rng(config.seed)
    order: list[int] = []
    while len(order) < config.episodes:
        # Whole permutations, so no task repeats until every task of the split has been played.
        order.extend(int(i) for i in rng.permutation(len(tasks)))
    return [(tasks[i], config.seed + n) for n, i in enumerate(order[: config.episodes])]


def _summarise(name: str, trajectories: list[Trajectory]) -> AgentSummary:
    n = len(trajectories)
    turns = sum(t.num_turns for t in trajectories)
    valid = sum(turn.valid for t in trajectories for turn in t.turns)
    return AgentSummary(
        agent=name,
        episodes=n,
        success_rate=sum(t.success for t in trajectories) / n,
        mean_reward=sum(t.total_reward for t in trajectories) / n,
        mean_turns=turns / n,
        valid_rate=valid / turns if turns else 0.0,
    )
