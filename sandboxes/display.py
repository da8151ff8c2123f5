"""The X display sandbox: one Xvfb server per env, input through XTest, screenshots through mss.

* `XDisplay` starts a private Xvfb (unix socket only, no TCP), connects to it with python-xlib,
  and owns every app started on it with `launch`. Input goes through the XTest extension (a click
  costs well under a millisecond; `xdotool` costs 100 ms or more); screenshots are read with
  `mss` (a few ms for 800×600). `settle()` waits until the screen stops changing, so an
  observation shows the result of the action before it.
* No process outlives its display: Xvfb dies with the Python process that started it (the kernel
  sends it SIGKILL, through util-linux's `setpriv --pdeathsig`), each app runs in its own process group that `close()`
  (or a garbage-collected display) kills, and apps lose their X connection, and exit, when the
  server goes away.
* Input is typed: `click(x, y)`, `key("ctrl+s")`, `type_text("...")`. Coordinates outside the
  screen and unknown key names raise `InputError` before anything is sent; agent text reaches
  an app only as key events, never as a command line.

Needs the `gui` extra (`python-xlib`, `mss`) and the `xvfb` Debian package
(`scripts/install-system-deps.sh gui`).

Example:
    >>> from turnwise.sandboxes.display import XDisplay
    >>> with XDisplay(size=(320, 240)) as display:  # doctest: +SKIP
    ...     display.click(10, 10)
    ...     display.screenshot().shape
    (240, 320, 3)
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from Xlib.display import Display

    from .a11y import AccessibilityBus, Accessible

__all__ = [
    "INSTALL_HINT",
    "KEY_NAMES",
    "App",
    "DisplayUnavailable",
    "InputError",
    "Window",
    "XDisplay",
    "find_xvfb",
    "parse_key_combo",
]

INSTALL_HINT = (
    "install Xvfb and the GUI extra: `scripts/install-system-deps.sh gui` (Debian package "
    "`xvfb`) and `pip install 'turnwise[gui]'` (python-xlib, mss); or `make install EXTRAS=gui`"
)

#: Key names `key(...)` accepts (besides single printable characters and F1–F24), lower case,
#: mapped to X keysym names. Aliases follow pyautogui and the web actions' names.
KEY_NAMES: dict[str, str] = {
    "enter": "Return", "return": "Return", "tab": "Tab", "space": "space",
    "escape": "Escape", "esc": "Escape", "backspace": "BackSpace", "delete": "Delete",
    "del": "Delete", "insert": "Insert", "home": "Home", "end": "End",
    "pageup": "Prior", "pagedown": "Next", "pgup": "Prior", "pgdn": "Next",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "arrowup": "Up", "arrowdown": "Down", "arrowleft": "Left", "arrowright": "Right",
    "ctrl": "Control_L", "control": "Control_L", "shift": "Shift_L", "alt": "Alt_L",
    "super": "Super_L", "win": "Super_L", "meta": "Super_L", "cmd": "Super_L",
    "capslock": "Caps_Lock", "menu": "Menu", "printscreen": "Print",
}  # fmt: skip
_MODIFIERS = frozenset({"Control_L", "Shift_L", "Alt_L", "Super_L"})
_FUNCTION_KEY = re.compile(r"^f([1-9]|1[0-9]|2[0-4])$")
_SCROLL_BUTTONS = {(0, -1): 4, (0, 1): 5, (-1, 0): 6, (1, 0): 7}


class DisplayUnavailable(RuntimeError):
    """Xvfb or the Python X libraries are missing, or the server did not start."""


class InputError(ValueError):
    """Input the display cannot perform (off-screen point, unknown key); nothing was sent."""


def find_xvfb() -> str:
    """The Xvfb binary (`TURNWISE_XVFB` or `Xvfb` on PATH), or `DisplayUnavailable`."""
    path = os.environ.get("TURNWISE_XVFB") or shutil.which("Xvfb")
    if not path:
        raise DisplayUnavailable(f"Xvfb was not found; {INSTALL_HINT}")
    return path


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """`argv` run so that the kernel kills it when the thread that starts it dies.

    Only from the main thread (the signal follows the creating *thread*, and a worker thread that
    ends would take the server with it), and only where util-linux's `setpriv` exists; otherwise
    `close()` and the garbage collector are what stop the server.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return argv
    return [setpriv, "--pdeathsig", "KILL", "--", *argv]


def parse_key_combo(combo: str) -> list[str]:
    """X keysym names for a combination like `ctrl+shift+t`, in the order to press them.

    Raises `InputError` for an empty part, an unknown key, or a non-modifier before the last
    key. `+` itself is written last (`ctrl++`) or alone.

    Example:
        >>> parse_key_combo("ctrl+s")
        ['Control_L', 's']
        >>> parse_key_combo("Alt+F4")
        ['Alt_L', 'F4']
        >>> parse_key_combo("enter")
        ['Return']
        >>> parse_key_combo("ctrl++")
        ['Control_L', '+']
    """
    text = combo.strip()
    if text == "+":
        parts = ["+"]
    elif text.endswith("++"):
        parts = [*text[:-2].split("+"), "+"]
    else:
        parts = text.split("+")
    names: list[str] = []
    for part in parts:
        token = part.strip()
        if not token:
            raise InputError(f"{combo!r}: empty key name; write keys like ctrl+s or enter")
        lower = token.lower()
        if lower in KEY_NAMES:
            names.append(KEY_NAMES[lower])
        elif _FUNCTION_KEY.match(lower):
            names.append(lower.upper())
        elif len(token) == 1 and token.isprintable():
            names.append(token)
        else:
            raise InputError(
                f"unknown key {token!r}; use a character or one of "
                f"{', '.join(sorted(set(KEY_NAMES)))} or f1-f24"
            )
    if len(names) > 1 and any(n not in _MODIFIERS for n in names[:-1]):
        raise InputError(f"{combo!r}: only the last key of a combination may be a non-modifier")
    return names


@dataclass(frozen=True)
class Window:
    """A top-level window on the display: X id, title, and its box in screen pixels."""

    id: int
    title: str
    x: int
    y: int
    width: int
    height: int
    pid: int | None = None


@dataclass
class App:
    """An app started on a display (`XDisplay.launch`): its process and what started it."""

    argv: tuple[str, ...]
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None


def _kill_group(process: subprocess.Popen[bytes], grace_s: float = 1.0) -> None:
    """SIGTERM the process group of `process`, then SIGKILL what is left after `grace_s`."""
    if process.poll() is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of an exited leader
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)


def _shutdown(server: subprocess.Popen[bytes], apps: list[App], home: str | None) -> None:
    for app in apps:
        _kill_group(app.process)
    apps.clear()
    _kill_group(server, grace_s=2.0)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


class XDisplay:
    """A private Xvfb display with XTest input, screenshots, and the apps running on it.

    Args:
        size: screen width and height in pixels.
        depth: colour depth (24 gives RGB screenshots).
        xvfb: path of the Xvfb binary (default: `find_xvfb()`).
        start_timeout_s: how long the server may take to start.
        accessibility: also start a private AT-SPI bus (`turnwise.sandboxes.a11y`): apps
            launched afterwards describe their widgets to it, and `accessible_tree()` reads them.

    The display is not thread-safe: use it from one thread (an env and its worker).
    """

    def __init__(
        self,
        size: tuple[int, int] = (800, 600),
        *,
        depth: int = 24,
        xvfb: str | None = None,
        start_timeout_s: float = 10.0,
        accessibility: bool = False,
    ) -> None:
        try:
            from Xlib import display as xdisplay
            from Xlib.ext import xtest  # noqa: F401  (fails early when python-xlib is partial)
        except ImportError as exc:
            raise DisplayUnavailable(f"python-xlib is not installed; {INSTALL_HINT}") from exc
        width, height = (int(v) for v in size)
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"display size {size} is outside 16..8192 pixels")
        self.width, self.height = width, height
        self._home = tempfile.mkdtemp(prefix="turnwise-display-")
        # GTK apps: no blinking caret and no animations, so the screen settles after each action.
        gtk = Path(self._home, ".config", "gtk-3.0")
        gtk.mkdir(parents=True)
        (gtk / "settings.ini").write_text(
            "[Settings]\ngtk-cursor-blink=false\ngtk-enable-animations=false\n"
        )
        read_end, write_end = os.pipe()
        xvfb_argv = [xvfb or find_xvfb(), "-displayfd", str(write_end)]
        xvfb_argv += ["-screen", "0", f"{width}x{height}x{depth}", "-nolisten", "tcp", "-ac"]
        xvfb_argv += ["-noreset"]
        try:
            self._server = subprocess.Popen(
                _with_parent_death_signal(xvfb_argv),
                pass_fds=(write_end,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            os.close(write_end)
        self._apps: list[App] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._server, self._apps, self._home)
        try:
            number = self._read_display_number(read_end, start_timeout_s)
        finally:
            os.close(read_end)
        self.name = f":{number}"
        try:
            self._x: Display = xdisplay.Display(self.name)
        except Exception as exc:
            self.close()
            raise DisplayUnavailable(f"cannot connect to Xvfb at {self.name}: {exc}") from exc
        if not self._x.has_extension("XTEST"):
            self.close()
            raise DisplayUnavailable("the X server has no XTest extension")
        self._root = self._x.screen().root
        self._a11y: AccessibilityBus | None = None
        if accessibility:
            from .a11y import AccessibilityBus

            try:
                self._a11y = AccessibilityBus(self.name, Path(self._home, ".a11y"))
            except Exception:
                self.close()
                raise
        self._grabber: Any = None
        self._spare_codes: list[int] = []
        self._keycodes: dict[int, tuple[int, bool]] = {}

    # ------------------------------------------------------------------ lifecycle
    def _read_display_number(self, fd: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        data = b""
        os.set_blocking(fd, False)
        while not data.endswith(b"\n"):
            if self._server.poll() is not None:
                err = (
                    self._server.stderr.read().decode(errors="replace")
                    if self._server.stderr
                    else ""
                )
                self.close()
                raise DisplayUnavailable(f"Xvfb exited at start: {err.strip()[-500:]}")
            if time.monotonic() > deadline:
                self.close()
                raise DisplayUnavailable(f"Xvfb did not start within {timeout_s:.0f} s")
            try:
                chunk = os.read(fd, 32)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            data += chunk
        # Xvfb's stderr is only read on failure; don't let a chatty server block on a full pipe.
        if self._server.stderr is not None:
            self._server.stderr.close()
        return int(data)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Stop every app, the accessibility bus, then the server. Idempotent."""
        if getattr(self, "_a11y", None) is not None:
            assert self._a11y is not None
            self._a11y.close()
        x = getattr(self, "_x", None)
        if x is not None:
            with contextlib.suppress(Exception):
                if self._grabber is not None:
                    self._grabber.close()
                x.close()
        self._finalizer()

    def __enter__(self) -> XDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def server_alive(self) -> bool:
        return self._server.poll() is None

    @property
    def server_pid(self) -> int:
        return self._server.pid

    # ------------------------------------------------------------------ apps
    def launch(
        self,
        argv: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> App:
        """Start `argv` (a trusted command line, never agent text) on this display.

        The app gets `DISPLAY`, a private `HOME` (unless `env` sets one), no session bus
        (settings stay in memory) unless the display has an accessibility bus, and its own
        process group; `close()` and `stop_apps()` kill the whole group.
        """
        if self.closed:
            raise RuntimeError("the display is closed")
        child_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOME": self._home,
            "DISPLAY": self.name,
            "GSETTINGS_BACKEND": "memory",
            "NO_AT_BRIDGE": "1",
            "GTK_A11Y": "none",
            "GTK_OVERLAY_SCROLLING": "0",  # fixed scroll bars: no fade-out between screenshots
            "XDG_RUNTIME_DIR": self._home,
            **(self._a11y.app_env() if self._a11y is not None else {}),
            **(env or {}),
        }
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        app = App(tuple(argv), process)
        self._apps.append(app)
        return app

    @property
    def apps(self) -> tuple[App, ...]:
        return tuple(self._apps)

    def stop_apps(self, *, keep: Sequence[App] = ()) -> None:
        """Kill every app started on this display but those in `keep` (the server runs on)."""
        for app in [a for a in self._apps if a not in keep]:
            _kill_group(app.process)
            self._apps.remove(app)
        self._x.sync()

    # ------------------------------------------------------------------ windows
    def windows(self) -> list[Window]:
        """The app windows, bottom to top, with titles and boxes in screen pixels.

        With a window manager running these are its managed clients (`_NET_CLIENT_LIST`);
        without one, the mapped children of the root window.
        """
        from Xlib import X
        from Xlib.error import XError

        clients = self._root.get_full_property(
            self._x.intern_atom("_NET_CLIENT_LIST_STACKING"), X.AnyPropertyType
        ) or self._root.get_full_property(
            self._x.intern_atom("_NET_CLIENT_LIST"), X.AnyPropertyType
        )
        if clients is not None:
            candidates = [self._x.create_resource_object("window", c) for c in clients.value]
        else:
            candidates = self._root.query_tree().children
        found = []
        for child in candidates:
            try:
                if child.get_attributes().map_state != X.IsViewable:
                    continue
                geometry = child.get_geometry()
                if geometry.width <= 1 and geometry.height <= 1:
                    continue
                origin = child.translate_coords(self._root, 0, 0)
                title = _title(self._x, child)
                pid = _pid(self._x, child)
            except XError:  # the window went away while we looked
                continue
            found.append(
                Window(child.id, title, -origin.x, -origin.y, geometry.width, geometry.height, pid)
            )
        return found

    def popups(self, windows: Sequence[Window] | None = None) -> list[Window]:
        """The apps' override-redirect windows on the screen (open menus, tooltips, drop-down
        lists), bottom to top: drawn over the others, and managed by no window manager (whose
        own frames around app windows are left out). Pass `windows()` when you have it, to
        spare reading it again."""
        from Xlib import X
        from Xlib.error import XError

        clients = {w.id for w in (self.windows() if windows is None else windows)}
        found = []
        for child in self._root.query_tree().children:
            try:
                attributes = child.get_attributes()
                if not attributes.override_redirect or attributes.map_state != X.IsViewable:
                    continue
                geometry = child.get_geometry()
                if geometry.width <= 1 or geometry.height <= 1 or _holds(child, clients):
                    continue
            except XError:  # gone while we looked
                continue
            box = (geometry.x, geometry.y, geometry.width, geometry.height)
            found.append(Window(child.id, "", *box))
        return found

    def wait_for_window(self, pattern: str, timeout_s: float = 10.0) -> Window:
        """The first window whose title matches the regular expression `pattern`."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            for window in reversed(self.windows()):
                if compiled.search(window.title):
                    return window
            if time.monotonic() > deadline:
                titles = [w.title for w in self.windows()]
                raise TimeoutError(f"no window titled /{pattern}/ after {timeout_s} s; {titles}")
            time.sleep(0.02)

    def focused_window(self, windows: Sequence[Window] | None = None) -> Window | None:
        """The top-level window that gets key presses: the one holding the input focus, or,
        when the focus follows the pointer (no window manager), the one under the pointer.
        Pass `windows()` when you have it, to spare reading it again."""
        from Xlib import X

        focus = self._x.get_input_focus().focus
        if focus == X.NONE:
            return None
        if focus == X.PointerRoot or focus.id == self._root.id:
            focus = self._root.query_pointer().child
            if focus == X.NONE:
                return None
        by_id = {w.id: w for w in (self.windows() if windows is None else windows)}
        window = focus
        for _ in range(64):
            if window.id in by_id:
                return by_id[window.id]
            parent = window.query_tree().parent
            if isinstance(parent, int) or parent.id == self._root.id:
                break
            window = parent
        return None

    # ------------------------------------------------------------------ accessibility
    @property
    def accessibility(self) -> AccessibilityBus | None:
        """The display's AT-SPI bus (`accessibility=True`), or None."""
        return self._a11y

    def accessible_tree(
        self, apps: Sequence[App] | None = None, *, max_nodes: int = 2000
    ) -> list[Accessible]:
        """What the apps (all, or those in `apps`) show, from their accessibility trees:
        `turnwise.sandboxes.a11y.AccessibilityBus.tree`. Needs `accessibility=True`."""
        if self._a11y is None:
            raise RuntimeError("this display has no accessibility bus: pass accessibility=True")
        pids = None if apps is None else [app.pid for app in apps]
        return self._a11y.tree(pids, max_nodes=max_nodes)

    # ------------------------------------------------------------------ screen
    def screenshot(self) -> np.ndarray:
        """The whole screen as uint8 H×W×3 RGB."""
        return self._rgb(self._grab())

    def _grab(self) -> bytes:
        """The screen's raw BGRA bytes (cheap to compare; `_rgb` turns them into an image)."""
        if self._grabber is None:
            try:
                import mss
            except ImportError as exc:
                raise DisplayUnavailable(f"mss is not installed; {INSTALL_HINT}") from exc
            factory = getattr(mss, "MSS", None) or mss.mss
            self._grabber = factory(display=self.name)
        area = {"left": 0, "top": 0, "width": self.width, "height": self.height}
        return bytes(self._grabber.grab(area).raw)

    def _rgb(self, raw: bytes) -> np.ndarray:
        import numpy as np

        bgra = np.frombuffer(raw, dtype=np.uint8).reshape(self.height, self.width, 4)
        rgb = np.empty((self.height, self.width, 3), dtype=np.uint8)
        # Channel by channel: six times faster than one strided copy of bgra[..., 2::-1].
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = bgra[..., 2], bgra[..., 1], bgra[..., 0]
        return rgb

    def settle(
        self,
        timeout_s: float = 0.5,
        *,
        quiet_s: float = 0.015,
        react_s: float = 0.04,
        interval_s: float = 0.005,
    ) -> np.ndarray:
        """Wait for the screen to settle after input; return the last screenshot.

        Apps redraw asynchronously, so a screenshot taken right after input may not show its
        effect yet. This polls the screen every `interval_s` and returns once it has changed and
        then stayed unchanged for `quiet_s`, or, if it never changes, after `react_s` (the time
        an app gets to start reacting), and in any case by `timeout_s`. "Unchanged" also asks
        that the apps used no CPU time in the last poll and are not waiting to run: on a loaded
        machine an app descheduled halfway through a redraw leaves the screen still without
        being done. (The X server is not watched: the screenshots themselves keep it busy.)
        """
        self._x.sync()
        pids = [app.pid for app in self._apps]  # not the server: the screenshots keep it busy
        start = time.monotonic()
        previous, busy = self._grab(), _cpu_state(pids)
        changed_at: float | None = None
        quiet_since = start
        while True:
            time.sleep(interval_s)
            current, now_busy = self._grab(), _cpu_state(pids)
            now = time.monotonic()
            if current != previous:
                changed_at, quiet_since = now, now
            elif now_busy != busy or any(state == "R" for state, _ in now_busy):
                quiet_since = now  # still working: the screen may change yet
            previous, busy = current, now_busy
            if now - start >= timeout_s:
                return self._rgb(current)
            if now - quiet_since < quiet_s:
                continue
            if changed_at is not None or now - start >= react_s:
                return self._rgb(current)

    # ------------------------------------------------------------------ input
    def check_point(self, x: int, y: int) -> None:
        """`InputError` unless (x, y) is on the screen."""
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise InputError(
                f"({x}, {y}) is off the screen; x must be in 0..{self.width - 1} and y in "
                f"0..{self.height - 1}"
            )

    def move(self, x: int, y: int) -> None:
        from Xlib import X
        from Xlib.ext import xtest

        self.check_point(x, y)
        xtest.fake_input(self._x, X.MotionNotify, x=int(x), y=int(y))
        self._x.sync()

    def click(self, x: int, y: int, *, button: int = 1, count: int = 1) -> None:
        """Move to (x, y) and click `button` (1 left, 2 middle, 3 right) `count` times."""
        from Xlib import X
        from Xlib.ext import xtest

        self.check_point(x, y)
        if button not in (1, 2, 3) or not 1 <= count <= 3:
            raise InputError("button must be 1, 2 or 3 and count 1 to 3")
        xtest.fake_input(self._x, X.MotionNotify, x=int(x), y=int(y))
        for _ in range(count):
            xtest.fake_input(self._x, X.ButtonPress, button)
            xtest.fake_input(self._x, X.ButtonRelease, button)
        self._x.sync()

    def drag(self, x1: int, y1: int, x2: int, y2: int, *, steps: int = 8) -> None:
        """Press the left button at (x1, y1), move to (x2, y2) in `steps`, release."""
        from Xlib import X
        from Xlib.ext import xtest

        self.check_point(x1, y1)
        self.check_point(x2, y2)
        xtest.fake_input(self._x, X.MotionNotify, x=int(x1), y=int(y1))
        xtest.fake_input(self._x, X.ButtonPress, 1)
        self._x.sync()
        for i in range(1, steps + 1):
            x = round(x1 + (x2 - x1) * i / steps)
            y = round(y1 + (y2 - y1) * i / steps)
            xtest.fake_input(self._x, X.MotionNotify, x=x, y=y)
            self._x.sync()
        xtest.fake_input(self._x, X.ButtonRelease, 1)
        self._x.sync()

    def scroll(self, dx: int, dy: int, *, x: int | None = None, y: int | None = None) -> None:
        """Scroll `dy` notches down (negative: up) and `dx` right (negative: left), at (x, y)
        if given (else where the pointer is)."""
        from Xlib import X
        from Xlib.ext import xtest

        if x is not None and y is not None:
            self.move(x, y)
        if abs(dx) > 50 or abs(dy) > 50:
            raise InputError("scroll at most 50 notches at a time")
        for axis, amount in (((0, 1), dy), ((1, 0), dx)):
            button = _SCROLL_BUTTONS[axis if amount > 0 else (-axis[0], -axis[1])]
            for _ in range(abs(int(amount))):
                xtest.fake_input(self._x, X.ButtonPress, button)
                xtest.fake_input(self._x, X.ButtonRelease, button)
        self._x.sync()

    def key(self, combo: str) -> None:
        """Press a combination like `ctrl+s`, `alt+F4` or `enter` (see `parse_key_combo`)."""
        from Xlib import X
        from Xlib.ext import xtest

        names = parse_key_combo(combo)
        codes = [self._keycode_of_name(n) for n in names]
        shift = self._keycode_of_name("Shift_L")[0]
        pressed: list[int] = []
        for code, needs_shift in codes:
            if needs_shift and shift not in pressed:
                xtest.fake_input(self._x, X.KeyPress, shift)
                pressed.append(shift)
            xtest.fake_input(self._x, X.KeyPress, code)
            pressed.append(code)
        for code in reversed(pressed):
            xtest.fake_input(self._x, X.KeyRelease, code)
        self._x.sync()

    def type_text(self, text: str, *, interval_s: float = 0.0) -> None:
        """Type `text` as key events (any Unicode; newlines as Return, tabs as Tab)."""
        from Xlib import X
        from Xlib.ext import xtest

        shift = self._keycode_of_name("Shift_L")[0]
        for char in text:
            if char == "\r":
                continue
            code, needs_shift = self._keycode_of_char(char)
            if needs_shift:
                xtest.fake_input(self._x, X.KeyPress, shift)
            xtest.fake_input(self._x, X.KeyPress, code)
            xtest.fake_input(self._x, X.KeyRelease, code)
            if needs_shift:
                xtest.fake_input(self._x, X.KeyRelease, shift)
            if interval_s:
                self._x.sync()
                time.sleep(interval_s)
        self._x.sync()

    # -- keysyms and keycodes
    def _keycode_of_name(self, name: str) -> tuple[int, bool]:
        from Xlib import XK

        keysym = XK.string_to_keysym(name)
        if keysym == 0 and len(name) == 1:
            return self._keycode_of_char(name)
        if keysym == 0:
            raise InputError(f"unknown key {name!r}")
        return self._keycode_of_keysym(keysym)

    def _keycode_of_char(self, char: str) -> tuple[int, bool]:
        if char == "\n":
            return self._keycode_of_name("Return")
        if char == "\t":
            return self._keycode_of_name("Tab")
        if not char.isprintable() and char != " ":
            raise InputError(f"cannot type the control character {char!r}")
        point = ord(char)
        keysym = point if 0x20 <= point <= 0x7E or 0xA0 <= point <= 0xFF else 0x01000000 | point
        return self._keycode_of_keysym(keysym)

    def _keycode_of_keysym(self, keysym: int) -> tuple[int, bool]:
        if keysym in self._keycodes:
            return self._keycodes[keysym]
        for code, index in self._x.keysym_to_keycodes(keysym):
            if index in (0, 1):
                found = (code, index == 1)
                self._keycodes[keysym] = found
                return found
        # Not on the keyboard map (€, 日, emoji): bind it to a spare keycode. Each new character
        # gets its own spare code, so an app that reads events late still sees the right one; a
        # code is reused (oldest first) only when all are taken, after a pause that lets apps
        # catch up with the earlier mapping.
        if not self._spare_codes:
            self._spare_codes = self._find_spare_keycodes()
        if not self._spare_codes:
            raise InputError("the keyboard map has no spare keycode to type this character")
        code = self._spare_codes.pop(0)
        stale = [k for k, (c, _) in self._keycodes.items() if c == code]
        if stale:
            self._x.sync()
            time.sleep(0.05)
            for k in stale:
                del self._keycodes[k]
        self._x.change_keyboard_mapping(code, [(keysym, keysym)])
        self._x.sync()
        self._spare_codes.append(code)
        self._keycodes[keysym] = (code, False)
        return code, False

    def _find_spare_keycodes(self) -> list[int]:
        info = self._x.display.info
        first, count = info.min_keycode, info.max_keycode - info.min_keycode + 1
        mapping = self._x.get_keyboard_mapping(first, count)
        return [first + i for i, syms in enumerate(mapping) if not any(syms)]

    # ------------------------------------------------------------------ helpers
    def home(self) -> Path:
        """The private home folder apps started here get (removed by `close()`)."""
        return Path(self._home)


def _cpu_state(pids: Sequence[int]) -> list[tuple[str, int]]:
    """(state letter, CPU ticks used) of each live process in `pids`, from /proc."""
    found = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        found.append((fields[0], int(fields[11]) + int(fields[12])))
    return found


def _holds(window: Any, ids: set[int], depth: int = 3) -> bool:
    """Whether `window` or a descendant (down to `depth` levels) has an id in `ids`: a window
    manager's frame holds the client it decorates."""
    if window.id in ids:
        return True
    if depth == 0:
        return False
    return any(_holds(child, ids, depth - 1) for child in window.query_tree().children)


def _title(x: Display, window: Any) -> str:
    atom = x.intern_atom("_NET_WM_NAME")
    utf8 = x.intern_atom("UTF8_STRING")
    prop = window.get_full_property(atom, utf8)
    if prop is not None and prop.value:
        value = prop.value
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    name = window.get_wm_name()
    if isinstance(name, bytes):
        return name.decode("latin-1")
    return name or ""


def _pid(x: Display, window: Any) -> int | None:
    from Xlib import Xatom

    prop = window.get_full_property(x.intern_atom("_NET_WM_PID"), Xatom.CARDINAL)
    return int(prop.value[0]) if prop is not None and len(prop.value) else None
