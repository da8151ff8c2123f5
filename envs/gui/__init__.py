"""GUI envs: screens driven by pixel-level actions (click, type, key, drag, scroll).

* `turnwise/Desktop-v0` — `DesktopEnv`: tasks on real desktop apps in a private Xvfb display.

The actions are `turnwise.envs.gui.actions`; the display is `turnwise.sandboxes.display`.
See docs/envs/gui.md.
"""

from __future__ import annotations

from .actions import ACTION_NAMES, ActionError, GuiAction, GuiActionSet, GuiActionSpace

__all__ = ["ACTION_NAMES", "ActionError", "GuiAction", "GuiActionSet", "GuiActionSpace"]
