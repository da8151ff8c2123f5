"""Tests of the sandbox pool: prewarming, hits and misses, LRU eviction, failures, closing."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from turnwise.sandboxes.base import ExecResult, Limits, SandboxError
from turnwise.sandboxes.pool import SandboxPool


class FakeSandbox:
    """Records what the pool does to it; `fail_restore` makes `restore` raise."""

    limits = Limits()

    def __init__(self, key: str) -> None:
        self.key = key
        self.restores = 0
        self.closed = 0
        self.fail_restore = False

    def run(
        self, cmd: str | Sequence[str], timeout: float | None = None, *, stdin: bytes | None = None
    ) -> ExecResult:
        return ExecResult(0)

    def read(self, path: str) -> bytes:
        return b""

    def write(self, path: str, data: bytes | str) -> None:
        pass

    def snapshot(self) -> None:
        pass

    def restore(self) -> None:
        if self.fail_restore:
            raise SandboxError("broken")
        self.restores += 1

    def close(self) -> None:
        self.closed += 1


class Factory:
    """Builds FakeSandboxes; `gate` (when set) holds builds until released; `fail` keys raise."""

    def __init__(self, gate: threading.Event | None = None, fail: Sequence[str] = ()) -> None:
        self.gate = gate
        self.fail = set(fail)
        self.built: list[FakeSandbox] = []
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()

    def __call__(self, key: str) -> FakeSandbox:
        self.started.release()
        if self.gate is not None:
            assert self.gate.wait(10)
        if key in self.fail:
            raise RuntimeError("no such repository")
        box = FakeSandbox(key)
        with self._lock:
            self.built.append(box)
        return box


def wait_until(condition: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_prewarm_then_acquire_is_a_hit() -> None:
    factory = Factory()
    with SandboxPool(factory, per_key=2) as pool:
        pool.prewarm(["a", "b"])
        assert wait_until(lambda: pool.idle() == 4)
        pool.prewarm(["a"])  # already has per_key: builds nothing more
        box = pool.acquire("a")
        assert isinstance(box, FakeSandbox) and box.key == "a"
        assert (pool.hits, pool.misses) == (1, 0)
        assert pool.idle("a") == 1 and len(factory.built) == 4


def test_acquire_without_prewarm_builds_now() -> None:
    factory = Factory()
    with SandboxPool(factory) as pool:
        box = pool.acquire("x")
        assert (pool.hits, pool.misses) == (0, 1) and factory.built == [box]
        pool.release("x", box)
        assert box.restores == 1 and pool.idle("x") == 1
        assert pool.acquire("x") is box
        assert (pool.hits, pool.misses) == (1, 1)


def test_acquire_waits_for_an_in_flight_build() -> None:
    gate = threading.Event()
    factory = Factory(gate=gate)
    with SandboxPool(factory) as pool:
        pool.prewarm(["slow"])
        assert factory.started.acquire(timeout=5)
        threading.Timer(0.1, gate.set).start()
        box = pool.acquire("slow")
        assert isinstance(box, FakeSandbox) and len(factory.built) == 1
        assert (pool.hits, pool.misses) == (1, 0)
        assert pool.stats()["building"] == 0 and pool.idle() == 0  # claimed, not idle


def test_least_recently_used_idle_sandboxes_are_closed() -> None:
    with SandboxPool(Factory(), max_idle=2) as pool:
        boxes = {key: pool.acquire(key) for key in "abc"}
        for key in "abc":
            pool.release(key, boxes[key])
        assert pool.idle() == 2
        assert [boxes[k].closed for k in "abc"] == [1, 0, 0]
        assert pool.acquire("b") is boxes["b"]
        pool.release("b", boxes["b"])
        pool.release("a", pool.acquire("a"))  # rebuilt, and "c" is now the oldest
        assert boxes["c"].closed == 1 and boxes["b"].closed == 0


def test_a_failed_restore_closes_the_sandbox() -> None:
    with SandboxPool(Factory()) as pool:
        box = pool.acquire("k")
        assert isinstance(box, FakeSandbox)
        box.fail_restore = True
        pool.release("k", box)
        assert box.closed == 1 and pool.idle() == 0
        assert pool.acquire("k") is not box


def test_factory_errors_name_the_key() -> None:
    with SandboxPool(Factory(fail=["bad-task"])) as pool:
        with pytest.raises(SandboxError, match=r"bad-task.*no such repository"):
            pool.acquire("bad-task")
        pool.prewarm(["bad-task"])
        with pytest.raises(SandboxError, match="bad-task"):
            pool.acquire("bad-task")  # waits for the failing background build
        pool.prewarm(["bad-task"])
        assert wait_until(lambda: pool.stats()["failed_builds"] == 1)
        with pytest.raises(SandboxError, match="bad-task"):
            pool.acquire("bad-task")


def test_close_closes_idle_and_in_flight_builds() -> None:
    gate = threading.Event()
    factory = Factory(gate=gate)
    pool = SandboxPool(factory, workers=1)
    gate.set()
    kept = pool.acquire("idle")  # built now, in this thread
    pool.release("idle", kept)
    assert factory.started.acquire(timeout=5)
    gate.clear()
    pool.prewarm(["running", "queued"])  # one worker: "queued" waits behind "running"
    assert factory.started.acquire(timeout=5)
    threading.Timer(0.1, gate.set).start()
    pool.close()  # waits for the running build, then closes it; the queued one never starts
    pool.close()
    assert kept.closed == 1  # type: ignore[attr-defined]
    assert [b.key for b in factory.built] == ["idle", "running"]
    assert all(b.closed == 1 for b in factory.built)
    with pytest.raises(SandboxError, match="closed"):
        pool.acquire("idle")
    with pytest.raises(SandboxError, match="closed"):
        pool.prewarm(["x"])
    late = FakeSandbox("late")
    pool.release("late", late)
    assert late.closed == 1


def test_thread_safety() -> None:
    factory = Factory()
    errors: list[BaseException] = []
    with SandboxPool(factory, max_idle=4, workers=3) as pool:
        pool.prewarm([f"k{i}" for i in range(4)])

        def worker(n: int) -> None:
            try:
                for i in range(50):
                    key = f"k{(n + i) % 4}"
                    box = pool.acquire(key)
                    assert box.key == key  # type: ignore[attr-defined]
                    pool.release(key, box)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert pool.hits + pool.misses == 300 and pool.idle() <= 4
    assert all(b.closed == 1 for b in factory.built)  # closed exactly once each
    assert "closed" in repr(pool)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SandboxPool(Factory(), per_key=0)


@pytest.mark.sandbox
def test_a_pool_of_bubblewrap_sandboxes(tmp_path: Path) -> None:
    from turnwise.sandboxes.bwrap import BwrapSandbox

    def build(key: str) -> BwrapSandbox:
        box = BwrapSandbox(limits=Limits(timeout=10))
        box.write("task.txt", key)
        box.snapshot()
        return box

    with SandboxPool(build) as pool:
        pool.prewarm(["t1", "t2"])
        box = pool.acquire("t1")
        root = box.workspace.parent  # type: ignore[attr-defined]
        assert box.run("cat task.txt; echo changed > task.txt; touch new").stdout == "t1"
        pool.release("t1", box)
        again = pool.acquire("t1")
        assert again is box and again.read("task.txt") == b"t1"
        assert again.run("ls").stdout == "task.txt\n"
        pool.release("t1", again)
        assert pool.acquire("t2").read("task.txt") == b"t2"
    assert not root.exists()
