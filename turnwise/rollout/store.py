"""The output folder of a collection run: Parquet shards plus `manifest.json`, resumable.

Layout::

    DIR/manifest.json              what was asked for, versions, counts, the shard list
    DIR/shards/part-00000.parquet  trajectories (turnwise.trajectory.write_parquet)
    DIR/shards/part-00001.parquet  ...

Finished trajectories are buffered and written as a new shard when the buffer is full, when it
is older than `flush_seconds`, and when the run ends or is interrupted. A shard is written
atomically (a temporary sibling renamed into place), and once written it is never rewritten, so
each trajectory is written exactly once. The manifest is rewritten (also atomically) after
every shard, but the shards on disk are the truth: on resume every `part-*.parquet` is read,
including one whose manifest update was lost to a `kill -9` of the main process, and leftover
temporary files (`.part-*.tmp`) are deleted.

An episode is identified by `(task_id, seed, member)`, stored in each trajectory (`task_id`,
`seed`, `metadata["member"]`); `--resume` skips every key already written.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from turnwise.files import atomic_write_text
from turnwise.trajectory import Trajectory, write_parquet

__all__ = [
    "MANIFEST",
    "RolloutStore",
    "StoreMismatchError",
    "episode_key",
    "iter_trajectories",
    "package_versions",
    "shard_files",
]

MANIFEST = "manifest.json"
SHARDS = "shards"
FORMAT = "turnwise-rollouts"
FORMAT_VERSION = 1

EpisodeKey = tuple[str, int, int]

# The packages whose versions go into the manifest (the ones that change what is collected).
_PACKAGES = ("turnwise", "gymnasium", "numpy", "pyarrow", "torch", "transformers", "vllm", "ray")


class StoreMismatchError(ValueError):
    """The output folder holds a different run (or one that `--resume` was not asked to continue)."""


def episode_key(traj: Trajectory) -> EpisodeKey:
    """`(task_id, seed, member)` of a collected trajectory."""
    return (traj.task_id, int(traj.seed or 0), int(traj.metadata.get("member", 0)))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape a run (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def shard_files(root: str | os.PathLike[str]) -> list[Path]:
    """The shards of a run folder, in write order."""
    return sorted((Path(root) / SHARDS).glob("part-*.parquet"))


def iter_trajectories(root: str | os.PathLike[str]) -> Iterator[Trajectory]:
    """Every trajectory of a run folder, shard by shard."""
    from turnwise.trajectory import read_parquet

    for path in shard_files(root):
        yield from read_parquet(path)


def _read_keys(path: Path) -> list[tuple[EpisodeKey, bool, bool, bool]]:
    """Keys and outcome flags of one shard, without reading the turns."""
    import pyarrow.parquet as pq

    columns = ["task_id", "seed", "metadata", "success", "truncated", "error"]
    table = pq.read_table(path, columns=columns).to_pydict()
    rows = []
    for task, seed, meta, success, truncated, error in zip(
        *(table[c] for c in columns), strict=True
    ):
        member = int(json.loads(meta or "{}").get("member", 0))
        rows.append(((task, int(seed or 0), member), bool(success), bool(truncated), bool(error)))
    return rows


def _count(value: Any) -> int:
    return value if isinstance(value, int) else -1


class RolloutStore:
    """Writes the trajectories of one run into `root`, and knows which episodes are done.

    Args:
        root: the output folder.
        run: what identifies the run (env, policy, split, tasks, group size, seed, ...); a resumed
            run must ask for the same, except that `tasks` may grow (the first N tasks of a
            split are a prefix of the first N + M).
        resume: continue the run already in `root`; without it `root` must hold no shards.
        shard_size: trajectories per shard.
        flush_seconds: write a shard at least this often while trajectories are waiting, so a
            hard kill of the main process loses little.
        extra: more manifest fields (env versions, planned count).
    """

    def __init__(
        self,
        root: str | Path,
        run: Mapping[str, Any],
        *,
        resume: bool = False,
        shard_size: int = 256,
        flush_seconds: float = 30.0,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, got {shard_size}")
        self.root = Path(root)
        self.run = dict(run)
        self.shard_size = shard_size
        self.flush_seconds = flush_seconds
        self.extra = dict(extra or {})
        self.buffer: list[Trajectory] = []
        self._buffer_since = time.monotonic()
        self.done: set[EpisodeKey] = set()
        self.counts = {"trajectories": 0, "success": 0, "truncated": 0, "failed": 0}
        self.shards: list[dict[str, Any]] = []
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self._open(resume)

    # ------------------------------------------------------------------ opening
    def _open(self, resume: bool) -> None:
        manifest_path = self.root / MANIFEST
        existing = shard_files(self.root)
        if manifest_path.is_file() or existing:
            if not resume:
                raise StoreMismatchError(
                    f"{self.root} already holds a collection run: pass --resume to continue it, "
                    "or choose another --out"
                )
            if manifest_path.is_file():
                old = json.loads(manifest_path.read_text(encoding="utf-8"))
                self._check_same_run(old.get("run", {}))
                self.created = old.get("created", self.created)
        for tmp in (self.root / SHARDS).glob(".part-*.tmp"):
            tmp.unlink(missing_ok=True)  # a write cut short by a hard kill: never complete
        for path in existing:
            rows = _read_keys(path)
            for key, success, truncated, error in rows:
                if key in self.done:
                    raise StoreMismatchError(f"{path}: episode {key} is written twice")
                self.done.add(key)
                self._count(success, truncated, error)
            self.shards.append(
                {"file": str(path.relative_to(self.root)), "trajectories": len(rows)}
            )
        self._next_index = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self.write_manifest("running")

    def _check_same_run(self, old: Mapping[str, Any]) -> None:
        changed = sorted(k for k in set(old) | set(self.run) if old.get(k) != self.run.get(k))
        # The plan is the first N tasks of the split, so asking for more extends the same run.
        grows = not self.run.get("task_ids") and not old.get("task_ids")
        if "tasks" in changed and grows and _count(self.run["tasks"]) >= _count(old["tasks"]):
            changed.remove("tasks")
        if changed:
            detail = ", ".join(f"{k}: {old.get(k)!r} -> {self.run.get(k)!r}" for k in changed)
            raise StoreMismatchError(
                f"{self.root} holds a different run ({detail}); resume it with the same settings "
                "(--tasks may grow) or choose another --out"
            )

    def _count(self, success: bool, truncated: bool, error: bool) -> None:
        self.counts["trajectories"] += 1
        self.counts["success"] += int(success)
        self.counts["truncated"] += int(truncated)
        self.counts["failed"] += int(error)

    # ------------------------------------------------------------------ writing
    def add(self, traj: Trajectory) -> None:
        """Keep a finished trajectory; it is written with the next shard."""
        key = episode_key(traj)
        if key in self.done:
            raise ValueError(f"episode {key} was already collected")
        if not self.buffer:
            self._buffer_since = time.monotonic()
        self.done.add(key)
        self.buffer.append(traj)
        self._count(traj.success, traj.truncated, traj.error is not None)
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def maybe_flush(self) -> None:
        """Write the buffer if it has waited longer than `flush_seconds`."""
        if self.buffer and time.monotonic() - self._buffer_since >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered trajectories as one new shard and update the manifest."""
        if not self.buffer:
            return
        path = self.root / SHARDS / f"part-{self._next_index:05d}.parquet"
        write_parquet(self.buffer, path)
        # The collector defers Ctrl-C while it writes, so a shard on disk always leaves the
        # buffer too (writing it again on the way out would duplicate its trajectories).
        self._next_index += 1
        self.shards.append({"file": f"{SHARDS}/{path.name}", "trajectories": len(self.buffer)})
        self.buffer = []
        self.write_manifest("running")

    def close(self, status: str) -> None:
        """Write what is buffered and mark the run `complete` or `interrupted`."""
        self.flush()
        self.write_manifest(status)

    def write_manifest(self, status: str) -> Path:
        """Rewrite `manifest.json` (atomically) with the current shards and counts."""
        written = sum(s["trajectories"] for s in self.shards)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "status": status,
            "created": self.created,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "run": self.run,
            **self.extra,
            "versions": package_versions(),
            "counts": {**self.counts, "written": written},
            "data_files": f"{SHARDS}/*.parquet",
            "shards": self.shards,
        }
        text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
        return atomic_write_text(self.root / MANIFEST, text)
