"""The sandbox contract every backend follows (`bwrap` locally, `docker` at scale).

A sandbox owns one *workspace* (a folder the agent may change, seen inside as `/workspace`) and
runs commands in it with the rest of the system read-only, no network, a private `/tmp` and
limits on memory, CPU time, processes and output. Each `run` is a fresh process tree: nothing the
command starts outlives it, and the working directory is always the workspace root.

`snapshot()` records the workspace; `restore()` puts it back exactly (content, modes, deleted and
added files) far faster than building it again, which is what an env's `reset` needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "WORKSPACE",
    "ExecResult",
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailable",
]

#: Where the workspace is mounted inside every sandbox.
WORKSPACE = "/workspace"


class SandboxError(RuntimeError):
    """A sandbox operation failed (not the command inside it: that is an `ExecResult`)."""


class SandboxUnavailable(SandboxError):
    """The backend cannot run here (bubblewrap or a Docker engine is missing); says what to do."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of every command run in a sandbox.

    Example:
        >>> Limits().memory_mb, Limits(timeout=5.0).timeout
        (2048, 5.0)
    """

    timeout: float = 60.0
    """Default wall-clock seconds of a `run` (a call may pass its own); then the tree is killed."""
    memory_mb: int = 2048
    """Address-space limit of each process (RLIMIT_AS) / the container's memory."""
    cpu_seconds: int = 120
    """CPU time of each process (RLIMIT_CPU)."""
    processes: int = 128
    """Processes the sandbox may have at once (a fork bomb hits this)."""
    file_size_mb: int = 64
    """Largest file a command may write (RLIMIT_FSIZE)."""
    output_bytes: int = 1 << 20
    """stdout and stderr are each kept up to this size; the rest is read and dropped."""


@dataclass(frozen=True)
class ExecResult:
    """What one command did.

    `stdout`/`stderr` are decoded as UTF-8 (undecodable bytes replaced). `timed_out` means the
    command was killed at its timeout (then `exit_code` is -9); `truncated` means some output was
    dropped at `Limits.output_bytes`.
    """

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    truncated: bool = False
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """The command exited 0 within its timeout."""
        return self.exit_code == 0 and not self.timed_out

    @property
    def output(self) -> str:
        """stdout then stderr, as a terminal would interleave them when only one is used."""
        if self.stdout and self.stderr:
            sep = "" if self.stdout.endswith("\n") else "\n"
            return self.stdout + sep + self.stderr
        return self.stdout or self.stderr


@runtime_checkable
class Sandbox(Protocol):
    """One workspace and the commands run in it. Backends: `BwrapSandbox`, `DockerSandbox`."""

    limits: Limits

    def run(
        self,
        cmd: str | Sequence[str],
        timeout: float | None = None,
        *,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run `cmd` (a shell string for `bash -c`, or an argv) in the workspace."""
        ...

    def read(self, path: str) -> bytes:
        """A file's bytes; `path` is relative to the workspace or absolute inside the sandbox.

        Raises `FileNotFoundError` / `IsADirectoryError` / `PermissionError` as reading it inside
        the sandbox would: paths (and symlinks) are resolved in the sandbox, never on the host.
        """
        ...

    def write(self, path: str, data: bytes | str) -> None:
        """Create or replace a file (parent folders are created), resolved like `read`."""
        ...

    def snapshot(self) -> None:
        """Record the workspace as it is now (replacing any earlier snapshot)."""
        ...

    def restore(self) -> None:
        """Put the workspace back to the last snapshot. Raises `SandboxError` without one."""
        ...

    def close(self) -> None:
        """Kill anything still running and delete the workspace and snapshot. Idempotent."""
        ...
