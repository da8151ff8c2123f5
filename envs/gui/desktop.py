"""`turnwise/Desktop-v0`: OSWorld-style tasks on real desktop apps, driven by pixels and keys.

Each env owns one private X display (`turnwise.sandboxes.display.XDisplay`, 800×600 by default)
with a small window manager (matchbox: every app window maximised, dialogs centred and
focused). An episode writes the task's files into a fresh folder, opens them in a real Debian
app (Mousepad, Gnumeric), and hands the agent the screen:

    image        the screenshot, uint8 H×W×3
    text         the instruction, the screen size, the open windows with their boxes (the
                 focused one marked), with `accessibility=True` the app's visible elements
                 (role, name and box, from its AT-SPI tree), and what went wrong with the
                 last action
    instruction  the task

Actions are the GUI actions of `turnwise.envs.gui.actions` (`click(x, y)`, `type("…")`,
`key("ctrl+s")`, `drag`, `scroll`, `wait()`, `done()`), performed through XTest. After each one
the env waits for the screen to settle, then runs the task's checker on the saved files.

Reward terms: `outcome` (1 when the checker says the task is done), `progress` (the change in
the checker's partial-completion measure, so an episode's progress terms sum to how far it got),
and `valid`. The episode ends when the checker succeeds, when the agent says `done()` (success
is then whatever the checker says), or at `max_turns`. `info["point"]` is where a pointer
action acted.

Accessibility: by default GTK's accessibility bridge is off, so window titles and boxes are all
the text there is. `accessibility=True` gives the display a private AT-SPI bus
(`turnwise.sandboxes.a11y`); the text then lists the elements the app shows, one per line
(`push button "Save" at x=78..115, y=26..61`), read after each action (20–250 ms a step).

Apps run with a private home folder, no network setup of their own, and a session bus only
for accessibility; agent text reaches them only as key and mouse events. If the X server dies, the env starts a new one
and sets the task up again (`info["display_restarted"]`).
"""

from __future__ import annotations

import shutil
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from turnwise.core import Env, Observation, StepResult, UnknownTaskError
from turnwise.sandboxes.a11y import AccessibilityError
from turnwise.sandboxes.display import App, DisplayUnavailable, XDisplay
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, image_space

from .actions import ActionError, GuiActionSet, GuiActionSpace, perform
from .elements import Element, app_elements
from .tasks import KINDS, DesktopTask, Verdict, make_task

__all__ = ["INSTANCES", "DesktopEnv"]

#: Tasks per kind in each split.
INSTANCES = {"train": 200, "test": 50}
#: The window manager: maximised windows, no title bars, centred dialogs.
WINDOW_MANAGER = ("matchbox-window-manager", "-use_titlebar", "no", "-use_cursor", "yes")
_APP_START_S = 30.0
# How long the screen must stay still (and the app idle) after an action. With the display's
# default (15 ms), one CI run caught Gnumeric mid-redraw after ctrl+a and replay differed; an
# app that sleeps briefly between redraw passes looks idle, so wait longer for calm.
_STEP_QUIET_S = 0.06
# GSettings for the apps (GSETTINGS_BACKEND=keyfile reads them from the private home).
_APP_SETTINGS = """\
[org/xfce/mousepad/preferences/window]
path-in-title=false
"""


class DesktopEnv(Env):
    """Desktop apps in a private X display, driven by pixel-level actions.

    Args:
        kinds: task kinds to offer (default: all of `turnwise.envs.gui.tasks.KINDS`).
        size: screen width and height.
        split: `train` or `test`.
        max_turns: per episode.
        settle_s: the longest wait for the screen to stop changing after an action.
        accessibility: list the app's visible elements (AT-SPI) in `text`.
        reward_weights, max_action_length, render_mode: as in `turnwise.Env`
            (`render_mode="rgb_array"` makes `render()` return the screenshot).

    Example:
        >>> env = DesktopEnv(kinds=["write-line"])
        >>> env.tasks("test")[:2]
        ['write-line/test/0000', 'write-line/test/0001']
        >>> env.close()
    """

    family = "gui"
    metadata = {"render_modes": ["ansi", "human", "rgb_array"], "render_fps": None}  # noqa: RUF012
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "valid": 0.1,
        "outcome": 1.0,
        "progress": 0.5,
    }

    def __init__(
        self,
        kinds: Sequence[str] | None = None,
        *,
        size: tuple[int, int] = (800, 600),
        split: str = "train",
        max_turns: int = 15,
        settle_s: float = 1.0,
        accessibility: bool = False,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        chosen = tuple(KINDS if kinds is None else kinds)
        unknown = [k for k in chosen if k not in KINDS]
        if unknown or not chosen:
            raise ValueError(f"unknown desktop task kinds {unknown}; known: {', '.join(KINDS)}")
        self.kinds = chosen
        self.size = (int(size[0]), int(size[1]))
        self.settle_s = float(settle_s)
        self.accessibility = bool(accessibility)
        self._ids = {
            s: [f"{k}/{s}/{i:04d}" for k in chosen for i in range(n)] for s, n in INSTANCES.items()
        }
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        width, height = self.size
        self.observation_space = spaces.Dict(
            {
                "text": String(DEFAULT_MAX_LENGTH),
                "image": image_space(height, width),
                "instruction": String(DEFAULT_MAX_LENGTH),
                "error": String(DEFAULT_MAX_LENGTH),
            }
        )
        self.actions = GuiActionSet(width, height)
        self.action_space = GuiActionSpace(width, height, max_action_length)
        self._display: XDisplay | None = None
        self._window_manager: App | None = None
        self._app: App | None = None
        self._elements: list[Element] = []
        self._task: DesktopTask | None = None
        self._folder: Path | None = None
        self._verdict = Verdict(0.0, False)
        self._checked_stamp: tuple[int, int, int] | None = None
        self._image = np.zeros((height, width, 3), dtype=np.uint8)
        self._error = ""
        self._restarted = False
        self._expert_step = 0
        self._last_action = ""

    # ------------------------------------------------------------------ the contract
    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._ids[self.split if split is None else split]

    @property
    def task(self) -> DesktopTask:
        if self._task is None:
            raise RuntimeError("call reset() first: there is no task before the first episode")
        return self._task

    @property
    def display(self) -> XDisplay:
        """The env's X display (started at the first reset; a dead one is replaced by `reset`
        and by the next step, which also set the task up again)."""
        if self._display is None or self._display.closed:
            self._start_display()
        assert self._display is not None
        return self._display

    def _reset_task(self, task_id: str) -> tuple[Observation, dict[str, Any]]:
        try:
            self._task = make_task(task_id, self.kinds)
        except ValueError as exc:
            raise UnknownTaskError(str(exc)) from None
        self._restarted = False
        self._error = ""
        self._expert_step = 0
        self._last_action = ""
        self._open_task()
        info = {
            "instruction": self.task.instruction,
            "action_syntax": self.actions.describe(),
            "display_restarted": False,
        }
        return self._observation(), info

    def _step(self, action: str) -> StepResult:
        self._last_action = action.strip()
        try:
            parsed = self.actions.parse(action)
        except ActionError as exc:
            return self._result(str(exc), valid=False, info={})
        info: dict[str, Any] = {}
        if parsed.point is not None:
            info["point"] = list(parsed.point)
        if not self._display_alive():
            self._recover()
        try:
            perform(self.display, parsed)
        except ValueError as exc:  # InputError: a character the keyboard map cannot type
            return self._result(str(exc), valid=False, info=info)
        self._observe(wait=parsed.name != "done")
        if parsed.name == "done":
            return self._result("", valid=True, info=info, finished=True)
        return self._result("", valid=True, info=info)

    def state_key(self) -> str:
        """The screen (a hash of the screenshot) and what the checker measured."""
        digest = f"{zlib.crc32(self._image.data):08x}"  # fast: a state key, not a security hash
        return f"{self._task.task_id if self._task else ''}|{digest}|{self._verdict.progress:.3f}"

    def expert_action(self) -> str | None:
        """The next step of the task's plan; the plan restarts when the agent left it, and a
        stray dialog is closed first. Every plan retypes the whole goal, so it works from any
        state of the document."""
        if self._ended or self._task is None:
            return None
        plan = self._task.plan()
        if self._expert_step > 0 and self._last_action != plan[self._expert_step - 1]:
            self._expert_step = 0
        # A dead display has no windows to read; the next step restarts it and the task.
        stray_dialog = self._display_alive() and len(self.display.windows()) > 1
        if self._expert_step == 0 and stray_dialog:
            return 'key("escape")'
        if self._expert_step >= len(plan):
            self._expert_step = 0
            return "done()"
        action = plan[self._expert_step]
        self._expert_step += 1
        return action

    def render(self) -> Any:
        if self.render_mode == "rgb_array":
            return self._image.copy()
        return super().render()

    def _close(self) -> None:
        if self._display is not None:
            self._display.close()
            self._display = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)

    def _invalid_observation(self, problem: str) -> Observation:
        self._error = f"Invalid action: {problem}"
        return self._observation()

    # ------------------------------------------------------------------ machinery
    def _start_display(self) -> None:
        if self._display is not None:
            self._display.close()
        try:
            self._display = XDisplay(size=self.size, accessibility=self.accessibility)
        except (DisplayUnavailable, AccessibilityError) as exc:
            raise DisplayUnavailable(f"{self.env_id} needs an X display: {exc}") from exc
        if shutil.which(WINDOW_MANAGER[0]) is None:
            raise DisplayUnavailable(
                f"{WINDOW_MANAGER[0]} is not installed; run scripts/install-system-deps.sh gui"
            )
        self._window_manager = self._display.launch(WINDOW_MANAGER)

    def _display_alive(self) -> bool:
        return self._display is not None and self._display.server_alive()

    def _open_task(self) -> None:
        """Stop the apps, write the task's files into a fresh folder, open them, wait."""
        task = self.task
        if not self._display_alive():
            self._start_display()
        display = self.display
        display.stop_apps(keep=[self._window_manager] if self._window_manager else [])
        # The pointer starts every episode at the same place: hover highlights depend on it.
        display.move(self.size[0] // 2, self.size[1] // 2)
        executable = shutil.which(task.app)
        if executable is None:
            raise DisplayUnavailable(
                f"{task.app} is not installed; run scripts/install-system-deps.sh gui"
            )
        home = display.home()
        for leftover in (".local", ".cache", ".config/mousepad", ".config/gnumeric"):
            shutil.rmtree(home / leftover, ignore_errors=True)
        settings = home / ".config" / "glib-2.0" / "settings"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "keyfile").write_text(_APP_SETTINGS)
        self._folder = home / "Documents"
        shutil.rmtree(self._folder, ignore_errors=True)
        self._folder.mkdir(parents=True)
        argv = task.setup(self._folder)
        # Relative paths and settings from a key file: titles show file names, never the
        # private folder's random path, so observations replay byte for byte.
        self._app = display.launch(
            [executable, *argv[1:]], cwd=self._folder, env={"GSETTINGS_BACKEND": "keyfile"}
        )
        display.wait_for_window(task.window, timeout_s=_APP_START_S)
        if display.accessibility is not None:
            display.accessibility.wait_for_app(self._app.pid, timeout_s=_APP_START_S)
        self._checked_stamp = None
        self._verdict = self._check()
        # An app that just started draws in bursts (fonts, toolbars): wait for a longer calm.
        self._image = display.settle(timeout_s=_APP_START_S, quiet_s=0.3)
        self._read_elements()

    def _recover(self) -> None:
        self._start_display()
        self._open_task()
        self._restarted = True

    def _observe(self, *, wait: bool) -> None:
        display = self.display
        if wait:
            self._image = display.settle(timeout_s=self.settle_s, quiet_s=_STEP_QUIET_S)
        else:
            self._image = display.screenshot()
        self._read_elements()

    def _read_elements(self) -> None:
        """The elements the task's app shows now, from its accessibility tree (when on)."""
        display = self._display
        if display is None or display.accessibility is None or self._app is None:
            self._elements = []
            return
        try:
            nodes = display.accessible_tree([self._app])
        except AccessibilityError:
            self._elements = []  # an app that does not answer: the screenshot still shows all
            return
        windows = display.windows()
        self._elements = app_elements(nodes, self.size, windows, display.popups(windows))

    def _windows_text(self) -> str:
        if self._display is None:
            return "Windows: none"
        windows = self._display.windows()
        if not windows:
            return "Windows: none (the app was closed)"
        focused = self._display.focused_window(windows)
        lines = ["Windows (top last):"]
        for w in windows:
            mark = " (focused)" if focused is not None and focused.id == w.id else ""
            lines.append(
                f'  "{w.title}"{mark} at x={w.x}..{w.x + w.width - 1}, '
                f"y={w.y}..{w.y + w.height - 1}"
            )
        return "\n".join(lines)

    def _check(self) -> Verdict:
        """The task's verdict, read again only when the task's file changed on disk."""
        assert self._folder is not None
        try:
            stat = (self._folder / self.task.filename).stat()
            stamp: tuple[int, int, int] | None = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        if stamp is None or stamp != self._checked_stamp:
            self._verdict = self.task.check(self._folder)
            self._checked_stamp = stamp
        return self._verdict

    def _observation(self) -> Observation:
        instruction = self._task.instruction if self._task else ""
        lines = [
            f"Instruction: {instruction}",
            f"Screen: {self.size[0]}x{self.size[1]} pixels",
            self._windows_text(),
        ]
        if self.accessibility:
            lines.append("Elements (top to bottom):" if self._elements else "Elements: none")
            lines.extend(f"  {e.listing()}" for e in self._elements)
        if self._restarted:
            lines.append("Note: the display crashed and was restarted; the task started over.")
        if self._error:
            lines.append(f"Error: {self._error}")
        return {
            "text": "\n".join(lines),
            "image": self._image.copy(),
            "instruction": instruction,
            "error": self._error,
        }

    def _result(
        self, error: str, *, valid: bool, info: dict[str, Any], finished: bool = False
    ) -> StepResult:
        self._error = error
        before = self._verdict
        self._verdict = self._check()
        done = self._verdict.success or finished
        terms = {
            "outcome": 1.0 if self._verdict.success else 0.0,
            "progress": self._verdict.progress - before.progress,
        }
        info.update(
            {
                "progress": self._verdict.progress,
                "display_restarted": self._restarted,
            }
        )
        return StepResult(
            self._observation(),
            terms,
            valid=valid,
            terminated=done,
            success=self._verdict.success if done else None,
            info=info,
        )
