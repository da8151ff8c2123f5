"""Tests of the AT-SPI machinery on a real display: a private accessibility bus, the trees of
real apps, open menus, and the desktop env's element listing."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from turnwise.envs.gui.desktop import DesktopEnv
from turnwise.sandboxes.a11y import AccessibilityError
from turnwise.sandboxes.browser import process_alive
from turnwise.sandboxes.display import XDisplay

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[XDisplay, object]]:
    folder = tmp_path_factory.mktemp("a11y")
    (folder / "notes.txt").write_text("hello\n")
    with XDisplay((800, 600), accessibility=True) as display:
        display.launch(["matchbox-window-manager", "-use_titlebar", "no"])
        app = display.launch(["mousepad", "notes.txt"], cwd=folder)
        display.wait_for_window("notes.txt", timeout_s=30)
        assert display.accessibility is not None
        display.accessibility.wait_for_app(app.pid, timeout_s=30)
        display.settle(timeout_s=10, quiet_s=0.3)
        yield display, app


def test_the_tree_of_a_real_app(editor: tuple[XDisplay, object]) -> None:
    display, app = editor
    nodes = display.accessible_tree([app])  # type: ignore[list-item]
    assert nodes[0].role == "application" and nodes[0].parent == -1
    frame = nodes[1]
    assert frame.role == "frame" and frame.name.endswith("notes.txt - Mousepad")
    assert frame.box == (0, 0, 800, 600)
    menus = {n.name: n.box for n in nodes if n.role == "menu"}
    assert list(menus)[:2] == ["File", "Edit"]
    assert all(box is not None and box[1] == 0 for box in menus.values())  # the menu bar
    focused = [n for n in nodes if "focused" in n.states]
    assert [n.role for n in focused] == ["text"] and "editable" in focused[0].states
    # Parents come first and depths add up.
    for n in nodes[1:]:
        assert 0 <= n.parent < nodes.index(n) and n.depth == nodes[n.parent].depth + 1


def test_an_open_menu_is_a_popup_and_its_items_are_in_the_tree(
    editor: tuple[XDisplay, object],
) -> None:
    display, app = editor
    assert display.popups() == []  # the window manager's frames are no popups
    file_menu = next(n for n in display.accessible_tree() if n.role == "menu")
    display.click(*file_menu.centre)
    display.settle(timeout_s=5, quiet_s=0.3)
    try:
        (popup,) = display.popups()
        items = [n for n in display.accessible_tree([app]) if n.role == "menu item"]  # type: ignore[list-item]
        assert "Save" in [n.name for n in items]
        assert popup.y >= 25 and all(n.box is not None and n.box[1] >= popup.y for n in items)
    finally:
        display.key("escape")
        display.settle(timeout_s=5)
    assert display.popups() == []


def test_a_stopped_app_gives_a_clear_error_not_a_hang(editor: tuple[XDisplay, object]) -> None:
    display, app = editor
    bus = display.accessibility
    assert bus is not None
    os.kill(app.pid, signal.SIGSTOP)  # type: ignore[attr-defined]
    try:
        start = time.monotonic()
        with pytest.raises(AccessibilityError, match="did not answer"):
            display.accessible_tree([app])  # type: ignore[list-item]
        assert time.monotonic() - start < bus.timeout_s + 5
    finally:
        os.kill(app.pid, signal.SIGCONT)  # type: ignore[attr-defined]
    # The next read starts afresh and works.
    assert any(n.role == "frame" for n in display.accessible_tree([app]))  # type: ignore[list-item]


def test_the_bus_dies_with_its_display(tmp_path: Path) -> None:
    display = XDisplay((320, 240), accessibility=True)
    bus = display.accessibility
    assert bus is not None
    assert bus.tree() == []  # no apps yet: an empty tree, not an error
    pids = [p.pid for p in bus._processes]
    assert len(pids) == 2 and all(process_alive(p) for p in pids)
    display.close()
    assert bus.closed and not any(process_alive(p) for p in pids)
    with pytest.raises(AccessibilityError, match="closed"):
        bus.tree()


def test_without_accessibility_there_is_no_tree() -> None:
    with XDisplay((64, 64)) as display:
        assert display.accessibility is None
        with pytest.raises(RuntimeError, match="accessibility=True"):
            display.accessible_tree()


def test_the_desktop_env_lists_elements_when_asked() -> None:
    with DesktopEnv(kinds=["write-line"], split="test", accessibility=True) as env:
        obs, _ = env.reset(options={"task_id": "write-line/test/0000"})
        assert 'menu "File" at x=0..39, y=0..25' in obs["text"]
        assert "text field at x=" in obs["text"]
        obs, *_ = env.step('key("ctrl+r")')  # Find and Replace, over the text
        assert 'button "Replace"' in obs["text"]
        assert "text field at x=1..799" not in obs["text"]  # the document is under the dialog
    with DesktopEnv(kinds=["write-line"], split="test") as env:
        obs, _ = env.reset(options={"task_id": "write-line/test/0000"})
        assert "Elements" not in obs["text"]
