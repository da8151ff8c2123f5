"""Tests of the X display sandbox: start and stop, input fidelity, windows, no leftover process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from turnwise.sandboxes.browser import process_alive
from turnwise.sandboxes.display import InputError, XDisplay, parse_key_combo

pytestmark = pytest.mark.gui


def wait_until(condition: object, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def display() -> Iterator[XDisplay]:
    with XDisplay(size=(640, 480)) as d:
        d.launch(["matchbox-window-manager", "-use_titlebar", "no"])
        yield d


@pytest.fixture
def editor(display: XDisplay, tmp_path: Path) -> Iterator[Path]:
    """Mousepad on an empty file; yields the file, closes the editor afterwards."""
    path = tmp_path / "typed.txt"
    path.write_text("")
    wm = display.apps[0]
    display.launch(["mousepad", path.name], cwd=tmp_path)
    display.wait_for_window(r"typed\.txt - Mousepad$")
    display.settle(quiet_s=0.3, timeout_s=10)
    yield path
    display.stop_apps(keep=[wm])


def save_and_read(display: XDisplay, path: Path) -> str:
    display.key("ctrl+s")
    assert wait_until(lambda: path.read_text() != "")
    time.sleep(0.1)  # the editor may write in more than one go
    return path.read_text()


@pytest.mark.parametrize(
    ("combo", "names"),
    [
        ("ctrl+s", ["Control_L", "s"]),
        ("Ctrl+Shift+T", ["Control_L", "Shift_L", "T"]),
        ("alt+f4", ["Alt_L", "F4"]),
        ("enter", ["Return"]),
        ("pagedown", ["Next"]),
        ("shift", ["Shift_L"]),
        ("ctrl++", ["Control_L", "+"]),
        ("+", ["+"]),
    ],
)
def test_key_combos_map_to_keysyms(combo: str, names: list[str]) -> None:
    assert parse_key_combo(combo) == names


@pytest.mark.parametrize("combo", ["", "ctrl+", "hyper+s", "s+ctrl", "ctrl+s+t", "\x00"])
def test_bad_key_combos_are_refused(combo: str) -> None:
    with pytest.raises(InputError):
        parse_key_combo(combo)


def test_screenshot_has_the_screen_size(display: XDisplay) -> None:
    image = display.screenshot()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8


def test_off_screen_input_raises_before_sending_anything(display: XDisplay) -> None:
    for x, y in ((-1, 0), (640, 10), (10, 480)):
        with pytest.raises(InputError, match="off the screen"):
            display.click(x, y)
    with pytest.raises(InputError):
        display.drag(0, 0, 700, 0)


def test_typing_reaches_the_app_exactly(display: XDisplay, editor: Path) -> None:
    # ASCII with shifted symbols, Latin-1, and characters that are not on the keyboard map at
    # all (typed through spare keycodes): the file must hold exactly what was typed.
    text = 'Hello, World! ~`@#$%^&*()_+{}|:"<>?\ncafé €5 ΔΩ 日本 ✓'
    display.click(300, 200)
    display.type_text(text)
    assert save_and_read(display, editor).rstrip("\n") == text


def test_key_combinations_and_drag_edit_text(display: XDisplay, editor: Path) -> None:
    display.click(300, 200)
    display.type_text("alpha beta")
    display.key("ctrl+a")  # select everything, then replace it
    display.type_text("gamma")
    display.key("Home")
    display.key("shift+End")
    display.type_text("delta")
    assert save_and_read(display, editor).rstrip("\n") == "delta"


def test_windows_focus_and_settle(display: XDisplay, editor: Path) -> None:
    windows = display.windows()
    assert len(windows) == 1 and windows[0].title.endswith("typed.txt - Mousepad")
    (window,) = windows
    assert (window.x, window.y, window.width, window.height) == (0, 0, 640, 480)
    assert window.pid is not None and process_alive(window.pid)
    assert display.focused_window() == window
    before = display.settle()
    display.click(300, 200)
    display.type_text("x" * 20)
    after = display.settle()
    assert not np.array_equal(before, after)  # the typing shows once the screen settled
    assert display.windows()[0].title.startswith("*")  # unsaved changes


def test_scroll_moves_the_view(display: XDisplay, tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("\n".join(f"line {i}" for i in range(300)))
    wm = display.apps[0]
    display.launch(["mousepad", path.name], cwd=tmp_path)
    display.wait_for_window(r"long\.txt - Mousepad$")
    top = display.settle(quiet_s=0.3, timeout_s=10)
    display.scroll(0, 5, x=300, y=240)
    scrolled = display.settle()
    display.scroll(0, -5, x=300, y=240)
    back = display.settle()
    display.stop_apps(keep=[wm])
    assert not np.array_equal(top, scrolled)
    assert np.array_equal(top, back)


def test_close_stops_the_server_and_every_app(tmp_path: Path) -> None:
    display = XDisplay(size=(320, 240))
    app = display.launch(["mousepad"])
    display.wait_for_window("Mousepad")
    server = display.server_pid
    display.close()
    assert display.closed
    assert wait_until(lambda: not process_alive(server) and not app.alive())
    home = display.home()
    assert not home.exists()
    display.close()  # twice is fine


def test_the_server_dies_with_the_process_that_started_it() -> None:
    # A Python process starts a display and is then killed outright (no cleanup runs).
    code = (
        "from turnwise.sandboxes.display import XDisplay; import time, sys\n"
        "d = XDisplay(size=(320, 240)); print(d.server_pid, flush=True); time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    server = int(child.stdout.readline())
    assert process_alive(server)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert wait_until(lambda: not process_alive(server))


def test_garbage_collected_display_leaves_no_server() -> None:
    display = XDisplay(size=(320, 240))
    server = display.server_pid
    del display
    import gc

    gc.collect()
    assert wait_until(lambda: not process_alive(server))
