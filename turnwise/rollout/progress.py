"""The progress bar of a collection run: episodes done, success rate, turns/s and tokens/s."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

__all__ = ["Progress"]


class Progress:
    """A rich progress bar, or nothing when `enabled` is False.

    Rates count only this session's episodes (a resumed run starts at the episodes already
    written, which took no time now).
    """

    def __init__(self, total: int, done: int, *, enabled: bool = True) -> None:
        self.total = total
        self.done = done
        self.episodes = 0
        self.successes = 0
        self.turns = 0
        self.tokens = 0
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            from turnwise.cli._common import console

            self._bar = RichProgress(
                TextColumn("episodes"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                console=console(stderr=True),
                transient=False,
            )
            self._task = self._bar.add_task(
                "collect", total=total, completed=done, stats=self.stats()
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.update(self._task, stats=self.stats())
            self._bar.stop()

    def stats(self) -> str:
        """`success 93.0% · 412 turns/s · 0 tokens/s` for this session."""
        seconds = max(time.perf_counter() - self.started, 1e-9)
        rate = self.successes / self.episodes if self.episodes else 0.0
        return (
            f"success {rate:.1%} · {self.turns / seconds:,.0f} turns/s · "
            f"{self.tokens / seconds:,.0f} tokens/s"
        )

    def update(self, success: bool, turns: int, tokens: int) -> None:
        """Count one finished episode."""
        self.episodes += 1
        self.done += 1
        self.successes += int(success)
        self.turns += turns
        self.tokens += tokens
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, stats=self.stats())
