"""Known-answer tests of `app_elements`: which accessibility nodes become grounding elements."""

from __future__ import annotations

from turnwise.envs.gui.elements import Element, app_elements, targets
from turnwise.sandboxes.a11y import Accessible
from turnwise.sandboxes.display import Window

SCREEN = (800, 600)
NOTHING: frozenset[str] = frozenset()


def node(role: str, name: str, box: tuple[int, int, int, int] | None, parent: int) -> Accessible:
    return Accessible(role, name, box, NOTHING, 0, parent, 42)


def editor_with_dialog() -> list[Accessible]:
    return [
        node("application", "mousepad", None, -1),  # 0
        node("frame", "notes.txt - Mousepad", (0, 0, 800, 600), 0),  # 1
        node("dialog", "Find and Replace", (200, 150, 400, 300), 0),  # 2
        node("menu", "File", (0, 0, 40, 25), 1),  # 3
        node("text", "", (0, 50, 800, 550), 1),  # 4: centre (400, 325), under the dialog
        node("push button", "Find", (300, 400, 80, 30), 2),  # 5
        node("label", "Find", (310, 405, 60, 20), 5),  # 6: the button's own label
        node("label", "Search for:", (210, 170, 80, 20), 2),  # 7
        node("label", "...", (210, 200, 80, 20), 2),  # 8: no letter: no label
        node("check box", 'Say "hi"', (210, 230, 80, 20), 2),  # 9: a quote: unnameable
        node("push button", "Off", (790, 10, 20, 20), 2),  # 10: not wholly on screen
        node("filler", "", (200, 150, 400, 300), 2),  # 11: no role we name
    ]


WINDOWS = [
    Window(1, "notes.txt - Mousepad", 0, 0, 800, 600, 42),
    Window(2, "Find and Replace", 200, 150, 400, 300, 42),
]


def test_a_dialog_covers_the_window_below_and_control_labels_merge_into_controls() -> None:
    found = app_elements(editor_with_dialog(), SCREEN, WINDOWS)
    assert found == [
        Element("menu", "File", (0, 0, 40, 25)),
        Element("StaticText", "Search for:", (210, 170, 80, 20)),
        Element("button", "Find", (300, 400, 80, 30)),
    ]


def test_without_windows_nothing_is_covered() -> None:
    found = app_elements(editor_with_dialog(), SCREEN)
    assert Element("textbox", "", (0, 50, 800, 550)) in found


def test_stacking_follows_the_window_order() -> None:
    # The same windows with the editor on top: now the dialog's controls are the covered ones.
    found = app_elements(editor_with_dialog(), SCREEN, WINDOWS[::-1])
    assert [e.name for e in found] == ["File", ""]


def test_an_open_menu_shows_only_the_items_inside_its_popup_and_covers_the_rest() -> None:
    tree = [
        node("application", "mousepad", None, -1),  # 0
        node("frame", "notes.txt - Mousepad", (0, 0, 800, 600), 0),  # 1
        node("menu bar", "", (0, 0, 800, 25), 1),  # 2
        node("menu", "File", (0, 0, 40, 25), 2),  # 3
        node("menu item", "Save", (0, 25, 200, 25), 3),  # 4
        node("menu item", "Quit", (0, 400, 200, 25), 3),  # 5: scrolled out of the popup
        node("push button", "Bold", (100, 100, 30, 30), 1),  # 6: under the popup
        node("push button", "Italic", (300, 100, 30, 30), 1),  # 7
    ]
    popup = [Window(9, "", 0, 25, 210, 300)]
    found = app_elements(tree, SCREEN, [WINDOWS[0]], popup)
    assert [e.describe() for e in found] == [
        'menu "File"',
        'menu item "Save"',
        'button "Italic"',
    ]
    # With the menu closed, its items are not shown at all, and nothing is covered.
    closed = app_elements(tree[:4] + tree[6:], SCREEN, [WINDOWS[0]])
    assert [e.describe() for e in closed] == ['menu "File"', 'button "Bold"', 'button "Italic"']


def test_app_elements_feed_targets_like_page_elements() -> None:
    found = targets(app_elements(editor_with_dialog(), SCREEN))
    # The text field is the one unnamed field; "Find" is named once (its label merged in).
    assert 'button "Find"' in [e.describe() for e in found]
    assert "text field" in [e.describe() for e in found]
