"""GUI envs: screens driven by pixel-level actions (click, type, key, drag, scroll).

* `turnwise/Desktop-v0` — `DesktopEnv`: tasks on real desktop apps in a private Xvfb display.
* `turnwise/Grounding-v0` — `GroundingEnv`: "click the …" on web page screenshots.
* `turnwise/AppGrounding-v0` — `AppGroundingEnv`: "click the …" on desktop apps (AT-SPI boxes).

The actions are `turnwise.envs.gui.actions`; grounding elements are `turnwise.envs.gui.elements`;
the display is `turnwise.sandboxes.display` and its accessibility bus `turnwise.sandboxes.a11y`.
See docs/envs/gui.md.
"""

from __future__ import annotations

from .actions import ACTION_NAMES, ActionError, GuiAction, GuiActionSet, GuiActionSpace

__all__ = ["ACTION_NAMES", "ActionError", "GuiAction", "GuiActionSet", "GuiActionSpace"]
