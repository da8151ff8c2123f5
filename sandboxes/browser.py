"""The browser sandbox: Chromium driven through Playwright's sync API, one browser per worker.

* `Browser` owns one Chromium process (and the Playwright driver that talks to it). It launches
  lazily, restarts transparently when the process dies, and `close()` leaves no process behind.
* `Session` is one episode: a fresh browser context (no cookies, storage or cache shared with any
  other episode) holding one page. Requests outside the session's allowed origins are aborted and
  recorded; JavaScript dialogs are dismissed and recorded; popups are closed and recorded. The env
  drains those records with `Session.drain_events()` and tells the agent what happened.
* `BrowserPool` hands out one shared `Browser` per (process, thread) with reference counts:
  Playwright's sync API is bound to the thread that started it, so a worker process that runs
  several envs in one thread runs one Chromium for all of them.

Timeouts: every Playwright call that waits (click, fill, navigation) gets `action_timeout_s` or
`navigation_timeout_s`. Calls that cannot time out on their own (`page.evaluate`, CDP commands)
run under `Browser.guard`, a watchdog that kills the browser if a page hangs its renderer (an
infinite loop in page script); the next call then fails with `BrowserCrashed`, and the env
restarts the browser and reloads its task.

Nothing here executes agent text: the env turns agent text into typed actions first, and
page scripts run only inside Chromium.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # playwright is an optional dependency (the `web` extra)
    from playwright.sync_api import Browser as PlaywrightBrowser
    from playwright.sync_api import (
        BrowserContext,
        CDPSession,
        Dialog,
        Page,
        Playwright,
        Request,
        Route,
    )

__all__ = [
    "CHROMIUM_ARGS",
    "INSTALL_HINT",
    "Browser",
    "BrowserCrashed",
    "BrowserEvent",
    "BrowserPool",
    "BrowserUnavailable",
    "Session",
    "default_pool",
    "descendants",
    "find_chromium",
    "is_navigation_error",
    "origin_of",
    "process_alive",
]

#: Flags for a quiet, headless Chromium in a container (no sandbox: we often run as root).
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
INSTALL_HINT = (
    "install Chromium (`apt-get install chromium` on Debian/Ubuntu, or `make install EXTRAS=web`, "
    "which installs the system packages too) or point TURNWISE_CHROMIUM at a Chromium binary; "
    "`playwright install chromium` works too where its download site is reachable"
)
_DEFAULT_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
# URL schemes a page may always load: they never leave the machine.
_LOCAL_SCHEMES = frozenset({"about", "data", "blob", "javascript"})
# Resolves after one round of the page's task queue; MessageChannel is not faked by the clock.
_YIELD = """() => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = () => resolve(0);
  channel.port2.postMessage(0);
})"""
# Error messages Playwright gives when the browser, context or page is gone.
_GONE = ("has been closed", "Target closed", "crashed", "Browser closed", "Connection closed")


class BrowserUnavailable(RuntimeError):
    """Chromium or Playwright is missing; the message says how to install them."""


class BrowserCrashed(RuntimeError):
    """The browser process (or the page's renderer) died or was killed by the watchdog."""


def find_chromium(path: str | os.PathLike[str] | None = None) -> str:
    """The Chromium binary to use: `path`, else `$TURNWISE_CHROMIUM`, else a usual system path.

    Raises:
        BrowserUnavailable: nothing executable was found (the message says how to install one).
    """
    candidates = [str(path)] if path else []
    if not candidates and os.environ.get("TURNWISE_CHROMIUM"):
        candidates.append(os.environ["TURNWISE_CHROMIUM"])
    if not candidates:
        found = shutil.which("chromium") or shutil.which("chromium-browser")
        candidates = [found] if found else list(_DEFAULT_PATHS)
    for candidate in candidates:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise BrowserUnavailable(f"no Chromium found (tried {', '.join(candidates)}): {INSTALL_HINT}")


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of `url`, lower-cased (`''` for a URL without a host).

    Example:
        >>> origin_of("HTTP://127.0.0.1:8000/a/b?c=1")
        'http://127.0.0.1:8000'
        >>> origin_of("about:blank")
        ''
    """
    parts = urlsplit(url)
    if not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_navigation_error(exc: BaseException) -> bool:
    """Whether a page call failed only because the page navigated meanwhile (worth a retry)."""
    text = str(exc)
    return "Execution context was destroyed" in text or "navigat" in text.lower()


def _is_gone(exc: BaseException) -> bool:
    return any(marker in str(exc) for marker in _GONE)


# ---------------------------------------------------------------------------- processes
def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process we can see, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; the fields after it don't.
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> list[int]:
    """Live (non-zombie) descendants of process `pid`."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, stack = [], list(children.get(pid, []))
    while stack:
        p = stack.pop()
        if table[p][1] not in "ZX":
            found.append(p)
        stack.extend(children.get(p, []))
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _browser_processes() -> set[int]:
    """Our Chromium browser processes (not renderers, not zygotes)."""
    pids = set()
    for pid in descendants(os.getpid()):
        argv = _cmdline(pid)
        if (
            argv
            and "chrom" in Path(argv[0]).name
            and not any(a.startswith("--type=") for a in argv)
        ):
            pids.add(pid)
    return pids


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return state[state.rfind(")") + 2] not in "ZX"


# ---------------------------------------------------------------------------- session
@dataclass(frozen=True)
class BrowserEvent:
    """Something the page did that the agent should hear about.

    `kind` is `blocked_navigation` (the page itself tried to leave the allowed origins),
    `blocked_request` (a resource from elsewhere), `dialog` (alert/confirm/prompt, dismissed) or
    `popup` (a new window, closed); `message` says it in words; `detail` is the URL or text.
    """

    kind: str
    message: str
    detail: str = ""


@dataclass
class Session:
    """One episode's browser context and page. Build it with `Browser.new_session`.

    Attributes:
        page: the page the agent acts on.
        context: its fresh browser context (closed with the session).
        allowed_origins: origins requests may go to (`scheme://host:port`).
        restarted: the browser was restarted (after a crash) while opening this session.
    """

    browser: Browser
    context: BrowserContext
    page: Page
    allowed_origins: frozenset[str]
    restarted: bool = False
    _events: list[BrowserEvent] = field(default_factory=list)
    _closed: bool = False
    _cdp: CDPSession | None = None
    _navigating: bool = False

    def allows(self, url: str) -> bool:
        """Whether `url` may be loaded (an allowed origin, or a local scheme like `data:`)."""
        scheme = urlsplit(url).scheme.lower()
        return scheme in _LOCAL_SCHEMES or origin_of(url) in self.allowed_origins

    def drain_events(self) -> list[BrowserEvent]:
        """What happened since the last call (blocked requests, dialogs, popups), oldest first."""
        events, self._events = self._events, []
        return events

    @property
    def cdp(self) -> CDPSession:
        """A Chrome DevTools Protocol session attached to `page` (made on first use)."""
        if self._cdp is None:
            self._cdp = self.context.new_cdp_session(self.page)
        return self._cdp

    def guard(self, seconds: float | None = None) -> contextlib.AbstractContextManager[None]:
        """`Browser.guard` for this session's browser."""
        return self.browser.guard(seconds)

    def settle(self, timeout_s: float | None = None) -> bool:
        """Wait until a page load that an action started has finished; True if it did.

        Input events (a click on a link, Enter in a form) start navigations without waiting
        for them, and an observation taken meanwhile would show the old page. The route
        handler notes each allowed main-frame navigation; the page's `load` event clears it.
        A load that takes longer than `timeout_s` (default: the navigation timeout) is stopped.
        """
        from playwright.sync_api import Error

        limit = self.browser.navigation_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        try:
            # Let tasks the action queued run first (a form submitted by Enter starts there).
            self.browser.call(lambda: self.page.evaluate(_YIELD))
        except Error as exc:
            if not is_navigation_error(exc):
                raise
        while self._navigating and time.monotonic() < deadline:
            self.browser.call(lambda: self.page.wait_for_timeout(20))
        try:
            if self._navigating:
                raise TimeoutError
            remaining = max(0.1, deadline - time.monotonic())
            self.browser.call(
                lambda: self.page.wait_for_load_state("load", timeout=remaining * 1000)
            )
        except (Error, TimeoutError) as exc:
            if isinstance(exc, Error) and "Timeout" not in str(exc):
                raise
            self._navigating = False
            self.browser.call(lambda: self.cdp.send("Page.stopLoading"), 3.0)
            return False
        return True

    def close(self) -> None:
        """Close the context (and so the page). Safe to call more than once, and after a crash."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception), self.browser.guard():
            self.context.close()

    # -- Playwright callbacks (they run inside Playwright calls on this thread)
    def _on_route(self, route: Route, request: Request) -> None:
        navigation = request.is_navigation_request() and request.frame.parent_frame is None
        if self.allows(request.url):
            self._navigating = self._navigating or navigation
            route.fallback()
            return
        kind = "navigation" if navigation else "request"
        self._events.append(
            BrowserEvent(
                f"blocked_{kind}",
                f"{kind} to {_short(request.url)} blocked (outside this task's site)",
                request.url,
            )
        )
        route.abort("blockedbyclient")

    def _on_load(self, page: Page) -> None:
        self._navigating = False

    def _on_dialog(self, dialog: Dialog) -> None:
        article = "an" if dialog.type[:1] in "aeiou" else "a"
        message = f"{article} {dialog.type} dialog was dismissed: {_short(dialog.message, 200)}"
        self._events.append(BrowserEvent("dialog", message, dialog.message))
        with contextlib.suppress(Exception):
            dialog.dismiss()

    def _on_popup(self, page: Page) -> None:
        if page is self.page:
            return
        self._events.append(
            BrowserEvent("popup", f"a popup window ({_short(page.url)}) was closed", page.url)
        )
        with contextlib.suppress(Exception):
            page.close()


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- browser
class Browser:
    """One Chromium process driven by Playwright (sync API, bound to the creating thread).

    Args:
        executable_path: the Chromium binary (default: `find_chromium()`).
        action_timeout_s: limit of each waiting Playwright call (click, fill, ...).
        navigation_timeout_s: limit of each navigation.
        hang_timeout_s: the watchdog kills the browser when a guarded call runs this long.
        extra_args: more Chromium flags, after `CHROMIUM_ARGS`.

    The browser starts on first use. `close()` is idempotent and waits until the Chromium
    process tree is gone.
    """

    def __init__(
        self,
        executable_path: str | os.PathLike[str] | None = None,
        *,
        action_timeout_s: float = 5.0,
        navigation_timeout_s: float = 15.0,
        hang_timeout_s: float = 20.0,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.executable_path = find_chromium(executable_path)
        self.action_timeout_s = float(action_timeout_s)
        self.navigation_timeout_s = float(navigation_timeout_s)
        self.hang_timeout_s = float(hang_timeout_s)
        self.args = (*CHROMIUM_ARGS, *extra_args)
        self.restarts = 0
        """How often the browser was restarted after dying."""
        self._playwright: Playwright | None = None
        self._browser: PlaywrightBrowser | None = None
        self._pid: int | None = None
        self._closed = False
        self._killed_by_watchdog = False

    # -- lifecycle
    @property
    def pid(self) -> int | None:
        """The Chromium browser process id (None before launch or when it could not be found)."""
        return self._pid

    @property
    def alive(self) -> bool:
        """Whether the browser is launched and connected."""
        return self._browser is not None and self._browser.is_connected()

    def _launch(self) -> None:
        if self._closed:
            raise RuntimeError("this Browser is closed")
        try:
            from playwright.sync_api import Error, sync_playwright
        except ImportError as exc:
            raise BrowserUnavailable(
                f"playwright is not installed (pip install 'turnwise[web]'); then {INSTALL_HINT}"
            ) from exc
        if self._playwright is None:
            self._playwright = sync_playwright().start()
        before = _browser_processes()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=self.executable_path,
                args=list(self.args),
                timeout=max(30.0, self.navigation_timeout_s) * 1000,
            )
        except Error as exc:
            raise BrowserUnavailable(
                f"Chromium at {self.executable_path} failed to start ({exc.message.splitlines()[0]})"
                f"; {INSTALL_HINT}"
            ) from exc
        new = _browser_processes() - before
        self._pid = min(new) if new else None
        self._killed_by_watchdog = False

    def ensure_started(self) -> bool:
        """Launch or relaunch the browser if needed; True when it had died and was restarted."""
        if self.alive:
            return False
        crashed = self._browser is not None
        if crashed:
            self._discard()
            self.restarts += 1
        self._launch()
        return crashed

    def restart(self) -> None:
        """Kill the browser (if still running) and launch a fresh one."""
        self.kill()
        self._discard()
        self.restarts += 1
        self._launch()

    def kill(self) -> None:
        """SIGKILL the browser process (what a crash looks like; the watchdog uses it too)."""
        pid = self._pid
        if pid is not None and process_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _discard(self) -> None:
        """Forget a dead (or doomed) browser, making sure its processes are gone."""
        browser, pid, self._browser, self._pid = self._browser, self._pid, None, None
        if browser is not None:
            with contextlib.suppress(Exception):
                if browser.is_connected():
                    browser.close()
        if pid is not None:
            _reap(pid)

    def close(self) -> None:
        """Close the browser and stop the driver; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._discard()
        playwright, self._playwright = self._playwright, None
        if playwright is not None:
            with contextlib.suppress(Exception):
                playwright.stop()

    def __enter__(self) -> Browser:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Browser:
        # A handle on a running process: copies (Gymnasium copies env specs) share it.
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sessions
    def new_session(
        self,
        allowed_origins: Sequence[str],
        *,
        viewport: tuple[int, int] = (1280, 720),
        freeze_time_ms: int | None = None,
    ) -> Session:
        """A fresh context and page for one episode.

        Args:
            allowed_origins: origins (`http://127.0.0.1:8000`) requests may go to; anything else
                is aborted and reported through `Session.drain_events`.
            viewport: `(width, height)` of the page in CSS pixels.
            freeze_time_ms: when given, the page's clock (Date, timers, animation frames) is
                faked and paused at this epoch time; the env advances it with
                `page.clock.run_for`, so timed pages behave the same on every replay.
        """
        from playwright.sync_api import Error

        restarted = self.ensure_started()
        for attempt in range(2):
            assert self._browser is not None
            try:
                return self._open(allowed_origins, viewport, freeze_time_ms, restarted)
            except Error as exc:
                if attempt or not _is_gone(exc):
                    raise
                self.restart()
                restarted = True
        raise AssertionError("unreachable")

    def _open(
        self,
        allowed_origins: Sequence[str],
        viewport: tuple[int, int],
        freeze_time_ms: int | None,
        restarted: bool,
    ) -> Session:
        assert self._browser is not None
        context = self._browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]},
            service_workers="block",
            accept_downloads=False,
        )
        context.set_default_timeout(self.action_timeout_s * 1000)
        context.set_default_navigation_timeout(self.navigation_timeout_s * 1000)
        if freeze_time_ms is not None:
            context.clock.install(time=freeze_time_ms)
            context.clock.pause_at(freeze_time_ms)
        page = context.new_page()
        session = Session(
            self, context, page, frozenset(o.lower().rstrip("/") for o in allowed_origins)
        )
        session.restarted = restarted
        context.route("**/*", session._on_route)
        page.on("dialog", session._on_dialog)
        page.on("load", session._on_load)
        context.on("page", session._on_popup)
        return session

    # -- the watchdog
    @contextlib.contextmanager
    def guard(self, seconds: float | None = None) -> Iterator[None]:
        """Kill the browser if the block runs longer than `seconds` (default `hang_timeout_s`).

        For calls with no timeout of their own (`page.evaluate`, CDP commands), which a hung
        renderer would block forever. Raises `BrowserCrashed` when the watchdog fired.
        """
        limit = self.hang_timeout_s if seconds is None else seconds
        fired = threading.Event()

        def fire() -> None:
            fired.set()
            self.kill()

        timer = threading.Timer(limit, fire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except Exception as exc:
            if fired.is_set():
                raise BrowserCrashed(f"the page did not answer within {limit:g} s") from exc
            raise
        finally:
            timer.cancel()
        if fired.is_set():
            raise BrowserCrashed(f"the page did not answer within {limit:g} s")

    def call(self, fn: Callable[[], Any], seconds: float | None = None) -> Any:
        """`fn()` under `guard`, with Playwright's 'target closed' errors as `BrowserCrashed`."""
        from playwright.sync_api import Error

        try:
            with self.guard(seconds):
                return fn()
        except Error as exc:
            if _is_gone(exc) or not self.alive:
                raise BrowserCrashed(str(exc).splitlines()[0]) from exc
            raise


def _reap(pid: int, timeout_s: float = 5.0) -> None:
    """Wait for `pid` and its descendants to exit; SIGKILL whatever is left after `timeout_s`."""
    family = [pid, *descendants(pid)]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(process_alive(p) for p in family):
        time.sleep(0.05)
    for p in family:
        if process_alive(p):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------------------- pool
class BrowserPool:
    """One shared `Browser` per (process, thread, Chromium binary), reference-counted.

    Envs `acquire` a browser when they start and `release` it when they close; the browser
    closes when its last user releases it. A forked worker never reuses its parent's browser.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._browsers: dict[tuple[int, int, str], tuple[Browser, int]] = {}

    def acquire(self, executable_path: str | os.PathLike[str] | None = None) -> Browser:
        """The shared browser of this process and thread (created on first use)."""
        path = find_chromium(executable_path)
        key = (os.getpid(), threading.get_ident(), path)
        with self._lock:
            browser, users = self._browsers.get(key, (None, 0))
            if browser is None or browser._closed:
                browser, users = Browser(path), 0
            self._browsers[key] = (browser, users + 1)
            return browser

    def release(self, browser: Browser) -> None:
        """Give back a browser from `acquire`; the last release closes it."""
        with self._lock:
            for key, (held, users) in list(self._browsers.items()):
                if held is browser:
                    if users > 1:
                        self._browsers[key] = (held, users - 1)
                        return
                    del self._browsers[key]
                    break
        browser.close()

    def close(self) -> None:
        """Close every browser of this process."""
        with self._lock:
            browsers = [b for (pid, _, _), (b, _) in self._browsers.items() if pid == os.getpid()]
            self._browsers.clear()
        for browser in browsers:
            browser.close()


_DEFAULT_POOL = BrowserPool()


def default_pool() -> BrowserPool:
    """The process-wide pool that web envs use unless given a browser."""
    return _DEFAULT_POOL
