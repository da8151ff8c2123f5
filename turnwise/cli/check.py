"""`turnwise check ENV_ID`: run the conformance checker on a registered env and show a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro
from rich.text import Text

from turnwise.cli._common import EnvKwargs, console, env_entry, make_env, parse_env_kwargs

__all__ = ["CheckConfig", "check"]


@dataclass
class CheckConfig:
    """Run turnwise's conformance checks (Gymnasium's check_env, determinism, hostile actions,
    expert success, info types, ...) on an env; exit code 1 if any check fails."""

    env_id: Annotated[str, tyro.conf.Positional, tyro.conf.arg(metavar="ENV_ID")]
    """The env to check, e.g. turnwise/KeyDoor-v0 (`turnwise envs` lists them)."""
    tasks: Annotated[int, tyro.conf.arg(metavar="N")] = 3
    """How many tasks to sample for the per-task checks."""
    seed: int = 0
    """Seed for sampling tasks and for the episodes played."""
    expert: bool = True
    """Also check that the env's expert reaches success (--no-expert skips it, e.g. for envs
    without an oracle)."""
    env_kwargs: EnvKwargs = ""
    """Constructor keyword arguments, as a JSON object."""

    def __post_init__(self) -> None:
        if self.tasks < 1:
            raise ValueError(f"--tasks must be at least 1, got {self.tasks}")
        parse_env_kwargs(self.env_kwargs)


def check(config: CheckConfig) -> int:
    """Make the env, run the checks, print one row per check; 0 if all pass, 1 otherwise."""
    from rich.table import Table

    from turnwise.testing import run_checks, run_parallel_checks

    out = console()
    multi_agent = env_entry(config.env_id).multi_agent
    env = make_env(config.env_id, parse_env_kwargs(config.env_kwargs))
    # Multi-agent envs follow turnwise.multiagent's conventions and have a checker of their own.
    run = run_parallel_checks if multi_agent else run_checks
    try:
        with out.status(f"checking {config.env_id} ...", spinner="dots"):
            report = run(env, n_tasks=config.tasks, seed=config.seed, expert=config.expert)
    finally:
        env.close()  # the checker closes it too; closing twice is part of the contract
    table = Table(title=f"turnwise check {config.env_id}", title_justify="left")
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("detail")
    for result in report.results:
        seconds = "-" if result.seconds is None else f"{result.seconds:.2f}s"
        table.add_row(result.name, _STATUS[result.status], seconds, Text(result.detail or ""))
    out.print(table)
    failed = [r.name for r in report.failures]
    skipped = sum(r.skipped for r in report.results)
    counts = f"{len(report.results) - len(failed) - skipped} passed, {skipped} skipped"
    if report.ok:
        out.print(f"[bold green]PASS[/bold green] {config.env_id}: {counts}")
        return 0
    out.print(
        f"[bold red]FAIL[/bold red] {config.env_id}: {len(failed)} failed ({', '.join(failed)}); {counts}"
    )
    return 1


_STATUS = {
    "ok": "[green]pass[/green]",
    "skip": "[yellow]skip[/yellow]",
    "FAIL": "[bold red]FAIL[/bold red]",
}
