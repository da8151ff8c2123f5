"""Evaluation suites: versioned, fixed lists of episodes to play.

A suite is a JSON file: a name, an integer version, the engine versions it was made with and a
list of entries, each an env id with its constructor arguments, a split, the exact task ids,
the seeds and a turn limit. Every (entry, task, seed) is one episode; the collector turns the
seed into the env's reset seed (`derive_seed("env", seed, task_id)`), so an episode is fixed by
the suite alone. A suite may `include` other suites (their entries first, in order).

The built-in suites live next to this module (`suites/*.json`) and are named by id, such as
`turnwise-text-v0`; any other JSON file is named by its path. A suite's `digest` hashes its
resolved content: two results of the same id but different digests were not evaluated on the
same episodes.

Example:
    >>> suite = load_suite("turnwise-text-v0")
    >>> suite.id, suite.families
    ('turnwise-text-v0', ('text',))
    >>> len(suite.episodes()) == sum(len(e.task_ids) * len(e.seeds) for e in suite.entries)
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Suite",
    "SuiteEntry",
    "SuiteError",
    "installed_versions",
    "list_suites",
    "load_suite",
]

SUITES_DIR = Path(__file__).with_name("suites")


class SuiteError(ValueError):
    """A suite that cannot be found or read; the message says which and why."""


@dataclass(frozen=True)
class SuiteEntry:
    """One env of a suite and the episodes played on it."""

    env: str
    """The env id (`turnwise/KeyDoor-v0`)."""
    task_ids: tuple[str, ...]
    """The tasks, in the order they are played."""
    seeds: tuple[int, ...] = (0,)
    """Each task is played once per seed."""
    split: str = "test"
    """The split the task ids belong to."""
    max_turns: int | None = None
    """The turn limit (None: the env's own)."""
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """Constructor arguments of the env."""

    @property
    def family(self) -> str:
        """The env family (`text`, `web`, ...), from the registry."""
        from turnwise.registry import entry

        return entry(self.env).family

    def to_dict(self) -> dict[str, Any]:
        return {
            "env": self.env,
            "env_kwargs": dict(self.env_kwargs),
            "split": self.split,
            "task_ids": list(self.task_ids),
            "seeds": list(self.seeds),
            "max_turns": self.max_turns,
        }


@dataclass(frozen=True)
class Suite:
    """A versioned list of episodes (see the module docstring)."""

    name: str
    version: int
    entries: tuple[SuiteEntry, ...]
    engines: Mapping[str, str] = field(default_factory=dict)
    """The versions of the engines (`textworld`, `miniwob`, ...) the suite was made with."""
    description: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    @property
    def families(self) -> tuple[str, ...]:
        """The env families of the entries, in order of first appearance."""
        return tuple(dict.fromkeys(e.family for e in self.entries))

    def to_dict(self) -> dict[str, Any]:
        """The resolved suite (includes expanded), as JSON data."""
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "engines": dict(sorted(self.engines.items())),
            "entries": [e.to_dict() for e in self.entries],
        }

    @property
    def digest(self) -> str:
        """`sha256:` of the resolved content, description aside."""
        content = {k: v for k, v in self.to_dict().items() if k != "description"}
        text = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def episodes(self) -> list[tuple[int, str, int]]:
        """Every episode as (entry index, task id, seed), in the order they are reported."""
        return [
            (k, task_id, seed)
            for k, entry in enumerate(self.entries)
            for seed in entry.seeds
            for task_id in entry.task_ids
        ]

    def engine_warnings(self, installed: Mapping[str, str | None] | None = None) -> list[str]:
        """One line per engine whose installed version is not the suite's."""
        installed = installed_versions(self.engines) if installed is None else installed
        return [
            f"{self.id} was made with {name}=={pinned}, but "
            + (
                f"{name}=={installed[name]} is installed"
                if installed.get(name)
                else "it is not installed"
            )
            + ": results may not compare with others"
            for name, pinned in sorted(self.engines.items())
            if installed.get(name) != pinned
        ]


def installed_versions(names: Any) -> dict[str, str | None]:
    """The installed version of each distribution in `names` (None when absent)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def list_suites() -> list[str]:
    """The ids of the built-in suites."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.json"))


def load_suite(name: str | Path) -> Suite:
    """A built-in suite by id (`turnwise-text-v0`) or a suite file by path.

    Raises:
        SuiteError: no such suite, or a file that is not a valid suite (the message says where).
    """
    path = Path(name)
    if path.suffix != ".json":
        builtin = SUITES_DIR / f"{name}.json"
        if not builtin.is_file():
            raise SuiteError(
                f"no suite {str(name)!r}: name a built-in suite ({', '.join(list_suites())}) "
                "or a suite's .json file"
            )
        path = builtin
    return _load(path, seen=())


def _load(path: Path, seen: tuple[str, ...]) -> Suite:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"no suite file {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SuiteError(f"{path} is not a readable JSON suite: {exc}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a JSON object")
    where = str(path)
    name = _typed(data, "name", str, where)
    version = _typed(data, "version", int, where)
    ident = f"{name}-v{version}"
    if ident in seen:
        raise SuiteError(f"{where}: suite {ident} includes itself")
    entries: list[SuiteEntry] = []
    engines: dict[str, str] = {}
    for included in data.get("include", []):
        part = _load(SUITES_DIR / f"{included}.json", seen=(*seen, ident))
        entries += part.entries
        engines.update(part.engines)
    raw_engines = data.get("engines", {})
    if not isinstance(raw_engines, dict) or not all(
        isinstance(v, str) for v in raw_engines.values()
    ):
        raise SuiteError(f"{where}: 'engines' maps package names to version strings")
    engines.update(raw_engines)
    raw_entries = data.get("entries", [])
    if not isinstance(raw_entries, list):
        raise SuiteError(f"{where}: 'entries' is a list")
    for i, raw in enumerate(raw_entries):
        entries.append(_entry(raw, f"{where}, entry {i}"))
    if not entries:
        raise SuiteError(f"{where}: the suite has no entries")
    description = data.get("description", "")
    return Suite(name, version, tuple(entries), engines, str(description))


def _entry(raw: Any, where: str) -> SuiteEntry:
    from turnwise.registry import entry as registry_entry

    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: an entry is a JSON object")
    env = _typed(raw, "env", str, where)
    try:
        registry_entry(env)
    except Exception as exc:  # the registry's message names the known ids
        raise SuiteError(f"{where}: {exc}") from None
    task_ids = raw.get("task_ids")
    if (
        not isinstance(task_ids, list)
        or not task_ids
        or not all(isinstance(t, str) for t in task_ids)
    ):
        raise SuiteError(f"{where}: 'task_ids' is a non-empty list of task ids")
    if len(set(task_ids)) != len(task_ids):
        raise SuiteError(f"{where}: 'task_ids' lists a task twice")
    seeds = raw.get("seeds", [0])
    if (
        not isinstance(seeds, list)
        or not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise SuiteError(f"{where}: 'seeds' is a non-empty list of distinct integers")
    max_turns = raw.get("max_turns")
    if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
        raise SuiteError(f"{where}: 'max_turns' is a positive integer or null")
    env_kwargs = raw.get("env_kwargs", {})
    if not isinstance(env_kwargs, dict):
        raise SuiteError(f"{where}: 'env_kwargs' is a JSON object")
    split = raw.get("split", "test")
    if not isinstance(split, str):
        raise SuiteError(f"{where}: 'split' is a string")
    return SuiteEntry(env, tuple(task_ids), tuple(seeds), split, max_turns, env_kwargs)


def _typed(data: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SuiteError(f"{where}: {key!r} must be a {kind.__name__}")
    return value
