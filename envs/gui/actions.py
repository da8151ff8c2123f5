"""GUI actions: pyautogui-like calls on screen pixels, parsed from text and never executed.

    click(x, y)          double_click(x, y)     right_click(x, y)     move(x, y)
    drag(x1, y1, x2, y2) scroll(dx, dy)         type("text")          key("ctrl+s")
    wait()               done()

Coordinates are screen pixels from the top-left corner of the screenshot. `scroll(0, 3)` scrolls
three notches down (negative: up; `dx` scrolls sideways) at the pointer, or at a point with
`scroll(0, 3, x, y)`. `key` takes one combination: `enter`, `ctrl+s`, `alt+F4`, `shift+tab`.

`GuiActionSet.parse` reads the text with Python's parser (`ast.parse`, which builds a syntax
tree and runs nothing) and accepts exactly one call whose arguments are number or string
literals. It is liberal in what models write: a `pyautogui.` prefix, keyword arguments,
camelCase names (`doubleClick`, `rightClick`, `moveTo`), `hotkey("ctrl", "s")`, `press("enter")`,
`write("hi")`, surrounding backticks, and fractional coordinates (rounded). Points off the screen,
unknown keys and over-long texts raise `ActionError` with a message for the model.

Example:
    >>> actions = GuiActionSet(width=800, height=600)
    >>> actions.parse("click(120, 45)")
    GuiAction(name='click', x=120, y=45)
    >>> actions.parse("pyautogui.hotkey('ctrl', 's')").to_text()
    'key("ctrl+s")'
    >>> try:
    ...     actions.parse("click(900, 10)")
    ... except ActionError as exc:
    ...     print(exc)
    click: (900, 10) is off the screen; x must be in 0..799 and y in 0..599.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from turnwise.sandboxes.display import InputError, parse_key_combo
from turnwise.spaces import String

if TYPE_CHECKING:
    from turnwise.sandboxes.display import XDisplay

__all__ = ["ACTION_NAMES", "ActionError", "GuiAction", "GuiActionSet", "GuiActionSpace", "perform"]

#: The canonical actions, in the order prompts list them.
ACTION_NAMES = (
    "click", "double_click", "right_click", "move", "drag", "scroll", "type", "key", "wait", "done",
)  # fmt: skip
_SIGNATURES: dict[str, tuple[str, ...]] = {
    "click": ("x", "y"),
    "double_click": ("x", "y"),
    "right_click": ("x", "y"),
    "move": ("x", "y"),
    "drag": ("x1", "y1", "x2", "y2"),
    "scroll": ("dx", "dy", "x", "y"),
    "type": ("text",),
    "key": ("keys",),
    "wait": (),
    "done": (),
}
_OPTIONAL = {"scroll": {"x", "y"}}
_DESCRIPTIONS = {
    "click": ("left-click at a point", "click(120, 45)"),
    "double_click": ("double-click at a point", "double_click(120, 45)"),
    "right_click": ("right-click at a point", "right_click(120, 45)"),
    "move": ("move the pointer", "move(300, 200)"),
    "drag": ("press at the first point, move to the second, release", "drag(10, 10, 200, 10)"),
    "scroll": ("scroll dy notches down (negative: up), dx right", "scroll(0, 3)"),
    "type": ("type text at the keyboard focus", 'type("hello")'),
    "key": ("press a key or combination", 'key("ctrl+s")'),
    "wait": ("do nothing for a moment", "wait()"),
    "done": ("say the task is finished", "done()"),
}
_ALIASES = {
    "doubleclick": "double_click", "double_click": "double_click", "dblclick": "double_click",
    "rightclick": "right_click", "right_click": "right_click", "leftclick": "click",
    "left_click": "click", "moveto": "move", "move_to": "move", "mousemove": "move",
    "dragto": "drag", "drag_to": "drag", "write": "type", "typewrite": "type",
    "type_text": "type", "press": "key", "hotkey": "key", "keypress": "key", "key_press": "key",
    "sleep": "wait", "noop": "wait", "finish": "done", "stop": "done",
}  # fmt: skip
_KEYWORD_ALIASES = {
    "type": {"message": "text", "string": "text", "content": "text"},
    "key": {"key": "keys", "combo": "keys"},
    "scroll": {"clicks": "dy", "amount": "dy"},
}
MAX_TEXT = 2000
# What `GuiActionSpace.sample` draws: pointer actions most of the time, harmless keys (nothing
# that closes or quits), short lowercase words.
_SAMPLE_KEYS = ("enter", "tab", "escape", "backspace", "up", "down", "left", "right", "ctrl+a")
_SAMPLE_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_SAMPLE_WEIGHTS = {
    "click": 0.4, "double_click": 0.1, "right_click": 0.05, "scroll": 0.1, "type": 0.15,
    "key": 0.15, "wait": 0.05,
}  # fmt: skip


class ActionError(ValueError):
    """Text that is not a performable GUI action; the message tells the model how to fix it."""


@dataclass(frozen=True)
class GuiAction:
    """A parsed GUI action. Unused fields stay None."""

    name: str
    x: int | None = None
    y: int | None = None
    x2: int | None = None
    y2: int | None = None
    dx: int | None = None
    dy: int | None = None
    text: str | None = None

    def __repr__(self) -> str:
        parts = [f"name={self.name!r}"] + [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)[1:]
            if getattr(self, f.name) is not None
        ]
        return f"GuiAction({', '.join(parts)})"

    @property
    def point(self) -> tuple[int, int] | None:
        """Where the action acts on the screen (the end point of a drag), if anywhere."""
        if self.name == "drag":
            return (self.x2, self.y2) if self.x2 is not None and self.y2 is not None else None
        return (self.x, self.y) if self.x is not None and self.y is not None else None

    def to_text(self) -> str:
        """The canonical text (`GuiActionSet.parse` reads it back to an equal action)."""
        if self.name in ("type", "key"):
            return f"{self.name}({json.dumps(self.text, ensure_ascii=False)})"
        if self.name == "drag":
            args: list[Any] = [self.x, self.y, self.x2, self.y2]
        elif self.name == "scroll":
            args = [self.dx, self.dy] + ([self.x, self.y] if self.x is not None else [])
        else:
            args = [a for a in (self.x, self.y) if a is not None]
        return f"{self.name}({', '.join(str(a) for a in args)})"


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
        and not isinstance(node.operand.value, bool)
    ):
        return -node.operand.value if isinstance(node.op, ast.USub) else node.operand.value
    raise ActionError("arguments must be numbers or quoted texts, like click(120, 45).")


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.attr  # pyautogui.click(...)
    if isinstance(func, ast.Name):
        return func.id
    raise ActionError("write one call, like click(120, 45).")


class GuiActionSet:
    """Parses and describes GUI actions for a screen of `width` × `height` pixels.

    Args:
        width, height: the screen size; points outside it are invalid.
        names: the actions to offer (default: all of `ACTION_NAMES`).
    """

    def __init__(self, width: int, height: int, names: tuple[str, ...] | None = None) -> None:
        self.width, self.height = int(width), int(height)
        chosen = ACTION_NAMES if names is None else tuple(names)
        unknown = [n for n in chosen if n not in _SIGNATURES]
        if unknown:
            raise ValueError(f"unknown GUI actions {unknown}; known: {', '.join(ACTION_NAMES)}")
        self.names = chosen

    def describe(self) -> str:
        """A plain-text description of the actions, for a system prompt."""
        lines = [f"Actions (one per turn; the screen is {self.width}x{self.height} pixels):"]
        for name in self.names:
            params = ", ".join(
                p if p not in _OPTIONAL.get(name, ()) else f"[{p}]" for p in _SIGNATURES[name]
            )
            description, example = _DESCRIPTIONS[name]
            lines.append(f"  {name}({params})".ljust(28) + f"{description}, e.g. {example}")
        lines.append("Points are pixels from the top-left corner of the screenshot.")
        return "\n".join(lines)

    def examples(self) -> list[str]:
        return [_DESCRIPTIONS[n][1] for n in self.names]

    def parse(self, text: str) -> GuiAction:
        """The action `text` names; raises `ActionError` saying what is wrong."""
        source = text.strip()
        while source and (source[0] == "`" or source[-1] in "`;"):
            source = source.strip("`").rstrip(";").strip()
        if not source:
            raise ActionError(f"empty action. {self._usage()}")
        try:
            tree = ast.parse(source, mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise ActionError(f"cannot read {source[:40]!r} as one call. {self._usage()}") from None
        call = tree.body
        if not isinstance(call, ast.Call):
            raise ActionError(f"write one call, like click(120, 45). {self._usage()}")
        raw_name = _call_name(call.func)
        name = _ALIASES.get(raw_name.lower(), raw_name.lower())
        if name not in self.names:
            raise ActionError(f"unknown action {raw_name[:30]!r}. {self._usage()}")
        if any(isinstance(a, ast.Starred) for a in call.args) or any(
            k.arg is None for k in call.keywords
        ):
            raise ActionError(f"{name}: write the arguments out, like {_DESCRIPTIONS[name][1]}.")
        positional = [_literal(a) for a in call.args]
        renames = _KEYWORD_ALIASES.get(name, {})
        named: dict[str, Any] = {}
        for keyword in call.keywords:
            key = renames.get(str(keyword.arg), str(keyword.arg))
            if key in named:
                raise ActionError(f"{name}: {key} is given twice.")
            named[key] = _literal(keyword.value)
        if raw_name.lower() == "hotkey" and positional and not named:
            positional = ["+".join(str(p) for p in positional)]  # hotkey("ctrl", "s")
        return self._bind(name, positional, named)

    def _usage(self) -> str:
        return "Actions: " + ", ".join(_DESCRIPTIONS[n][1] for n in self.names) + "."

    def _bind(self, name: str, positional: list[Any], named: dict[str, Any]) -> GuiAction:
        params = _SIGNATURES[name]
        example = _DESCRIPTIONS[name][1]
        if len(positional) > len(params) or any(k not in params for k in named):
            raise ActionError(f"{name} takes ({', '.join(params)}), like {example}.")
        values = dict(zip(params, positional, strict=False))
        for key, value in named.items():
            if key in values:
                raise ActionError(f"{name}: {key} is given twice.")
            values[key] = value
        missing = [p for p in params if p not in values and p not in _OPTIONAL.get(name, ())]
        if missing:
            raise ActionError(f"{name} is missing {', '.join(missing)}: {example}.")
        if name == "scroll" and ("x" in values) != ("y" in values):
            raise ActionError("scroll takes both x and y, or neither: scroll(0, 3, 400, 300).")
        if name in ("type", "key"):
            (value,) = (values[p] for p in params)
            if not isinstance(value, str):
                raise ActionError(f"{name} takes a quoted text: {example}.")
            if name == "type" and len(value) > MAX_TEXT:
                raise ActionError(f"type: at most {MAX_TEXT} characters at a time.")
            if name == "type" and any(not c.isprintable() and c not in "\n\t" for c in value):
                raise ActionError("type: the text has control characters; use key(...) for keys.")
            if name == "key":
                try:
                    parse_key_combo(value)
                except InputError as exc:
                    raise ActionError(f"key: {exc}.") from None
                value = value.strip()
            return GuiAction(name, text=value)
        numbers = {p: self._number(name, p, values[p]) for p in params if p in values}
        for px, py in (("x", "y"), ("x1", "y1"), ("x2", "y2")):
            if px in numbers:
                self._check_point(name, numbers[px], numbers[py])
        if name == "drag":
            return GuiAction(name, numbers["x1"], numbers["y1"], numbers["x2"], numbers["y2"])
        if name == "scroll":
            if abs(numbers["dx"]) > 50 or abs(numbers["dy"]) > 50:
                raise ActionError("scroll: at most 50 notches at a time, like scroll(0, 3).")
            return GuiAction(
                name, numbers.get("x"), numbers.get("y"), dx=numbers["dx"], dy=numbers["dy"]
            )
        return GuiAction(name, numbers.get("x"), numbers.get("y"))

    @staticmethod
    def _number(name: str, param: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ActionError(f"{name}: {param} must be a number, like {_DESCRIPTIONS[name][1]}.")
        if value != value or abs(value) > 1e6:  # NaN or absurd
            raise ActionError(f"{name}: {param} = {value!r} is not a pixel coordinate.")
        return round(value)

    def _check_point(self, name: str, x: int, y: int) -> None:
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise ActionError(
                f"{name}: ({x}, {y}) is off the screen; x must be in 0..{self.width - 1} and "
                f"y in 0..{self.height - 1}."
            )


class GuiActionSpace(String):
    """The action space of GUI envs: any string (as every turnwise env), whose `sample()` is a
    random *valid* GUI action on a `width` × `height` screen rather than random characters, so
    a random agent (`env.action_space.sample()`) clicks, types and presses keys. `names` limits
    the sample to the actions an env offers.

    Example:
        >>> space = GuiActionSpace(800, 600, seed=0)
        >>> GuiActionSet(800, 600).parse(space.sample()).name in ACTION_NAMES
        True
    """

    def __init__(
        self,
        width: int,
        height: int,
        max_length: int = 4096,
        *,
        names: tuple[str, ...] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(max_length, seed=seed)
        self.width, self.height = int(width), int(height)
        offered = ACTION_NAMES if names is None else tuple(names)
        self._weights = {n: w for n, w in _SAMPLE_WEIGHTS.items() if n in offered}
        if not self._weights:
            raise ValueError(f"none of {offered} can be sampled; offer one of {_SAMPLE_WEIGHTS}")

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            raise NotImplementedError("GuiActionSpace.sample does not support masks")
        rng = self.np_random
        x, y = int(rng.integers(self.width)), int(rng.integers(self.height))
        weights = np.array(list(self._weights.values()))
        kind = rng.choice(list(self._weights), p=weights / weights.sum())
        if kind == "scroll":
            return GuiAction("scroll", dx=0, dy=int(rng.integers(-3, 4))).to_text()
        if kind == "type":
            word = "".join(rng.choice(list(_SAMPLE_LETTERS), size=int(rng.integers(1, 8))))
            return GuiAction("type", text=word).to_text()
        if kind == "key":
            return GuiAction("key", text=str(rng.choice(_SAMPLE_KEYS))).to_text()
        if kind == "wait":
            return "wait()"
        return GuiAction(str(kind), x, y).to_text()

    def __repr__(self) -> str:
        return f"GuiActionSpace({self.width}x{self.height}, max_length={self.max_length})"


def perform(display: XDisplay, action: GuiAction) -> None:
    """Perform a parsed action on an X display (`wait` and `done` do nothing)."""
    name = action.name
    if name in ("click", "double_click", "right_click"):
        assert action.x is not None and action.y is not None
        button = 3 if name == "right_click" else 1
        display.click(action.x, action.y, button=button, count=2 if name == "double_click" else 1)
    elif name == "move":
        assert action.x is not None and action.y is not None
        display.move(action.x, action.y)
    elif name == "drag":
        x1, y1, x2, y2 = action.x, action.y, action.x2, action.y2
        assert x1 is not None and y1 is not None and x2 is not None and y2 is not None
        display.drag(x1, y1, x2, y2)
    elif name == "scroll":
        display.scroll(action.dx or 0, action.dy or 0, x=action.x, y=action.y)
    elif name == "type":
        display.type_text(action.text or "")
    elif name == "key":
        display.key(action.text or "")
