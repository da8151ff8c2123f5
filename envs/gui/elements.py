"""Screen elements for grounding: what an instruction can name, and how a click on one scores.

An `Element` is a visible thing on the screen with a role, a name and a box. Web pages give them
through Chromium's accessibility tree (`turnwise.envs.gui.grounding.read_elements`); desktop apps
through AT-SPI (`app_elements`, from `turnwise.sandboxes.a11y`). `targets` keeps those an
instruction names unambiguously, `instruction_for` writes the instruction, and `click_terms`
scores a click: a hit, and GUI-G²'s Gaussian point and coverage rewards.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gymnasium import spaces

from turnwise.core import StepResult, UnknownTaskError
from turnwise.rewards import gaussian_coverage, gaussian_point
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, image_space

from .actions import ActionError, GuiActionSet, GuiActionSpace

if TYPE_CHECKING:
    from turnwise.core import Observation
    from turnwise.sandboxes.a11y import Accessible
    from turnwise.sandboxes.display import Window

__all__ = [
    "ATSPI_ROLES",
    "CLICKS",
    "REWARD_PRESETS",
    "ROLE_WORDS",
    "ClickGrounding",
    "Element",
    "app_elements",
    "click_terms",
    "instruction_for",
    "pick_target",
    "targets",
]

#: The actions that decide an episode (the only ones offered).
CLICKS = ("click", "double_click", "right_click")
#: Default reward weights of `reward="binary"` and `reward="gaussian"` (GUI-G²: point + coverage).
REWARD_PRESETS: dict[str, dict[str, float]] = {
    "binary": {"outcome": 1.0, "gaussian_point": 0.0, "gaussian_coverage": 0.0},
    "gaussian": {"outcome": 0.0, "gaussian_point": 1.0, "gaussian_coverage": 1.0},
}
_TERMS = ("outcome", "gaussian_point", "gaussian_coverage")
#: Accessibility roles that can be targets, and how an instruction calls them.
ROLE_WORDS = {
    "button": "button", "link": "link", "checkbox": "checkbox", "radio": "radio button",
    "textbox": "text field", "searchbox": "search field", "combobox": "drop-down list",
    "spinbutton": "number field", "slider": "slider", "switch": "switch", "tab": "tab",
    "menuitem": "menu item", "menu": "menu", "image": "image", "StaticText": "text",
}  # fmt: skip
#: AT-SPI role names (GTK apps) → the `ROLE_WORDS` role they are.
ATSPI_ROLES = {
    "push button": "button", "toggle button": "button", "link": "link",
    "check box": "checkbox", "radio button": "radio", "text": "textbox",
    "password text": "textbox", "entry": "textbox", "combo box": "combobox",
    "spin button": "spinbutton", "slider": "slider", "page tab": "tab", "menu item": "menuitem",
    "check menu item": "menuitem", "radio menu item": "menuitem", "menu": "menu",
    "icon": "image", "image": "image", "label": "StaticText",
}  # fmt: skip
# Roles that are part of a control when inside one (a button's label, a link's icon).
_CONTENT_ROLES = frozenset({"StaticText", "image"})
_MAX_TEXT = 50


@dataclass(frozen=True)
class Element:
    """A visible element: accessibility role and name, and its box on the screen.

    `box` is (left, top, width, height) in whole pixels: the smallest pixel-aligned box around
    the element's layout box.

    Example:
        >>> button = Element("button", "Submit", (40, 80, 60, 20))
        >>> button.centre, button.describe(), button.listing()
        ((70, 90), 'button "Submit"', 'button "Submit" at x=40..100, y=80..100')
    """

    role: str
    name: str
    box: tuple[int, int, int, int]

    @property
    def centre(self) -> tuple[int, int]:
        """The pixel at the middle of the box."""
        left, top, width, height = self.box
        return left + width // 2, top + height // 2

    def describe(self) -> str:
        """Role and name, as the listing and the instruction write them."""
        word = ROLE_WORDS.get(self.role, self.role)
        return f'{word} "{self.name}"' if self.name else word

    def listing(self) -> str:
        """One line of the `elements_in_text` listing."""
        left, top, width, height = self.box
        return f"{self.describe()} at x={left}..{left + width}, y={top}..{top + height}"


def instruction_for(element: Element) -> str:
    """The instruction that names `element`.

    Example:
        >>> instruction_for(Element("radio", "Blue", (0, 0, 10, 10)))
        'Click the radio button "Blue".'
        >>> instruction_for(Element("textbox", "", (0, 0, 10, 10)))
        'Click the text field.'
    """
    return f"Click the {element.describe()}."


def targets(elements: Sequence[Element]) -> list[Element]:
    """The elements an instruction names unambiguously, in the order given.

    A label that repeats a control's name is left to the control; a name that two remaining
    elements share (in any case, whatever their roles) names neither; an unnamed element is a
    target only as the one element of its role.

    Example:
        >>> found = targets([
        ...     Element("checkbox", "Red", (0, 0, 10, 10)),
        ...     Element("StaticText", "Red", (12, 0, 20, 10)),
        ...     Element("button", "OK", (0, 20, 30, 10)),
        ...     Element("link", "ok", (0, 40, 30, 10)),
        ...     Element("textbox", "", (0, 60, 30, 10)),
        ... ])
        >>> [e.describe() for e in found]
        ['checkbox "Red"', 'text field']
    """
    controls = {e.name.casefold() for e in elements if e.role not in _CONTENT_ROLES and e.name}
    kept = [
        e for e in elements if e.role not in _CONTENT_ROLES or e.name.casefold() not in controls
    ]
    names: dict[str, int] = {}
    roles: dict[str, int] = {}
    for e in elements:
        roles[e.role] = roles.get(e.role, 0) + 1
    for e in kept:
        names[e.name.casefold()] = names.get(e.name.casefold(), 0) + 1
    return [
        e
        for e in kept
        if (e.name and names[e.name.casefold()] == 1) or (not e.name and roles[e.role] == 1)
    ]


def pick_target(found: Sequence[Element], seed: str, pick: int) -> Element:
    """The `pick`-th of the targets `found`, in an order shuffled by `seed` (modulo their number).

    Example:
        >>> found = [Element("button", name, (0, 0, 10, 10)) for name in "ABC"]
        >>> pick_target(found, "scene", 0) == pick_target(found, "scene", 3)
        True
    """
    order = list(range(len(found)))
    random.Random(seed).shuffle(order)  # str seeds are stable across runs
    return found[order[pick % len(found)]]


def click_terms(
    point: tuple[float, float], box: tuple[float, float, float, float], alpha: float = 0.5
) -> dict[str, float]:
    """The reward terms of a click at `point` on the target `box` (left, top, width, height).

    Example:
        >>> terms = click_terms((100, 20), (0, 0, 100, 40))  # on the right edge
        >>> terms["outcome"], round(terms["gaussian_point"], 4)  # exp(-1/2)
        (1.0, 0.6065)
        >>> click_terms((101, 20), (0, 0, 100, 40))["outcome"]
        0.0
    """
    left, top, width, height = box
    x, y = point
    inside = left <= x <= left + width and top <= y <= top + height
    return {
        "outcome": float(inside),
        "gaussian_point": gaussian_point((x, y), box, alpha=alpha),
        "gaussian_coverage": gaussian_coverage((x, y), box, alpha=alpha),
    }


class ClickGrounding:
    """What the grounding envs share (mixed in before their env base class): one click decides,
    judged against the target's box; anything else is an invalid step.

    The env calls `_check_options`, `_set_options` and `_click_spaces` as it is built;
    at each reset it sets `_elements`, `_target` and `_decided = False`; it writes
    `_observation()`, whose text `_text(instruction, size)` writes.
    """

    gui_actions: GuiActionSet
    """The actions the agent speaks (`describe()` writes them for a prompt)."""
    reward: str
    alpha: float
    elements_in_text: bool
    targets_per_instance: int
    _ids: dict[str, list[str]]
    _elements: list[Element]
    _target: Element | None
    _decided: bool
    _error: str
    _task_id: str | None

    if TYPE_CHECKING:

        def _observation(self) -> Observation: ...

    @staticmethod
    def _check_options(reward: str, alpha: float, targets_per_instance: int) -> None:
        if reward not in REWARD_PRESETS:
            raise ValueError(f"reward must be one of {sorted(REWARD_PRESETS)}, got {reward!r}")
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if targets_per_instance < 1:
            raise ValueError(f"targets_per_instance must be at least 1, got {targets_per_instance}")

    def _set_options(
        self,
        reward: str,
        alpha: float,
        elements_in_text: bool,
        targets_per_instance: int,
        sources: Sequence[str],
        instances: Mapping[str, int],
    ) -> None:
        """Keep the options, and list the task ids `<source>/<split>/<index>#k` of each split,
        instance-major, so that any prefix of a split mixes every source."""
        self.reward = reward
        self.alpha = float(alpha)
        self.elements_in_text = bool(elements_in_text)
        self.targets_per_instance = int(targets_per_instance)
        self._ids = {
            split: [
                f"{source}/{split}/{i:04d}#{k}"
                for i in range(n)
                for source in sources
                for k in range(self.targets_per_instance)
            ]
            for split, n in instances.items()
        }

    def _parse_task_id(
        self, task_id: str, sources: Sequence[str], instances: Mapping[str, int]
    ) -> tuple[str, str, int, int]:
        """(source, split, index, pick) of a task id, or `UnknownTaskError`."""
        instance, _, pick = task_id.partition("#")
        source, split, index = [*instance.split("/"), "", ""][:3]
        if (
            source not in sources
            or split not in instances
            or not (index.isdigit() and len(index) == 4 and int(index) < instances[split])
            or not (pick.isdigit() and int(pick) < self.targets_per_instance)
        ):
            raise UnknownTaskError(f"unknown grounding task {task_id!r}")
        return source, split, int(index), int(pick)

    @staticmethod
    def _click_spaces(
        width: int, height: int, max_action_length: int
    ) -> tuple[GuiActionSet, GuiActionSpace, spaces.Dict]:
        """The clicks the agent may speak, the action space, and the observation space."""
        observation_space = spaces.Dict(
            {
                "text": String(DEFAULT_MAX_LENGTH),
                "instruction": String(DEFAULT_MAX_LENGTH),
                "image": image_space(height, width),
            }
        )
        return (
            GuiActionSet(width, height, CLICKS),
            GuiActionSpace(width, height, max_action_length, names=CLICKS),
            observation_space,
        )

    def _text(self, instruction: str, size: tuple[int, int]) -> str:
        """The observation text: the instruction, the screen size, the last error, and with
        `elements_in_text` every visible element with its box."""
        width, height = size
        lines = [f"Instruction: {instruction}", f"Screen: {width}x{height} pixels"]
        if self._error:
            lines.append(f"Error: {self._error}")
        if self.elements_in_text:
            lines.append("Elements:")
            lines.extend(f"  {e.listing()}" for e in self._elements)
        return "\n".join(lines)

    @property
    def elements(self) -> list[Element]:
        """The visible elements of the current screen (what `elements_in_text` lists)."""
        return list(self._elements)

    @property
    def target(self) -> Element:
        """The element the current episode's instruction names."""
        if self._target is None:
            raise RuntimeError("call reset() first: there is no target before the first episode")
        return self._target

    def _step(self, action: str) -> StepResult:
        box = list(self.target.box)
        try:
            click = self.gui_actions.parse(action)
        except ActionError as exc:
            self._error = str(exc)
            terms = dict.fromkeys(_TERMS, 0.0)
            return StepResult(self._observation(), terms, valid=False, info={"target_box": box})
        assert click.point is not None
        self._error = ""
        self._decided = True
        terms = click_terms(click.point, self.target.box, self.alpha)
        return StepResult(
            self._observation(),
            terms,
            terminated=True,
            success=terms["outcome"] == 1.0,
            info={"point": list(click.point), "target_box": box},
        )

    def state_key(self) -> str:
        """The task and whether its click was made (the screen never changes)."""
        return f"{self._task_id}|{'decided' if self._decided else 'open'}"


def _is_label(text: str) -> bool:
    return 0 < len(text) <= _MAX_TEXT and any(c.isalnum() for c in text)


def app_elements(
    nodes: Sequence[Accessible],
    size: tuple[int, int],
    windows: Sequence[Window] = (),
    popups: Sequence[Window] = (),
) -> list[Element]:
    """The visible elements of desktop apps, from their accessibility trees, in reading order.

    Args:
        nodes: the apps' showing nodes, parents first (`XDisplay.accessible_tree()`).
        size: the screen's width and height: elements must lie wholly on it.
        windows: the display's windows, bottom to top (`XDisplay.windows()`): an element whose
            centre lies under a window stacked above its own is covered, and left out.
        popups: the open menus and tooltips (`XDisplay.popups()`): they cover everything but
            what is in a menu, and a menu's items count only where a popup shows them (a long
            menu scrolls).

    Roles are mapped through `ATSPI_ROLES`; left out as in `read_elements`: texts and icons
    inside a control, texts that are no label, names with a double quote, boxes under 2×2
    pixels or not wholly on screen, and elements covered at their centre.

    Example:
        >>> from turnwise.sandboxes.a11y import Accessible
        >>> tree = [
        ...     Accessible("frame", "notes.txt - Mousepad", (0, 0, 800, 600), frozenset(), 1, -1, 7),
        ...     Accessible("push button", "Save", (10, 10, 40, 20), frozenset(), 2, 0, 7),
        ...     Accessible("label", "Save", (12, 12, 30, 16), frozenset(), 3, 1, 7),
        ...     Accessible("text", "", (0, 40, 800, 560), frozenset(), 2, 0, 7),
        ... ]
        >>> [e.listing() for e in app_elements(tree, (800, 600))]
        ['button "Save" at x=10..50, y=10..30', 'text field at x=0..800, y=40..600']
    """
    width, height = size
    # The window each node belongs to: its outermost ancestor below the app's root.
    top: list[int] = []
    for i, node in enumerate(nodes):
        top.append(i if node.parent < 0 or nodes[node.parent].parent < 0 else top[node.parent])
    layer = {i: _stacking(nodes[i], windows) for i in set(top)}
    popup_boxes = [(p.x, p.y, p.width, p.height) for p in popups]
    found = []
    for i, node in enumerate(nodes):
        role = ATSPI_ROLES.get(node.role)
        if role is None or node.box is None:
            continue
        left, top_edge, w, h = node.box
        if left < 0 or top_edge < 0 or left + w > width or top_edge + h > height or w < 2 or h < 2:
            continue
        ancestors = _ancestors(nodes, i)
        inside_control = any(
            ATSPI_ROLES.get(nodes[a].role) not in (None, *_CONTENT_ROLES) for a in ancestors
        )
        if role in _CONTENT_ROLES and inside_control:
            continue
        if (role == "StaticText" and not _is_label(node.name)) or '"' in node.name:
            continue
        element = Element(role, node.name, node.box)
        centre = element.centre
        own = layer[top[i]]
        above = windows[own + 1 :] if own is not None else ()
        if any(_inside(centre, (w.x, w.y, w.width, w.height)) for w in above):
            continue
        if any(nodes[a].role == "menu" for a in ancestors):
            if not any(_contains(box, node.box) for box in popup_boxes):
                continue  # a menu's item not wholly shown by an open popup (a long menu scrolls)
        elif any(_inside(centre, box) for box in popup_boxes):
            continue  # under an open menu
        found.append(element)
    return sorted(found, key=lambda e: (e.box[1], e.box[0]))


def _ancestors(nodes: Sequence[Accessible], index: int) -> set[int]:
    found = set()
    parent = nodes[index].parent
    while parent >= 0:
        found.add(parent)
        parent = nodes[parent].parent
    return found


def _inside(point: tuple[int, int], box: tuple[int, int, int, int]) -> bool:
    x, y = point
    left, top, width, height = box
    return left <= x < left + width and top <= y < top + height


def _contains(outer: tuple[int, int, int, int], inner: tuple[int, int, int, int]) -> bool:
    left, top, width, height = inner
    x, y, w, h = outer
    return x <= left and y <= top and left + width <= x + w and top + height <= y + h


def _stacking(node: Accessible, windows: Sequence[Window]) -> int | None:
    """The stacking index of the window an app's top-level node is: same title, else the
    window that overlaps its box most."""
    for i in range(len(windows) - 1, -1, -1):
        if node.name and windows[i].title == node.name and windows[i].pid in (None, node.pid):
            return i
    if node.box is None:
        return None
    best, best_area = None, 0
    for i, w in enumerate(windows):
        left, top, width, height = node.box
        dx = min(left + width, w.x + w.width) - max(left, w.x)
        dy = min(top + height, w.y + w.height) - max(top, w.y)
        if dx > 0 and dy > 0 and dx * dy > best_area and w.pid in (None, node.pid):
            best, best_area = i, dx * dy
    return best
