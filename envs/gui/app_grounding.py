"""`AppGroundingEnv`: ScreenSpot-style grounding on real desktop apps, boxes from AT-SPI.

`turnwise/AppGrounding-v0` is `turnwise/Grounding-v0` on the desktop: a screenshot of a real
Debian app (Mousepad, Gnumeric) in a private X display, and an instruction naming one of its
elements by role and accessible name (`Click the menu item "Save As...".`). One click decides
the episode. The element boxes are the app's own, read from its accessibility tree over a
private AT-SPI bus (`turnwise.sandboxes.a11y`), so every task has an exact answer.

Tasks: one element of one app scene:

    gnumeric/test/0007#1     target 1 of scene 7 of the test split of Gnumeric

A scene (`<app>/<split>/<index>`) opens a seeded document (the files of a `Desktop-v0` task of
that app) and brings up one view, also seeded: the main window, one of the menu bar's menus
open, or a dialog (Mousepad's Find and Replace, Gnumeric's Format Cells…). `#k` picks the k-th
element of the scene's targets, in an order shuffled by the scene id (modulo their number).
Targets follow `turnwise.envs.gui.elements.targets`: visible, not covered, named
unambiguously.

Observation, actions, reward terms (`outcome`, `gaussian_point`, `gaussian_coverage`), `reward`
presets, `alpha`, `elements_in_text`, `info["target_box"]` and `info["point"]`: as in
`turnwise/Grounding-v0`. The click is judged, not performed: the screen never changes.

Example:
    >>> env = AppGroundingEnv(apps=["mousepad"])
    >>> env.tasks("test")[:2]
    ['mousepad/test/0000#0', 'mousepad/test/0000#1']
    >>> env.close()
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from turnwise.core import Observation

from .actions import GuiAction
from .desktop import DesktopEnv
from .elements import REWARD_PRESETS, ClickGrounding, Element, instruction_for, pick_target, targets
from .tasks import KINDS, make_task

__all__ = ["APPS", "INSTANCES", "VIEWS", "AppGroundingEnv", "scene_plan"]

#: Scenes per app in each split.
INSTANCES = {"train": 200, "test": 50}
#: The apps and the `Desktop-v0` task kinds whose files their scenes open.
APPS: dict[str, tuple[str, ...]] = {
    "mousepad": ("write-line", "replace-word", "append-line"),
    "gnumeric": ("sheet-total", "sheet-fill"),
}
#: Each app's views: how a scene brings one up from the main window. `menu` opens one of the
#: menu bar's menus (seeded); the others press a shortcut that opens a dialog or bar.
VIEWS: dict[str, dict[str, str | None]] = {
    "mousepad": {
        "window": None,
        "menu": None,
        "find-and-replace": "ctrl+r",
        "go-to-line": "ctrl+l",
    },
    "gnumeric": {
        "window": None,
        "menu": None,
        "format-cells": "ctrl+1",
        "find": "ctrl+f",
    },
}


def scene_plan(scene: str) -> tuple[str, str, random.Random]:
    """What scene `<app>/<split>/<index>` shows: the `Desktop-v0` task whose files it opens,
    its view, and the seeded random source that picks the rest (which menu opens).

    Example:
        >>> task_id, view, _ = scene_plan("mousepad/test/0000")
        >>> task_id.split("/")[1:], view in VIEWS["mousepad"]
        (['test', '0000'], True)
    """
    app, split, index = scene.split("/")
    rng = random.Random(f"turnwise-app-grounding/{scene}")
    kind = rng.choice(APPS[app])
    view = rng.choice(sorted(VIEWS[app]))
    return f"{kind}/{split}/{index}", view, rng


class AppGroundingEnv(ClickGrounding, DesktopEnv):
    """Click the element the instruction names on a desktop app's screenshot; one click decides.

    Args:
        apps: apps to draw scenes from (default: all of `APPS`).
        reward, alpha, elements_in_text, targets_per_instance: as in `GroundingEnv`.
        size: screen width and height.
        split, max_turns, reward_weights, max_action_length, render_mode: as in `turnwise.Env`.

    Example:
        >>> env = AppGroundingEnv(reward="gaussian")
        >>> sorted(env.reward_weights.items())
        [('gaussian_coverage', 1.0), ('gaussian_point', 1.0), ('outcome', 0.0), ('valid', 0.1)]
        >>> env.close()
    """

    default_reward_weights: ClassVar[Mapping[str, float]] = {
        "valid": 0.1,
        **REWARD_PRESETS["binary"],
    }

    def __init__(
        self,
        apps: Sequence[str] | None = None,
        *,
        reward: Literal["binary", "gaussian"] = "binary",
        alpha: float = 0.5,
        elements_in_text: bool = False,
        targets_per_instance: int = 4,
        size: tuple[int, int] = (800, 600),
        split: str = "train",
        max_turns: int = 3,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        self._check_options(reward, alpha, targets_per_instance)
        chosen = tuple(APPS if apps is None else apps)
        unknown = [a for a in chosen if a not in APPS]
        if unknown or not chosen:
            raise ValueError(f"unknown apps {unknown}; known: {', '.join(APPS)}")
        super().__init__(
            kinds=[kind for app in chosen for kind in APPS[app]],
            size=size,
            split=split,
            max_turns=max_turns,
            accessibility=True,
            reward_weights={**REWARD_PRESETS[reward], **(reward_weights or {})},
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.apps = chosen
        self._set_options(reward, alpha, elements_in_text, targets_per_instance, chosen, INSTANCES)
        width, height = self.size
        self.gui_actions, self.action_space, self.observation_space = self._click_spaces(
            width, height, max_action_length
        )
        self.actions = self.gui_actions
        self._target: Element | None = None
        self._instruction = ""
        self._view = ""
        self._decided = False

    # ------------------------------------------------------------------ tasks
    @property
    def view(self) -> str:
        """The current scene's view (a key of `VIEWS[app]`)."""
        return self._view

    # ------------------------------------------------------------------ the contract
    def _reset_task(self, task_id: str) -> tuple[Observation, dict[str, Any]]:
        app, split, index, pick = self._parse_task_id(task_id, self.apps, INSTANCES)
        scene = f"{app}/{split}/{index:04d}"
        desktop_task, self._view, rng = scene_plan(scene)
        self._task = make_task(desktop_task, tuple(KINDS))
        self._restarted = False
        self._error = ""
        self._decided = False
        self._target = None
        self._open_task()
        self._show_view(app, rng)
        found = targets(self._elements)
        if not found:
            raise RuntimeError(
                f"app grounding task {task_id!r}: the {self._view} view of {app} shows no "
                "element that an instruction can name unambiguously"
            )
        self._target = pick_target(found, scene, pick)
        self._instruction = instruction_for(self._target)
        info = {
            "instruction": self._instruction,
            "action_syntax": self.actions.describe(),
            "target_box": list(self._target.box),
            "view": self._view,
            "display_restarted": False,
        }
        return self._observation(), info

    def expert_action(self) -> str | None:
        """A click at the centre of the target."""
        if self._target is None or self._ended:
            return None
        x, y = self._target.centre
        return GuiAction("click", x, y).to_text()

    # ------------------------------------------------------------------ machinery
    def _show_view(self, app: str, rng: random.Random) -> None:
        display = self.display
        shortcut = VIEWS[app][self._view]
        if self._view == "menu":
            menus = [
                e
                for e in self._elements
                if e.role == "menu" and e.box[1] < 40  # the menu bar's, not a submenu
            ]
            if menus:
                x, y = rng.choice(menus).centre
                display.click(x, y)
        elif shortcut is not None:
            display.key(shortcut)
        else:
            return  # the main window: what `_open_task` read is the view
        self._image = display.settle(timeout_s=5.0, quiet_s=0.3)
        self._read_elements()

    def _observation(self) -> Observation:
        return {
            "text": self._text(self._instruction, self.size),
            "instruction": self._instruction,
            "image": self._image.copy(),
        }
