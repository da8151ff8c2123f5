"""TextWorld task ids, splits, and the on-disk cache of generated games.

A task id names one game: `tw-coin_collector-level5-train-00042` is game 42 of the train split
of coin collector level 5. Each task has its own stream of candidate generator seeds, derived
from everything that determines its games (challenge, settings, split, index). The first
candidate whose game *belongs to the split* becomes the task's game, where a game belongs to the
split that its content hash (`game_digest`: the world's facts and the quests, by entity name,
not the seed or the text) falls in: train takes half of the hash space, valid and test a quarter
each. Train, valid and test therefore never share a game, and deciding a task's game needs
nothing but its own candidates, so games are made one task at a time, on first use.

Games are generated in a child process with `PYTHONHASHSEED=0`: textworld iterates over sets
while it generates, so in a process with a random hash seed the same seed can order the quests
differently and compile a different file. The child writes `game-<seed>.z8` and `.json` (what
`textworld.start` plays), then a small record `<split>-<index>.json` naming them, last and
atomically, so a record on disk always means a complete game. Everything lives under
`turnwise.paths.cache_dir("textworld", "textworld-<version>+gen<N>", <challenge>, <settings>)`
and can be deleted at any time.

Example:
    >>> from turnwise.envs.textworld.challenges import ChallengeConfig
    >>> store = GameStore(ChallengeConfig.of("custom"), {"valid": 3})
    >>> store.ids("valid")
    ('custom-nb_objects6+nb_rooms3+quest_breadth1+quest_length3-valid-00000', ...)
    >>> store.locate(store.ids("valid")[2])
    ('valid', 2)
    >>> split_of("0" * 64), split_of("f" * 64)
    ('train', 'test')
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from turnwise.files import atomic_write_text
from turnwise.paths import cache_dir

from .challenges import ChallengeConfig, make_game

__all__ = [
    "DEFAULT_SPLIT_SIZES",
    "SPLITS",
    "GameRecord",
    "GameStore",
    "GenerationError",
    "candidate_seed",
    "game_digest",
    "split_of",
]

#: Splits, in order.
SPLITS = ("train", "valid", "test")
#: Tasks per split unless `split_sizes` says otherwise (games are made only when used).
DEFAULT_SPLIT_SIZES = {"train": 100, "valid": 20, "test": 20}
# Share of the hash space (out of 100) each split owns, in order.
_SHARES = (("train", 50), ("valid", 25), ("test", 25))
# Bump when generation changes in a way that changes games (and so the env's version).
GENERATOR_VERSION = 0
# Candidates tried per task: a quarter-share split misses 64 times with probability 1e-8.
MAX_ATTEMPTS = 64
# Candidates whose generation may raise (textworld's quest sampler fails on some seeds).
MAX_FAILURES = 5


class GenerationError(RuntimeError):
    """A game could not be generated (bad settings, too few distinct games, a broken install)."""


def split_of(digest: str) -> str:
    """The split a game with content hash `digest` (hex) belongs to."""
    point = int(digest[:8], 16) % 100
    for split, share in _SHARES:
        if point < share:
            return split
        point -= share
    raise AssertionError("the shares add up to 100")


def candidate_seed(key: str, split: str, index: int, attempt: int) -> int:
    """A generator seed in [1, 2**31): textworld seeds numpy's `RandomState`, which takes 32 bits.

    Example:
        >>> candidate_seed("custom/x", "train", 0, 0) == candidate_seed("custom/x", "train", 0, 0)
        True
    """
    text = f"textworld/{GENERATOR_VERSION}/{key}/{split}/{index}/{attempt}"
    value = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
    return 1 + value % (2**31 - 1)


def game_digest(game: Any) -> str:
    """A canonical hash of a `textworld.Game`: its initial facts and its quests, by entity name.

    Two games with the same world and quests hash alike whatever their seed or their wording.
    """
    names = {key: (info.name or key) for key, info in game.infos.items()}

    def fact(prop: Any) -> str:
        return f"{prop.name}({','.join(names.get(v.name, v.name) for v in prop.arguments)})"

    def events(items: Iterable[Any]) -> list[list[str]]:
        return sorted(sorted(fact(p) for p in event.condition.preconditions) for event in items)

    quests = sorted(
        json.dumps([events(quest.win_events), events(quest.fail_events)]) for quest in game.quests
    )
    blob = json.dumps({"facts": sorted(fact(p) for p in game.world.facts), "quests": quests})
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class GameRecord:
    """What the cache knows about a task's game."""

    task_id: str
    split: str
    index: int
    seed: int
    """The textworld generator seed of the game."""
    digest: str
    """`game_digest` of the game."""
    attempts: int
    """Candidates tried before this one was accepted, plus one."""
    game_file: str
    """The `.z8` file, relative to the store's folder for the split."""
    walkthrough: tuple[str, ...] = ()
    """The walkthrough textworld recorded while generating (may be empty)."""


def textworld_version() -> str:
    """The installed textworld's version, without importing it."""
    return importlib.metadata.version("textworld")


class GameStore:
    """Task ids of one configuration and their games, generated on first use and cached.

    Args:
        config: the challenge and its settings.
        split_sizes: tasks per split (missing splits take `DEFAULT_SPLIT_SIZES`).
        root: the cache folder (default: `cache_dir("textworld", "textworld-<version>+gen<N>")`).
    """

    def __init__(
        self,
        config: ChallengeConfig,
        split_sizes: Mapping[str, int] | None = None,
        root: Path | None = None,
    ) -> None:
        sizes = {**DEFAULT_SPLIT_SIZES, **(split_sizes or {})}
        for split, size in sizes.items():
            if split not in SPLITS:
                raise ValueError(f"unknown split {split!r} in split_sizes; splits are {SPLITS}")
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(f"split_sizes[{split!r}] must be a positive int, got {size!r}")
        self.config = config
        self.sizes = sizes
        self._root = root
        self.prefix = f"{config.challenge}-{config.tag}"
        self._ids = {
            split: tuple(f"{self.prefix}-{split}-{i:05d}" for i in range(size))
            for split, size in sizes.items()
        }
        self._records: dict[str, GameRecord] = {}
        self._folders: dict[str, Path] = {}

    @property
    def root(self) -> Path:
        if self._root is None:
            self._root = cache_dir(
                "textworld", f"textworld-{textworld_version()}+gen{GENERATOR_VERSION}"
            )
        return self._root

    def ids(self, split: str) -> tuple[str, ...]:
        """Task ids of `split`, in order."""
        return self._ids[split]

    def locate(self, task_id: str) -> tuple[str, int]:
        """`(split, index)` of a task id of this configuration; `KeyError` for any other."""
        prefix, _, rest = task_id.rpartition("-")
        head, _, split = prefix.rpartition("-")
        if head != self.prefix or split not in self._ids or not rest.isdigit():
            raise KeyError(task_id)
        index = int(rest)
        if index >= self.sizes[split] or self._ids[split][index] != task_id:
            raise KeyError(task_id)
        return split, index

    def folder(self, split: str) -> Path:
        """Where the games of `split` are kept (every split of a configuration may share it)."""
        if split not in self._folders:
            self._folders[split] = self.root.joinpath(*self.config.cache_key(split).split("/"))
        return self._folders[split]

    def path(self, record: GameRecord) -> Path:
        """The `.z8` file of a task's game."""
        return self.folder(record.split) / record.game_file

    def record(self, task_id: str) -> GameRecord:
        """The game of `task_id`, generated first if it is not cached yet."""
        found = self._records.get(task_id) or self._load(task_id)
        if found is None:
            self.prepare([task_id])
            found = self._records[task_id]
        return found

    def cached(self, task_id: str) -> bool:
        """Whether the game of `task_id` is on disk already."""
        return task_id in self._records or self._load(task_id) is not None

    def prepare(self, task_ids: Sequence[str], workers: int = 1) -> None:
        """Generate the games of `task_ids` that are not cached, in `workers` child processes."""
        missing = list(dict.fromkeys(t for t in task_ids if not self.cached(t)))
        if not missing:
            return
        workers = max(1, min(workers, len(missing)))
        chunks = [missing[i::workers] for i in range(workers)]
        children = [self._spawn(chunk) for chunk in chunks]
        problems = []
        for chunk, child in zip(chunks, children, strict=True):
            assert child.stderr is not None
            err = child.stderr.read()
            child.stderr.close()
            if child.wait() != 0:
                tail = err.strip().splitlines()[-1:] or ["(no message)"]
                problems.append(f"{chunk[0]}{' and others' if len(chunk) > 1 else ''}: {tail[0]}")
        for task_id in missing:
            if self._load(task_id) is None and not problems:
                problems.append(f"{task_id}: the generator wrote no record")
        if problems:
            raise GenerationError("generating TextWorld games failed: " + "; ".join(problems))

    def clear(self) -> None:
        """Delete this configuration's cached games (all splits); they are made again on use."""
        for split in self.sizes:
            shutil.rmtree(self.folder(split), ignore_errors=True)
        self._records.clear()

    # ---------------------------------------------------------------- internals
    def _record_file(self, split: str, index: int) -> Path:
        return self.folder(split) / f"{split}-{index:05d}.json"

    def _load(self, task_id: str) -> GameRecord | None:
        split, index = self.locate(task_id)
        file = self._record_file(split, index)
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError):
            return None
        data["walkthrough"] = tuple(data.get("walkthrough", ()))
        record = GameRecord(**data)
        # A record whose game files were deleted means the game must be made again.
        if record.task_id != task_id or not self.path(record).is_file():
            return None
        self._records[task_id] = record
        return record

    def _spawn(self, task_ids: Sequence[str]) -> subprocess.Popen[str]:
        jobs = []
        for task_id in task_ids:
            split, index = self.locate(task_id)
            jobs.append(
                {
                    "task_id": task_id,
                    "split": split,
                    "index": index,
                    "key": self.config.cache_key(split),
                    "settings": self.config.settings_for(split),
                    "folder": str(self.folder(split)),
                }
            )
        request = json.dumps({"challenge": self.config.challenge, "jobs": jobs})
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        command = [sys.executable, "-m", __name__]
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdin is not None
        child.stdin.write(request)
        child.stdin.close()
        return child


# -------------------------------------------------------------------- the child process
def _generate(challenge: str, job: Mapping[str, Any]) -> None:
    """Find, compile and record the game of one task (runs in the child process)."""
    import textworld
    import textworld.generator

    split, index, key = job["split"], job["index"], job["key"]
    folder = Path(job["folder"])
    folder.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        seed = candidate_seed(key, split, index, attempt)
        try:
            game = make_game(challenge, job["settings"], seed)
        except Exception as exc:  # textworld's samplers fail on some seeds; try the next one
            failures.append(f"{type(exc).__name__}: {exc}")
            if len(failures) >= MAX_FAILURES:
                raise GenerationError(
                    f"{challenge} {job['settings']} failed {len(failures)} times; last: "
                    f"{failures[-1]}"
                ) from exc
            continue
        digest = game_digest(game)
        if split_of(digest) != split:
            continue
        name = f"game-{seed}"
        with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as tmp:
            options = textworld.GameOptions()
            options.path = str(Path(tmp, name + ".z8"))
            options.force_recompile = True
            textworld.generator.compile_game(game, options)
            for ext in (".json", ".z8"):  # the .z8 last: `textworld.start` needs both
                os.replace(Path(tmp, name + ext), folder / (name + ext))
        record = GameRecord(
            task_id=job["task_id"],
            split=split,
            index=index,
            seed=seed,
            digest=digest,
            attempts=attempt + 1,
            game_file=name + ".z8",
            walkthrough=tuple(game.metadata.get("walkthrough") or ()),
        )
        atomic_write_text(
            folder / f"{split}-{index:05d}.json", json.dumps(asdict(record), indent=1) + "\n"
        )
        return
    raise GenerationError(
        f"{challenge} {job['settings']}: none of {MAX_ATTEMPTS} candidate games belongs to the "
        f"{split} split; these settings allow too few distinct games"
    )


def _main() -> None:
    request = json.loads(sys.stdin.read())
    for job in request["jobs"]:
        try:
            _generate(request["challenge"], job)
        except Exception as exc:
            print(f"{job['task_id']}: {type(exc).__name__}: {exc}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    _main()
