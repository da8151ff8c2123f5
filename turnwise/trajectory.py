"""Trajectories: what one episode was, turn by turn, stored losslessly.

A `Trajectory` holds the env id and version, task, seed, group, policy and its `Turn`s. It
round-trips exactly through JSON Lines (`write_jsonl`/`read_jsonl`) and Parquet
(`write_parquet`/`read_parquet`, one row per trajectory, nested turns) — the Parquet files load
with `datasets.load_dataset("parquet", data_files=...)`.

Text is stored as valid Unicode: lone surrogates, which no UTF-8 file can hold, become U+FFFD
when a `Turn` or `Trajectory` is made. Free-form dictionaries (`info`, `metadata`) are stored as
JSON text, so they must hold JSON values.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from turnwise.files import atomic_write, atomic_write_text
from turnwise.text import clean_text

__all__ = [
    "SCHEMA_VERSION",
    "Trajectory",
    "TrajectoryFormatError",
    "Turn",
    "arrow_schema",
    "read_jsonl",
    "read_parquet",
    "write_jsonl",
    "write_parquet",
]

#: Bumped whenever the stored layout changes; readers refuse newer versions.
SCHEMA_VERSION = 1


class TrajectoryFormatError(ValueError):
    """A stored trajectory file is broken, or of a schema this version cannot read."""


@dataclass
class Turn:
    """One step: the observation the agent saw, what it did, and what came of it."""

    index: int
    """0 for the first step."""
    observation: str
    """The observation text the action was chosen from."""
    action: str
    """The action sent to the env (for LLM agents: the raw reply, see `info["raw_action"]`)."""
    reward: float
    reward_terms: dict[str, float] = field(default_factory=dict)
    reward_weights: dict[str, float] = field(default_factory=dict)
    valid: bool = True
    state_key: str | None = None
    """Canonical state after the step (`info["state_key"]`)."""
    terminated: bool = False
    truncated: bool = False
    prompt_token_ids: list[int] | None = None
    """Tokens appended to the context before generation (the rendered observation delta)."""
    token_ids: list[int] | None = None
    """Tokens the policy generated, exactly as sampled."""
    logprobs: list[float] | None = None
    """Log-probability of each generated token under the sampling policy."""
    env_seconds: float | None = None
    policy_seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)
    """Other step info worth keeping (JSON values)."""

    def __post_init__(self) -> None:
        self.observation = clean_text(self.observation)
        self.action = clean_text(self.action)
        ids, logprobs = self.token_ids, self.logprobs
        if ids is not None and logprobs is not None and len(ids) != len(logprobs):
            raise ValueError(
                f"turn {self.index}: {len(ids)} token ids but {len(logprobs)} log-probs"
            )


@dataclass
class Trajectory:
    """One episode of one env, task and seed."""

    env_id: str
    task_id: str
    seed: int | None = None
    turns: list[Turn] = field(default_factory=list)
    env_version: str = ""
    """The version of the package that implements the env (e.g. textworld's), if relevant."""
    instruction: str = ""
    policy: str = ""
    """The policy spec that acted (`hf:PATH`, `expert`, ...)."""
    group_id: str | None = None
    """Trajectories of one task and seed collected together (for GRPO/LOOP/GiGPO groups)."""
    success: bool = False
    terminated: bool = False
    truncated: bool = False
    truncation_reason: str | None = None
    final_observation: str = ""
    """The observation after the last step."""
    error: str | None = None
    """Set when the episode failed because of broken infrastructure."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.instruction = clean_text(self.instruction)
        self.final_observation = clean_text(self.final_observation)

    @property
    def total_reward(self) -> float:
        """Sum of the turns' rewards."""
        return float(sum(t.reward for t in self.turns))

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    def actions(self) -> list[str]:
        """The actions in order (what `turnwise leaderboard verify` replays)."""
        return [t.action for t in self.turns]

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (floats kept exact).

        Lists and dicts are copied one level deep (nested JSON values inside `info` and
        `metadata` are shared); `dataclasses.asdict` would deep-copy every token list, which made
        writing ten times slower.
        """
        data = _shallow(self, _TRAJ_FIELDS)
        data["turns"] = [_shallow(turn, _TURN_FIELDS) for turn in self.turns]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trajectory:
        """Inverse of `to_dict`; refuses schema versions newer than this package knows."""
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise TrajectoryFormatError(
                f"trajectory schema version {version!r} is newer than this turnwise reads "
                f"({SCHEMA_VERSION}); upgrade turnwise"
            )
        known = {f.name for f in fields(cls)}
        turn_fields = {f.name for f in fields(Turn)}
        try:
            turns = [
                Turn(**{k: v for k, v in t.items() if k in turn_fields}) for t in data["turns"]
            ]
            kwargs = {k: v for k, v in data.items() if k in known and k != "turns"}
            return cls(turns=turns, **kwargs)
        except (KeyError, TypeError) as exc:
            raise TrajectoryFormatError(f"not a turnwise trajectory: {exc}") from exc


_TURN_FIELDS = tuple(f.name for f in fields(Turn))
_TRAJ_FIELDS = tuple(f.name for f in fields(Trajectory) if f.name != "turns")


def _shallow(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, (list, dict)):
            value = value.copy()
        out[name] = value
    return out


# --------------------------------------------------------------------------- JSON Lines
def write_jsonl(trajectories: Iterable[Trajectory], path: str | os.PathLike[str]) -> Path:
    """Write trajectories to `path`, one JSON object per line, atomically."""
    with _gc_paused():
        lines = [_json_line(traj) for traj in trajectories]
    return atomic_write_text(path, "".join(lines))


def _json_line(traj: Trajectory) -> str:
    data = traj.to_dict()
    _check_finite(data)
    return json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n"


def read_jsonl(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read trajectories written by `write_jsonl`."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Iterate over the trajectories of a JSON Lines file."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TrajectoryFormatError(f"{path}:{lineno}: not valid JSON ({exc})") from exc
            yield Trajectory.from_dict(data)


# --------------------------------------------------------------------------- Parquet
_JSON_FIELDS_TURN = ("info",)
_JSON_FIELDS_TRAJ = ("metadata",)


def arrow_schema() -> Any:
    """The Arrow schema of a trajectory row (one row per trajectory, turns nested)."""
    import pyarrow as pa

    terms = pa.list_(pa.struct([("name", pa.string()), ("value", pa.float64())]))
    turn = pa.struct(
        [
            ("index", pa.int64()),
            ("observation", pa.string()),
            ("action", pa.string()),
            ("reward", pa.float64()),
            ("reward_terms", terms),
            ("reward_weights", terms),
            ("valid", pa.bool_()),
            ("state_key", pa.string()),
            ("terminated", pa.bool_()),
            ("truncated", pa.bool_()),
            ("prompt_token_ids", pa.list_(pa.int64())),
            ("token_ids", pa.list_(pa.int64())),
            ("logprobs", pa.list_(pa.float64())),
            ("env_seconds", pa.float64()),
            ("policy_seconds", pa.float64()),
            ("info", pa.string()),
        ]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("schema_version", pa.int64()),
            ("env_id", pa.string()),
            ("env_version", pa.string()),
            ("task_id", pa.string()),
            ("seed", pa.int64()),
            ("group_id", pa.string()),
            ("policy", pa.string()),
            ("instruction", pa.string()),
            ("success", pa.bool_()),
            ("terminated", pa.bool_()),
            ("truncated", pa.bool_()),
            ("truncation_reason", pa.string()),
            ("final_observation", pa.string()),
            ("error", pa.string()),
            ("metadata", pa.string()),
            ("turns", pa.list_(turn)),
        ],
        metadata={b"turnwise_schema_version": str(SCHEMA_VERSION).encode()},
    )


def _pairs(d: Mapping[str, float]) -> list[dict[str, Any]]:
    return [{"name": k, "value": float(v)} for k, v in d.items()]


def _unpairs(rows: list[dict[str, Any]] | None) -> dict[str, float]:
    return {r["name"]: r["value"] for r in rows or []}


def _to_row(traj: Trajectory) -> dict[str, Any]:
    row = traj.to_dict()
    _check_finite(row)
    for key in _JSON_FIELDS_TRAJ:
        row[key] = json.dumps(row[key], ensure_ascii=False, allow_nan=False)
    for turn in row["turns"]:
        turn["reward_terms"] = _pairs(turn["reward_terms"])
        turn["reward_weights"] = _pairs(turn["reward_weights"])
        for key in _JSON_FIELDS_TURN:
            turn[key] = json.dumps(turn[key], ensure_ascii=False, allow_nan=False)
    return row


def _from_row(row: dict[str, Any]) -> Trajectory:
    for key in _JSON_FIELDS_TRAJ:
        row[key] = json.loads(row[key]) if row[key] is not None else {}
    for turn in row["turns"]:
        turn["reward_terms"] = _unpairs(turn["reward_terms"])
        turn["reward_weights"] = _unpairs(turn["reward_weights"])
        for key in _JSON_FIELDS_TURN:
            turn[key] = json.loads(turn[key]) if turn[key] is not None else {}
    return Trajectory.from_dict(row)


def write_parquet(trajectories: Iterable[Trajectory], path: str | os.PathLike[str]) -> Path:
    """Write trajectories to one Parquet file, atomically (a reader never sees half a file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _gc_paused():
        rows = [_to_row(t) for t in trajectories]
        table = pa.Table.from_pylist(rows, schema=arrow_schema())
    return atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def read_parquet(path: str | os.PathLike[str]) -> list[Trajectory]:
    """Read trajectories written by `write_parquet`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TrajectoryFormatError(f"{path}: not a readable Parquet file ({exc})") from exc
    meta = table.schema.metadata or {}
    version = int(meta.get(b"turnwise_schema_version", b"0"))
    if version == 0 or "turns" not in table.column_names:
        raise TrajectoryFormatError(f"{path}: not a turnwise trajectory file")
    if version > SCHEMA_VERSION:
        raise TrajectoryFormatError(
            f"{path}: schema version {version} is newer than this turnwise reads "
            f"({SCHEMA_VERSION}); upgrade turnwise"
        )
    with _gc_paused():
        return [_from_row(row) for row in table.to_pylist()]


# --------------------------------------------------------------------------- helpers
def _check_finite(row: dict[str, Any]) -> None:
    for turn in row["turns"]:
        if not all(math.isfinite(x) for x in (turn["reward"], *turn["reward_terms"].values())):
            raise ValueError(
                f"trajectory {row['id']}: turn {turn['index']} has a non-finite reward"
            )


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while converting many small objects.

    Building or reading thousands of nested rows allocates millions of containers, and the
    collector's repeated passes over them tripled the time; none of them form cycles.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
