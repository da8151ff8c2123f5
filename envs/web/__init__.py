"""Web envs: pages in Chromium through Playwright, observed as accessibility trees.

* `turnwise/MiniWoB-v0` — `MiniWoBEnv`: the MiniWoB++ task pages of the `miniwob` package;
* `turnwise/Shop-v0` — `ShopEnv`: a multi-page web shop served on loopback;
* `turnwise/MiniWoBPixel-v0` — `MiniWoBPixelEnv` (family `gui`): the MiniWoB pages seen as
  screenshots and driven by clicks and keys at pixel coordinates (`.pixels`).

All build on `WebEnv` and the `WebTask` protocol (`turnwise.envs.web.base`), the action set
(`.actions`) and the observation (`.observe`); the browser is `turnwise.sandboxes.browser`.
Playwright is imported only when a browser starts, so importing this package is cheap.
See docs/envs/web.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .actions import Action, ActionError, ActionSet
from .base import TaskState, WebEnv, WebTask

if TYPE_CHECKING:
    from .miniwob import MiniWoBEnv
    from .pixels import MiniWoBPixelEnv
    from .shop import ShopEnv

__all__ = [
    "Action",
    "ActionError",
    "ActionSet",
    "MiniWoBEnv",
    "MiniWoBPixelEnv",
    "ShopEnv",
    "TaskState",
    "WebEnv",
    "WebTask",
]


def __getattr__(name: str) -> Any:
    # The envs load lazily: MiniWoB needs the `miniwob` package, the shop its own modules.
    if name == "MiniWoBEnv":
        from .miniwob import MiniWoBEnv

        return MiniWoBEnv
    if name == "MiniWoBPixelEnv":
        from .pixels import MiniWoBPixelEnv

        return MiniWoBPixelEnv
    if name == "ShopEnv":
        from .shop import ShopEnv

        return ShopEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
