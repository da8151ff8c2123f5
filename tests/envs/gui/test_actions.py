"""Tests of the GUI action language: what parses, what it means, and what is refused."""

from __future__ import annotations

import pytest

from turnwise.envs.gui.actions import (
    ACTION_NAMES,
    ActionError,
    GuiAction,
    GuiActionSet,
    GuiActionSpace,
)

ACTIONS = GuiActionSet(width=800, height=600)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("click(120, 45)", GuiAction("click", 120, 45)),
        ("double_click(0, 599)", GuiAction("double_click", 0, 599)),
        ("right_click(x=10, y=20)", GuiAction("right_click", 10, 20)),
        ("move(799, 0)", GuiAction("move", 799, 0)),
        ("drag(1, 2, 300, 400)", GuiAction("drag", 1, 2, 300, 400)),
        ("scroll(0, -3)", GuiAction("scroll", dx=0, dy=-3)),
        ("scroll(2, 0, 400, 300)", GuiAction("scroll", 400, 300, dx=2, dy=0)),
        ('type("hello world")', GuiAction("type", text="hello world")),
        ("type('it\\'s\\n')", GuiAction("type", text="it's\n")),
        ('key("ctrl+s")', GuiAction("key", text="ctrl+s")),
        ("wait()", GuiAction("wait")),
        ("done()", GuiAction("done")),
        # What models write: pyautogui calls, camelCase, hotkey/press/write, decoration.
        ("pyautogui.click(x=5, y=6)", GuiAction("click", 5, 6)),
        ("pyautogui.doubleClick(10.4, 20.6)", GuiAction("double_click", 10, 21)),
        ("rightClick(1, 1)", GuiAction("right_click", 1, 1)),
        ("moveTo(3, 4)", GuiAction("move", 3, 4)),
        ("hotkey('ctrl', 'shift', 't')", GuiAction("key", text="ctrl+shift+t")),
        ("press('enter')", GuiAction("key", text="enter")),
        ("pyautogui.write(message='hi')", GuiAction("type", text="hi")),
        ("`click(5, 5)`;", GuiAction("click", 5, 5)),
        ("  key( ' alt+f4 ' )  ", GuiAction("key", text="alt+f4")),
    ],
)
def test_parses(text: str, action: GuiAction) -> None:
    parsed = ACTIONS.parse(text)
    assert parsed == action
    assert ACTIONS.parse(parsed.to_text()) == parsed  # the canonical text reads back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty action"),
        ("click(800, 10)", "off the screen"),
        ("click(-1, 10)", "off the screen"),
        ("drag(0, 0, 10, 600)", "off the screen"),
        ("click(1e309, 5)", "not a pixel coordinate"),
        ("click(10)", "missing y"),
        ("click(1, 2, 3)", "takes (x, y)"),
        ("click(x=1, x=2)", "given twice"),
        ("click('a', 5)", "must be a number"),
        ("click(True, 5)", "must be a number"),
        ("click(*[1, 2])", "write the arguments out"),
        ("click(**{'x': 1})", "write the arguments out"),
        ("click(1 + 1, 2)", "numbers or quoted texts"),
        ("key('hyper')", "unknown key"),
        ("key('s+ctrl')", "only the last key"),
        ("key(13)", "quoted text"),
        ("type(123)", "quoted text"),
        ("type('a\\x00b')", "control characters"),
        ("type('" + "x" * 2001 + "')", "at most 2000"),
        ("scroll(0, 99)", "at most 50"),
        ("scroll(0, 1, 5)", "both x and y"),
        ("open('/etc/passwd')", "unknown action"),
        ("__import__('os').system('id')", "write one call"),
        ("click(1, 2)(3)", "write one call"),
        ("click(1, 2); click(3, 4)", "as one call"),
        ("(" * 1000, "as one call"),
        ("'just text'", "write one call"),
    ],
)
def test_refuses_with_a_message(text: str, message: str) -> None:
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ACTIONS.parse(text)


def test_point_is_where_the_action_acts() -> None:
    assert ACTIONS.parse("click(3, 4)").point == (3, 4)
    assert ACTIONS.parse("drag(1, 2, 30, 40)").point == (30, 40)
    assert ACTIONS.parse("scroll(0, 2)").point is None
    assert ACTIONS.parse('type("x")').point is None


def test_a_subset_of_actions_and_its_description() -> None:
    clicks = GuiActionSet(100, 50, names=("click", "done"))
    assert clicks.parse("done()").name == "done"
    with pytest.raises(ActionError, match="unknown action"):
        clicks.parse('type("x")')
    text = clicks.describe()
    assert "100x50 pixels" in text and "click(x, y)" in text and "type" not in text
    assert set(GuiActionSet(10, 10).examples()) and len(ACTION_NAMES) == 10
    with pytest.raises(ValueError, match="unknown GUI actions"):
        GuiActionSet(10, 10, names=("fly",))


def test_sampled_actions_are_valid_gui_actions_and_seeded() -> None:
    space = GuiActionSpace(320, 200, seed=3)
    samples = [space.sample() for _ in range(300)]
    parsed = [GuiActionSet(320, 200).parse(s) for s in samples]  # every one parses
    assert {p.name for p in parsed} >= {"click", "type", "key", "scroll"}
    assert all(p.text not in ("ctrl+q", "alt+f4") for p in parsed)
    assert space.contains("anything at all") and not space.contains(b"bytes")
    again = GuiActionSpace(320, 200, seed=3)
    assert [again.sample() for _ in range(300)] == samples

    clicks = GuiActionSpace(50, 50, names=("click", "done"), seed=0)
    assert {GuiActionSet(50, 50).parse(clicks.sample()).name for _ in range(20)} == {"click"}
    with pytest.raises(ValueError, match="can be sampled"):
        GuiActionSpace(50, 50, names=("done",))
