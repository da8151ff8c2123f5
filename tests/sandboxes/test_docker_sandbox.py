"""Tests of `DockerSandbox`.

Most run without a Docker engine: `FakeDocker` stands in for the engine only (it records how
containers and execs are asked for, serves exec output as the engine's multiplexed frames, and
keeps files in a dict behind the archive endpoints), so that what is tested is the sandbox's own
logic: container options, command wrapping, frame parsing, truncation, timeouts, tar building and
checking, error mapping and cleanup. The tests marked `docker` need a running engine and the image
built from `docker/swe-sandbox.Dockerfile`; they check the same behaviour for real.
"""

from __future__ import annotations

import base64
import gc
import io
import json
import posixpath
import socket
import struct
import sys
import tarfile
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from turnwise.sandboxes.base import ExecResult, Limits, Sandbox, SandboxError, SandboxUnavailable
from turnwise.sandboxes.docker import (
    _CLEAR,
    _DISCOVER,
    _KILL,
    _WRAPPER,
    _WRITE_BY_CAT,
    _WRITE_CHECK,
    DEFAULT_IMAGE,
    DockerSandbox,
    _api_oserror,
    _buffered_prefix,
    _Capture,
    _FrameDecoder,
    _may_read,
    _one_file_tar,
    _parse_discovery,
    _relative_member,
    _stderr_oserror,
    _strip_snapshot,
    swebench_image,
)

# -- a stand-in for the engine ------------------------------------------------------------------


def frame(stream: int, data: bytes) -> bytes:
    """One frame of Docker's multiplexed exec stream."""
    return struct.pack(">BxxxL", stream, len(data)) + data


class FakeAPIError(Exception):
    """Like `docker.errors.APIError`: carries the HTTP status and the engine's explanation."""

    def __init__(self, status_code: int, explanation: str = "") -> None:
        super().__init__(f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


@dataclass
class Reply:
    """What a fake exec prints and returns."""

    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    seconds: float = 0.0  # how long the command "runs" (the in-container timeout cuts it)
    hang: bool = False  # the stream never ends (the in-container timeout failed)


@dataclass
class Node:
    kind: str  # "file", "dir" or "link"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 1000
    gid: int = 1000
    target: str = ""


class FakeSocket:
    """The raw socket `exec_start(socket=True)` gives: frames out in small chunks, stdin in."""

    def __init__(self, data: bytes, *, hang: bool = False, chunk: int = 5) -> None:
        self._data = data
        self._hang = hang
        self._chunk = chunk
        self.served = 0
        self.stdin = bytearray()
        self.write_closed = False
        self.closed = threading.Event()
        self.timeout: float | None = 60.0

    def recv(self, size: int) -> bytes:
        if self._data:
            piece, self._data = self._data[: min(size, self._chunk)], self._data[self._chunk :]
            self.served += len(piece)
            return piece
        if self._hang:
            self.closed.wait()
        return b""

    def sendall(self, data: bytes) -> None:
        assert not self.write_closed
        self.stdin += data

    def shutdown(self, how: int) -> None:
        if how == socket.SHUT_WR:
            self.write_closed = True
        else:
            self.closed.set()

    def settimeout(self, value: float | None) -> None:
        self.timeout = value

    def close(self) -> None:
        self.closed.set()


class FakeContainer:
    """A container: a dict file system behind `put_archive`/`get_archive`."""

    def __init__(self, engine: FakeDocker, workdir: str) -> None:
        self.engine = engine
        self.id = f"c{len(engine.started)}"
        self.fs: dict[str, Node] = {"/": Node("dir", mode=0o755, uid=0, gid=0)}
        self.mkdirs(workdir)
        self.removed: list[dict[str, Any]] = []
        self.restarts = 0

    def mkdirs(self, path: str) -> None:
        parts = [p for p in path.split("/") if p]
        for i in range(1, len(parts) + 1):
            self.fs.setdefault("/" + "/".join(parts[:i]), Node("dir", mode=0o755))

    def put_archive(self, path: str, data: Any) -> bool:
        if self.fs.get(path, Node("file")).kind != "dir":
            raise FakeAPIError(404, f"Could not find the file {path} in container")
        if path.startswith("/usr"):
            raise FakeAPIError(500, "container rootfs is marked read-only")
        blob = data if isinstance(data, bytes) else data.read()
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for member in tar:
                name = member.name
                # What the sandbox sends must never point outside the destination folder.
                assert not name.startswith("/") and ".." not in name.split("/"), name
                dest = posixpath.join(path, name)
                self.mkdirs(posixpath.dirname(dest))
                if member.isdir():
                    node = Node("dir")
                elif member.issym():
                    node = Node("link", target=member.linkname)
                else:
                    handle = tar.extractfile(member)
                    node = Node("file", data=handle.read() if handle else b"")
                node.mode, node.uid, node.gid = member.mode, member.uid, member.gid
                self.fs[dest] = node
        return True

    def stat(self, path: str) -> dict[str, Any]:
        path = posixpath.normpath(path)
        node = self.fs.get(path)
        if node is None:
            raise FakeAPIError(404, f"Could not find the file {path} in container")
        mode = node.mode
        stat: dict[str, Any] = {"name": posixpath.basename(path), "size": len(node.data)}
        if node.kind == "dir":
            mode |= 1 << 31
        if node.kind == "link":
            mode |= 1 << 27
            stat["linkTarget"] = posixpath.normpath(
                posixpath.join(posixpath.dirname(path), node.target)
            )
        stat["mode"] = mode
        return stat

    def get_archive(self, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        stat = self.stat(path)
        path = posixpath.normpath(path)
        self.engine.archive_gets.append(path)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            top = posixpath.basename(path)
            for name in sorted(self.fs):
                if name == path or name.startswith(path + "/"):
                    self._add(tar, top + name[len(path) :], self.fs[name])
        blob = buffer.getvalue()
        return iter([blob[i : i + 7] for i in range(0, len(blob), 7)]), stat

    @staticmethod
    def _add(tar: tarfile.TarFile, name: str, node: Node) -> None:
        info = tarfile.TarInfo(name)
        info.mode, info.uid, info.gid = node.mode, node.uid, node.gid
        if node.kind == "dir":
            info.type = tarfile.DIRTYPE
        elif node.kind == "link":
            info.type, info.linkname = tarfile.SYMTYPE, node.target
        else:
            info.size = len(node.data)
        tar.addfile(info, io.BytesIO(node.data) if node.kind == "file" else None)

    def remove(self, **kwargs: Any) -> None:
        if self.removed:
            raise FakeAPIError(404, "No such container")
        self.removed.append(kwargs)

    def restart(self, timeout: int = 10) -> None:
        self.restarts += 1
        self.engine.stopped = False

    def files(self, under: str) -> dict[str, tuple[str, bytes, int, int, str]]:
        return {
            name: (node.kind, node.data, node.mode, node.uid, node.target)
            for name, node in self.fs.items()
            if name.startswith(under + "/")
        }


@dataclass
class Exec:
    argv: list[str]
    options: dict[str, Any]
    socket: FakeSocket | None = None
    exit_code: int = 0


@dataclass
class FakeDocker:
    """A `docker.DockerClient` as far as `DockerSandbox` uses one."""

    images_present: tuple[str, ...] = (DEFAULT_IMAGE,)
    workdir: str = "/workspace"
    responder: Callable[[list[str]], Reply] = lambda argv: Reply()
    discovery: str = "1000\n1000\n"
    image_user: str = "agent"
    kill_reply: Reply = field(default_factory=Reply)
    started: list[dict[str, Any]] = field(default_factory=list)
    execs: list[Exec] = field(default_factory=list)
    archive_gets: list[str] = field(default_factory=list)
    stopped: bool = False

    def __post_init__(self) -> None:
        self.containers = types.SimpleNamespace(run=self._run, get=self._get)
        self.images = types.SimpleNamespace(get=self._image)
        self.api = types.SimpleNamespace(
            exec_create=self._exec_create,
            exec_start=self._exec_start,
            exec_inspect=self._inspect,
            head=self._head,
            base_url="http+docker://localhost",
            api_version="1.45",
        )
        self.container: FakeContainer | None = None

    def _head(self, url: str, params: dict[str, str], timeout: Any = None) -> Any:
        """`HEAD /containers/{id}/archive?path=`: the stat header only."""
        assert self.container is not None
        assert url == f"http+docker://localhost/v1.45/containers/{self.container.id}/archive"
        try:
            stat = self.container.stat(params["path"])
        except FakeAPIError as exc:
            return types.SimpleNamespace(status_code=exc.status_code, headers={}, close=list)
        header = base64.b64encode(json.dumps(stat).encode()).decode()
        headers = {"X-Docker-Container-Path-Stat": header}
        return types.SimpleNamespace(status_code=200, headers=headers, close=list)

    def _image(self, name: str) -> object:
        if name not in self.images_present:
            raise FakeAPIError(404, f"No such image: {name}")
        return types.SimpleNamespace(attrs={"Config": {"User": self.image_user}})

    def _run(self, image: str, **kwargs: Any) -> FakeContainer:
        self.started.append({"image": image, **kwargs})
        self.container = FakeContainer(self, self.workdir)
        return self.container

    def _get(self, name: str) -> FakeContainer:
        assert self.container is not None
        return self.container

    def _exec_create(self, container_id: str, cmd: list[str], **options: Any) -> dict[str, str]:
        if self.stopped:
            raise FakeAPIError(409, f"container {container_id} is not running")
        self.execs.append(Exec(list(cmd), options))
        return {"Id": str(len(self.execs) - 1)}

    def _exec_start(self, exec_id: str, socket: bool = False, **_: Any) -> FakeSocket:
        assert socket, "the sandbox reads the raw stream itself"
        record = self.execs[int(exec_id)]
        reply = self._behave(record)
        if reply.seconds:
            time.sleep(reply.seconds)
        record.exit_code = reply.exit_code
        data = frame(1, reply.stdout) if reply.stdout else b""
        data += frame(2, reply.stderr) if reply.stderr else b""
        chunk = 5 if len(data) < 10_000 else 1 << 16  # small pieces split frames anywhere
        record.socket = FakeSocket(data, hang=reply.hang, chunk=chunk)
        return record.socket

    def _inspect(self, exec_id: str) -> dict[str, Any]:
        return {"Running": False, "ExitCode": self.execs[int(exec_id)].exit_code}

    def _behave(self, record: Exec) -> Reply:
        argv = record.argv
        if argv == ["sh", "-c", _DISCOVER]:
            return Reply(stdout=self.discovery.encode())
        if argv == ["sh", "-c", _KILL]:
            return self.kill_reply
        assert argv[:4] == ["sh", "-c", _WRAPPER, "sh"], argv
        seconds, inner = float(argv[4]), argv[5:]
        reply = self._inner(inner)
        if reply.seconds > seconds and not reply.hang:  # coreutils timeout --signal=KILL
            return Reply(reply.stdout, reply.stderr, 137, seconds)
        return reply

    def _inner(self, inner: list[str]) -> Reply:
        """Just enough of the sandbox's own helper scripts, on the dict file system."""
        assert self.container is not None
        fs = self.container.fs
        if inner[:3] == ["sh", "-c", _WRITE_CHECK]:
            path = posixpath.normpath(inner[4])
            if path.startswith("/usr/"):
                return Reply(stderr=f"{path}: Permission denied\n".encode(), exit_code=1)
            if fs.get(path, Node("file")).kind == "dir":
                return Reply(stderr=f"{path}: Is a directory\n".encode(), exit_code=1)
            self.container.mkdirs(posixpath.dirname(path))
            mode = fs[path].mode if path in fs else 0o644
            return Reply(stdout=f"{mode:o}\n{path}".encode())
        if inner[:3] == ["sh", "-c", _CLEAR]:
            for name in [n for n in fs if n.startswith(inner[4] + "/")]:
                del fs[name]
            return Reply()
        if inner[:3] == ["sh", "-c", _WRITE_BY_CAT]:
            return Reply()  # the data arrives on the socket after exec_start; tests look there
        if inner[:2] == ["cat", "--"]:
            node = fs.get(inner[2])
            if node is None:
                return Reply(
                    stderr=f"cat: {inner[2]}: No such file or directory".encode(), exit_code=1
                )
            return Reply(stdout=node.data)
        return self.responder(inner)


@pytest.fixture
def engine() -> FakeDocker:
    return FakeDocker()


def sandbox(engine: FakeDocker, **kwargs: Any) -> DockerSandbox:
    box = DockerSandbox(client=engine, **kwargs)
    box.host_grace = 0.3
    return box


# -- the container -------------------------------------------------------------------------------


def test_container_is_locked_down(engine: FakeDocker) -> None:
    limits = Limits(memory_mb=512, processes=40, file_size_mb=8, cpu_seconds=30)
    box = sandbox(engine, limits=limits, env={"LANG": "C.UTF-8"}, cpus=2)
    (started,) = engine.started
    assert started["image"] == DEFAULT_IMAGE
    assert started["command"] == ["sleep", "infinity"]
    assert started["detach"] is True and started["auto_remove"] is False and started["init"]
    assert started["network_mode"] == "none"
    assert started["mem_limit"] == started["memswap_limit"] == "512m"
    assert started["pids_limit"] == 40
    assert started["nano_cpus"] == 2_000_000_000
    assert started["cap_drop"] == ["ALL"]
    assert started["security_opt"] == ["no-new-privileges"]
    assert started["read_only"] is True
    assert set(started["tmpfs"]) == {"/tmp", "/run"}
    assert started["mounts"] == [{"Target": "/workspace", "Type": "volume", "ReadOnly": False}]
    assert started["labels"] == {"turnwise.sandbox": "1"}
    assert started["user"] == "65534:65534"  # the keeper; commands run as `user`
    assert started["working_dir"] == "/"
    assert engine.execs[0].options["user"] == "1000:1000"
    assert started["environment"] == {"LANG": "C.UTF-8", "HOME": "/tmp"}
    ulimits = {u["name"]: (u["soft"], u["hard"]) for u in started["ulimits"]}
    assert ulimits["fsize"] == (8 << 20, 8 << 20)
    assert ulimits["cpu"] == (30, 30)
    assert "nofile" in ulimits
    assert started["name"].startswith("turnwise-sandbox-")
    assert isinstance(box, Sandbox)
    box.close()


def test_swebench_style_container_keeps_a_writable_root(engine: FakeDocker) -> None:
    engine.workdir = "/testbed"
    engine.image_user = ""  # root
    engine.images_present = (swebench_image("django__django-11099"),)
    box = sandbox(
        engine,
        image=swebench_image("django__django-11099"),
        workdir="/testbed",
        user=None,
        read_only=False,
    )
    (started,) = engine.started
    assert started["read_only"] is False
    assert "tmpfs" not in started and "mounts" not in started
    assert "environment" not in started
    assert started["user"] == "65534:65534"
    assert engine.execs[0].options["user"] == "0"  # the image's own user, root
    assert engine.execs[0].options["workdir"] == "/testbed"
    box.close()


@pytest.mark.parametrize("workdir", ["/", "workspace", ""])
def test_workdir_must_be_absolute_below_root(engine: FakeDocker, workdir: str) -> None:
    with pytest.raises(ValueError):
        sandbox(engine, workdir=workdir)
    assert engine.started == []


def test_missing_image_says_how_to_get_it(engine: FakeDocker) -> None:
    engine.images_present = ()
    with pytest.raises(SandboxUnavailable) as built:
        sandbox(engine)
    assert "docker build -f docker/swe-sandbox.Dockerfile -t turnwise-swe-sandbox ." in str(
        built.value
    )
    with pytest.raises(SandboxUnavailable) as pulled:
        sandbox(engine, image="swebench/sweb.eval.x86_64.a_1776_b-1:latest")
    assert "docker pull swebench/sweb.eval.x86_64.a_1776_b-1:latest" in str(pulled.value)
    assert engine.started == []


def test_missing_sdk_and_missing_engine_are_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "docker", None)
    with pytest.raises(SandboxUnavailable, match=r"pip install 'turnwise\[swe\]'"):
        DockerSandbox()

    class DockerException(Exception):
        pass

    def from_env() -> Any:
        raise DockerException("Error while fetching server API version: Connection refused")

    fake_sdk = types.SimpleNamespace(from_env=from_env)
    monkeypatch.setitem(sys.modules, "docker", fake_sdk)
    monkeypatch.setenv("DOCKER_HOST", "tcp://nowhere:2375")
    with pytest.raises(SandboxUnavailable, match="DOCKER_HOST is tcp://nowhere:2375") as info:
        DockerSandbox()
    assert "no Docker engine answered" in str(info.value)


def test_the_image_user_is_used_when_none_is_given(engine: FakeDocker) -> None:
    engine.discovery = "1000\n1000 27\n"
    box = sandbox(engine, user=None)
    assert box._uid == 1000 and box._gids == (1000, 27)
    box.run("true")
    assert engine.execs[-1].options["user"] == "agent"
    box.close()


def test_commands_never_share_the_keepers_uid(engine: FakeDocker) -> None:
    box = sandbox(engine, user="65534:65534")
    assert engine.started[-1]["user"] == "65533:65533"
    box.close()
    engine.discovery = "65534\n65534\n"  # "nobody", by name
    with pytest.raises(SandboxError, match="pick another user"):
        sandbox(engine, user="nobody")
    assert engine.container is not None and engine.container.removed


def test_parse_discovery_rejects_garbage() -> None:
    assert _parse_discovery("") is None
    assert _parse_discovery("uid\n1000\n") is None
    assert _parse_discovery("1000\n1000 x\n") is None
    assert _parse_discovery("1000\n") is None
    assert _parse_discovery("0\n0\n") == (0, (0,))


# -- commands ------------------------------------------------------------------------------------


def test_string_commands_run_under_timeout_bash_and_the_prefix(engine: FakeDocker) -> None:
    box = sandbox(engine, shell_prefix="source /opt/env && ")
    box.run("echo hi", timeout=7)
    box.run(["python", "-c", "print(1)"])
    string, argv = engine.execs[-2], engine.execs[-1]
    assert string.argv == [
        "sh",
        "-c",
        _WRAPPER,
        "sh",
        "7.000",
        "bash",
        "-c",
        "source /opt/env && echo hi",
    ]
    assert argv.argv[4] == "60.000" and argv.argv[5:] == ["python", "-c", "print(1)"]
    assert string.options["user"] == "1000:1000"
    assert string.options["workdir"] == "/workspace"
    assert string.options["tty"] is False and string.options["stdin"] is False
    with pytest.raises(ValueError):
        box.run([])
    with pytest.raises(ValueError):
        box.run("true", timeout=0)
    box.close()


def test_the_wrapper_kills_with_coreutils_timeout_then_sweeps() -> None:
    assert 'timeout --signal=KILL --kill-after=1 "$t" "$@"' in _WRAPPER
    assert "kill -9 -1" in _WRAPPER and _WRAPPER.endswith("exit $rc")


def test_stdout_and_stderr_come_apart(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(b"out\n" * 10, "é err".encode(), 3)
    box = sandbox(engine)
    result = box.run("whatever")
    assert result == ExecResult(3, "out\n" * 10, "é err", duration=result.duration)
    assert not result.ok and not result.truncated
    box.close()


def test_output_beyond_the_limit_is_drained_and_dropped(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(b"a" * 5000, b"b" * 30)
    box = sandbox(engine, limits=Limits(output_bytes=100))
    result = box.run("spam")
    assert result.stdout == "a" * 100 and result.stderr == "b" * 30
    assert result.truncated and result.exit_code == 0
    sock = engine.execs[-1].socket
    assert sock is not None and sock.served == 5000 + 30 + 16  # everything was read
    assert sock.timeout is None  # the client's read timeout is off for quiet commands
    box.close()


def test_stdin_is_written_then_closed(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.run("cat", stdin=b"x" * 100_000)
    record = engine.execs[-1]
    assert record.options["stdin"] is True
    assert record.socket is not None
    assert bytes(record.socket.stdin) == b"x" * 100_000 and record.socket.write_closed
    box.run("cat", stdin=b"")
    assert engine.execs[-1].socket.write_closed  # type: ignore[union-attr]
    box.run("cat")
    assert engine.execs[-1].options["stdin"] is False
    assert not engine.execs[-1].socket.write_closed  # type: ignore[union-attr]
    box.close()


def test_killed_at_the_timeout_is_timed_out(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(b"partial", seconds=5.0)
    box = sandbox(engine)
    result = box.run("sleep 5", timeout=0.2)
    assert result.timed_out and result.exit_code == -9 and result.stdout == "partial"
    assert 0.2 <= result.duration < 2
    box.close()


def test_an_early_sigkill_is_not_a_timeout(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(exit_code=137)  # e.g. the OOM killer
    box = sandbox(engine)
    result = box.run("python hog.py", timeout=30)
    assert result.exit_code == 137 and not result.timed_out
    box.close()


def test_the_host_deadline_kills_a_command_the_container_did_not(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(b"stuck", hang=True)
    box = sandbox(engine)
    start = time.monotonic()
    result = box.run("sleep 100", timeout=0.1)
    assert time.monotonic() - start < 3
    assert result.timed_out and result.exit_code == -9 and result.stdout == "stuck"
    hung = next(e for e in engine.execs if e.socket is not None and e.socket._hang)
    assert hung.socket is not None and hung.socket.closed.is_set()
    assert engine.execs[-1].argv == ["sh", "-c", _KILL]
    assert engine.container is not None and engine.container.restarts == 0
    box.close()


def test_a_failed_sweep_restarts_the_container(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(hang=True)
    engine.kill_reply = Reply(exit_code=1)
    box = sandbox(engine)
    assert box.run("sleep 100", timeout=0.1).timed_out
    assert engine.container is not None and engine.container.restarts == 1
    box.close()


def test_a_stopped_container_is_restarted_once(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(b"ok")
    box = sandbox(engine)
    engine.stopped = True
    assert box.run("echo ok").stdout == "ok"
    assert engine.container is not None and engine.container.restarts == 1
    box.close()


def test_a_failing_setup_removes_the_container(engine: FakeDocker) -> None:
    engine.responder = lambda argv: Reply(stderr=b"no such env", exit_code=2)
    with pytest.raises(SandboxError, match="no such env"):
        sandbox(engine, setup="conda activate nope", shell_prefix="source a && ")
    assert engine.execs[-1].argv[-1] == "source a && conda activate nope"
    assert engine.container is not None and engine.container.removed == [{"force": True, "v": True}]


# -- the stream ----------------------------------------------------------------------------------


def test_frames_split_anywhere_decode_the_same() -> None:
    stream = frame(1, b"hello ") + frame(2, b"oops") + frame(1, b"") + frame(1, b"world")
    stream += frame(3, b"engine error")
    for cut in range(1, len(stream)):
        decoder = _FrameDecoder()
        capture = _Capture(None)
        for part in (stream[:cut], stream[cut:]):
            for kind, piece in decoder.feed(part):
                capture.add(kind, piece)
        assert capture.result() == (b"hello world", b"oopsengine error", False)
        assert not decoder.mid_frame
    decoder = _FrameDecoder()
    pieces = [decoder.feed(bytes([b])) for b in frame(1, b"abc")]
    assert [p for p in pieces if p] == [[(1, b"a")], [(1, b"b")], [(1, b"c")]]


def test_a_large_frame_is_passed_on_as_it_arrives() -> None:
    decoder = _FrameDecoder()
    header = struct.pack(">BxxxL", 1, 1 << 30)
    assert decoder.feed(header + b"x" * 10) == [(1, b"x" * 10)]
    assert decoder.mid_frame


def test_a_stream_that_is_not_frames_is_an_error() -> None:
    with pytest.raises(SandboxError, match="frame header"):
        _FrameDecoder().feed(b"HTTP/1.1 500 Internal")
    with pytest.raises(SandboxError):
        _FrameDecoder().feed(struct.pack(">BxxxL", 7, 1) + b"x")


def test_output_the_http_client_buffered_is_not_lost() -> None:
    """A real socket pair and buffered reader, as `http.client` leaves them after the headers."""
    ours, engine_end = socket.socketpair()
    with ours, engine_end:
        engine_end.sendall(b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\n\r\n" + frame(1, b"early"))
        reader = ours.makefile("rb")
        while reader.readline() not in (b"\r\n", b""):
            pass
        sock = reader.raw  # what the SDK returns: the SocketIO under the reader
        sock._response = types.SimpleNamespace(  # type: ignore[attr-defined]
            raw=types.SimpleNamespace(_fp=types.SimpleNamespace(fp=reader))
        )
        assert _buffered_prefix(sock) == frame(1, b"early")
        assert _buffered_prefix(sock) == b""  # nothing more: returns at once, does not wait
        engine_end.sendall(frame(2, b"late"))
        assert ours.recv(100) == frame(2, b"late")  # the socket is blocking again
        assert _buffered_prefix(object()) == b""
        reader.close()


def test_capture_keeps_each_stream_up_to_its_limit() -> None:
    capture = _Capture(4)
    capture.add(1, b"abcd")
    capture.add(2, b"12")
    assert capture.result() == (b"abcd", b"12", False)
    capture.add(1, b"e")
    capture.add(2, b"345")
    assert capture.result() == (b"abcd", b"1234", True)


# -- files ---------------------------------------------------------------------------------------


def test_source_is_copied_in_owned_by_the_user(engine: FakeDocker, tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "link").symlink_to("/etc/passwd")  # stays a link, resolved in the container
    engine.discovery = "1000\n1001\n"
    box = sandbox(engine, source=tmp_path)
    assert engine.container is not None
    files = engine.container.files("/workspace")
    assert files["/workspace/pkg/mod.py"] == ("file", b"x = 1\n", 0o644, 1000, "")
    assert files["/workspace/run.sh"][2] == 0o755
    assert files["/workspace/link"][0] == "link" and files["/workspace/link"][4] == "/etc/passwd"
    for name in ("pkg", "pkg/mod.py", "run.sh", "link"):
        node = engine.container.fs["/workspace/" + name]
        assert (node.uid, node.gid) == (1000, 1001), name
    box.close()


def test_source_must_be_a_folder(engine: FakeDocker, tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError):
        sandbox(engine, source=tmp_path / "absent")
    assert engine.started == []


def test_write_then_read(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.write("deep/dir/a.txt", "héllo")
    assert box.read("deep/dir/a.txt") == "héllo".encode()
    assert box.read("/workspace/deep/dir/a.txt") == "héllo".encode()
    assert engine.container is not None
    node = engine.container.fs["/workspace/deep/dir/a.txt"]
    assert (node.mode, node.uid, node.gid) == (0o644, 1000, 1000)
    node.mode = 0o755
    box.write("deep/dir/a.txt", b"\x00\xff")  # a replaced file keeps its mode
    assert box.read("deep/dir/a.txt") == b"\x00\xff"
    assert engine.container.fs["/workspace/deep/dir/a.txt"].mode == 0o755
    box.close()


def test_read_follows_symlinks_inside(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.write("real.txt", b"data")
    assert engine.container is not None
    engine.container.fs["/workspace/alias"] = Node("link", target="real.txt")
    engine.container.fs["/workspace/dangling"] = Node("link", target="/nowhere")
    assert box.read("alias") == b"data"
    with pytest.raises(FileNotFoundError):
        box.read("dangling")
    box.close()


def test_read_errors(engine: FakeDocker) -> None:
    box = sandbox(engine)
    assert engine.container is not None
    engine.container.fs["/etc"] = Node("dir", mode=0o755, uid=0, gid=0)
    engine.container.fs["/etc/shadow"] = Node("file", b"secret", mode=0o640, uid=0, gid=42)
    with pytest.raises(FileNotFoundError):
        box.read("absent.txt")
    with pytest.raises(IsADirectoryError):
        box.read(".")
    assert engine.archive_gets == []  # a folder is never streamed just to refuse it
    with pytest.raises(PermissionError):
        box.read("/etc/shadow")
    box._gids = (1000, 42)  # in the shadow group
    assert box.read("/etc/shadow") == b"secret"
    box.close()


def test_files_larger_than_file_size_mb_are_refused(engine: FakeDocker) -> None:
    box = sandbox(engine, limits=Limits(file_size_mb=1))
    with pytest.raises(SandboxError, match="too large"):
        box.write("big", b"x" * ((1 << 20) + 1))
    box.write("fits", b"x" * (1 << 20))
    assert engine.container is not None
    engine.container.fs["/workspace/big"] = Node("file", b"x" * ((1 << 20) + 1))
    with pytest.raises(SandboxError, match="too large"):
        box.read("big")
    assert "/workspace/big" not in engine.archive_gets  # refused from the stat alone
    assert len(box.read("fits")) == 1 << 20
    engine.container.fs["/tmp/big"] = Node("file", b"x" * ((1 << 20) + 1))
    with pytest.raises(SandboxError, match="too large"):
        box.read("/tmp/big")
    box.close()


def test_write_errors(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.write("sub/x", b"1")
    with pytest.raises(IsADirectoryError):
        box.write("sub", b"no")
    with pytest.raises(PermissionError):
        box.write("/usr/lib/evil.py", b"no")
    box.close()


def test_tmpfs_paths_go_through_cat(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.write("/tmp/notes.txt", b"scratch")
    record = engine.execs[-1]
    assert record.argv[5:] == ["sh", "-c", _WRITE_BY_CAT, "sh", "/tmp/notes.txt"]
    assert record.socket is not None and bytes(record.socket.stdin) == b"scratch"
    assert engine.container is not None
    engine.container.fs["/tmp/notes.txt"] = Node("file", b"scratch")
    assert box.read("/tmp/notes.txt") == b"scratch"
    assert engine.execs[-1].argv[5:] == ["cat", "--", "/tmp/notes.txt"]
    with pytest.raises(FileNotFoundError):
        box.read("/tmp/absent")
    box.close()


def test_snapshot_and_restore(engine: FakeDocker) -> None:
    box = sandbox(engine)
    with pytest.raises(SandboxError, match="without a snapshot"):
        box.restore()
    box.write("keep.txt", b"original")
    box.write("gone.txt", b"deleted later")
    box.write("a/" + "long-name-" * 15 + ".py", b"pax path")  # longer than 100 bytes
    assert engine.container is not None
    fs = engine.container.fs
    fs["/workspace/link"] = Node("link", target="keep.txt")
    before = engine.container.files("/workspace")
    box.snapshot()
    snapshot = box._state.snapshot
    assert snapshot is not None and Path(snapshot).is_file()
    fs["/workspace/keep.txt"] = Node("file", b"edited")
    del fs["/workspace/gone.txt"]
    fs["/workspace/new.txt"] = Node("file", b"added")
    box.restore()
    assert engine.container.files("/workspace") == before
    fs["/workspace/new.txt"] = Node("file", b"again")
    box.restore()  # a snapshot restores any number of times
    assert engine.container.files("/workspace") == before
    box.snapshot()
    assert not Path(snapshot).exists()  # replaced
    box.close()
    assert box._state.snapshot is None


def test_close_is_idempotent(engine: FakeDocker) -> None:
    box = sandbox(engine)
    box.write("a", b"1")
    box.snapshot()
    snapshot = box._state.snapshot
    assert not box.closed and "no snapshot" not in repr(box)
    box.close()
    box.close()
    assert (
        box.closed
        and repr(box) == "DockerSandbox('turnwise-swe-sandbox', workdir='/workspace', closed)"
    )
    assert engine.container is not None
    assert engine.container.removed == [{"force": True, "v": True}]
    assert snapshot is not None and not Path(snapshot).exists()
    with pytest.raises(SandboxError, match="closed"):
        box.run("true")
    with pytest.raises(SandboxError, match="closed"):
        box.read("a")


def test_a_forgotten_sandbox_is_removed(engine: FakeDocker) -> None:
    with sandbox(engine) as box:
        box.run("true")
    assert engine.container is not None and len(engine.container.removed) == 1
    sandbox(engine)
    gc.collect()
    assert len(engine.container.removed) == 1


# -- tar helpers ---------------------------------------------------------------------------------


def make_tar(*members: tuple[str, str, bytes | str]) -> bytes:
    """A tar of (name, kind, data or link target) members; kind is f, d, l (symlink), h, c."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE}.get(
                kind, {"h": tarfile.LNKTYPE, "c": tarfile.CHRTYPE}.get(kind, tarfile.REGTYPE)
            )
            data = payload if isinstance(payload, bytes) else b""
            if kind in "lh":
                info.linkname = str(payload)
            if kind == "f":
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if kind == "f" else None)
    return buffer.getvalue()


def strip(blob: bytes) -> list[tuple[str, str, bytes]]:
    out = io.BytesIO()
    _strip_snapshot(io.BytesIO(blob), out, "workspace")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        result = []
        for m in tar:
            handle = tar.extractfile(m) if m.isreg() else None
            result.append((m.name, m.linkname, handle.read() if handle else b""))
        return result


def test_snapshot_names_lose_the_leading_folder() -> None:
    long = "workspace/" + "d" * 120 + "/" + "f" * 120
    blob = make_tar(
        ("workspace/", "d", b""),
        ("workspace/a.txt", "f", b"A"),
        ("./workspace/sub/", "d", b""),
        (long, "f", b"L"),
        ("workspace/ln", "l", "../../etc/passwd"),  # a symlink's target is the container's
        ("workspace/hard", "h", "workspace/a.txt"),
        ("workspace/tty", "c", b""),  # devices are dropped
    )
    assert strip(blob) == [
        ("a.txt", "", b"A"),
        ("sub", "", b""),
        (long.split("/", 1)[1], "", b"L"),
        ("ln", "../../etc/passwd", b""),
        ("hard", "a.txt", b""),
    ]


@pytest.mark.parametrize(
    "member",
    [
        ("/etc/passwd", "f", b"x"),
        ("workspace/../etc/passwd", "f", b"x"),
        ("workspace/a/../../x", "f", b"x"),
        ("other/x", "f", b"x"),
        ("../workspace/x", "f", b"x"),
        ("workspace/hard", "h", "workspace/../etc/passwd"),
        ("workspace/hard", "h", "/etc/passwd"),
    ],
)
def test_snapshot_members_outside_the_folder_are_rejected(member: tuple[str, str, Any]) -> None:
    with pytest.raises(SandboxError, match="not inside workspace"):
        strip(make_tar(("workspace/", "d", b""), member))


def test_relative_member() -> None:
    assert _relative_member("workspace", "workspace") is None
    assert _relative_member("workspace/a//b/./c", "workspace") == "a/b/c"
    with pytest.raises(SandboxError):
        _relative_member("workspaces/a", "workspace")


def test_one_file_tar() -> None:
    blob = _one_file_tar("a.py", b"print()", uid=1000, gid=1001)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        (member,) = tar.getmembers()
        assert (member.name, member.uid, member.gid, member.mode) == ("a.py", 1000, 1001, 0o644)
        assert member.isreg()
        handle = tar.extractfile(member)
        assert handle is not None and handle.read() == b"print()"
    for bad in ("", "a/b", "..", "."):
        with pytest.raises(ValueError):
            _one_file_tar(bad, b"", uid=0, gid=0)


def test_may_read_follows_owner_group_other_bits() -> None:
    info = tarfile.TarInfo("f")
    info.uid, info.gid, info.mode = 0, 42, 0o640
    assert not _may_read(info, 1000, (1000,))
    assert _may_read(info, 1000, (1000, 42))
    assert _may_read(info, 0, (0,))
    info.mode = 0o044
    assert not _may_read(info, 0, (0,))  # no CAP_DAC_OVERRIDE: root obeys its own bits
    assert _may_read(info, 1000, (1000,))


def test_error_mapping() -> None:
    assert isinstance(_api_oserror(FakeAPIError(404, "no"), "/x"), FileNotFoundError)
    assert isinstance(
        _api_oserror(FakeAPIError(500, "container rootfs is marked read-only"), "/x"),
        PermissionError,
    )
    other = _api_oserror(FakeAPIError(500, "disk full"), "/x")
    assert isinstance(other, SandboxError) and "disk full" in str(other)
    assert isinstance(_stderr_oserror(b"cat: /d: Is a directory", "/d"), IsADirectoryError)
    denied = _stderr_oserror(b"mkdir: cannot create directory '/usr/x': Read-only file system", "")
    assert isinstance(denied, PermissionError)
    assert isinstance(_stderr_oserror(b"weird", "/x"), SandboxError)


def test_swebench_image() -> None:
    assert swebench_image("sympy__sympy-20590") == (
        "swebench/sweb.eval.x86_64.sympy_1776_sympy-20590:latest"
    )
    assert swebench_image("Pydata__Xarray-1", "arm64") == (
        "swebench/sweb.eval.arm64.pydata_1776_xarray-1:latest"
    )


# -- with a real engine --------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (tmp_path / "README").write_text("hello\n")
    return tmp_path


@pytest.fixture
def box(repo: Path) -> Iterator[DockerSandbox]:
    try:
        sandbox = DockerSandbox(source=repo, limits=Limits(timeout=20, processes=64))
    except SandboxUnavailable as exc:  # an engine, but not the image
        pytest.skip(str(exc))
    with sandbox:
        yield sandbox


@pytest.mark.docker
def test_engine_run(box: DockerSandbox) -> None:
    result = box.run("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert box.run(["python", "-c", "import os; print(os.getcwd(), os.getuid())"]).stdout == (
        "/workspace 1000\n"
    )
    assert box.run("cat src/calc.py").stdout.startswith("def add")
    assert box.run("stat -c %U src/calc.py").stdout.strip() == "agent"


@pytest.mark.docker
def test_engine_stdin(box: DockerSandbox) -> None:
    data = bytes(range(256)) * 1000
    assert box.run("wc -c", stdin=data).stdout.strip() == str(len(data))
    assert box.run("wc -c", stdin=b"").stdout.strip() == "0"
    assert box.run("wc -c").stdout.strip() == "0"  # no stdin: end of file at once


@pytest.mark.docker
def test_engine_timeout_kills_everything(box: DockerSandbox) -> None:
    start = time.monotonic()
    result = box.run("echo started; sleep 60", timeout=1)
    assert result.timed_out and result.exit_code == -9 and result.stdout == "started\n"
    assert time.monotonic() - start < 10
    pid = box.run("sleep 300 > /dev/null 2>&1 & echo $!").stdout.strip()
    assert pid.isdigit()
    assert box.run(f"test -e /proc/{pid}").exit_code == 1  # nothing outlives its command
    assert box.run("echo alive").ok


@pytest.mark.docker
def test_engine_truncation(repo: Path) -> None:
    try:
        sandbox = DockerSandbox(source=repo, limits=Limits(output_bytes=1000))
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    with sandbox:
        result = sandbox.run("head -c 5000000 /dev/zero | tr '\\0' a; echo done >&2")
        assert result.stdout == "a" * 1000 and result.stderr == "done\n" and result.truncated


@pytest.mark.docker
def test_engine_read_write(box: DockerSandbox) -> None:
    box.write("new/dir/file.txt", "héllo\n")
    assert box.read("new/dir/file.txt") == "héllo\n".encode()
    assert box.run("cat new/dir/file.txt; stat -c '%U %a' new/dir/file.txt").stdout == (
        "héllo\nagent 644\n"
    )
    assert box.run("ln -s src/calc.py alias").ok
    assert box.read("alias").startswith(b"def add")
    box.write("/tmp/scratch.bin", bytes(range(256)))
    assert box.read("/tmp/scratch.bin") == bytes(range(256))
    assert box.run("wc -c < /tmp/scratch.bin").stdout.strip() == "256"
    with pytest.raises(FileNotFoundError):
        box.read("absent")
    with pytest.raises(IsADirectoryError):
        box.read("src")
    with pytest.raises(PermissionError):
        box.read("/etc/shadow")
    with pytest.raises(PermissionError):
        box.write("/usr/evil.py", b"")


@pytest.mark.docker
def test_engine_snapshot_restore(box: DockerSandbox) -> None:
    listing = "find . -printf '%p %m %s %u\\n' | sort; cat src/calc.py README"
    before = box.run(listing).stdout
    box.snapshot()
    assert box.run(
        "echo edited > README && rm src/calc.py && mkdir -p extra && touch extra/x && chmod 700 src"
    ).ok
    assert box.run(listing).stdout != before
    box.restore()
    assert box.run(listing).stdout == before
    box.write("README", b"again")
    box.restore()
    assert box.read("README") == b"hello\n"


@pytest.mark.docker
def test_engine_isolation(box: DockerSandbox) -> None:
    connect = (
        "import socket; s = socket.socket(); s.settimeout(3)\n"
        "try:\n    s.connect(('1.1.1.1', 53)); print('connected')\n"
        "except OSError as e:\n    print('refused', e)"
    )
    assert box.run(["python", "-c", connect]).stdout.startswith("refused")
    assert box.run("ls /sys/class/net").stdout.split() == ["lo"]
    touched = box.run("touch /usr/x")
    assert touched.exit_code != 0 and "Read-only file system" in touched.stderr
    bomb = box.run("bomb() { bomb | bomb & }; bomb; sleep 3", timeout=5)
    assert bomb.exit_code != 0 or bomb.timed_out
    assert box.run("echo survived").stdout == "survived\n"


@pytest.mark.docker
def test_engine_close_removes_the_container(repo: Path) -> None:
    import docker

    client = docker.from_env()  # type: ignore[attr-defined]  # mypy sees the repo's docker/ folder
    try:
        sandbox = DockerSandbox(source=repo, client=client)
    except SandboxUnavailable as exc:
        pytest.skip(str(exc))
    container_id = sandbox._container.id

    def ours() -> list[str]:
        found = client.containers.list(all=True, filters={"label": "turnwise.sandbox"})
        return [c.id for c in found if c.id == container_id]

    assert ours() == [container_id]
    sandbox.close()
    sandbox.close()
    assert ours() == []
