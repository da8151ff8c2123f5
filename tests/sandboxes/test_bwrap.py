"""Tests of the bubblewrap sandbox: commands, files, limits, python=True, snapshot and restore."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnwise.sandboxes.base import WORKSPACE, Limits, Sandbox, SandboxError
from turnwise.sandboxes.bwrap import BwrapSandbox, bwrap_available

pytestmark = pytest.mark.sandbox

FAST = Limits(timeout=20, memory_mb=1024, cpu_seconds=20, processes=64, output_bytes=64 << 10)
Y2K = 946684800  # 2000-01-01T00:00:00Z


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small project: files, a package folder, an empty folder, a symlink, an old file."""
    root = tmp_path / "src"
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("bravo\n")
    (root / "five.txt").write_text("hello")
    os.utime(root / "five.txt", (Y2K, Y2K))
    (root / "pkg" / "__init__.py").write_text("X = 1\n")
    (root / "pkg" / "sub" / "mod.py").write_text("def f():\n    return 2\n")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    (root / "run.sh").chmod(0o755)
    (root / "link").symlink_to("a.txt")
    return root


@pytest.fixture
def box(source: Path) -> Iterator[BwrapSandbox]:
    with BwrapSandbox(source, limits=FAST) as sandbox:
        yield sandbox


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything `restore` must bring back: type, mode, owner, size, mtime, content/target."""
    out: dict[str, tuple[object, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                body: object = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            size = None if stat.S_ISDIR(st.st_mode) else st.st_size
            key = (st.st_mode, st.st_uid, st.st_gid, size, st.st_mtime_ns, body)
            out[os.path.relpath(path, root)] = key
    st = os.lstat(root)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


def test_available_and_protocol(box: BwrapSandbox) -> None:
    assert bwrap_available() is None
    assert isinstance(box, Sandbox)
    assert "BwrapSandbox(" in repr(box)


def test_exit_codes_stdout_stderr_and_stdin(box: BwrapSandbox) -> None:
    result = box.run("echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok and not result.timed_out and not result.truncated
    assert result.duration > 0
    assert box.run("tr a-z A-Z", stdin=b"shout\n").stdout == "SHOUT\n"
    assert box.run("pwd; echo $HOME").stdout == f"{WORKSPACE}\n/tmp\n"
    assert box.run("printf '\\xff\\xfe'").stdout == "\ufffd\ufffd"  # undecodable: replaced


def test_argv_and_string_commands(box: BwrapSandbox) -> None:
    assert box.run(["printf", "%s|", "a b", "$HOME"]).stdout == "a b|$HOME|"
    assert box.run("printf '%s|' $HOME").stdout == "/tmp|"
    assert box.run(["cat", "a.txt"]).stdout == "alpha\n"
    assert box.run(["no-such-program"]).exit_code != 0
    with pytest.raises(ValueError):
        box.run([])


def test_the_workspace_is_a_private_copy(box: BwrapSandbox, source: Path) -> None:
    assert box.run("echo changed > a.txt").ok
    assert (source / "a.txt").read_text() == "alpha\n"
    assert (box.workspace / "a.txt").read_text() == "changed\n"
    assert box.run("ls -A").stdout.split() == sorted(os.listdir(source))


def test_timeout_kills_the_tree(box: BwrapSandbox) -> None:
    result = box.run("sleep 100 & sleep 100; wait", timeout=1)
    assert result.timed_out and result.exit_code == -9 and not result.ok
    assert result.duration < 1 + 5
    assert box.run("echo still usable").stdout == "still usable\n"


def test_output_is_truncated_and_flagged(box: BwrapSandbox) -> None:
    result = box.run("head -c 200000 /dev/zero | tr '\\0' x; echo tail >&2")
    assert result.truncated and len(result.stdout) == FAST.output_bytes
    assert result.stderr == "tail\n" and result.ok
    assert not box.run("echo short").truncated


def test_read_write_round_trip(box: BwrapSandbox) -> None:
    blob = bytes(range(256)) * 10
    box.write("deep/er/still/blob.bin", blob)
    assert box.read("deep/er/still/blob.bin") == blob
    assert box.read(f"{WORKSPACE}/deep/er/still/blob.bin") == blob
    box.write("text.txt", "héllo\n")
    assert box.read("text.txt") == "héllo\n".encode()
    assert box.run("cat text.txt").stdout == "héllo\n"
    box.write("text.txt", b"")
    assert box.read("text.txt") == b""
    assert box.read("link") == b"alpha\n"  # a symlink inside the workspace is fine


def test_read_write_errors(box: BwrapSandbox) -> None:
    with pytest.raises(FileNotFoundError):
        box.read("missing.txt")
    with pytest.raises(IsADirectoryError):
        box.read("pkg")
    with pytest.raises(IsADirectoryError):
        box.write("pkg", "x")
    with pytest.raises(PermissionError):
        box.write("/usr/new.txt", "x")
    with pytest.raises(SandboxError, match="too large"):
        box.write("big", b"x" * ((FAST.file_size_mb << 20) + 1))


def test_env_vars_pass_and_the_host_env_does_not(
    source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNWISE_HOST_ONLY", "leak")
    with BwrapSandbox(source, limits=FAST, env={"GREETING": "hi there", "LANG": "C"}) as box:
        env = dict(line.split("=", 1) for line in box.run("env").stdout.splitlines())
    assert env["GREETING"] == "hi there" and env["LANG"] == "C"
    assert env["HOME"] == "/tmp" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "TURNWISE_HOST_ONLY" not in env


def test_python_runs_inside(tmp_path: Path) -> None:
    with BwrapSandbox(limits=FAST, python=True) as box:
        result = box.run(["python", "-c", "import sys; print(sys.version_info[:2])"])
        assert result.ok, result.output
        assert result.stdout.strip() == str(tuple(sys.version_info[:2]))
        assert box.run("python3 -c 'print(6 * 7)'").stdout == "42\n"
        box.write(
            "test_tiny.py",
            "def test_adds():\n    assert 1 + 1 == 2\n\n\ndef test_fails():\n    assert 1 == 2\n",
        )
        result = box.run("python -m pytest -q -p no:cacheprovider test_tiny.py", timeout=60)
        assert result.exit_code == 1, result.output
        assert "1 failed, 1 passed" in result.stdout
        assert "__pycache__" not in box.run("ls -A").stdout  # PYTHONDONTWRITEBYTECODE=1


def test_no_python_without_the_flag(box: BwrapSandbox) -> None:
    if sys.prefix.startswith("/usr"):
        pytest.skip("the interpreter lives under /usr, which every sandbox sees")
    assert box.run([sys.executable, "-c", "pass"]).exit_code != 0


# ---------------------------------------------------------------------------- snapshot / restore
MUTATIONS = {
    "edit": "echo changed > a.txt",
    "append in place": "echo more >> a.txt",
    "delete": "rm a.txt pkg/sub/mod.py",
    "delete a folder": "rm -rf pkg",
    "add a file": "echo new > new.txt",
    "add folders": "mkdir -p d/e && echo x > d/e/f && mkdir empty/inner",
    "chmod": "chmod 600 a.txt && chmod 700 pkg && chmod -x run.sh",
    "chmod the root": "chmod 700 .",
    "unreadable folder": "mkdir -p locked/in && echo x > locked/in/f && chmod 000 locked/in locked",
    "locked original folder": "chmod 000 pkg/sub",
    "symlinks": "ln -s /etc/passwd newlink && rm b.txt && ln -s a.txt b.txt && ln -sf b.txt link",
    "file becomes folder": "rm a.txt && mkdir a.txt && echo x > a.txt/y",
    "folder becomes file": "rm -rf pkg && echo x > pkg",
    "same size, backdated": "printf HELLO > five.txt && touch -d @946684800 five.txt",
    "rename": "mv a.txt renamed.txt && mv pkg pkg2",
    "fifo": "mkfifo pipe",
    "hard link": "ln b.txt hard",
    "touch a folder": "touch -d @946684800 pkg",
}


@pytest.mark.parametrize("change", list(MUTATIONS), ids=list(MUTATIONS))
def test_restore_undoes(change: str, box: BwrapSandbox) -> None:
    box.snapshot()
    before = tree(box.workspace)
    result = box.run(MUTATIONS[change])
    assert result.ok, result.output
    assert tree(box.workspace) != before
    box.restore()
    assert tree(box.workspace) == before
    assert box.run("cat a.txt pkg/sub/mod.py").ok
    assert box.run("echo again >> b.txt").ok  # the manifest was updated: a second round works
    box.restore()
    assert tree(box.workspace) == before


def test_restore_keeps_unchanged_files(box: BwrapSandbox) -> None:
    box.snapshot()
    inode = os.lstat(box.workspace / "pkg" / "sub" / "mod.py").st_ino
    assert box.run("echo changed > a.txt").ok
    box.restore()
    assert os.lstat(box.workspace / "pkg" / "sub" / "mod.py").st_ino == inode
    box.restore()  # nothing changed: still fine
    assert (box.workspace / "a.txt").read_text() == "alpha\n"


def test_a_new_snapshot_replaces_the_old(box: BwrapSandbox) -> None:
    box.snapshot()
    assert box.run("echo v2 > a.txt && rm b.txt").ok
    box.snapshot()
    assert box.run("echo v3 > a.txt").ok
    box.restore()
    assert box.read("a.txt") == b"v2\n"
    with pytest.raises(FileNotFoundError):
        box.read("b.txt")


def test_restore_without_snapshot_raises(box: BwrapSandbox) -> None:
    with pytest.raises(SandboxError, match="snapshot"):
        box.restore()


def test_close_twice_and_nothing_left(source: Path) -> None:
    box = BwrapSandbox(source, limits=FAST)
    root = box.workspace.parent
    box.snapshot()
    assert box.run("mkdir -p x/y && chmod 000 x/y x").ok
    assert root.is_dir() and (root / "snapshot").is_dir()
    box.close()
    box.close()
    assert not root.exists()
    with pytest.raises(SandboxError, match="closed"):
        box.run("true")


def test_empty_workspace_and_bad_source(tmp_path: Path) -> None:
    with BwrapSandbox(limits=FAST) as box:
        assert box.run("ls -A").stdout == ""
        assert box.run("touch made && ls").stdout == "made\n"
    with pytest.raises(SandboxError, match="not a folder"):
        BwrapSandbox(tmp_path / "missing", limits=FAST)


def test_ro_binds(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "data.txt").write_text("shared data\n")
    with BwrapSandbox(limits=FAST, ro_binds=[str(shared)]) as box:
        assert box.read(str(shared / "data.txt")) == b"shared data\n"
        assert box.run(f"touch {shared}/new").exit_code != 0
    assert not (shared / "new").exists()
