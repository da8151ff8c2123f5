"""Accessibility trees of desktop apps: a private AT-SPI bus per display, read over D-Bus.

GTK apps describe their widgets (role, name, state, box on the screen) to assistive
technologies through AT-SPI, a protocol on a D-Bus bus of its own. `AccessibilityBus` starts
that machinery privately for one `XDisplay`: a session bus (`dbus-daemon`) whose socket lives in
the display's private home, and AT-SPI's bus launcher (`at-spi-bus-launcher`, Debian's
`at-spi2-core`), which starts the accessibility bus and its registry. Apps launched with
`bus.app_env()` load GTK's bridge (`libatk-adaptor`) and register on it; `bus.tree()` then reads
what is on the screen through `jeepney`, a pure-Python D-Bus client.

A read walks each app's tree from its root, skipping subtrees that are not showing, and sends
the questions about one level of the tree together (pipelined), so a window of a hundred
widgets reads in tens of milliseconds. A read never waits longer than `timeout_s`: an app that
stops answering raises `AccessibilityError`, and callers fall back to pixels.

Example:
    >>> node = Accessible("push button", "Save", (10, 20, 60, 24), frozenset({"enabled"}), 3, 0, 4)
    >>> node.centre, node.listing()
    ((40, 32), 'push button "Save" at x=10..70, y=20..44')
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "STATES",
    "AccessibilityBus",
    "AccessibilityError",
    "Accessible",
    "find_bus_launcher",
]

INSTALL_HINT = "run scripts/install-system-deps.sh gui (at-spi2-core, libatk-adaptor, dbus)"
# AT-SPI's state numbers (atspi-constants.h), as bits of the two-word state set.
STATES = (
    "invalid", "active", "armed", "busy", "checked", "collapsed", "defunct", "editable",
    "enabled", "expandable", "expanded", "focusable", "focused", "has-tooltip", "horizontal",
    "iconified", "modal", "multi-line", "multiselectable", "opaque", "pressed", "resizable",
    "selectable", "selected", "sensitive", "showing", "single-line", "stale", "transient",
    "vertical", "visible", "manages-descendants", "indeterminate", "required", "truncated",
    "animated", "invalid-entry", "supports-autocompletion", "selectable-text", "is-default",
    "visited", "checkable", "has-popup", "read-only",
)  # fmt: skip
_SHOWING = 1 << STATES.index("showing")
_MANAGES_DESCENDANTS = 1 << STATES.index("manages-descendants")
_ACCESSIBLE = "org.a11y.atspi.Accessible"
_COMPONENT = "org.a11y.atspi.Component"
_REGISTRY = ("org.a11y.atspi.Registry", "/org/a11y/atspi/accessible/root")
_SCREEN = 0  # ATSPI_COORD_TYPE_SCREEN
_LAUNCHERS = ("/usr/libexec/at-spi-bus-launcher", "/usr/lib/at-spi2-core/at-spi-bus-launcher")


class AccessibilityError(RuntimeError):
    """The accessibility bus cannot be started or read."""


def find_bus_launcher() -> str:
    """The path of AT-SPI's `at-spi-bus-launcher`, or `AccessibilityError` with the fix."""
    for path in _LAUNCHERS:
        if os.access(path, os.X_OK):
            return path
    raise AccessibilityError(f"at-spi-bus-launcher is not installed; {INSTALL_HINT}")


@dataclass(frozen=True)
class Accessible:
    """One node of an app's accessibility tree, as it was when read.

    `role` is AT-SPI's role name (`push button`, `menu item`, `text`, …); `box` is (left, top,
    width, height) on the screen, or None when the node has no box on it; `states` holds the
    names of `STATES` that are set; `parent` is the index of the parent in the list the node
    came in (-1 for an app's root); `pid` is the app's process.
    """

    role: str
    name: str
    box: tuple[int, int, int, int] | None
    states: frozenset[str]
    depth: int
    parent: int
    pid: int

    @property
    def centre(self) -> tuple[int, int]:
        """The pixel at the middle of the box."""
        if self.box is None:
            raise ValueError(f"{self.role} {self.name!r} has no box on the screen")
        left, top, width, height = self.box
        return left + width // 2, top + height // 2

    def listing(self) -> str:
        """One line: role, name and box."""
        text = f'{self.role} "{self.name}"' if self.name else self.role
        if self.box is not None:
            left, top, width, height = self.box
            text += f" at x={left}..{left + width}, y={top}..{top + height}"
        return text


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *argv] if setpriv else argv


def _stop(processes: list[subprocess.Popen[bytes]], home: str) -> None:
    for process in reversed(processes):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=2.0)
    processes.clear()
    shutil.rmtree(home, ignore_errors=True)


class AccessibilityBus:
    """A private session bus and AT-SPI accessibility bus for the apps of one display.

    Args:
        display: the X display name the apps use (`:3`).
        home: a private folder for the bus sockets (made if missing; removed on `close`).
        timeout_s: the longest any one read may wait for an app.

    The processes run in their own process groups with a parent-death signal, and `close()` (or
    garbage collection) kills them.
    """

    def __init__(self, display: str, home: str | os.PathLike[str], *, timeout_s: float = 2.0):
        try:
            import jeepney  # noqa: F401
        except ImportError as exc:
            raise AccessibilityError(f"jeepney is not installed; {INSTALL_HINT}") from exc
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise AccessibilityError(f"dbus-daemon is not installed; {INSTALL_HINT}")
        launcher = find_bus_launcher()
        self.timeout_s = float(timeout_s)
        self._home = Path(home)
        self._home.mkdir(parents=True, exist_ok=True)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._finalizer = weakref.finalize(self, _stop, self._processes, str(self._home))
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._home),
            "XDG_RUNTIME_DIR": str(self._home),
            "DISPLAY": display,
        }
        socket = self._home / "session-bus"
        argv = [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"]
        bus = subprocess.Popen(
            _with_parent_death_signal([*argv, f"--address=unix:path={socket}"]),
            env=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._processes.append(bus)
        assert bus.stdout is not None
        line = _read_line(bus, self.timeout_s * 5)
        bus.stdout.close()
        if not line.startswith("unix:"):
            self.close()
            raise AccessibilityError("dbus-daemon did not start")
        self.session_address = line
        self._processes.append(
            subprocess.Popen(
                _with_parent_death_signal([launcher, "--launch-immediately"]),
                env={**base, "DBUS_SESSION_BUS_ADDRESS": line},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )
        self._connection: Any = None
        self._pids: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Stop the buses. Idempotent."""
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        self._finalizer()

    def __enter__(self) -> AccessibilityBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def app_env(self) -> dict[str, str]:
        """Environment variables that make a GTK app register on this bus."""
        return {
            "DBUS_SESSION_BUS_ADDRESS": self.session_address,
            "NO_AT_BRIDGE": "0",
            "GTK_A11Y": "atspi",
        }

    # ------------------------------------------------------------------ reading
    def applications(self) -> list[tuple[str, int]]:
        """The registered apps: (D-Bus name, process id)."""
        roots = self._calls([_method(*_REGISTRY, _ACCESSIBLE, "GetChildren")])[0]
        if roots is None:
            raise AccessibilityError("the AT-SPI registry did not list the apps")
        names = [name for name, _ in roots[0] if name]
        # A unique bus name is never reused, so its process is asked once.
        new = [name for name in names if name not in self._pids]
        pids = self._calls(
            [
                _method(
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "GetConnectionUnixProcessID",
                    "s",
                    (name,),
                )
                for name in new
            ]
        )
        for name, pid in zip(new, pids, strict=True):
            if pid:
                self._pids[name] = int(pid[0])
        return [(name, self._pids.get(name, -1)) for name in names]

    def tree(self, pids: Iterable[int] | None = None, *, max_nodes: int = 2000) -> list[Accessible]:
        """The showing nodes of the apps (those of `pids` only, when given), parents first.

        A subtree is read only below a node that is showing, and not below one that manages its
        descendants (a table of a million cells). At most `max_nodes` nodes are read.
        """
        wanted = None if pids is None else set(pids)
        apps = [(name, pid) for name, pid in self.applications() if wanted is None or pid in wanted]
        nodes: list[Accessible] = []
        # A level of the walk: (bus name, object path, depth, parent index, pid).
        level = [(name, "/org/a11y/atspi/accessible/root", 0, -1, pid) for name, pid in apps]
        while level and len(nodes) < max_nodes:
            # Ask first whether each node is showing (most hidden ones are closed menus' items),
            # then everything else about the ones that are.
            states = self._calls(
                [_method(bus, path, _ACCESSIBLE, "GetState") for bus, path, *_ in level]
            )
            shown = []
            for (bus, path, depth, parent, pid), state in zip(level, states, strict=True):
                bits = _bits(state)
                if bits is not None and (depth == 0 or bits & _SHOWING):
                    shown.append((bus, path, depth, parent, pid, bits))
            shown = shown[: max_nodes - len(nodes)]
            questions = []
            for bus, path, *_ in shown:
                questions += [
                    _method(bus, path, _ACCESSIBLE, "GetRoleName"),
                    _property(bus, path, _ACCESSIBLE, "Name"),
                    _method(bus, path, _COMPONENT, "GetExtents", "u", (_SCREEN,)),
                    _method(bus, path, _ACCESSIBLE, "GetChildren"),
                ]
            answers = self._calls(questions)
            below = []
            for i, (_, _, depth, parent, pid, bits) in enumerate(shown):
                role, name, extents, children = answers[4 * i : 4 * i + 4]
                if role is None:
                    continue  # gone while being read
                index = len(nodes)
                nodes.append(
                    Accessible(
                        role=str(role[0]),
                        name=_text(name),
                        box=_box(extents),
                        states=frozenset(s for b, s in enumerate(STATES) if bits >> b & 1),
                        depth=depth,
                        parent=parent,
                        pid=pid,
                    )
                )
                if children and not bits & _MANAGES_DESCENDANTS:
                    below += [(bus, path, depth + 1, index, pid) for bus, path in children[0]]
            level = below
        return nodes

    def wait_for_app(self, pid: int, timeout_s: float = 10.0) -> None:
        """Wait until the app `pid` has registered on the bus (it does so as it starts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(AccessibilityError):
                if any(p == pid for _, p in self.applications()):
                    return
            if time.monotonic() > deadline:
                raise AccessibilityError(f"process {pid} did not register on the a11y bus")
            time.sleep(0.05)

    # ------------------------------------------------------------------ D-Bus
    def _connect(self) -> Any:
        if self.closed:
            raise AccessibilityError("the accessibility bus is closed")
        if self._connection is not None:
            return self._connection
        from jeepney import DBusAddress, new_method_call
        from jeepney.io.blocking import open_dbus_connection
        from jeepney.low_level import MessageFlag

        deadline = time.monotonic() + self.timeout_s * 5
        while True:  # the launcher answers once it has started the accessibility bus
            # Never auto-start: before our launcher owns org.a11y.Bus, the session bus would
            # activate a second launcher from the system's service files, and ours, losing the
            # name to it, would exit (seen under load).
            get_address = new_method_call(
                DBusAddress("/org/a11y/bus", "org.a11y.Bus", "org.a11y.Bus"), "GetAddress"
            )
            get_address.header.flags |= MessageFlag.no_auto_start
            try:
                with contextlib.closing(open_dbus_connection(self.session_address)) as session:
                    reply = session.send_and_get_reply(get_address, timeout=self.timeout_s)
                address = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
                if address.startswith("unix:"):
                    break
            except (OSError, TimeoutError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise AccessibilityError("the AT-SPI bus launcher did not start")
            time.sleep(0.02)
        try:
            self._connection = open_dbus_connection(address)  # says Hello
        except (OSError, TimeoutError) as exc:
            raise AccessibilityError(f"cannot connect to the accessibility bus: {exc}") from exc
        return self._connection

    def _calls(self, messages: Sequence[Any]) -> list[tuple[Any, ...] | None]:
        """Send all `messages`, then collect their replies: a body, or None for an error."""
        from jeepney import HeaderFields, MessageType

        connection = self._connect()
        serials: dict[int, int] = {}
        try:
            for i, message in enumerate(messages):
                serial = next(connection.outgoing_serial)
                connection.send(message, serial=serial)
                serials[serial] = i
            replies: list[tuple[Any, ...] | None] = [None] * len(messages)
            deadline = time.monotonic() + self.timeout_s
            while serials:
                reply = connection.receive(timeout=max(0.0, deadline - time.monotonic()))
                i = serials.pop(reply.header.fields.get(HeaderFields.reply_serial, -1), -1)
                if i >= 0 and reply.header.message_type == MessageType.method_return:
                    replies[i] = reply.body
        except (OSError, TimeoutError) as exc:
            # Replies still in flight would be taken for the next read's: start afresh.
            with contextlib.suppress(Exception):
                connection.close()
            self._connection = None
            raise AccessibilityError(f"an app did not answer in {self.timeout_s} s: {exc}") from exc
        return replies


def _method(
    bus: str, path: str, interface: str, name: str, signature: str | None = None, body: Any = ()
) -> Any:
    from jeepney import DBusAddress, new_method_call

    return new_method_call(DBusAddress(path, bus, interface), name, signature, body)


def _property(bus: str, path: str, interface: str, name: str) -> Any:
    return _method(bus, path, "org.freedesktop.DBus.Properties", "Get", "ss", (interface, name))


def _bits(reply: tuple[Any, ...] | None) -> int | None:
    # A state set comes as two 32-bit words, low word first.
    if not reply or not reply[0]:
        return None
    words = [int(w) for w in reply[0]]
    return sum(w << (32 * i) for i, w in enumerate(words))


def _text(reply: tuple[Any, ...] | None) -> str:
    # A property comes as a variant: ((signature, value),).
    if not reply:
        return ""
    value = reply[0][1] if isinstance(reply[0], tuple) else reply[0]
    return " ".join(str(value).split())


def _box(reply: tuple[Any, ...] | None) -> tuple[int, int, int, int] | None:
    if not reply:
        return None
    left, top, width, height = (int(v) for v in reply[0])
    if width <= 0 or height <= 0 or left < -(1 << 20) or top < -(1 << 20):
        return None  # AT-SPI writes "no box" as -1 sizes or INT_MIN corners
    return left, top, width, height


def _read_line(process: subprocess.Popen[bytes], timeout_s: float) -> str:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    os.set_blocking(fd, False)
    data = b""
    deadline = time.monotonic() + timeout_s
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            chunk = os.read(fd, 256)
        except BlockingIOError:
            time.sleep(0.005)
            continue
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
