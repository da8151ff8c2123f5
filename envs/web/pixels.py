"""`MiniWoBPixelEnv`: the MiniWoB++ pages driven only by screenshots and screen coordinates.

`turnwise/MiniWoBPixel-v0` is `turnwise/MiniWoB-v0` (the same tasks, ids, frozen page clock,
rewards, browser restarts) seen the way a computer-use agent sees a screen:

* Observation: `image`, the viewport screenshot (uint8 H×W×3, always), and `text` with the
  instruction, the screen size and the last error; `instruction` and `error` as in the web env.
  No accessibility tree and no element ids: the agent must find things in the pixels.
* Actions: the GUI actions of `turnwise.envs.gui.actions` (`click(x, y)`, `double_click`,
  `right_click`, `move`, `drag(x1, y1, x2, y2)`, `scroll(dx, dy[, x, y])`, `type("text")`,
  `key("ctrl+a")`, `wait()`, `done()`), performed with Playwright's mouse and keyboard as real
  input events. A scroll notch is `NOTCH_PX` pixels. `done()` is a `wait()`: the page, not the
  agent, decides when the episode ends. Points off the screen, keys the browser lacks (F13–F24)
  and anything that does not parse are invalid steps with a message, never exceptions.
* Info: `action_syntax` at reset (the action list, for the prompt: `GUITemplate` uses it), and
  `point` = `[x, y]` on every step whose action acts at a point (the end of a drag).
* Expert: the page's DOM expert (`miniwob.EXPERTS`) translated into coordinates: `click(id)`
  becomes a click at the centre of the element's first box; `fill(id, "text")` becomes a click
  on the field, then (once it has the focus) `key("ctrl+a")` when it holds text, then `type`.

Example:
    >>> env = MiniWoBPixelEnv(pages=["click-button"])
    >>> env.tasks("test")[:1]
    ['click-button/test/0000']
    >>> env.close()
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gymnasium import spaces

from turnwise.core import Observation, StepResult
from turnwise.envs.gui.actions import ActionError, GuiAction, GuiActionSet, GuiActionSpace
from turnwise.sandboxes.display import InputError, parse_key_combo
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, image_space

from .actions import ActionError as WebActionError
from .actions import ActionSet
from .base import PageAction
from .miniwob import MiniWoBEnv

if TYPE_CHECKING:
    from turnwise.sandboxes.browser import Browser, Session

__all__ = ["NOTCH_PX", "MiniWoBPixelEnv", "perform_gui", "playwright_keys"]

#: Pixels one scroll notch moves (`scroll(0, 3)` sends a wheel delta of 300).
NOTCH_PX = 100
#: Longest wait (s) for a scroll that the page can make to show (wheel scrolls land a frame late).
_SCROLL_WAIT_S = 2.0

# X keysym names (`parse_key_combo`) -> Playwright key names; F1–F12 and characters are the same.
_PLAYWRIGHT_KEYS = {
    "Return": "Enter", "Tab": "Tab", "space": "Space", "Escape": "Escape",
    "BackSpace": "Backspace", "Delete": "Delete", "Insert": "Insert", "Home": "Home",
    "End": "End", "Prior": "PageUp", "Next": "PageDown", "Up": "ArrowUp", "Down": "ArrowDown",
    "Left": "ArrowLeft", "Right": "ArrowRight", "Control_L": "Control", "Shift_L": "Shift",
    "Alt_L": "Alt", "Super_L": "Meta", "Caps_Lock": "CapsLock", "Menu": "ContextMenu",
    "Print": "PrintScreen",
}  # fmt: skip
_BROWSER_F_KEY = re.compile(r"^F(?:[1-9]|1[0-2])$")

# Fixed, trusted page scripts: only numbers from the env go into them, as arguments.
# The scroll offsets of everything a wheel at (x, y) could scroll, and whether any of them can
# still move by (dx, dy): a wheel scroll lands a frame after the event, so the env waits for it.
_SCROLL_STATE = """([x, y, dx, dy]) => {
  const root = document.scrollingElement || document.documentElement;
  const offsets = [window.scrollX, window.scrollY];
  let movable = false;
  const room = (el, pos, size, view, delta) =>
    (delta > 0 && pos + view < size - 1) || (delta < 0 && pos > 0);
  for (let el = document.elementFromPoint(x, y); el; el = el.parentElement) {
    offsets.push(el.scrollLeft, el.scrollTop);
    const style = getComputedStyle(el);
    const free = (v) => el === root || v === 'auto' || v === 'scroll' || v === 'overlay';
    movable = movable
      || (free(style.overflowX) && room(el, el.scrollLeft, el.scrollWidth, el.clientWidth, dx))
      || (free(style.overflowY) && room(el, el.scrollTop, el.scrollHeight, el.clientHeight, dy));
  }
  return [offsets.join(','), movable];
}"""
_SCROLL_LANDED = f"([x, y, dx, dy, before]) => ({_SCROLL_STATE})([x, y, dx, dy])[0] !== before"
# Where the expert clicks an element (the centre of its first box) and the state of a field.
_ELEMENT = """(id) => {
  const el = document.querySelector(`[data-tw-id="${Number(id)}"]`);
  const box = el && [...el.getClientRects()].find((r) => r.width > 0 && r.height > 0);
  if (!box) return null;
  const text = typeof el.value === 'string' ? el.value : null;
  let selected = false;
  try {
    selected = text !== null && el.selectionStart === 0 && el.selectionEnd === text.length;
  } catch (e) {}  // inputs without a selection (checkboxes, numbers) throw
  return {x: box.left + box.width / 2, y: box.top + box.height / 2,
          focused: document.activeElement === el, empty: !text, selected};
}"""


def playwright_keys(combo: str) -> str:
    """The Playwright key string of a GUI key combination (as `key(...)` takes it).

    Raises `ActionError` for a combination that does not parse or that the browser cannot press
    (F13–F24; a non-ASCII character with modifiers).

    Example:
        >>> playwright_keys("ctrl+s"), playwright_keys("enter"), playwright_keys("pageup")
        ('Control+s', 'Enter', 'PageUp')
        >>> playwright_keys("alt+F4"), playwright_keys("shift+tab"), playwright_keys("ctrl++")
        ('Alt+F4', 'Shift+Tab', 'Control++')
    """
    try:
        names = parse_key_combo(combo)
    except InputError as exc:
        raise ActionError(f"key: {exc}.") from None
    keys = []
    for name in names:
        if name in _PLAYWRIGHT_KEYS:
            keys.append(_PLAYWRIGHT_KEYS[name])
        elif _BROWSER_F_KEY.match(name) or (len(name) == 1 and (name.isascii() or len(names) == 1)):
            keys.append(name)
        elif len(name) == 1:
            raise ActionError(f"key: {combo.strip()!r} cannot be pressed; type({name!r}) types it.")
        else:
            raise ActionError(f"key: the browser has no {name} key; it has F1-F12.")
    return "+".join(keys)


def perform_gui(
    session: Session,
    action: GuiAction,
    pointer: tuple[int, int] = (0, 0),
    notch_px: int = NOTCH_PX,
) -> str | None:
    """Do a GUI action on the session's page as real input; return what went wrong, or None.

    `pointer` is where the mouse is (a scroll without a point scrolls there). `wait` and `done`
    do nothing. Raises `BrowserCrashed` when the browser died or hung (the env restarts it).
    """
    from playwright.sync_api import Error

    page, call = session.page, session.browser.call
    mouse, keyboard = page.mouse, page.keyboard
    name, x, y = action.name, action.x or 0, action.y or 0
    try:
        if name == "click":
            call(lambda: mouse.click(x, y))
        elif name == "right_click":
            call(lambda: mouse.click(x, y, button="right"))
        elif name == "double_click":
            call(lambda: mouse.dblclick(x, y))
        elif name == "move":
            call(lambda: mouse.move(x, y))
        elif name == "drag":
            x2, y2 = action.x2 or 0, action.y2 or 0
            call(lambda: mouse.move(x, y))
            call(mouse.down)
            call(lambda: mouse.move(x2, y2, steps=8))  # drag handlers want moves in between
            call(mouse.up)
        elif name == "scroll":
            at = (x, y) if action.x is not None else pointer
            delta = [(action.dx or 0) * notch_px, (action.dy or 0) * notch_px]
            if action.x is not None:
                call(lambda: mouse.move(x, y))
            before, movable = call(lambda: page.evaluate(_SCROLL_STATE, [*at, *delta]))
            call(lambda: mouse.wheel(delta[0], delta[1]))
            if movable:
                # Deterministic observations: wait until the scroll has landed (or was refused).
                call(
                    lambda: page.wait_for_function(
                        _SCROLL_LANDED,
                        arg=[*at, *delta, before],
                        polling=10,
                        timeout=_SCROLL_WAIT_S * 1000,
                    )
                )
        elif name == "type":
            call(lambda: keyboard.type(action.text or ""))
        elif name == "key":
            keys = playwright_keys(action.text or "")
            if len(keys) == 1 and not keys.isascii():
                call(lambda: keyboard.type(keys))  # a lone non-ASCII character: no key for it
            else:
                call(lambda: keyboard.press(keys))
    except Error as exc:
        if name == "scroll" and "Timeout" in str(exc):
            return None  # the page kept the wheel to itself: nothing scrolled
        return f"could not {name}: the browser refused it ({str(exc).splitlines()[0][:80]})."
    if not session.settle():
        return f"{name}: the page it opened did not finish loading in time, so it was stopped."
    if page.url.startswith("chrome-error://"):
        call(page.go_back)  # a blocked navigation: back to the page the agent saw
    return None


class MiniWoBPixelEnv(MiniWoBEnv):
    """The MiniWoB++ pages, observed as screenshots and driven by pixel coordinates.

    Args:
        pages: the page names to offer (default: all of them), as in `MiniWoBEnv`.
        viewport: `(width, height)` of the screen; the default 320×320 shows the 160×210 task
            area whole.
        actions: the GUI action names to offer (default: all of `ACTION_NAMES`).
        browser, executable_path, split, max_turns, reward_weights, max_action_length,
        render_mode: as in `MiniWoBEnv`.

    Example:
        >>> env = MiniWoBPixelEnv(pages=["click-button"], viewport=(200, 240))
        >>> env.observation_space["image"].shape
        (240, 200, 3)
        >>> print(env.gui_actions.describe().splitlines()[0])
        Actions (one per turn; the screen is 200x240 pixels):
        >>> env.close()
    """

    family = "gui"
    #: Pixels one scroll notch moves.
    notch_px: ClassVar[int] = NOTCH_PX

    def __init__(
        self,
        pages: Sequence[str] | None = None,
        *,
        viewport: tuple[int, int] = (320, 320),
        browser: Browser | None = None,
        executable_path: str | None = None,
        actions: Sequence[str] | None = None,
        split: str = "train",
        max_turns: int = 10,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            pages,
            screenshots=True,
            viewport=viewport,
            browser=browser,
            executable_path=executable_path,
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        width, height = self.viewport
        names = None if actions is None else tuple(actions)
        self.gui_actions = GuiActionSet(width, height, names)
        self.action_space = GuiActionSpace(width, height, max_action_length, names=names)
        """The actions the agent speaks (`describe()` writes them for a prompt)."""
        self._dom_actions = ActionSet()  # reads the DOM expert's answers
        self.observation_space = spaces.Dict(
            {
                "text": String(DEFAULT_MAX_LENGTH),
                "instruction": String(DEFAULT_MAX_LENGTH),
                "error": String(DEFAULT_MAX_LENGTH),
                "image": image_space(height, width),
            }
        )
        self._pointer = (0, 0)
        self._point: tuple[int, int] | None = None

    # ------------------------------------------------------------------ the contract
    def _reset_task(self, task_id: str) -> tuple[Observation, dict[str, Any]]:
        self._pointer, self._point = (0, 0), None  # a new page's mouse starts at the corner
        obs, info = super()._reset_task(task_id)
        return obs, {**info, "action_syntax": self.gui_actions.describe()}

    def _step(self, action: str) -> StepResult:
        self._point = None
        result = super()._step(action)
        if self._point is not None:
            result.info["point"] = list(self._point)
        return result

    def expert_action(self) -> str | None:
        """The page's DOM expert, translated to coordinates (None where the page has none)."""
        dom = super().expert_action()
        if dom is None:
            return None
        try:
            step = self._dom_actions.parse(dom)
        except WebActionError:
            return None
        if step.name not in ("click", "fill") or step.element is None:
            return None
        with self.session.guard():
            found = self.page.evaluate(_ELEMENT, step.element)
        if found is None:
            return None
        width, height = self.viewport
        x = min(max(math.floor(found["x"]), 0), width - 1)
        y = min(max(math.floor(found["y"]), 0), height - 1)
        if step.name == "click" or not found["focused"]:
            return GuiAction("click", x, y).to_text()
        if found["empty"] or found["selected"]:
            return GuiAction("type", text=step.text or "").to_text()
        return GuiAction("key", text="ctrl+a").to_text()

    # ------------------------------------------------------------------ the GUI language
    def _parse(self, text: str) -> PageAction | str:
        try:
            action = self.gui_actions.parse(text)
            if action.name == "key":
                playwright_keys(action.text or "")  # keys the browser lacks are invalid now
        except ActionError as exc:
            return str(exc)
        return action

    def _perform(self, action: PageAction) -> str | None:
        if not isinstance(action, GuiAction):
            raise TypeError(f"{type(self).__name__} performs GUI actions, not {action!r}")
        self._point = action.point
        problem = perform_gui(self.session, action, self._pointer, self.notch_px)
        if self._point is not None:
            self._pointer = self._point
        return problem

    def _observation(self) -> Observation:
        instruction = self._task.instruction if self._task is not None else ""
        width, height = self.viewport
        lines = [
            f"Instruction: {instruction}",
            f"Screen: {width}x{height} pixels",
        ]
        if self._error:
            lines.append(f"Error: {self._error}")
        return {
            "text": "\n".join(lines),
            "instruction": instruction,
            "error": self._error,
            # A copy: an invalid step shows the same screen, and observations must not share data.
            "image": self._image.copy() if self._image is not None else None,
        }
