"""Tests of the browser sandbox: launch and close, isolation, blocking, dialogs, crashes, hangs."""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator

import pytest

from turnwise.sandboxes.browser import (
    Browser,
    BrowserCrashed,
    BrowserPool,
    BrowserUnavailable,
    descendants,
    find_chromium,
    origin_of,
    process_alive,
)

PAGES = {
    "/": "<title>Home</title><a id=away href='http://example.invalid/x'>away</a>"
    "<button id=alert onclick=\"alert('boo')\">alert</button>"
    "<button id=loop onclick='while (true) {}'>loop</button>"
    "<img src='http://example.invalid/pixel.png'>",
    "/other": "<title>Other</title><p>other</p>",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/hang"):
            time.sleep(20)  # never answers within any timeout of these tests
            return
        body = PAGES.get(self.path, "missing").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Generous action limits (busy CI machines); the hang test passes short ones explicitly.
    with Browser(action_timeout_s=5.0, navigation_timeout_s=5.0, hang_timeout_s=4.0) as b:
        yield b


def test_a_missing_chromium_says_how_to_install_one(tmp_path: object) -> None:
    with pytest.raises(BrowserUnavailable, match="apt-get install chromium"):
        find_chromium("/nonexistent/chromium")


def test_origin_of_normalises() -> None:
    assert origin_of("HTTP://Example.com:81/x") == "http://example.com:81"
    assert origin_of("data:text/html,hi") == ""


@pytest.mark.browser
def test_close_is_idempotent_and_leaves_no_process() -> None:
    browser = Browser()
    browser.ensure_started()
    pid = browser.pid
    assert pid is not None and pid in descendants(os.getpid())
    family = [pid, *descendants(pid)]
    assert len(family) > 1  # renderers, zygotes, ...
    browser.close()
    browser.close()
    # Zombies count as gone: in some containers nothing reaps them, and they hold nothing.
    assert [p for p in family if process_alive(p)] == []
    assert browser.pid is None


@pytest.mark.browser
def test_each_session_is_a_fresh_context(browser: Browser, site: str) -> None:
    first = browser.new_session([site])
    first.page.goto(site + "/")
    first.page.evaluate("localStorage.setItem('k', 'v'); document.cookie = 'c=1'")
    assert first.page.evaluate("localStorage.getItem('k') + document.cookie") == "vc=1"
    second = browser.new_session([site])
    second.page.goto(site + "/")
    assert second.page.evaluate("[localStorage.getItem('k'), document.cookie]") == [None, ""]
    first.close()
    second.close()
    second.close()


@pytest.mark.browser
def test_requests_outside_the_allowed_origins_are_blocked_and_reported(
    browser: Browser, site: str
) -> None:
    session = browser.new_session([site])
    session.page.goto(site + "/")
    kinds = {e.kind for e in session.drain_events()}
    assert kinds == {"blocked_request"}  # the image
    session.page.click("#away")
    session.page.wait_for_timeout(200)
    events = session.drain_events()
    assert [e.kind for e in events] == ["blocked_navigation"]
    assert "example.invalid" in events[0].message and "blocked" in events[0].message
    assert session.drain_events() == []
    session.close()


@pytest.mark.browser
def test_dialogs_are_dismissed_and_reported(browser: Browser, site: str) -> None:
    session = browser.new_session([site])
    session.page.goto(site + "/")
    session.page.click("#alert")
    events = session.drain_events()
    assert any(e.kind == "dialog" and e.detail == "boo" for e in events)
    assert session.page.title() == "Home"  # the page goes on
    session.close()


@pytest.mark.browser
def test_a_killed_browser_restarts_on_the_next_session(browser: Browser, site: str) -> None:
    session = browser.new_session([site])
    session.page.goto(site + "/")
    old_pid, restarts = browser.pid, browser.restarts
    browser.kill()
    with pytest.raises(BrowserCrashed):
        browser.call(lambda: session.page.evaluate("1"))
    session.close()
    fresh = browser.new_session([site])
    assert fresh.restarted and browser.restarts == restarts + 1 and browser.pid != old_pid
    fresh.page.goto(site + "/other")
    assert fresh.page.title() == "Other"
    fresh.close()


@pytest.mark.browser
def test_hanging_pages_time_out(browser: Browser, site: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    session = browser.new_session([site])
    start = time.monotonic()
    with pytest.raises(PlaywrightTimeout):
        session.page.goto(site + "/hang", timeout=1000)
    assert time.monotonic() - start < 5
    session.page.goto(site + "/")
    # An infinite loop in page script: the click times out, and the watchdog kills the browser
    # when the next call cannot get through.
    with pytest.raises(PlaywrightTimeout):
        session.page.click("#loop", timeout=1000)
    with pytest.raises(BrowserCrashed, match="did not answer"):
        browser.call(lambda: session.page.evaluate("1"))
    session.close()
    assert browser.new_session([site]).restarted


@pytest.mark.browser
def test_the_pool_shares_one_browser_per_thread() -> None:
    pool = BrowserPool()
    a, b = pool.acquire(), pool.acquire()
    assert a is b
    pool.release(a)
    assert not a._closed
    pool.release(b)
    assert a._closed
    pool.close()
