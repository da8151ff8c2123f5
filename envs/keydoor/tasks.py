"""KeyDoor task ids, difficulty presets and train/valid/test splits.

A task id names a world: `medium-train-00042` is the 43rd world of the medium train split. Each
id maps to a generator seed, derived from the configuration, the split and a counter. Splits
never share a world: a candidate seed whose world (by `World.layout_hash`) is already in the
split, or in an earlier split (train, then valid, then test), is skipped. Split lists are built
on first use and cached for the process, per configuration.

Example:
    >>> catalog = Catalog.of(PRESETS["easy"].config, "easy")
    >>> catalog.ids("valid")[:2]
    ('easy-valid-00000', 'easy-valid-00001')
    >>> catalog.world("easy-valid-00001") is catalog.world("easy-valid-00001")
    True
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import ClassVar

from .world import World, WorldConfig, generate

__all__ = ["PRESETS", "SPLITS", "SPLIT_SIZES", "Catalog", "Preset"]

#: Splits in the order they are built; each excludes the worlds of the ones before it.
SPLITS = ("train", "valid", "test")
#: Number of tasks per split, for every configuration.
SPLIT_SIZES = {"train": 1000, "valid": 100, "test": 200}
# Bump when generation changes in a way that changes worlds (and so the env's version).
_GENERATOR_VERSION = 0


@dataclass(frozen=True)
class Preset:
    """A named difficulty: what worlds look like and how long an episode may last."""

    config: WorldConfig
    max_turns: int


PRESETS = {
    "easy": Preset(
        WorldConfig(n_rooms=(2, 3), n_locked=(0, 1), n_distractors=(0, 1)), max_turns=15
    ),
    "medium": Preset(
        WorldConfig(n_rooms=(4, 5), n_locked=(1, 2), n_distractors=(1, 1)), max_turns=30
    ),
    "hard": Preset(
        WorldConfig(n_rooms=(6, 9), n_locked=(2, 3), n_distractors=(2, 3)), max_turns=50
    ),
}


def default_max_turns(config: WorldConfig, preset: Preset) -> int:
    """The preset's turn limit, raised for bigger custom worlds.

    Shortest solutions of the presets stay below 45% of their limit (measured over thousands
    of worlds); `5 * (rooms + locked doors)` keeps custom configurations as generous.

    Example:
        >>> default_max_turns(PRESETS["hard"].config, PRESETS["hard"])
        50
        >>> default_max_turns(WorldConfig((12, 12), (8, 8), (0, 0)), PRESETS["hard"])
        100
    """
    if config == preset.config:
        return preset.max_turns
    return max(preset.max_turns, 5 * (config.n_rooms[1] + config.n_locked[1]))


class Catalog:
    """The task ids of one configuration, their seeds, and a cache of their worlds.

    Use `Catalog.of`, which shares one catalog per configuration across the process.
    """

    _shared: ClassVar[dict[tuple[WorldConfig, str], Catalog]] = {}
    #: Worlds kept (with their solver tables) across resets, least recently used dropped first.
    WORLD_CACHE_SIZE: ClassVar[int] = 2048

    def __init__(self, config: WorldConfig, label: str) -> None:
        self.config = config
        self.label = label
        self._ids: dict[str, tuple[str, ...]] = {}
        self._seeds: dict[str, int] = {}
        self._hashes: dict[str, set[str]] = {}
        self._worlds: OrderedDict[str, World] = OrderedDict()

    @classmethod
    def of(cls, config: WorldConfig, label: str) -> Catalog:
        """The process-wide catalog of `config`, whose task ids start with `label`."""
        key = (config, label)
        if key not in cls._shared:
            cls._shared[key] = cls(config, label)
        return cls._shared[key]

    def ids(self, split: str) -> tuple[str, ...]:
        """Task ids of `split`, in order."""
        if split not in self._ids:
            self._build(split)
        return self._ids[split]

    def seed(self, task_id: str) -> int:
        """The generator seed of `task_id` (any split)."""
        if task_id not in self._seeds:
            for split in SPLITS:
                self.ids(split)
        try:
            return self._seeds[task_id]
        except KeyError:
            raise KeyError(f"no KeyDoor task {task_id!r} in configuration {self.label}") from None

    def world(self, task_id: str) -> World:
        """The world of `task_id`, generated on first use and cached."""
        world = self._worlds.get(task_id)
        if world is None:
            world = generate(self.config, self.seed(task_id))
            self._worlds[task_id] = world
            if len(self._worlds) > self.WORLD_CACHE_SIZE:
                self._worlds.popitem(last=False)
        else:
            self._worlds.move_to_end(task_id)
        return world

    def layout_hashes(self, split: str) -> frozenset[str]:
        """The layout hashes of the worlds of `split`."""
        self.ids(split)
        return frozenset(self._hashes[split])

    def _candidate_seed(self, split: str, counter: int) -> int:
        # From the configuration's values (not its label), so equal configurations share worlds.
        text = f"keydoor/{_GENERATOR_VERSION}/{self.config.tag}/{split}/{counter}"
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")

    def _build(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; KeyDoor has {SPLITS}")
        earlier = SPLITS[: SPLITS.index(split)]
        taken: set[str] = set()
        for other in earlier:
            self.ids(other)
            taken |= self._hashes[other]
        size = SPLIT_SIZES[split]
        ids: list[str] = []
        hashes: set[str] = set()
        counter = 0
        # Small configurations have few distinct worlds; give up long before looping forever.
        limit = 50 * size + 1000
        while len(ids) < size:
            if counter >= limit:
                raise ValueError(
                    f"configuration {self.config} has too few distinct worlds for a "
                    f"{split} split of {size}; allow more rooms, doors or distractors"
                )
            seed = self._candidate_seed(split, counter)
            counter += 1
            digest = generate(self.config, seed).layout_hash
            if digest in taken or digest in hashes:
                continue
            hashes.add(digest)
            task_id = f"{self.label}-{split}-{len(ids):05d}"
            ids.append(task_id)
            self._seeds[task_id] = seed
        self._hashes[split] = hashes
        self._ids[split] = tuple(ids)
