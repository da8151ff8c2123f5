"""The web action set: a small, self-describing language parsed from text, never executed as code.

An action is one call, `name(arg, ...)`, whose arguments are integers (element ids from the
observation) or string literals (single or double quotes, Python/JSON escapes):

    click(12)   fill(7, "hello")   select(9, "Blue")   press("Enter")   scroll("down")
    go_back()   goto("/search?q=shoes")   answer("42")   noop()

`ActionSet.parse` tokenizes the text with one regular expression and checks it against a fixed
grammar: string literals are decoded with `ast.literal_eval` on a single string token, and
nothing the model writes is ever `eval`'d or `exec`'d. Keyword arguments (`fill(id=7,
text="hi")`), surrounding backticks and a trailing semicolon are accepted because models write
them. `describe()` and `examples()` are for prompts; `tool_schema()` gives the same actions as
JSON-schema function tools, and `from_tool_call` parses a tool call into the same `Action`.

Example:
    >>> actions = ActionSet()
    >>> actions.parse('fill(7, "Bob O\\'Neil")')
    Action(name='fill', element=7, text="Bob O'Neil")
    >>> actions.parse("click(12)").to_text()
    'click(12)'
    >>> try:
    ...     actions.parse("click(twelve)")
    ... except ActionError as exc:
    ...     print(exc)
    click(id): the id must be a number from the page, like click(12).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    from turnwise.sandboxes.browser import Session

__all__ = ["ACTIONS", "Action", "ActionError", "ActionSet", "ActionSpec", "Param", "perform"]

#: Keys `press` accepts, besides single printable characters and F1–F12, with modifiers
#: (`Control+a`, `Shift+Tab`).
KEYS = (
    "Enter", "Tab", "Escape", "Backspace", "Delete", "Space", "Home", "End", "PageUp",
    "PageDown", "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "Insert",
)  # fmt: skip
_KEY = re.compile(
    r"^(?:(?:Control|Shift|Alt|Meta)\+)*(?:[!-~]|F(?:[1-9]|1[0-2])|" + "|".join(KEYS) + r")$"
)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<int>[+-]?\d+)
    | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    | (?P<punct>[(),=])
    )""",
    re.VERBOSE,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_ID = 10**9


class ActionError(ValueError):
    """Text that is not a well-formed action; the message tells the model how to fix it."""


@dataclass(frozen=True)
class Param:
    """One argument: `kind` is `id` (an element id), `text`, `key`, `direction` or `url`."""

    name: str
    kind: str
    description: str


@dataclass(frozen=True)
class ActionSpec:
    """One action: its name, parameters, a one-line description and an example."""

    name: str
    params: tuple[Param, ...]
    description: str
    example: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(p.name for p in self.params)})"


@dataclass(frozen=True)
class Action:
    """A parsed action: `element` for id arguments, `text` for the string argument."""

    name: str
    element: int | None = None
    text: str | None = None

    def to_text(self) -> str:
        """The canonical text of this action (`ActionSet.parse` reads it back unchanged)."""
        args = [] if self.element is None else [str(self.element)]
        if self.text is not None:
            args.append(json.dumps(self.text, ensure_ascii=False))
        return f"{self.name}({', '.join(args)})"


_ID = Param("id", "id", "the number in brackets before an element in the observation")
ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("click", (_ID,), "click the element", "click(12)"),
    ActionSpec(
        "fill",
        (_ID, Param("text", "text", "the text to type")),
        "clear a text field and type text into it",
        'fill(7, "hello world")',
    ),
    ActionSpec(
        "select",
        (_ID, Param("option", "text", "the label of the option")),
        "choose an option of a drop-down list",
        'select(9, "Blue")',
    ),
    ActionSpec(
        "press",
        (Param("key", "key", "Enter, Tab, Escape, Backspace, ArrowDown, ..., or Control+a"),),
        "press a key on the focused element",
        'press("Enter")',
    ),
    ActionSpec(
        "scroll",
        (Param("direction", "direction", '"up" or "down"'),),
        "scroll the page by most of a screen",
        'scroll("down")',
    ),
    ActionSpec("go_back", (), "go back to the previous page", "go_back()"),
    ActionSpec(
        "goto",
        (Param("url", "url", "a path like /cart, or a full URL of this site"),),
        "open a URL of this site (other sites are blocked)",
        'goto("/")',
    ),
    ActionSpec(
        "answer",
        (Param("text", "text", "your answer"),),
        "give the answer the task asks for (only for tasks that ask a question)",
        'answer("42")',
    ),
    ActionSpec("noop", (), "do nothing for one turn (lets the page change)", "noop()"),
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ActionError(
                f"cannot read the action at character {pos + 1}; write one call like click(12)."
            )
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _string(token: str) -> str:
    try:
        value = ast.literal_eval(token)  # a single string token: a literal, never code
    except (ValueError, SyntaxError, MemoryError) as exc:
        raise ActionError("a string argument has a bad escape sequence.") from exc
    if not isinstance(value, str):
        raise ActionError("a string argument must be a quoted text.")
    return value


class ActionSet:
    """The web actions (or a subset of them): parsing, descriptions and a tool schema.

    Args:
        names: the actions to offer, in order (default: all of `ACTIONS`).
    """

    def __init__(self, names: Sequence[str] | None = None) -> None:
        known = {spec.name: spec for spec in ACTIONS}
        chosen = list(known) if names is None else list(names)
        unknown = [n for n in chosen if n not in known]
        if unknown:
            raise ValueError(f"unknown web actions {unknown}; known: {', '.join(known)}")
        self.specs: dict[str, ActionSpec] = {n: known[n] for n in chosen}

    # -- for prompts
    def describe(self) -> str:
        """A plain-text description of every action, for a system prompt."""
        lines = ["Actions (write exactly one per turn):"]
        for spec in self.specs.values():
            lines.append(f"  {spec.signature:<22} {spec.description}, e.g. {spec.example}")
        lines.append(
            "Element ids are the numbers in brackets in the observation, e.g. [12]. "
            'Texts are quoted: "like this".'
        )
        return "\n".join(lines)

    def examples(self) -> list[str]:
        """One example per action."""
        return [spec.example for spec in self.specs.values()]

    def tool_schema(self) -> list[dict[str, Any]]:
        """The actions as OpenAI-style function tools (JSON schema parameters)."""
        tools = []
        for spec in self.specs.values():
            properties: dict[str, Any] = {}
            for p in spec.params:
                prop: dict[str, Any] = {"description": p.description}
                if p.kind == "id":
                    prop["type"] = "integer"
                    prop["minimum"] = 0
                elif p.kind == "direction":
                    prop.update(type="string", enum=["up", "down"])
                else:
                    prop["type"] = "string"
                properties[p.name] = prop
            tools.append(
                {
                    "type": "function",
                    "function": {
                        "name": spec.name,
                        "description": spec.description,
                        "parameters": {
                            "type": "object",
                            "properties": properties,
                            "required": [p.name for p in spec.params],
                            "additionalProperties": False,
                        },
                    },
                }
            )
        return tools

    # -- parsing
    def parse(self, text: str) -> Action:
        """The action `text` names; raises `ActionError` saying what is wrong."""
        source = text.strip().rstrip(";").strip().strip("`").strip().rstrip(";").strip()
        if not source:
            raise ActionError(f"empty action. {self._usage()}")
        head = _NAME.match(source)
        if head is None:
            raise ActionError(f"an action starts with its name. {self._usage()}")
        spec = self.specs.get(head.group())
        if spec is None:
            raise ActionError(f"unknown action {head.group()[:30]!r}. {self._usage()}")
        tokens = _tokens(source)
        if len(tokens) < 3 or tokens[1] != ("punct", "(") or tokens[-1] != ("punct", ")"):
            raise ActionError(f"write {spec.name} as a call: {spec.example}")
        positional: list[tuple[str, str]] = []
        named: dict[str, tuple[str, str]] = {}
        body = tokens[2:-1]
        i = 0
        while i < len(body):
            if body[i][0] == "name" and i + 1 < len(body) and body[i + 1] == ("punct", "="):
                if i + 2 >= len(body):
                    raise ActionError(f"{spec.signature}: {body[i][1]}= needs a value.")
                if body[i][1] in named:
                    raise ActionError(f"{spec.signature}: {body[i][1]} is given twice.")
                named[body[i][1]] = body[i + 2]
                i += 3
            elif named:
                raise ActionError(f"{spec.signature}: positional arguments come first.")
            else:
                positional.append(body[i])
                i += 1
            if i < len(body):
                if body[i] != ("punct", ","):
                    raise ActionError(f"{spec.signature}: separate arguments with commas.")
                i += 1
        return self._bind(spec, positional, named)

    def from_tool_call(self, name: str, arguments: str | Mapping[str, Any]) -> Action:
        """The action of a function-tool call (`arguments` as a dict or a JSON string)."""
        spec = self.specs.get(name)
        if spec is None:
            raise ActionError(f"unknown action {str(name)[:30]!r}. {self._usage()}")
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments or "{}")
            except ValueError as exc:
                raise ActionError(f"{spec.signature}: the arguments are not JSON.") from exc
        if not isinstance(arguments, Mapping):
            raise ActionError(f"{spec.signature}: the arguments must be a JSON object.")
        named = {}
        for key, value in arguments.items():
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ActionError(f"{spec.signature}: {key} must be a number or a text.")
            named[str(key)] = ("int", str(value)) if isinstance(value, int) else ("raw", value)
        return self._bind(spec, [], named)

    def _usage(self) -> str:
        return "Actions: " + ", ".join(s.signature for s in self.specs.values()) + "."

    def _bind(
        self,
        spec: ActionSpec,
        positional: list[tuple[str, str]],
        named: dict[str, tuple[str, str]],
    ) -> Action:
        names = [p.name for p in spec.params]
        extra = [k for k in named if k not in names]
        if extra or len(positional) > len(names):
            raise ActionError(f"{spec.signature} takes {len(names)} argument(s): {spec.example}")
        values = dict(zip(names, positional, strict=False))
        for key, token in named.items():
            if key in values:
                raise ActionError(f"{spec.signature}: {key} is given twice.")
            values[key] = token
        element: int | None = None
        text: str | None = None
        for param in spec.params:
            if param.name not in values:
                raise ActionError(f"{spec.signature} is missing {param.name}: {spec.example}")
            kind, raw = values[param.name]
            if param.kind == "id":
                element = self._element(spec, kind, raw)
            else:
                text = self._text(spec, param, kind, raw)
        return Action(spec.name, element, text)

    @staticmethod
    def _element(spec: ActionSpec, kind: str, raw: str) -> int:
        if kind == "str" and raw[1:-1].strip().isdigit():
            raw, kind = raw[1:-1].strip(), "int"  # click("12"): models quote ids too
        elif kind == "raw" and raw.strip().isdigit():
            raw, kind = raw.strip(), "int"
        # Length first: int() refuses strings of thousands of digits.
        if kind != "int" or len(raw) > 10 or not 0 <= int(raw) < _MAX_ID:
            raise ActionError(
                f"{spec.signature}: the id must be a number from the page, like {spec.example}."
            )
        return int(raw)

    @staticmethod
    def _text(spec: ActionSpec, param: Param, kind: str, raw: str) -> str:
        if kind == "str":
            value = _string(raw)
        elif kind == "raw":
            value = raw
        else:
            raise ActionError(f"{spec.signature}: {param.name} must be quoted, like {spec.example}")
        if param.kind == "key" and not _KEY.match(value):
            raise ActionError(
                f"press(key): unknown key; use one of {', '.join(KEYS[:6])}, ..., "
                "a single character, or a combination like Control+a."
            )
        if param.kind == "direction" and value not in ("up", "down"):
            raise ActionError('scroll(direction): the direction is "up" or "down".')
        if param.kind == "url" and not value.strip():
            raise ActionError('goto(url): the URL is empty; e.g. goto("/").')
        return value


# ---------------------------------------------------------------------------- performing
# Playwright's failure logs vary between runs (retry counts, timings); the agent gets one of these
# fixed explanations instead, so that replays read the same.
_REASONS = (
    ("intercepts pointer events", "another element covers it"),
    ("not visible", "it is not visible"),
    ("not enabled", "it is disabled"),
    ("not editable", "it is read-only"),
    ("not an <input>", "it is not a text field"),
    ("Element is not a <select>", "it is not a drop-down list"),
    ("did not find some options", "it has no such option"),
    ("outside of the viewport", "it is outside the page"),
    ("not attached", "it disappeared from the page"),
)


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker, reason in _REASONS:
        if marker in text:
            return reason
    if "Timeout" in text:
        return "the page did not respond in time"
    return "the browser refused it"


def resolve_url(url: str, current: str, start_url: str) -> str:
    """The absolute URL `goto(url)` opens: relative to the current page (or the start page).

    Example:
        >>> resolve_url("/cart", "http://127.0.0.1:8000/item/3", "http://127.0.0.1:8000/")
        'http://127.0.0.1:8000/cart'
    """
    base = current if urlsplit(current).netloc else start_url
    return urljoin(base, url.strip())


def perform(
    session: Session, action: Action, start_url: str, shown: frozenset[int] = frozenset()
) -> str | None:
    """Do `action` on the session's page; return what went wrong in words, or None.

    `shown` are the ids of the latest observation. Raises `BrowserCrashed` when the browser died or hung (the env restarts it); every other
    failure is the agent's and comes back as text. `answer` is the env's business, not the page's.
    """
    from playwright.sync_api import Error

    page, call = session.page, session.browser.call
    name, text = action.name, action.text or ""
    try:
        if action.element is not None:
            target = page.locator(f'[data-tw-id="{action.element}"]')
            # Ids of the last observation are (almost always) still there: skip a round trip.
            if action.element not in shown and call(target.count) == 0:
                return (
                    f"there is no element [{action.element}] on the page; "
                    "use an id from the latest observation."
                )
            if name == "click":
                call(target.click)
            elif name == "fill":
                call(lambda: target.fill(text))
            elif name == "select":
                call(lambda: target.select_option(text))
        elif name == "press":
            call(lambda: page.keyboard.press(text))
        elif name == "scroll":
            step = -1 if text == "up" else 1
            call(
                lambda: page.evaluate("(dy) => window.scrollBy(0, dy)", step * 0.8 * _height(page))
            )
        elif name == "go_back":
            before = page.url
            call(page.go_back)
            if page.url == "about:blank":  # the blank page every tab starts on is not a page
                call(page.go_forward)
            if page.url == before:
                return "there is no previous page to go back to."
        elif name == "goto":
            url = resolve_url(text, page.url, start_url)
            if not session.allows(url) or urlsplit(url).scheme not in ("http", "https"):
                return f"goto: {_clip(url)} is outside this task's site, so it is blocked."
            call(lambda: page.goto(url, wait_until="load"))
    except Error as exc:
        if "Timeout" in str(exc):
            # A navigation that never completes would block every later page call; stopping it
            # leaves the page as it was. A renderer stuck in script is the watchdog's business.
            call(lambda: session.cdp.send("Page.stopLoading"), 3.0)
            if action.element is not None and call(target.count) == 0:
                return f"element [{action.element}] is no longer on the page."
        what = f"[{action.element}]" if action.element is not None else text
        return f"could not {name} {_clip(what)}: {_reason(exc)}."
    if not session.settle():
        return f"{name}: the page it opened did not finish loading in time, so it was stopped."
    if page.url.startswith("chrome-error://"):
        # A blocked navigation leaves Chromium's error page; go back to the page the agent saw.
        call(page.go_back)
    return None


def _height(page: Any) -> int:
    size = page.viewport_size
    return int(size["height"]) if size else 720


def _clip(text: str, limit: int = 80) -> str:
    text = json.dumps(text, ensure_ascii=False)[1:-1]
    return text if len(text) <= limit else text[: limit - 1] + "…"
