"""`turnwise rollouts ACTION DIR`: statistics and exports of a rollout folder.

* `stats`: a table of success, reward, turns and tokens per env and task (`--out` writes JSON);
* `sft`: a chat dataset (JSON Lines) from the successful episodes (`--all` keeps every one);
* `batch`: the trainer's batch format (Parquet: token ids, loss masks, turn indices, log-probs,
  rewards).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from turnwise.cli._common import CLIError, console

__all__ = ["RolloutsConfig", "rollouts"]


@dataclass
class RolloutsConfig:
    """Summarise a rollout folder (`stats`) or export it as an SFT chat dataset (`sft`) or as
    trainer batches (`batch`)."""

    action: Annotated[
        tyro.conf.Positional[Literal["stats", "sft", "batch"]], tyro.conf.arg(metavar="ACTION")
    ]
    """What to do with the folder: stats, sft or batch."""
    dir: Annotated[tyro.conf.Positional[Path], tyro.conf.arg(metavar="DIR")]
    """A folder written by `turnwise collect`."""
    out: Annotated[Path | None, tyro.conf.arg(metavar="PATH")] = None
    """Output file: JSON for stats (optional), JSONL for sft, Parquet for batch."""
    all: bool = False
    """sft: keep unsuccessful episodes too."""
    by_task: bool = False
    """stats: print a row per task, not only per env."""


def rollouts(config: RolloutsConfig) -> int:
    """Run the action; 2 when the folder holds no rollouts."""
    import json
    from dataclasses import asdict

    from turnwise.rollout.export import export_batches, export_sft, stats
    from turnwise.rollout.store import shard_files

    if not shard_files(config.dir):
        raise CLIError(f"{config.dir} holds no rollout shards (shards/part-*.parquet)")
    out = console()
    if config.action == "stats":
        from rich.table import Table

        rows = stats(config.dir)
        table = Table(title=f"rollouts in {config.dir}", title_justify="left")
        names = (
            "env",
            "task",
            "episodes",
            "success",
            "reward",
            "turns",
            "tokens",
            "trunc.",
            "failed",
        )
        for name in names:
            left = name in ("env", "task")
            table.add_column(name, justify="left" if left else "right", no_wrap=left)
        for row in rows:
            if row.task_id != "*" and not config.by_task:
                continue
            table.add_row(
                row.env_id if row.task_id == "*" else "",  # task rows sit under their env's row
                row.task_id,
                str(row.episodes),
                f"{row.success_rate:.1%}",
                f"{row.mean_reward:+.3f}",
                f"{row.mean_turns:.1f}",
                f"{row.mean_tokens:.0f}",
                str(row.truncated),
                str(row.failed),
            )
        out.print(table)
        if config.out is not None:
            from turnwise.files import atomic_write_text

            text = json.dumps([asdict(r) for r in rows], indent=2) + "\n"
            atomic_write_text(config.out, text)
            out.print(f"wrote {config.out}", markup=False)
        return 0
    if config.out is None:
        raise CLIError(f"`turnwise rollouts {config.action}` needs --out PATH")
    if config.action == "sft":
        n = export_sft(config.dir, config.out, only_success=not config.all)
        out.print(f"wrote {n} conversations to {config.out}", markup=False)
        return 0
    counts = export_batches(config.dir, config.out)
    out.print(
        f"wrote {counts['sequences']} sequences from {counts['trajectories']} trajectories to "
        f"{config.out} ({counts['skipped']} without tokens skipped)",
        markup=False,
    )
    return 0
