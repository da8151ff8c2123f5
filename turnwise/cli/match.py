"""`turnwise match ENV_ID --seat SEAT=SPEC ...`: pit agents against each other in a social env."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import tyro

from turnwise.cli._common import CLIError, EnvKwargs, console, env_entry, make_env, parse_env_kwargs

__all__ = ["MatchConfig", "match_command"]


@dataclass
class MatchConfig:
    """Play a multi-agent env with one agent per seat and print each seat's returns and wins.

    A seat's agent is a model spec (hf:PATH, vllm:PATH, openai:URL#MODEL), `random`, `expert`,
    or one of the env's scripted partners (listed when a spec is unknown)."""

    env_id: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV_ID")]
    """A multi-agent env, e.g. turnwise/TextArena-v0 or turnwise/Social-v0."""
    seat: Annotated[list[str], tyro.conf.arg(metavar="SEAT=SPEC")] = field(default_factory=list)
    """The agent of a seat, e.g. --seat player_0=hf:./ckpt player_1=random; a seat left out
    plays `random`."""
    judge: Annotated[str, tyro.conf.arg(metavar="SPEC")] = ""
    """The judge's policy spec, for envs that take one (turnwise/Social-v0)."""
    judge_every_turn: bool = False
    """Also judge goal progress after every turn (turnwise/Social-v0)."""
    episodes: int = 1
    """Episodes to play (tasks drawn by seed from --split), unless --task names them."""
    task: Annotated[list[str], tyro.conf.arg(metavar="TASK_ID")] = field(default_factory=list)
    """Play exactly these tasks, once each."""
    split: str = "test"
    """The split episodes are drawn from (when no --task is given)."""
    seed: int = 0
    """Seeds the episodes (seed, seed + 1, ...) and, per seat, the agents."""
    env_kwargs: EnvKwargs = ""
    """Constructor keyword arguments, as a JSON object."""
    out: Path | None = None
    """Write one JSON line per episode here (returns, success, the judge's verdicts, the
    transcript)."""
    transcript: bool = False
    """Print the conversation of every episode (envs that keep one)."""

    def __post_init__(self) -> None:
        if self.episodes < 1:
            raise ValueError(f"--episodes must be at least 1, got {self.episodes}")
        for item in self.seat:
            if "=" not in item:
                raise ValueError(f"--seat takes SEAT=SPEC, got {item!r}")
        parse_env_kwargs(self.env_kwargs)


def match_command(config: MatchConfig) -> int:
    """Play the match; print a table of mean returns and wins per seat."""
    from rich.table import Table

    from turnwise.matches import load_seat_agent, play_match

    if not env_entry(config.env_id).multi_agent:
        raise CLIError(
            f"{config.env_id} is a single-agent env: use `turnwise eval` or `turnwise play`"
        )
    kwargs = parse_env_kwargs(config.env_kwargs)
    if config.judge:
        kwargs["judge"] = config.judge
    if config.judge_every_turn:
        kwargs["judge_every_turn"] = True
    env = make_env(config.env_id, kwargs)
    try:
        specs = dict(item.split("=", 1) for item in config.seat)
        unknown = sorted(set(specs) - set(env.possible_agents))
        if unknown:
            raise CLIError(
                f"{config.env_id} has no seats {unknown}; its seats: {env.possible_agents}"
            )
        try:
            agents = {
                seat: load_seat_agent(specs.get(seat, "random"), env, seat, seed=config.seed + i)
                for i, seat in enumerate(env.possible_agents)
            }
        except ValueError as exc:
            raise CLIError(str(exc)) from None
        results = play_match(
            env,
            agents,
            episodes=None if config.task else config.episodes,
            task_ids=config.task or None,
            split=None if config.task else config.split,
            seed=config.seed,
        )
        judge = getattr(env, "judge", None)
        judge_stats = judge.stats.to_dict() if judge is not None else None
    finally:
        env.close()
    out = console()
    if config.out is not None:
        config.out.parent.mkdir(parents=True, exist_ok=True)
        with config.out.open("w", encoding="utf-8") as f:
            for result in results:
                f.write(json.dumps(result.to_dict()) + "\n")
    if config.transcript:
        for result in results:
            if result.transcript:
                out.print(f"[bold]{result.task_id}[/bold]")
                out.print(result.transcript, markup=False, highlight=False)
    table = Table(title=f"turnwise match {config.env_id}: {len(results)} episodes")
    for column in ("seat", "agent", "mean return", "wins", "judged goal"):
        table.add_column(column, justify="left" if column in ("seat", "agent") else "right")
    for seat in env.possible_agents:
        returns = [r.returns[seat] for r in results]
        goals = [
            r.judge[seat]["scores"]["goal"]
            for r in results
            if seat in r.judge and r.judge[seat].get("scores")
        ]
        missing = sum(1 for r in results if r.judge.get(seat, {}).get("missing"))
        goal = f"{sum(goals) / len(goals):.2f}" if goals else "-"
        if missing:
            goal += f" ({missing} missing)"
        table.add_row(
            seat,
            specs.get(seat, "random"),
            f"{sum(returns) / len(returns):.3f}",
            f"{sum(r.success[seat] for r in results)}/{len(results)}",
            goal,
        )
    out.print(table)
    if judge_stats is not None:
        out.print(
            "judge: {calls} calls, {cache_hits} cached, {retries} retries, {missing} missing; "
            "{prompt_tokens} prompt + {completion_tokens} completion tokens, "
            "${cost_usd:.4f}".format(**judge_stats)
        )
    if config.out is not None:
        out.print(f"wrote {config.out}")
    return 0
