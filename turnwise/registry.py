"""Registering and making environments.

Single-agent envs live in Gymnasium's own registry (string entry points, versioned ids), so
`gymnasium.make("turnwise/KeyDoor-v0")` works once `turnwise` is imported. Multi-agent
(PettingZoo) envs cannot be built by `gymnasium.make`; they are kept in turnwise's table only and
made with `turnwise.make`. Either way turnwise records, per id, its family, a one-line
description and the extra (`pip install turnwise[EXTRA]`) it needs, for `turnwise envs`.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from typing import Any

import gymnasium

__all__ = [
    "FAMILIES",
    "EnvEntry",
    "UnknownEnvError",
    "entry",
    "list_envs",
    "make",
    "register",
]

FAMILIES = ("text", "web", "gui", "swe", "social", "other")
_ID = re.compile(r"^turnwise/[A-Za-z][A-Za-z0-9_.-]*-v\d+$")


class UnknownEnvError(gymnasium.error.NameNotFound):
    """`make` was given an id nobody registered."""


@dataclass(frozen=True)
class EnvEntry:
    """What turnwise knows about a registered id."""

    id: str
    entry_point: str
    family: str
    description: str = ""
    extra: str | None = None
    """The optional dependency group it needs (`pip install turnwise[EXTRA]`), if any."""
    requires: tuple[str, ...] = ()
    """Modules that must be importable for the env to work (checked by `available`)."""
    multi_agent: bool = False
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        """Whether the modules this env needs are installed."""
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


_ENTRIES: dict[str, EnvEntry] = {}


def register(
    id: str,
    entry_point: str,
    *,
    family: str,
    description: str = "",
    extra: str | None = None,
    requires: tuple[str, ...] = (),
    multi_agent: bool = False,
    kwargs: dict[str, Any] | None = None,
) -> EnvEntry:
    """Register an environment under a versioned id.

    Args:
        id: `turnwise/<Name>-v<N>`; a change of behaviour gets a new `N`.
        entry_point: `"package.module:ClassName"` (a string, so nothing is imported now).
        family: one of `FAMILIES`.
        description: one line for `turnwise envs`.
        extra: the `turnwise[...]` extra that installs what it needs.
        requires: modules it imports (so listing can say what is missing).
        multi_agent: a PettingZoo env (made only through `turnwise.make`).
        kwargs: default constructor arguments.
    """
    if not _ID.match(id):
        raise ValueError(f"env ids look like 'turnwise/Name-v0', got {id!r}")
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ValueError(f"entry_point must be a 'module:attribute' string, got {entry_point!r}")
    record = EnvEntry(
        id=id,
        entry_point=entry_point,
        family=family,
        description=description,
        extra=extra,
        requires=tuple(requires),
        multi_agent=multi_agent,
        kwargs=dict(kwargs or {}),
    )
    if not multi_agent:
        gymnasium.register(id=id, entry_point=entry_point, kwargs=dict(kwargs or {}))
    _ENTRIES[id] = record
    return record


def entry(id: str) -> EnvEntry:
    """The registry entry of `id`; an unknown id raises with the closest known ids."""
    try:
        return _ENTRIES[id]
    except KeyError:
        raise UnknownEnvError(_unknown_message(id)) from None


def list_envs(family: str | None = None) -> list[EnvEntry]:
    """Registered envs (of one family, if given), sorted by family then id."""
    rows = [e for e in _ENTRIES.values() if family is None or e.family == family]
    return sorted(rows, key=lambda e: (FAMILIES.index(e.family), e.id))


def make(id: str, **kwargs: Any) -> Any:
    """Build a registered env: a `turnwise.Env` (through `gymnasium.make`) or a PettingZoo env.

    Example:
        >>> import turnwise
        >>> env = turnwise.make("turnwise/KeyDoor-v0")
        >>> obs, info = env.reset(seed=0)
        >>> info["task_id"], info["max_turns"]
        ('medium-train-00911', 30)
        >>> env.close()
    """
    record = entry(id)
    missing = record.missing()
    if missing:
        extra = f" Install it with: pip install 'turnwise[{record.extra}]'." if record.extra else ""
        raise ModuleNotFoundError(
            f"{id} needs {', '.join(missing)}, which is not installed.{extra}"
        )
    if record.multi_agent:
        module_name, _, attr = record.entry_point.partition(":")
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(**{**record.kwargs, **kwargs})
    return gymnasium.make(id, **kwargs)


def _bare(id: str) -> str:
    """`turnwise/KeyDoor-v0` -> `keydoor`: the part that tells ids apart."""
    return re.sub(r"-v\d+$", "", id.split("/")[-1]).lower()


def _unknown_message(id: str) -> str:
    known = sorted(_ENTRIES)
    by_name: dict[str, list[str]] = {}
    for k in known:
        by_name.setdefault(_bare(k), []).append(k)
    # Compare bare names: every id shares "turnwise/" and "-v0", which would make them all close.
    wanted = _bare(id)
    names = difflib.get_close_matches(wanted, list(by_name), n=3, cutoff=0.6)
    names += [n for n in by_name if wanted and wanted in n and n not in names]
    close = [k for n in names for k in by_name[n]][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return f"No turnwise env {id!r}.{hint} `turnwise envs` lists all of them."
