"""Task ids and splits: the official ALFWorld game sets, and generated games built lazily.

Official games (`OfficialCatalog`) live where `alfworld-download` puts them:
`$ALFWORLD_DATA/json_2.1.1/<split>/<task dir>/<trial dir>/{game.tw-pddl,traj_data.json}`. A
task id is the game's folder relative to `json_2.1.1`, e.g.
`valid_seen/pick_cool_then_place_in_recep-Apple-None-Microwave-19/trial_T20190906_210805_698141`.
The games kept are the ones alfworld's `AlfredTWEnv` keeps: a `traj_data.json` beside the game,
no `movable` or `Sliced` in the path, a wanted task type, and `"solvable": true` in the game.

Generated games (`GenCatalog`) have ids `<label>-<split>-<index>` (`small-train-00042`). An id
is only a name until first used: then candidate games are drawn from seeds derived from the
configuration, the split, the index and an attempt counter, and the first that belongs to the
split and that alfworld's hand-coded expert wins is written to the cache. A candidate belongs
to the split its canonical hash falls in (`train` 80%, `valid` 10%, `test` 10% of hash space),
so splits never share a game whatever was generated before. Both steps are deterministic: an
id names the same game on every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from turnwise.paths import cache_dir

from .engine import TASK_TYPES
from .generator import GENERATOR_VERSION, SceneSize, generate, write_game

__all__ = [
    "DATA_HELP",
    "GEN_SPLITS",
    "OFFICIAL_SPLITS",
    "SPLIT_SIZES",
    "ALFWorldDataError",
    "GenCatalog",
    "OfficialCatalog",
    "expert_seed",
]

OFFICIAL_SPLITS = ("train", "valid_seen", "valid_unseen")
GEN_SPLITS = ("train", "valid", "test")
#: Number of task ids per split of a generated configuration.
SPLIT_SIZES = {"train": 1000, "valid": 100, "test": 200}
# Which tenths of the canonical-hash space each generated split owns.
_BUCKETS = {"train": range(0, 8), "valid": range(8, 9), "test": range(9, 10)}
#: The expert must win a generated game within this many steps for it to enter a split.
SOLVE_BUDGET = 50
# Candidates tried per id before giving up (about 10 are drawn per hit for valid and test).
_MAX_ATTEMPTS = 400

DATA_HELP = (
    "The official ALFWorld games are not shipped with the alfworld package. Download them with "
    "`pip install alfworld && alfworld-download` (it writes to ~/.cache/alfworld by default) and "
    "set ALFWORLD_DATA to that folder, the one holding json_2.1.1/. Without the data, "
    "turnwise/ALFWorldGen-v0 generates ALFWorld-format games offline."
)

#: `(game_file, expert_seed) -> winning commands or None`: plays alfworld's expert on a game.
Solver = Callable[[Path, int], "list[str] | None"]


class ALFWorldDataError(FileNotFoundError):
    """The official ALFWorld data is missing or not where ALFWORLD_DATA says."""


def expert_seed(name: str) -> int:
    """The seed of the expert's tie-breaks for a game, from a stable name of it."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


# ---------------------------------------------------------------------------- official
class OfficialCatalog:
    """The official games under `data_dir` (default: `$ALFWORLD_DATA`)."""

    def __init__(self, data_dir: str | os.PathLike[str] | None, task_types: Sequence[str]) -> None:
        raw = os.fspath(data_dir) if data_dir is not None else os.environ.get("ALFWORLD_DATA")
        if not raw:
            raise ALFWorldDataError(f"ALFWORLD_DATA is not set. {DATA_HELP}")
        self.root = Path(os.path.expandvars(raw)).expanduser()
        self.games_root = self.root / "json_2.1.1"
        if not self.games_root.is_dir():
            raise ALFWorldDataError(
                f"no ALFWorld games at {self.games_root} (ALFWORLD_DATA={raw}). {DATA_HELP}"
            )
        self.task_types = tuple(task_types)
        self._ids: dict[str, tuple[str, ...]] = {}

    def ids(self, split: str) -> tuple[str, ...]:
        if split not in self._ids:
            self._ids[split] = tuple(self._scan(split))
        return self._ids[split]

    def game_file(self, task_id: str) -> Path:
        return self.games_root / task_id / "game.tw-pddl"

    def _scan(self, split: str) -> list[str]:
        folder = self.games_root / split
        if not folder.is_dir():
            raise ALFWorldDataError(f"ALFWORLD_DATA has no split folder {folder}. {DATA_HELP}")
        ids = []
        for traj in sorted(folder.rglob("traj_data.json")):
            game_dir = traj.parent
            rel = game_dir.relative_to(self.games_root).as_posix()
            game = game_dir / "game.tw-pddl"
            if "movable" in rel or "Sliced" in rel or not game.is_file():
                continue
            with open(traj, encoding="utf-8") as f:
                if json.load(f).get("task_type") not in self.task_types:
                    continue
            if _solvable(game):
                ids.append(rel)
        return sorted(ids)


def _solvable(game: Path) -> bool:
    # Games are large JSON files; their "solvable" key sits near the end, but JSON has no
    # random access, so read it whole as alfworld does.
    with open(game, encoding="utf-8") as f:
        return bool(json.load(f).get("solvable", False))


# ---------------------------------------------------------------------------- generated
class GenCatalog:
    """The generated games of one configuration, built and checked on first use.

    Args:
        label: task ids start with it (`small`, `full`, ...).
        size: the scene size.
        task_types: the task types, dealt round-robin over the indices of each split.
    """

    def __init__(self, label: str, size: SceneSize, task_types: Sequence[str]) -> None:
        unknown = [t for t in task_types if t not in TASK_TYPES]
        if unknown or not task_types:
            raise ValueError(
                f"task_types must be a non-empty subset of {TASK_TYPES}, got {unknown}"
            )
        self.label = label
        self.size = size
        self.task_types = tuple(t for t in TASK_TYPES if t in task_types)
        types = (
            "all"
            if self.task_types == TASK_TYPES
            else "+".join(str(TASK_TYPES.index(t) + 1) for t in self.task_types)
        )
        self.tag = f"{size.tag}-t{types}"
        self.root = cache_dir("alfworld", "gen", f"v{GENERATOR_VERSION}", self.tag)

    def ids(self, split: str) -> tuple[str, ...]:
        if split not in GEN_SPLITS:
            raise ValueError(f"unknown split {split!r}; generated ALFWorld has {GEN_SPLITS}")
        return tuple(f"{self.label}-{split}-{i:05d}" for i in range(SPLIT_SIZES[split]))

    def parse(self, task_id: str) -> tuple[str, int]:
        """`(split, index)` of one of this catalog's ids."""
        prefix = f"{self.label}-"
        split, _, index = task_id[len(prefix) :].rpartition("-")
        if not task_id.startswith(prefix) or split not in GEN_SPLITS or not index.isdigit():
            raise KeyError(f"not a task id of configuration {self.label!r}: {task_id!r}")
        if int(index) >= SPLIT_SIZES[split]:
            raise KeyError(f"{task_id!r}: split {split} has {SPLIT_SIZES[split]} tasks")
        return split, int(index)

    def task_type(self, task_id: str) -> str:
        return self.task_types[self.parse(task_id)[1] % len(self.task_types)]

    def game_dir(self, task_id: str) -> Path:
        split, index = self.parse(task_id)
        return self.root / split / f"{index:05d}"

    def cached(self, task_id: str) -> bool:
        return (self.game_dir(task_id) / "game.tw-pddl").is_file()

    def game_file(self, task_id: str, solve: Solver) -> Path:
        """The game of `task_id`, generated and checked by `solve` if it is not cached yet."""
        final = self.game_dir(task_id)
        if (final / "game.tw-pddl").is_file():
            return final / "game.tw-pddl"
        split, index = self.parse(task_id)
        task_type = self.task_types[index % len(self.task_types)]
        final.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(_MAX_ATTEMPTS):
            seed = expert_seed(f"{self.tag}/{split}/{index}/{attempt}")
            game = generate(task_type, self.size, seed)
            if int(game.canonical_hash[:8], 16) % 10 not in _BUCKETS[split]:
                continue  # another split's game
            scratch = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
            try:
                extra = {"split": split, "index": index, "attempt": attempt}
                game_file = write_game(game, scratch, extra)
                walkthrough = solve(game_file, expert_seed(game.canonical_hash))
                if walkthrough is None:
                    continue
                _record(scratch, walkthrough)
                try:
                    os.rename(scratch, final)
                except OSError:  # another process got there first: its game is the same
                    if not (final / "game.tw-pddl").is_file():
                        raise
                return final / "game.tw-pddl"
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        raise RuntimeError(
            f"no solvable {task_type} game for {task_id} in {_MAX_ATTEMPTS} attempts; "
            f"scene size {self.size} may be too small for it"
        )


def _record(game_dir: Path, walkthrough: list[str]) -> None:
    """Note the expert's winning commands in `traj_data.json` (for reference and tests)."""
    path = game_dir / "traj_data.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["turnwise"]["expert_walkthrough"] = walkthrough
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
