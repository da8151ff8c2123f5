"""`GroundingEnv`: ScreenSpot-style GUI grounding ("click the …") with GUI-G² Gaussian rewards.

`turnwise/Grounding-v0` shows a screenshot of a web page and names one element on it by its role
and accessible name (`Click the button "Submit".`). The agent answers with one click; the click
decides the episode. The element boxes come from the page itself (Chromium's accessibility tree
for roles and names, the layout for boxes), so every task has an exact answer.

Tasks: one element of one MiniWoB++ page instance (the pages of `GROUNDING_PAGES`, each showing
buttons, links, checkboxes, radio buttons, tabs, text fields or labels):

    click-checkboxes/train/0003#2     target 2 of instance 3 of the train split of click-checkboxes

The instance is MiniWoB's (`<page>/<split>/<index>`, seeded as in `turnwise/MiniWoB-v0`, its own
instruction bar hidden); `#k` picks the k-th element of the instance's targets, in an order
shuffled by the instance id (modulo their number). Train and test instances never share a seed.
Targets are the visible elements (non-empty box wholly on screen, not covered at its centre)
that the instruction names unambiguously: no other element has the same name; a label that
repeats a control's name is left to the control; an unnamed element only when it is the one
element of its role.

Observation: `image` (the screenshot, uint8 H×W×3) and `text` (the instruction and the screen
size; with `elements_in_text=True` also every visible element and its box, one per line as
`button "Submit" at x=40..100, y=80..100`, so text-only models can ground), and `instruction`.

Actions: `click(x, y)`, `double_click(x, y)` or `right_click(x, y)` (`turnwise.envs.gui.actions`;
the reset info's `action_syntax` lists them for the prompt). The first valid one ends the
episode; anything else is an invalid step (the episode goes on, up to `max_turns`, 3 by default).

Reward terms (0.0 on every step but the deciding one):
* `outcome`: 1.0 when the click is inside the target's box (edges included), else 0.0;
* `gaussian_point`, `gaussian_coverage`: GUI-G²'s Gaussian point and coverage rewards
  (`turnwise.rewards.gaussian_point` / `gaussian_coverage`, adaptive σ = `alpha` × box size).
`reward="binary"` weighs `outcome` alone; `reward="gaussian"` weighs the two Gaussian terms
(R = R_point + R_coverage, as in GUI-G²). Success is a hit. `info["target_box"]` (left, top,
width, height) and, on the deciding step, `info["point"]` are reported, so the `GaussianClick`
process-reward hook works on this env too.

Example:
    >>> env = GroundingEnv(pages=["click-button"])
    >>> env.tasks("test")[:3]
    ['click-button/test/0000#0', 'click-button/test/0000#1', 'click-button/test/0000#2']
    >>> env.close()
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from turnwise.core import Observation
from turnwise.envs.web.base import TaskState, WebEnv, WebTask
from turnwise.envs.web.miniwob import (
    INSTANCES,
    MiniWoBEnv,
    MiniWoBTask,
    miniwob_pages,
    serve_miniwob,
)
from turnwise.envs.web.observe import screenshot

from .actions import GuiAction
from .elements import (
    _CONTENT_ROLES,
    CLICKS,
    REWARD_PRESETS,
    ROLE_WORDS,
    ClickGrounding,
    Element,
    _is_label,
    click_terms,
    instruction_for,
    pick_target,
    targets,
)

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, Page

    from turnwise.sandboxes.browser import Browser

__all__ = [
    "CLICKS",
    "GROUNDING_PAGES",
    "REWARD_PRESETS",
    "ROLE_WORDS",
    "Element",
    "GroundingEnv",
    "GroundingTask",
    "click_terms",
    "instruction_for",
    "read_elements",
    "targets",
]

#: MiniWoB pages whose instances show several kinds of nameable elements.
GROUNDING_PAGES = (
    "click-button", "click-checkboxes", "click-dialog-2", "click-link", "click-option",
    "click-tab", "click-tab-2", "click-widget", "enter-text", "form-sequence", "login-user",
    "multi-layouts", "social-media",
)  # fmt: skip
# MiniWoB's instruction bar names another goal than ours: hidden (its space is kept).
_HIDE_QUERY = """() => {
  const style = document.createElement('style');
  style.textContent = '#query { visibility: hidden !important; }';
  document.head.appendChild(style);
}"""
# The box (left, top, right, bottom) of each node, or null when it is not one visible box that a
# click at its centre reaches. Fixed, trusted text: the nodes are passed as arguments.
_MEASURE = """function (...nodes) {
  return nodes.map((node) => {
    const text = node.nodeType === Node.TEXT_NODE;
    const el = text ? node.parentElement : node;
    if (!el || !el.checkVisibility({opacityProperty: true, visibilityProperty: true})) {
      return null;
    }
    let rects;
    if (text) {
      const range = document.createRange();
      range.selectNodeContents(node);
      rects = range.getClientRects();
    } else {
      rects = node.getClientRects();
    }
    rects = [...rects].filter((r) => r.width > 0 && r.height > 0);
    if (rects.length !== 1) return null;  // hidden, or wrapped over lines
    const r = rects[0];
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    return hit && (hit === el || el.contains(hit)) ? [r.left, r.top, r.right, r.bottom] : null;
  });
}"""
_GROUP = "turnwise-grounding"


def _value(field: dict[str, Any] | None) -> Any:
    return None if not field else field.get("value")


def read_elements(page: Page, cdp: CDPSession) -> list[Element]:
    """The visible elements of the page in reading order (top to bottom, then left to right),
    one entry per thing on the screen.

    Roles and names are Chromium's accessibility tree's (`ROLE_WORDS` roles only). Left out:
    ignored nodes, texts and images inside a control (they are the control), a control around
    another of the same name (the inner one is kept), texts without a letter or digit or longer
    than 50 characters, names with a double quote, and anything that is not one box wholly on
    screen, at least 2×2 pixels, that a click at its centre reaches.
    """
    size = page.viewport_size or {"width": 0, "height": 0}
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    by_id = {n["nodeId"]: n for n in nodes}
    shadowed: set[str] = set()
    wanted: list[tuple[dict[str, Any], str, str]] = []
    for node in nodes:
        role = str(_value(node.get("role")) or "")
        if node.get("ignored") or role not in ROLE_WORDS or "backendDOMNodeId" not in node:
            continue
        name = " ".join(str(_value(node.get("name")) or "").split())
        inside_control = False
        parent = by_id.get(node.get("parentId", ""))
        while parent is not None:
            parent_role = str(_value(parent.get("role")) or "")
            if parent_role in ROLE_WORDS and parent_role not in _CONTENT_ROLES:
                inside_control = True
                parent_name = " ".join(str(_value(parent.get("name")) or "").split())
                if role not in _CONTENT_ROLES and parent_name == name:
                    shadowed.add(parent["nodeId"])
            parent = by_id.get(parent.get("parentId", ""))
        # Left out: a control's own text or icon, a text that is no label, and a name with a
        # double quote (an instruction could not quote it).
        part_of_control = role in _CONTENT_ROLES and inside_control
        if part_of_control or (role == "StaticText" and not _is_label(name)) or '"' in name:
            continue
        wanted.append((node, role, name))
    wanted = [w for w in wanted if w[0]["nodeId"] not in shadowed]
    if not wanted:
        return []
    try:
        handles = [
            cdp.send(
                "DOM.resolveNode", {"backendNodeId": n["backendDOMNodeId"], "objectGroup": _GROUP}
            )["object"]["objectId"]
            for n, _, _ in wanted
        ]
        boxes = cdp.send(
            "Runtime.callFunctionOn",
            {
                "functionDeclaration": _MEASURE,
                "objectId": handles[0],
                "arguments": [{"objectId": h} for h in handles],
                "returnByValue": True,
            },
        )["result"]["value"]
    finally:
        cdp.send("Runtime.releaseObjectGroup", {"objectGroup": _GROUP})
    elements = []
    for (_, role, name), found in zip(wanted, boxes, strict=True):
        if found is None:
            continue
        left, top = math.floor(found[0]), math.floor(found[1])
        right, bottom = math.ceil(found[2]), math.ceil(found[3])
        on_screen = left >= 0 and top >= 0 and right <= size["width"] and bottom <= size["height"]
        if on_screen and right - left >= 2 and bottom - top >= 2:
            elements.append(Element(role, name, (left, top, right - left, bottom - top)))
    return sorted(elements, key=lambda e: (e.box[1], e.box[0]))  # stable: ties keep tree order


class GroundingTask:
    """One grounding task: a page (`page_task`, whose `setup` shows it) and which target to name.

    `choose(elements)` picks the target once the page is shown; the env judges the click
    geometrically, so `evaluate` reports nothing.
    """

    def __init__(self, task_id: str, page_task: WebTask, pick: int) -> None:
        self.task_id = task_id
        self.page_task = page_task
        self.pick = pick
        self.start_url = page_task.start_url
        self.allowed_origins = page_task.allowed_origins
        self.instruction = ""
        self.target: Element | None = None

    def setup(self, page: Page) -> None:
        self.page_task.setup(page)
        page.evaluate(_HIDE_QUERY)

    def choose(self, elements: Sequence[Element]) -> Element:
        """Pick the target among `elements` (the `#k` of the task id, in a seeded order)."""
        found = targets(elements)
        if not found:
            raise RuntimeError(
                f"grounding task {self.task_id!r}: the page shows no element that an instruction "
                "can name unambiguously; this page does not suit grounding tasks"
            )
        self.target = pick_target(found, self.page_task.task_id, self.pick)
        self.instruction = instruction_for(self.target)
        return self.target

    def evaluate(self, page: Page) -> TaskState:
        return TaskState()

    def expert_action(self, env: WebEnv) -> str | None:
        """A click at the centre of the target."""
        if self.target is None:
            return None
        x, y = self.target.centre
        return GuiAction("click", x, y).to_text()


class GroundingEnv(ClickGrounding, WebEnv):
    """Click the element the instruction names on a page screenshot; one click decides.

    Args:
        pages: MiniWoB pages to draw instances from (default: `GROUNDING_PAGES`).
        reward: default reward weights: `"binary"` (`outcome`) or `"gaussian"` (GUI-G²:
            `gaussian_point` + `gaussian_coverage`); `reward_weights` overrides either.
        alpha: GUI-G²'s adaptive-variance factor: σ = `alpha` × the box's width (height).
        elements_in_text: also list every visible element with its box in `text`.
        targets_per_instance: targets (`#0`…) per page instance in the task lists.
        viewport: `(width, height)` of the screen (MiniWoB pages fill 160×210 at the top left).
        browser, executable_path: as in `WebEnv`.
        split, max_turns, reward_weights, max_action_length, render_mode: as in `turnwise.Env`.

    Example:
        >>> env = GroundingEnv(reward="gaussian", reward_weights={"outcome": 0.5})
        >>> sorted(env.reward_weights.items())
        [('gaussian_coverage', 1.0), ('gaussian_point', 1.0), ('outcome', 0.5), ('valid', 0.1)]
        >>> env.close()
    """

    family = "gui"
    splits = ("train", "test")
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **WebEnv.default_reward_weights,
        **REWARD_PRESETS["binary"],
    }
    freeze_time_ms: ClassVar[int | None] = MiniWoBEnv.freeze_time_ms

    def __init__(
        self,
        pages: Sequence[str] | None = None,
        *,
        reward: Literal["binary", "gaussian"] = "binary",
        alpha: float = 0.5,
        elements_in_text: bool = False,
        targets_per_instance: int = 4,
        viewport: tuple[int, int] = (320, 320),
        browser: Browser | None = None,
        executable_path: str | None = None,
        split: str = "train",
        max_turns: int = 3,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        self._check_options(reward, alpha, targets_per_instance)
        chosen = tuple(GROUNDING_PAGES if pages is None else pages)
        unknown = [p for p in chosen if p not in miniwob_pages()]
        if unknown or not chosen:
            raise ValueError(f"unknown MiniWoB pages {unknown}; see miniwob_pages() for the list")
        self.pages = chosen
        self._set_options(reward, alpha, elements_in_text, targets_per_instance, chosen, INSTANCES)
        super().__init__(
            screenshots=True,
            viewport=viewport,
            browser=browser,
            executable_path=executable_path,
            split=split,
            max_turns=max_turns,
            reward_weights={**REWARD_PRESETS[reward], **(reward_weights or {})},
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        width, height = self.viewport
        self.gui_actions, self.action_space, self.observation_space = self._click_spaces(
            width, height, max_action_length
        )
        self._elements: list[Element] = []
        self._target: Element | None = None
        self._decided = False

    # ------------------------------------------------------------------ tasks
    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._ids[self.split if split is None else split]

    def make_task(self, task_id: str) -> GroundingTask:
        page, split, index, pick = self._parse_task_id(task_id, self.pages, INSTANCES)
        page_task = MiniWoBTask(page, split, index, serve_miniwob())
        return GroundingTask(task_id, page_task, pick)

    # ------------------------------------------------------------------ the contract
    def _reset_task(self, task_id: str) -> tuple[Observation, dict[str, Any]]:
        self._decided = False
        self._target = None
        _, info = super()._reset_task(task_id)
        task = self.task
        assert isinstance(task, GroundingTask)
        self._target = task.choose(self._elements)
        info["instruction"] = task.instruction
        info["action_syntax"] = self.gui_actions.describe()
        info["target_box"] = list(self._target.box)
        return self._observation(), info

    # ------------------------------------------------------------------ machinery
    def _observe(self) -> None:
        session = self.session
        self._elements = self._page_call(lambda: read_elements(session.page, session.cdp))
        self._image = session.browser.call(lambda: screenshot(session.page))

    def _observation(self) -> Observation:
        instruction = self._task.instruction if self._task is not None else ""
        # A copy: the screen never changes, and observations must not share their data.
        image = self._image.copy() if self._image is not None else None
        text = self._text(instruction, self.viewport)
        return {"text": text, "instruction": instruction, "image": image}
