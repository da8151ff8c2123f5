"""Observations of a web page: its accessibility tree as text, with stable element ids.

Ids: a fixed script gives every element without one a `data-tw-id` attribute, numbered in
document order from a counter kept on the page. An element keeps its id for as long as it stays
in the document, new elements get new numbers, and a new page starts again at 1, so the same
page in the same state always reads the same (replays are byte-identical). Actions address
elements by this id (`[data-tw-id="12"]`).

Tree: Chromium's own accessibility tree (CDP `Accessibility.getFullAXTree`, roles and names as a
screen reader gets them), joined to the ids through one `DOM.getDocument` call. The rendering
is one line per node, indented by depth:

    RootWebArea "Click Button Task"
      [4] StaticText "Click on the \\"ok\\" button."
      [9] button "ok"
      [11] textbox "" value="hi" focused

Ignored nodes and unnamed generic containers are left out (their children move up); a text whose
element was left out carries that element's id, so a clickable `<span>` can still be clicked;
a text that only repeats its parent's name is dropped. Iframes and shadow roots are not entered.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession, Page

__all__ = ["ID_ATTRIBUTE", "TAG_SCRIPT", "PageSnapshot", "render_tree", "screenshot", "snapshot"]

ID_ATTRIBUTE = "data-tw-id"
#: Gives ids to elements that have none. Fixed, trusted text: no agent input goes into it.
TAG_SCRIPT = """() => {
  let next = window.__turnwiseNextId || 1;
  for (const el of document.querySelectorAll('*:not([data-tw-id])')) {
    el.setAttribute('data-tw-id', String(next++));
  }
  window.__turnwiseNextId = next;
}"""
# Roles that say nothing by themselves: shown only when named.
_PLAIN = frozenset({"generic", "none", "presentation", "LineBreak", "InlineTextBox", "group"})
_TEXT = frozenset({"StaticText"})
# AX properties worth showing, and how.
_FLAGS = ("focused", "disabled", "required", "readonly", "selected", "multiselectable")
_STATES = ("checked", "pressed", "expanded")
_VALUE_LIMIT = 200


@dataclass(frozen=True)
class PageSnapshot:
    """What `snapshot` read: the rendered tree, the page URL and title, and the ids shown."""

    tree: str
    url: str
    title: str
    ids: frozenset[int]


def _ids_by_backend_node(document: dict[str, Any]) -> tuple[dict[int, int], dict[int, int]]:
    """backend node id -> `data-tw-id` of elements, and of text nodes (their parent's id)."""
    elements: dict[int, int] = {}
    texts: dict[int, int] = {}
    stack: list[tuple[dict[str, Any], int | None]] = [(document, None)]
    while stack:
        node, parent_id = stack.pop()
        own = parent_id
        attributes = node.get("attributes") or []
        for k in range(0, len(attributes) - 1, 2):
            if attributes[k] == ID_ATTRIBUTE and attributes[k + 1].isdigit():
                own = int(attributes[k + 1])
                elements[node["backendNodeId"]] = own
                break
        if node.get("nodeType") == 3 and parent_id is not None:  # a text node
            texts[node["backendNodeId"]] = parent_id
        for child in node.get("children") or []:
            stack.append((child, own))
    return elements, texts


def _value(field: dict[str, Any] | None) -> Any:
    return None if not field else field.get("value")


def _quote(text: str, limit: int | None = None) -> str:
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return json.dumps(text, ensure_ascii=False)


def render_tree(
    nodes: list[dict[str, Any]], elements: dict[int, int], texts: dict[int, int]
) -> tuple[str, frozenset[int]]:
    """The text rendering of CDP AX `nodes` (see the module docstring) and the ids it shows."""
    by_id = {n["nodeId"]: n for n in nodes}
    roots = [n for n in nodes if "parentId" not in n or n["parentId"] not in by_id]
    lines: list[str] = []
    shown: set[int] = set()
    # (node, depth, the nearest shown ancestor's name, the id of the nearest element left out)
    stack: list[tuple[dict[str, Any], int, str, int | None]] = [
        (r, 0, "", None) for r in reversed(roots)
    ]
    while stack:
        node, depth, parent_name, hidden_id = stack.pop()
        role = str(_value(node.get("role")) or "")
        name = str(_value(node.get("name")) or "").strip()
        backend = node.get("backendDOMNodeId")
        element = elements.get(backend) if backend is not None else None
        show = not node.get("ignored", False) and role not in ("InlineTextBox", "LineBreak")
        if show and role in _TEXT:
            show = bool(name) and name not in parent_name
            element = texts.get(backend, hidden_id) if backend is not None else hidden_id
        elif show and role in _PLAIN and not name:
            show = False
        child_depth, child_parent, child_hidden = depth, parent_name, hidden_id
        if show:
            lines.append("  " * depth + _line(node, role, name, element))
            if element is not None:
                shown.add(element)
            child_depth, child_parent, child_hidden = depth + 1, name, None
        elif element is not None and role not in _TEXT:
            child_hidden = element
        for child_id in reversed(node.get("childIds") or []):
            child = by_id.get(child_id)
            if child is not None:
                stack.append((child, child_depth, child_parent, child_hidden))
    return "\n".join(lines), frozenset(shown)


def _line(node: dict[str, Any], role: str, name: str, element: int | None) -> str:
    parts = [] if element is None else [f"[{element}]"]
    parts.append(role or "node")
    if name or role not in _TEXT:
        parts.append(_quote(name, None if role in _TEXT else 300))
    value = _value(node.get("value"))
    if value not in (None, "") and role not in _TEXT:
        parts.append(f"value={_quote(str(value), _VALUE_LIMIT)}")
    props = {p["name"]: _value(p.get("value")) for p in node.get("properties") or []}
    for state in _STATES:
        if state in props and props[state] not in (None, "false", False):
            parts.append(f"{state}={props[state]}".replace("True", "true"))
        elif state in props and state != "pressed":
            parts.append(f"{state}=false")
    parts.extend(flag for flag in _FLAGS if props.get(flag) is True)
    return " ".join(parts)


def snapshot(page: Page, cdp: CDPSession) -> PageSnapshot:
    """Tag the page's elements with ids and read its accessibility tree (3 round trips)."""
    page.evaluate(TAG_SCRIPT)
    document = cdp.send("DOM.getDocument", {"depth": -1})["root"]
    elements, texts = _ids_by_backend_node(document)
    nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    tree, ids = render_tree(nodes, elements, texts)
    title = ""
    for node in nodes:
        if _value(node.get("role")) == "RootWebArea":
            title = str(_value(node.get("name")) or "")
            break
    return PageSnapshot(tree, page.url, title, ids)


def screenshot(page: Page) -> np.ndarray:
    """The viewport as an H×W×3 uint8 array."""
    from PIL import Image

    png = page.screenshot(type="png", animations="disabled", caret="hide")
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
