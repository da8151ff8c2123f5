"""Choosing the task of an episode, shared by single- and multi-agent envs.

`reset(seed=s)` draws a task from the split with its own random stream, seeded from `s` alone, so
the episode itself (drawn from the env's `np_random`) depends only on the seed and the task: naming
the task `s` would have drawn gives the identical episode. Task draws use Python's `random`,
whose `random()` stream is guaranteed across Python versions, so a seed picks the same task on
every machine.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["TaskSelector", "UnknownTaskError"]


class UnknownTaskError(KeyError):
    """`reset` was asked for a task id the env does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TaskSelector:
    """Resolves `reset`'s `seed` and `options` into a task id and its split.

    Args:
        tasks: `split -> task ids` (the env's `tasks`).
        splits: the env's splits.
        name: `() -> str`, the env's name for error messages.
    """

    def __init__(
        self,
        tasks: Callable[[str], Sequence[str]],
        splits: Sequence[str],
        name: Callable[[], str],
    ) -> None:
        self._tasks = tasks
        self.splits = tuple(splits)
        self._name = name
        self._sets: dict[str, frozenset[str]] = {}
        self._rng: random.Random | None = None

    def check_split(self, split: str) -> None:
        """Raise a clear `ValueError` for a split the env does not have."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; {self._name()} has {self.splits}")

    def select(
        self,
        options: Mapping[str, Any] | None,
        default_split: str,
        seed: int | None,
        fallback: np.random.Generator,
    ) -> tuple[str, str]:
        """The `(task_id, split)` of the next episode.

        Args:
            options: `reset`'s options: `task_id` and/or `split`; anything else is an error.
            default_split: the env's split.
            seed: `reset`'s seed (re-seeds the task stream when given).
            fallback: the env's `np_random`, seeding the task stream if no seed was ever given.
        """
        options = dict(options or {})
        split = str(options.pop("split", default_split))
        task_id = options.pop("task_id", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; known: task_id, split")
        self.check_split(split)
        if seed is not None:
            self._rng = random.Random(f"turnwise-task:{seed}")
        elif self._rng is None:
            self._rng = random.Random(int(fallback.integers(2**63)))
        if task_id is None:
            ids = self._tasks(split)
            if not ids:
                raise RuntimeError(f"{self._name()} has no tasks in split {split!r}")
            return str(ids[int(self._rng.random() * len(ids))]), split
        task_id = str(task_id)
        if task_id in self._task_set(split):
            return task_id, split
        for other in self.splits:
            if task_id in self._task_set(other):
                return task_id, other
        close = difflib.get_close_matches(task_id, list(self._task_set(split)), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownTaskError(f"{self._name()} has no task {task_id!r}.{hint}")

    def _task_set(self, split: str) -> frozenset[str]:
        if split not in self._sets:
            self._sets[split] = frozenset(self._tasks(split))
        return self._sets[split]
