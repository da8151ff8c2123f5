"""`DockerSandbox`: the sandbox contract (`sandboxes/base.py`) on a Docker engine.

One container per sandbox, started from an image with `sleep infinity` as its only process (under
Docker's init, which reaps orphans) and every command run in it with `docker exec`. The container
has no network, a memory cgroup (`Limits.memory_mb`, no swap), a pids limit (`Limits.processes`),
one CPU (`cpus`), every capability dropped, `no-new-privileges`, rlimits for file size, CPU time
and open files, and by default a read-only root filesystem with tmpfs `/tmp` and `/run` and an
anonymous volume at the workspace.

How the parts of the contract are kept:

* **Timeouts.** `docker exec` has no timeout, so each command runs under coreutils
  `timeout --signal=KILL` inside the container; the host also keeps a deadline (the exec runs in a
  worker thread, joined with `timeout + host_grace`). Should the in-container timeout fail (a
  stuck engine, a process the kernel cannot kill yet), the host closes the stream and runs the
  kill sweep (below) alone; if even that does not answer in time, it restarts the container (`restart(timeout=0)`
  kills every process; the workspace volume survives a restart, the tmpfs `/tmp` does not).
* **Nothing outlives a command.** A background process started by an exec is re-parented to the
  container's init and would live on, so every command is wrapped in a small `sh` script that,
  after the command, runs `kill -9 -1` as the command's user: the kernel sends SIGKILL to every
  process that user may signal, in one pass (so a fork bomb cannot outrun it), except the
  caller and pid 1. The container's own processes (Docker's init and `sleep infinity`) run as
  uid 65534, and with every capability dropped no command can signal another uid, so they stay.
* **Output.** Execs are attached with `tty=False`, so the engine multiplexes stdout and stderr in
  frames with 8-byte headers; `_FrameDecoder` parses them from the raw socket, so stdin can be
  written to the same socket and output beyond `Limits.output_bytes` is read and dropped.
* **Files.** `read` and `write` go through the engine's archive endpoints (`get_archive`,
  `put_archive`): the engine resolves paths and symlinks inside the container, never on the host.
  Those endpoints see the image layer under a tmpfs mount, not the tmpfs (moby/moby#22020), so
  paths under `/tmp`, `/run`, `/dev`, `/proc` and `/sys` are read with `cat` and written with
  `cat >` inside instead.
* **Snapshots.** `snapshot` streams a tar of the workspace to a temporary file on the host (its
  names checked and the leading folder stripped; never extracted on the host) and `restore`
  empties the workspace inside and puts that tar back. `docker commit` was considered: it copies
  the whole writable layer into a new image and restoring means a new container, far slower than
  a tar of the workspace for repository-sized trees, and it does not capture volumes at all.

Needs the `swe` extra (the `docker` SDK) and a reachable engine; the default image is built with
`docker build -f docker/swe-sandbox.Dockerfile -t turnwise-swe-sandbox .`.

Example:
    >>> from turnwise.sandboxes.docker import DockerSandbox
    >>> with DockerSandbox(source="repo") as box:  # doctest: +SKIP
    ...     box.run("python -m pytest -q").exit_code
    0
"""

from __future__ import annotations

import base64
import contextlib
import copy
import errno
import importlib
import io
import json
import os
import posixpath
import socket
import ssl
import struct
import tarfile
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .base import WORKSPACE, ExecResult, Limits, SandboxError, SandboxUnavailable

__all__ = ["DEFAULT_IMAGE", "DockerSandbox", "swebench_image"]

#: The image built from `docker/swe-sandbox.Dockerfile` (its user `agent` is uid 1000).
DEFAULT_IMAGE = "turnwise-swe-sandbox"

#: The label every sandbox container carries (`docker ps --filter label=turnwise.sandbox`).
LABEL = "turnwise.sandbox"

_DEFAULT_LIMITS = Limits()

# Go's os.FileMode bits, as the engine reports them in an archive's stat header.
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27

_HEADER = struct.Struct(">B3xL")
_STDERR = 2

#: `sh -c _WRAPPER sh SECONDS ARGV...`: run ARGV under a timeout, then SIGKILL every process the
#: user may signal (`kill -1`: all but the caller and pid 1, atomically, so a fork bomb cannot
#: outrun it), and exit with ARGV's status. The keeper runs as another uid, so it is spared.
_WRAPPER = (
    't=$1; shift; timeout --signal=KILL --kill-after=1 "$t" "$@"; rc=$?; '
    "kill -9 -1 2>/dev/null; exit $rc"
)
#: `sh -c _KILL`: the sweep alone (after a host-side timeout).
_KILL = "kill -9 -1 2>/dev/null; exit 0"
#: The exec user's uid, then its groups.
_DISCOVER = "id -u; id -G"
#: Who the container's own processes (init and `sleep infinity`) run as: a uid no command has, so
#: the commands' `kill -9 -1` cannot reach them (no capability lets them signal another uid).
_KEEPER_USER = "65534:65534"
_KEEPER_USER_ALT = "65533:65533"
#: `sh -c _WRITE_CHECK sh PATH`: create PATH's parent, resolve PATH (symlinks followed inside),
#: check that the user could write it, print its mode (644 if new), a newline and the real path.
_WRITE_CHECK = (
    'p=$1; mkdir -p -- "$(dirname -- "$p")" || exit 1; '
    'r=$(readlink -f -- "$p") || exit 1; '
    'if [ -d "$r" ]; then echo "$r: Is a directory" >&2; exit 1; fi; '
    'if [ ! -w "$(dirname -- "$r")" ] || { [ -e "$r" ] && [ ! -w "$r" ]; }; then '
    'echo "$r: Permission denied" >&2; exit 1; fi; '
    'm=644; if [ -e "$r" ]; then m=$(stat -c %a -- "$r") || exit 1; fi; '
    'printf \'%s\\n%s\' "$m" "$r"'
)
#: `sh -c _CLEAR sh DIR`: delete everything in DIR (made writable first), keep DIR itself.
_CLEAR = 'chmod -R u+w -- "$1" 2>/dev/null; find "$1" -mindepth 1 -delete'
#: `sh -c _WRITE_BY_CAT sh PATH`, the data on stdin: for paths the archive endpoints cannot see.
_WRITE_BY_CAT = 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1"'

# Paths the engine's archive endpoints do not see as the container's processes do.
_KERNEL_ROOTS = ("/dev", "/proc", "/sys")


def swebench_image(
    instance_id: str, arch: str = "x86_64", *, namespace: str = "swebench", tag: str = "latest"
) -> str:
    """The name of a SWE-bench instance image on Docker Hub (the harness's own convention).

    Args:
        instance_id: A SWE-bench instance id such as `django__django-11099`.
        arch: `x86_64` or `arm64`.
        namespace: The Docker Hub namespace the images are pushed under.
        tag: The image tag.

    Returns:
        The image name, lower case, with `__` written `_1776_` as Docker Hub needs.

    Example:
        >>> swebench_image("django__django-11099")
        'swebench/sweb.eval.x86_64.django_1776_django-11099:latest'
        >>> swebench_image("Astropy__astropy-12907", "arm64")
        'swebench/sweb.eval.arm64.astropy_1776_astropy-12907:latest'
    """
    name = f"{namespace}/sweb.eval.{arch}.{instance_id}:{tag}".lower()
    return name.replace("__", "_1776_")


class DockerSandbox:
    """A workspace in a Docker container; commands run in it with `docker exec`.

    Each instance starts one container and removes it (with its anonymous volume) on `close`, or
    when garbage-collected. Methods are serialised by a lock; use one sandbox per worker.

    Args:
        image: The image; the default is built from `docker/swe-sandbox.Dockerfile`. For a
            SWE-bench instance image see `swebench_image` (and pass `workdir="/testbed"`,
            `user=None`, `read_only=False` and a `shell_prefix` that activates its conda env).
        source: A host folder copied into the workspace at start (files owned by the user).
        workdir: The workspace inside the container: every command starts there, relative paths
            of `read`/`write` are resolved against it, and `snapshot` records it.
        limits: Resource limits (mapped to container settings, see the module docs).
        env: Environment variables of the container (and so of every command).
        user: `uid:gid` (or a name) commands run as; None for the image's own user. Not
            65534, the uid of the container's own processes (with 65534, 65533 is used instead).
        client: A `docker.DockerClient`; None to connect with `docker.from_env()`.
        setup: A shell command run once after start, like any other command (what it leaves
            running is killed); a failure raises `SandboxError`.
        shell_prefix: Put before every string command, e.g.
            `"source /opt/miniconda3/bin/activate testbed && "` (argv commands get none).
        read_only: Mount the image's root filesystem read-only, with tmpfs `/tmp` and `/run`
            and an anonymous volume at `workdir` (its content copied from the image). Turn it off
            for images whose task writes outside one folder, such as SWE-bench images (the
            repository at `/testbed` and `pip install -e .` into the conda env): the container's
            writable layer then holds every change, and `workdir` is not a separate volume.
        cpus: CPUs the container may use (`nano_cpus`).

    Raises:
        SandboxUnavailable: The docker SDK is missing, no engine answers, or the image is absent.
        SandboxError: The container could not be started or `setup` failed.
    """

    #: Seconds the host waits beyond a command's timeout before it kills the command itself.
    host_grace: float = 5.0

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        *,
        source: str | os.PathLike[str] | None = None,
        workdir: str = WORKSPACE,
        limits: Limits = _DEFAULT_LIMITS,
        env: Mapping[str, str] | None = None,
        user: str | None = "1000:1000",
        client: Any = None,
        setup: str | None = None,
        shell_prefix: str | None = None,
        read_only: bool = True,
        cpus: float = 1.0,
    ) -> None:
        if not posixpath.isabs(workdir) or posixpath.normpath(workdir) in ("/", "//"):
            raise ValueError(f"workdir must be an absolute path below /, not {workdir!r}")
        if cpus <= 0:
            raise ValueError(f"cpus must be positive, not {cpus}")
        src = None if source is None else Path(source)
        if src is not None and not src.is_dir():
            raise NotADirectoryError(f"source is not a folder: {src}")
        self.image = image
        self.workdir = posixpath.normpath(workdir)
        self.limits = limits
        self.read_only = read_only
        self.cpus = cpus
        self.user = user
        self.shell_prefix = shell_prefix or ""
        self.env = dict(env or {})
        self._tmpfs = ("/tmp", "/run") if read_only else ()
        self._lock = threading.RLock()
        self._uid = 0
        self._gids: tuple[int, ...] = (0,)
        self._keeper = _KEEPER_USER_ALT if (user or "").startswith("65534") else _KEEPER_USER
        self._exec_user = user or "0"
        self._state = _State()
        self._finalizer = weakref.finalize(self, _release, self._state)

        self._client = client if client is not None else _connect()
        image_user = _check_image(self._client, image)
        if not user:
            # The container runs as the keeper, so an exec must name the image's user itself.
            self._exec_user = image_user or "0"
        name = f"turnwise-sandbox-{uuid.uuid4().hex[:12]}"
        try:
            self._state.container = self._client.containers.run(
                image, command=["sleep", "infinity"], name=name, **self.container_options()
            )
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._client.containers.get(name).remove(force=True, v=True)
            raise SandboxError(f"could not start a container of {image!r}: {exc}") from exc
        try:
            self._discover()
            if src is not None:
                with _source_tar(src, self._uid, self._gids[0]) as tar:
                    self._put_archive(self.workdir, tar)
            if setup:
                result = self.run(setup)
                if not result.ok:
                    raise SandboxError(
                        f"setup {setup!r} failed (exit {result.exit_code}"
                        f"{', timed out' if result.timed_out else ''}): {result.output[-2000:]}"
                    )
        except BaseException:
            with contextlib.suppress(SandboxError):
                self.close()
            raise

    # -- the contract ------------------------------------------------------------------------

    def run(
        self,
        cmd: str | Sequence[str],
        timeout: float | None = None,
        *,
        stdin: bytes | None = None,
    ) -> ExecResult:
        """Run `cmd` in the workspace (a string through `bash -c`, after `shell_prefix`).

        Args:
            cmd: A shell command, or an argv run as is.
            timeout: Seconds before the command's processes are killed (`Limits.timeout`).
            stdin: Bytes given to the command on stdin (else it reads nothing).

        Returns:
            What the command did; `timed_out` with exit code -9 when it was killed at timeout.

        Raises:
            SandboxError: The sandbox is closed, or the engine failed (not the command).
        """
        seconds = self.limits.timeout if timeout is None else float(timeout)
        if seconds <= 0:
            raise ValueError(f"timeout must be positive, not {seconds}")
        with self._lock:
            self._check_open()
            out = self._run_wrapped(self.command(cmd), seconds, stdin, self.limits.output_bytes)
        return ExecResult(
            exit_code=out.exit_code,
            stdout=out.stdout.decode("utf-8", "replace"),
            stderr=out.stderr.decode("utf-8", "replace"),
            timed_out=out.timed_out,
            truncated=out.truncated,
            duration=out.duration,
        )

    def read(self, path: str) -> bytes:
        """A file's bytes, `path` resolved inside the container (relative: under `workdir`).

        Raises:
            FileNotFoundError: No such file.
            IsADirectoryError: `path` is a folder.
            PermissionError: The mode bits deny the user reading it (ancestors not checked).
            SandboxError: The file is larger than `limits.file_size_mb` MiB.
        """
        with self._lock:
            self._check_open()
            target = self._absolute(path)
            for _ in range(40):
                if self._exec_io(target):
                    return self._read_by_cat(target)
                stat = self._stat(target)
                mode = int(stat.get("mode") or 0)
                if mode & _GO_MODE_SYMLINK and stat.get("linkTarget"):
                    target = str(stat["linkTarget"])  # resolved by the engine, in the container
                    continue
                if mode & _GO_MODE_DIR:
                    raise IsADirectoryError(errno.EISDIR, "Is a directory", target)
                if int(stat.get("size") or 0) > self._max_file:
                    raise self._too_large(path)
                try:
                    stream, _ = self._container.get_archive(target)
                except Exception as exc:
                    raise _api_oserror(exc, target) from exc
                try:
                    member, data = _single_file(_ChunkReader(stream), target)
                finally:
                    _drain(stream)  # the engine holds the container's lock until it is read
                if member.issym():
                    target = posixpath.join(posixpath.dirname(target), member.linkname)
                    continue
                if not _may_read(member, self._uid, self._gids):
                    raise PermissionError(errno.EACCES, "Permission denied", target)
                return data
            raise OSError(errno.ELOOP, "Too many levels of symbolic links", path)

    def write(self, path: str, data: bytes | str) -> None:
        """Create or replace a file (parents created), resolved like `read`.

        A new file gets mode 0644, a replaced one keeps its mode; both are owned by the user.

        Raises:
            IsADirectoryError: `path` is a folder.
            PermissionError: The user may not write there (the read-only root, say).
            SandboxError: `data` is larger than `limits.file_size_mb` MiB.
        """
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(payload) > self._max_file:
            raise self._too_large(path)
        with self._lock:
            self._check_open()
            target = self._absolute(path)
            if self._exec_io(target):
                self._write_by_cat(target, payload)
                return
            check = self._internal(["sh", "-c", _WRITE_CHECK, "sh", target])
            if check.exit_code != 0:
                raise _stderr_oserror(check.stderr, target)
            mode_text, _, resolved = check.stdout.decode("utf-8", "surrogateescape").partition("\n")
            if not posixpath.isabs(resolved):
                raise SandboxError(
                    f"could not resolve {target!r} in the container: {check.stdout!r}"
                )
            if self._exec_io(resolved):
                self._write_by_cat(resolved, payload)
                return
            parent, name = posixpath.split(resolved)
            mode = int(mode_text, 8) if mode_text.isdigit() else 0o644
            tar = _one_file_tar(name, payload, uid=self._uid, gid=self._gids[0], mode=mode)
            self._put_archive(parent, tar)

    def snapshot(self) -> None:
        """Record the workspace: a tar streamed to a temporary file on the host."""
        with self._lock:
            self._check_open()
            try:
                stream, _ = self._container.get_archive(self.workdir)
            except Exception as exc:
                raise SandboxError(f"could not read {self.workdir}: {exc}") from exc
            fd, name = tempfile.mkstemp(prefix="turnwise-docker-snapshot-", suffix=".tar")
            try:
                with os.fdopen(fd, "wb") as out:
                    _strip_snapshot(_ChunkReader(stream), out, posixpath.basename(self.workdir))
            except BaseException:
                os.unlink(name)
                _drain(stream)  # the engine holds the container's lock until it is read
                raise
            old, self._state.snapshot = self._state.snapshot, name
            if old is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(old)

    def restore(self) -> None:
        """Empty the workspace inside the container and put the last snapshot back."""
        with self._lock:
            self._check_open()
            if self._state.snapshot is None:
                raise SandboxError("restore() without a snapshot(): nothing to restore")
            cleared = self._internal(["sh", "-c", _CLEAR, "sh", self.workdir])
            if cleared.exit_code != 0:
                text = cleared.stderr.decode("utf-8", "replace")[-1000:]
                raise SandboxError(f"could not empty {self.workdir}: {text}")
            with open(self._state.snapshot, "rb") as tar:
                self._put_archive(self.workdir, tar)

    def close(self) -> None:
        """Remove the container (killing its processes, dropping its volume) and the snapshot.

        Idempotent; also done when the sandbox is garbage-collected.
        """
        with self._lock:
            error = self._finalizer()
        if error is not None:
            raise SandboxError(f"could not remove the container: {error}") from error

    @property
    def closed(self) -> bool:
        """Whether `close` has run (or the container is gone)."""
        return not self._finalizer.alive or self._state.container is None

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("snapshot" if self._state.snapshot else "no snapshot")
        return f"DockerSandbox({self.image!r}, workdir={self.workdir!r}, {state})"

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- what the container looks like -------------------------------------------------------

    def container_options(self) -> dict[str, Any]:
        """The keyword arguments of `client.containers.run` (besides image, command and name).

        Example:
            >>> box = DockerSandbox.__new__(DockerSandbox)
            >>> box.limits, box.read_only, box.cpus = Limits(processes=64), True, 0.5
            >>> box.workdir, box.env, box._keeper = "/workspace", {}, "65534:65534"
            >>> options = box.container_options()
            >>> options["network_mode"], options["pids_limit"], options["nano_cpus"]
            ('none', 64, 500000000)
        """
        limits = self.limits
        memory = f"{limits.memory_mb}m"
        file_size = limits.file_size_mb << 20
        options: dict[str, Any] = {
            "detach": True,
            "auto_remove": False,
            "init": True,
            "labels": {LABEL: "1"},
            "network_mode": "none",
            "mem_limit": memory,
            "memswap_limit": memory,
            "pids_limit": limits.processes,
            "nano_cpus": round(self.cpus * 1e9),
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "read_only": self.read_only,
            # The keeper, not the commands (they run as `user`, in `workdir`, set per exec); "/"
            # because the keeper's uid may not be allowed into the workdir.
            "user": self._keeper,
            "working_dir": "/",
            "ulimits": [
                {"name": "nofile", "soft": 4096, "hard": 4096},
                {"name": "fsize", "soft": file_size, "hard": file_size},
                {"name": "cpu", "soft": limits.cpu_seconds, "hard": limits.cpu_seconds},
            ],
        }
        env = dict(self.env)
        if self.read_only:
            # tmpfs counts against the memory limit: /tmp may use a quarter of it.
            tmp_mb = max(16, limits.memory_mb // 4)
            options["tmpfs"] = {
                "/tmp": f"rw,nosuid,nodev,size={tmp_mb}m,mode=1777",
                "/run": "rw,nosuid,nodev,noexec,size=16m,mode=755",
            }
            # A volume, not a tmpfs: the archive endpoints (source, read, write, snapshot) see
            # volumes but not tmpfs mounts, and the workspace stays on disk, not in memory.
            options["mounts"] = [{"Target": self.workdir, "Type": "volume", "ReadOnly": False}]
            env.setdefault("HOME", "/tmp")  # the user's real home is on the read-only root
        if env:
            options["environment"] = env
        return options

    def command(self, cmd: str | Sequence[str]) -> list[str]:
        """The argv run for `cmd`: a string goes to `bash -c` after `shell_prefix`.

        Example:
            >>> box = DockerSandbox.__new__(DockerSandbox)
            >>> box.shell_prefix = "source env && "
            >>> box.command("ls -l"), box.command(["ls", "-l"])
            (['bash', '-c', 'source env && ls -l'], ['ls', '-l'])
        """
        if isinstance(cmd, str):
            return ["bash", "-c", self.shell_prefix + cmd]
        argv = [str(arg) for arg in cmd]
        if not argv:
            raise ValueError("an empty argv")
        return argv

    # -- execs -------------------------------------------------------------------------------

    @property
    def _container(self) -> Any:
        return self._state.container

    def _check_open(self) -> None:
        if self.closed:
            raise SandboxError("the sandbox is closed")

    @property
    def _max_file(self) -> int:
        return self.limits.file_size_mb << 20

    def _too_large(self, path: str) -> SandboxError:
        return SandboxError(f"{path!r}: file too large (limit {self.limits.file_size_mb} MiB)")

    def _wrapped(self, argv: Sequence[str], seconds: float) -> list[str]:
        return ["sh", "-c", _WRAPPER, "sh", f"{max(seconds, 0.001):.3f}", *argv]

    def _run_wrapped(
        self, argv: Sequence[str], seconds: float, stdin: bytes | None, limit: int | None
    ) -> _Outcome:
        deadline = time.monotonic() + seconds + self.host_grace
        out = self._exec(self._wrapped(argv, seconds), stdin=stdin, limit=limit, deadline=deadline)
        if out.host_timeout:
            self._kill_all()
            out.timed_out, out.exit_code = True, -9
        elif out.exit_code == 128 + 9 and out.duration >= seconds:
            out.timed_out, out.exit_code = True, -9
        return out

    def _internal(
        self, argv: Sequence[str], stdin: bytes | None = None, limit: int | None = None
    ) -> _Outcome:
        out = self._run_wrapped(argv, self.limits.timeout, stdin, limit)
        if out.timed_out:
            raise SandboxError(f"{argv[0]} timed out in the container")
        return out

    def _exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None,
        limit: int | None,
        deadline: float,
        revived: bool = False,
    ) -> _Outcome:
        """Run one exec in a worker thread; give up (host_timeout) at `deadline`.

        If the container has stopped (its keeper killed, say by the OOM killer), the engine
        answers 409; the container is restarted once (the workspace volume survives) and the
        exec tried again.
        """
        capture = _Capture(limit)
        sockets: list[Any] = []
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["code"] = self._exec_blocking(list(argv), stdin, capture, sockets)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        start = time.monotonic()
        worker = threading.Thread(target=work, name="turnwise-docker-exec", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - start))
        duration = time.monotonic() - start
        if worker.is_alive():
            for sock in sockets:
                _close_socket(sock)
            stdout, stderr, truncated = capture.result()
            return _Outcome(-9, stdout, stderr, truncated, duration, host_timeout=True)
        if "error" in box:
            exc = box["error"]
            if _status(exc) == 409 and not revived:
                try:
                    self._container.restart(timeout=0)
                except Exception as again:
                    raise SandboxError(
                        f"the container stopped and did not restart: {again}"
                    ) from exc
                return self._exec(argv, stdin=stdin, limit=limit, deadline=deadline, revived=True)
            raise SandboxError(f"docker exec of {argv[0]!r} failed: {exc}") from exc
        stdout, stderr, truncated = capture.result()
        return _Outcome(int(box["code"]), stdout, stderr, truncated, duration)

    def _exec_blocking(
        self, argv: list[str], stdin: bytes | None, capture: _Capture, sockets: list[Any]
    ) -> int:
        api = self._client.api
        created = api.exec_create(
            self._container.id,
            argv,
            stdout=True,
            stderr=True,
            stdin=stdin is not None,
            tty=False,
            user=self._exec_user,
            workdir=self.workdir,
        )
        exec_id = created["Id"]
        sock = api.exec_start(exec_id, socket=True)
        sockets.append(sock)
        early = _buffered_prefix(sock)
        raw = _raw_socket(sock)
        writer = None
        try:
            if stdin is not None and isinstance(raw, ssl.SSLSocket):
                raise SandboxError(
                    "stdin needs a Unix socket, ssh:// or plain tcp:// DOCKER_HOST: a TLS "
                    "connection cannot be half-closed from Python, so end of input cannot be sent"
                )
            if stdin is not None:
                writer = threading.Thread(
                    target=_feed_stdin, args=(raw, stdin), name="turnwise-docker-stdin", daemon=True
                )
                writer.start()
            decoder = _FrameDecoder()
            for stream, piece in decoder.feed(early):
                capture.add(stream, piece)
            while True:
                chunk = raw.recv(1 << 16)
                if not chunk:
                    break
                for stream, piece in decoder.feed(chunk):
                    capture.add(stream, piece)
        finally:
            _close_socket(sock)
        if writer is not None:
            writer.join(1.0)
        return self._exit_code(exec_id)

    def _exit_code(self, exec_id: str) -> int:
        # The stream can end a moment before the engine records the exit.
        for _ in range(500):
            info = self._client.api.exec_inspect(exec_id)
            if not info.get("Running"):
                code = info.get("ExitCode")
                return -1 if code is None else int(code)
            time.sleep(0.01)
        raise SandboxError(f"exec {exec_id} still running after its output ended")

    def _discover(self) -> None:
        """Learn the uid and groups commands run with (for tar owners and read permissions)."""
        out = self._exec(
            ["sh", "-c", _DISCOVER],
            stdin=None,
            limit=None,
            deadline=time.monotonic() + 30.0 + self.host_grace,
        )
        parsed = _parse_discovery(out.stdout.decode("ascii", "replace"))
        if out.exit_code != 0 or out.host_timeout or parsed is None:
            text = out.stderr.decode("utf-8", "replace")[-500:] or repr(out.stdout[:200])
            raise SandboxError(f"could not learn the uid of user {self._exec_user!r}: {text}")
        self._uid, self._gids = parsed
        if str(self._uid) == self._keeper.split(":")[0]:
            raise SandboxError(
                f"user {self._exec_user!r} has uid {self._uid}, the uid the container's own "
                "processes run as; pick another user"
            )

    def _kill_all(self) -> None:
        """After a host-side timeout: kill the user's processes; failing that, restart."""
        out = self._exec(
            ["sh", "-c", _KILL], stdin=None, limit=None, deadline=time.monotonic() + 10.0
        )
        if out.host_timeout or out.exit_code != 0:
            try:
                self._container.restart(timeout=0)
            except Exception as exc:
                raise SandboxError(f"could not kill a runaway command: {exc}") from exc

    # -- files -------------------------------------------------------------------------------

    def _absolute(self, path: str) -> str:
        return path if posixpath.isabs(path) else posixpath.join(self.workdir, path)

    def _stat(self, path: str) -> dict[str, Any]:
        """The engine's stat of `path` (`HEAD .../archive`: no tar is made, unlike a GET).

        `mode` is a Go `os.FileMode`; for a symlink, `linkTarget` is its target resolved inside
        the container. The docker SDK has no call for it, so it is made on its requests session.
        """
        api = self._client.api
        url = f"{api.base_url}/v{api.api_version}/containers/{self._container.id}/archive"
        try:
            response = api.head(url, params={"path": path}, timeout=getattr(api, "timeout", None))
        except Exception as exc:
            raise SandboxError(f"could not stat {path}: {exc}") from exc
        try:
            if response.status_code == 404:
                raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
            header = response.headers.get("X-Docker-Container-Path-Stat")
            if response.status_code >= 400 or not header:
                raise SandboxError(f"could not stat {path}: HTTP {response.status_code}")
            stat = json.loads(base64.b64decode(header))
        finally:
            response.close()
        if not isinstance(stat, dict):
            raise SandboxError(f"could not stat {path}: {stat!r}")
        return stat

    def _exec_io(self, path: str) -> bool:
        """Whether `path` lies where the archive endpoints do not see what processes see."""
        path = posixpath.normpath(path)
        return any(path == root or path.startswith(root + "/") for root in self._mounts_by_exec())

    def _mounts_by_exec(self) -> tuple[str, ...]:
        return (*self._tmpfs, *_KERNEL_ROOTS)

    def _read_by_cat(self, path: str) -> bytes:
        out = self._internal(["cat", "--", path], limit=self._max_file)
        if out.exit_code != 0:
            raise _stderr_oserror(out.stderr, path)
        if len(out.stdout) >= self._max_file and out.truncated:
            raise self._too_large(path)
        return out.stdout

    def _write_by_cat(self, path: str, data: bytes) -> None:
        out = self._internal(["sh", "-c", _WRITE_BY_CAT, "sh", path], stdin=data)
        if out.exit_code != 0:
            raise _stderr_oserror(out.stderr, path)

    def _put_archive(self, path: str, tar: IO[bytes] | bytes) -> None:
        try:
            self._container.put_archive(path, tar)
        except Exception as exc:
            raise _api_oserror(exc, path) from exc


# -- lifetime --------------------------------------------------------------------------------


class _State:
    """What `close` (or the finalizer) releases; holds no reference to the sandbox."""

    def __init__(self) -> None:
        self.container: Any = None
        self.snapshot: str | None = None


def _release(state: _State) -> BaseException | None:
    error: BaseException | None = None
    container, state.container = state.container, None
    if container is not None:
        try:
            container.remove(force=True, v=True)
        except Exception as exc:
            if _status(exc) != 404:
                error = exc
    snapshot, state.snapshot = state.snapshot, None
    if snapshot is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(snapshot)
    return error


def _connect() -> Any:
    try:
        docker: Any = importlib.import_module("docker")
        docker.from_env  # noqa: B018  (a module named docker that is not the SDK fails here)
    except (ImportError, AttributeError) as exc:
        raise SandboxUnavailable(
            "pip install 'turnwise[swe]' (the docker SDK) to use DockerSandbox; "
            "without Docker, BwrapSandbox runs the same tasks locally"
        ) from exc
    where = os.environ.get("DOCKER_HOST") or "unset, so unix:///var/run/docker.sock"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(
            f"no Docker engine answered (DOCKER_HOST is {where}): {exc}. Start one, or point "
            "DOCKER_HOST at one; without Docker, BwrapSandbox runs the same tasks locally"
        ) from exc
    return client


def _check_image(client: Any, image: str) -> str:
    """The image's configured user ("" for root); raises `SandboxUnavailable` if it is absent."""
    try:
        found = client.images.get(image)
    except Exception as exc:
        if _status(exc) == 404:
            if image.split(":")[0] == DEFAULT_IMAGE:
                how = f"docker build -f docker/swe-sandbox.Dockerfile -t {DEFAULT_IMAGE} ."
            else:
                how = f"docker pull {image}"
            raise SandboxUnavailable(
                f"the image {image!r} is not on the engine: run `{how}`"
            ) from exc
        raise SandboxUnavailable(f"could not look up the image {image!r}: {exc}") from exc
    config = (getattr(found, "attrs", None) or {}).get("Config") or {}
    return str(config.get("User") or "")


# -- the exec stream -------------------------------------------------------------------------


@dataclass
class _Outcome:
    exit_code: int
    stdout: bytes
    stderr: bytes
    truncated: bool
    duration: float
    host_timeout: bool = False
    timed_out: bool = False


class _FrameDecoder:
    """Splits Docker's multiplexed stream (`tty=False`) into `(stream, bytes)` pieces.

    Each frame is an 8-byte header (stream: 0 stdin, 1 stdout, 2 stderr, 3 the engine's own
    errors; three zero bytes; the payload size as a big-endian uint32) and the payload. Chunks may
    split headers and payloads anywhere; payloads come out as they arrive, so a large frame is
    never held whole.

    Example:
        >>> decoder = _FrameDecoder()
        >>> decoder.feed(b"\\x01\\0\\0\\0\\0\\0\\0\\x02hi\\x02\\0\\0")
        [(1, b'hi')]
        >>> decoder.feed(b"\\0\\0\\0\\0\\x01!")
        [(2, b'!')]
    """

    def __init__(self) -> None:
        self._header = bytearray()
        self._stream = 0
        self._left = 0

    @property
    def mid_frame(self) -> bool:
        """Whether the data so far ended inside a frame."""
        return bool(self._header) or self._left > 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The payload pieces in `data`, with the stream each belongs to."""
        pieces: list[tuple[int, bytes]] = []
        view = memoryview(data)
        at, end = 0, len(data)
        while at < end:
            if self._left:
                take = min(self._left, end - at)
                pieces.append((self._stream, bytes(view[at : at + take])))
                self._left -= take
                at += take
                continue
            take = min(_HEADER.size - len(self._header), end - at)
            self._header += view[at : at + take]
            at += take
            if len(self._header) == _HEADER.size:
                if self._header[1:4] != b"\0\0\0" or self._header[0] > 3:
                    raise SandboxError(f"not a Docker stream frame header: {bytes(self._header)!r}")
                self._stream, self._left = _HEADER.unpack(self._header)
                self._header.clear()
        return pieces


class _Capture:
    """stdout and stderr, each kept up to `limit` bytes (None: all); the rest is dropped."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.truncated = False
        self._lock = threading.Lock()

    def add(self, stream: int, data: bytes) -> None:
        """Keep `data` of `stream` (2 and 3 are stderr, anything else stdout) if there is room."""
        with self._lock:
            buffer = self.stderr if stream in (_STDERR, 3) else self.stdout
            if self.limit is not None and len(buffer) + len(data) > self.limit:
                data = data[: max(0, self.limit - len(buffer))]
                self.truncated = True
            buffer += data

    def result(self) -> tuple[bytes, bytes, bool]:
        """stdout, stderr and whether anything was dropped, as they are now."""
        with self._lock:
            return bytes(self.stdout), bytes(self.stderr), self.truncated


def _raw_socket(sock: Any) -> Any:
    """The socket under what `exec_start(socket=True)` returns (a `SocketIO` on Unix sockets)."""
    raw = getattr(sock, "_sock", sock)
    with contextlib.suppress(Exception):
        raw.settimeout(None)  # the client's read timeout must not cut off a quiet command
    return raw


def _buffered_prefix(sock: Any) -> bytes:
    """Exec output the HTTP client already read into its buffer along with the upgrade headers.

    `exec_start(socket=True)` hands over the socket under the buffered reader that parsed the
    response headers; output that arrived in the same read (a fast command on a busy host) would
    be lost, and the frames after it misread. This takes what that reader holds without waiting.
    """
    raw = getattr(sock, "_sock", None)
    try:
        reader = sock._response.raw._fp.fp
    except AttributeError:
        return b""
    if raw is None or not isinstance(reader, io.BufferedReader):
        return b""
    try:
        raw.setblocking(False)
        try:
            return reader.read1(1 << 16) or b""
        finally:
            raw.setblocking(True)
    except (OSError, ValueError):
        return b""


def _feed_stdin(raw: Any, data: bytes) -> None:
    """Write `data`, then close the write side so that the command sees end of file."""
    with contextlib.suppress(OSError):
        if data:
            raw.sendall(data)
    with contextlib.suppress(OSError):
        if hasattr(raw, "shutdown_write"):  # paramiko channels (ssh:// DOCKER_HOST)
            raw.shutdown_write()
        else:
            raw.shutdown(socket.SHUT_WR)


def _close_socket(sock: Any) -> None:
    raw = getattr(sock, "_sock", sock)
    with contextlib.suppress(Exception):
        raw.shutdown(socket.SHUT_RDWR)  # wakes a reader blocked in recv on another thread
    for thing in (sock, raw, getattr(sock, "_response", None)):
        with contextlib.suppress(Exception):
            if thing is not None:
                thing.close()


def _parse_discovery(text: str) -> tuple[int, tuple[int, ...]] | None:
    """`(uid, groups)` from `_DISCOVER`'s output, or None if it is not that.

    Example:
        >>> _parse_discovery("1000\\n1000 27\\n")
        (1000, (1000, 27))
    """
    lines = text.splitlines()
    if len(lines) != 2 or not lines[0].strip().isdigit():
        return None
    groups = lines[1].split()
    if not groups or not all(g.isdigit() for g in groups):
        return None
    return int(lines[0]), tuple(int(g) for g in groups)


# -- tar -------------------------------------------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterable of byte chunks (what `get_archive` yields)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = bytes(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


def _drain(stream: Iterable[bytes]) -> None:
    for _ in stream:
        pass


def _single_file(reader: IO[bytes] | io.RawIOBase, path: str) -> tuple[tarfile.TarInfo, bytes]:
    """The first member of a tar stream and, for a regular file, its bytes."""
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            if member.isdir():
                raise IsADirectoryError(errno.EISDIR, "Is a directory", path)
            if member.issym():
                return member, b""
            if not member.isreg():
                raise OSError(errno.EINVAL, "Not a regular file", path)
            handle = tar.extractfile(member)
            return member, b"" if handle is None else handle.read()
    raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)


def _may_read(member: tarfile.TarInfo, uid: int, gids: Sequence[int]) -> bool:
    """Whether a user may read a file with this owner and mode (no capabilities: none held)."""
    if member.uid == uid:
        return bool(member.mode & 0o400)
    if member.gid in gids:
        return bool(member.mode & 0o040)
    return bool(member.mode & 0o004)


def _one_file_tar(name: str, data: bytes, *, uid: int, gid: int, mode: int = 0o644) -> bytes:
    """A tar holding one regular file `name` (no folders) owned by `uid:gid`."""
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a file name: {name!r}")
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode & 0o7777
    info.uid, info.gid = uid, gid
    info.mtime = int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _source_tar(folder: Path, uid: int, gid: int) -> IO[bytes]:
    """The contents of `folder` as a tar (in memory, spilled to disk past 64 MiB), owned by uid:gid.

    Symbolic links stay links (resolved inside the container); sockets and devices are left out.
    """

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if info.ischr() or info.isblk():
            return None
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        return info

    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115  (the caller closes it)
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(folder.iterdir()):
            tar.add(entry, arcname=entry.name, filter=own)
    spool.seek(0)
    return spool


def _relative_member(name: str, top: str) -> str | None:
    """`name` without its leading `top/`: None for `top` itself; raises if it leaves `top`.

    Example:
        >>> _relative_member("workspace/src/a.py", "workspace"), _relative_member("workspace/", "workspace")
        ('src/a.py', None)
    """
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or not parts or parts[0] != top:
        raise SandboxError(f"snapshot member {name!r} is not inside {top}/")
    rest = "/".join(parts[1:])
    return rest or None


def _strip_snapshot(source: IO[bytes] | io.RawIOBase, out: IO[bytes], top: str) -> int:
    """Copy the tar `source` (a folder `top` as `get_archive` gives it) to `out` relative to it.

    Members outside `top/` (absolute, `..`, another folder) and hard links pointing outside it
    raise `SandboxError`; devices are dropped. Returns how many members were written.
    """
    written = 0
    with (
        tarfile.open(fileobj=source, mode="r|") as src,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src:
            rest = _relative_member(member.name, top)
            if rest is None or member.ischr() or member.isblk():
                continue
            copied = copy.copy(member)
            copied.pax_headers = {
                key: value
                for key, value in member.pax_headers.items()
                if key not in ("path", "linkpath")
            }
            copied.name = rest
            if member.islnk():
                linked = _relative_member(member.linkname, top)
                if linked is None:
                    raise SandboxError(f"snapshot member {member.name!r} links to the folder")
                copied.linkname = linked
            dst.addfile(copied, src.extractfile(member) if member.isreg() else None)
            written += 1
    return written


# -- errors ----------------------------------------------------------------------------------


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a docker SDK error (`APIError.status_code`), if it has one."""
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _api_oserror(exc: BaseException, path: str) -> Exception:
    """An archive endpoint's error as the `OSError` that touching `path` inside would raise."""
    text = str(getattr(exc, "explanation", None) or exc)
    status = _status(exc)
    if status == 404 or "no such file" in text.lower():
        return FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    if status == 403 or "read-only" in text.lower() or "permission denied" in text.lower():
        return PermissionError(errno.EACCES, f"Permission denied ({text})", path)
    if "not a directory" in text.lower():
        return NotADirectoryError(errno.ENOTDIR, "Not a directory", path)
    return SandboxError(f"{path}: {text}")


_STDERR_ERRORS: tuple[tuple[str, type[OSError], int], ...] = (
    ("no such file or directory", FileNotFoundError, errno.ENOENT),
    ("is a directory", IsADirectoryError, errno.EISDIR),
    ("not a directory", NotADirectoryError, errno.ENOTDIR),
    ("permission denied", PermissionError, errno.EACCES),
    ("read-only file system", PermissionError, errno.EROFS),
    ("operation not permitted", PermissionError, errno.EPERM),
)


def _stderr_oserror(stderr: bytes, path: str) -> Exception:
    """The `OSError` a failed `cat`/`mkdir`/check inside reported on stderr.

    Example:
        >>> _stderr_oserror(b"cat: /x: No such file or directory", "/x")
        FileNotFoundError(2, 'No such file or directory')
    """
    text = stderr.decode("utf-8", "replace").strip()
    lowered = text.lower()
    for needle, kind, code in _STDERR_ERRORS:
        if needle in lowered:
            return kind(code, os.strerror(code), path)
    return SandboxError(f"{path}: {text or 'failed in the container'}")
