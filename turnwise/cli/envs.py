"""`turnwise envs`: the registry as a table, grouped by family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro
from rich.table import Table

from turnwise.cli._common import console
from turnwise.registry import FAMILIES, EnvEntry, list_envs

__all__ = ["EnvsConfig", "envs"]


@dataclass
class EnvsConfig:
    """List the registered environments, grouped by family, with what each one needs."""

    family: Annotated[str | None, tyro.conf.arg(metavar="FAMILY")] = None
    """Only list this family: text, web, gui, swe, social or other."""

    def __post_init__(self) -> None:
        if self.family is not None and self.family not in FAMILIES:
            raise ValueError(f"--family must be one of {', '.join(FAMILIES)}; got {self.family!r}")


def envs(config: EnvsConfig) -> int:
    """Print the table; exit code 0 (an empty family is not an error, just an empty table)."""
    out = console()
    entries = list_envs(config.family)
    if not entries:
        where = f" in family {config.family!r}" if config.family else ""
        out.print(f"No environments registered{where} yet.")
        return 0
    table = Table(title="turnwise environments", title_justify="left")
    table.add_column("family", style="bold")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("description")
    table.add_column("agents")
    table.add_column("extra")
    table.add_column("available")
    previous: str | None = None
    for entry in entries:
        if previous is not None and entry.family != previous:
            table.add_section()
        table.add_row(
            entry.family if entry.family != previous else "",
            entry.id,
            entry.description,
            "multi" if entry.multi_agent else "single",
            entry.extra or "-",
            _availability(entry),
        )
        previous = entry.family
    out.print(table)
    missing = [e for e in entries if not e.available]
    if missing:
        extras = sorted({e.extra for e in missing if e.extra})
        if extras:
            hint = " ".join(f"'turnwise[{x}]'" for x in extras)
            out.print(f"To make the unavailable ones work: pip install {hint}")
    return 0


def _availability(entry: EnvEntry) -> str:
    missing = entry.missing()
    if not missing:
        return "[green]yes[/green]"
    return f"[red]no[/red] (missing {', '.join(missing)})"
