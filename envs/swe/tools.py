"""The SWE env's tools, and parsing a tool call out of an agent's text.

Two spellings are accepted, so a person at a terminal and a model trained on either style can act:

Plain text (the first word names the tool)::

    shell <command>                 run a command in the repository (`$ <command>` works too)
    view <path> [<start>[-<end>]]   show a file with line numbers, or a folder's listing
    create <path>                   create or overwrite a file: its content follows on the next lines
    str_replace <path>              replace one exact, unique string: the path is followed by a
                                    block of a `<<<<<<< SEARCH` line, the old text, a `=======`
                                    line, the new text and a `>>>>>>> REPLACE` line
    run_tests                       run the task's tests
    submit                          end the episode; the repository's diff is graded

JSON (a function call, optionally inside `<tool_call>…</tool_call>` or a ```json fence)::

    {"name": "str_replace", "arguments": {"path": "a.py", "old": "x", "new": "y"}}

`parse_tool_call` never raises: a malformed call comes back as a `ToolCall` with an `error`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SYNTAX", "TOOLS", "ToolCall", "parse_tool_call"]

TOOLS = ("shell", "view", "create", "str_replace", "run_tests", "submit")

SYNTAX = """\
Tools (one per action; the first word names it):
  shell <command>                run a command in /workspace (each runs in a fresh shell)
  view <path> [<start>-<end>]    show a file with line numbers (or list a folder)
  create <path>                  then, on the next lines, the whole content of the file
  str_replace <path>             then a block replacing one exact, unique piece of text:
    <<<<<<< SEARCH
    old text
    =======
    new text
    >>>>>>> REPLACE
  run_tests                      run the task's tests and see which target tests pass
  submit                         finish: the diff of the repository is graded
A JSON call works too: {"name": "view", "arguments": {"path": "a.py", "start": 1, "end": 40}}"""

_ALIASES = {
    "bash": "shell",
    "sh": "shell",
    "run": "shell",
    "execute_bash": "shell",
    "cat": "view",
    "open": "view",
    "write": "create",
    "create_file": "create",
    "edit": "str_replace",
    "replace": "str_replace",
    "test": "run_tests",
    "tests": "run_tests",
    "run_test": "run_tests",
    "finish": "submit",
    "done": "submit",
}
_BLOCK = re.compile(
    r"^<{5,9} ?SEARCH[ \t]*\n(.*?)^={5,9}[ \t]*\n(.*?)^>{5,9} ?REPLACE[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
_RANGE = re.compile(r"^(\d+)(?:\s*(?:-|:|\.\.|\s)\s*(-1|\d+))?$")
_FENCE = re.compile(r"^```[\w+-]*[ \t]*\n(.*?)\n?```[ \t]*$", re.DOTALL)
_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One parsed tool call: the tool's name and its arguments, or why it is malformed."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _unfence(text: str) -> str:
    """The inside of a whole-text ``` fence, else the text."""
    match = _FENCE.match(text.strip())
    return match.group(1) if match else text


def parse_tool_call(text: str) -> ToolCall:
    """Parse an action into a tool call (never raises).

    Example:
        >>> parse_tool_call("view src/a.py 10-20")
        ToolCall(name='view', args={'path': 'src/a.py', 'start': 10, 'end': 20}, error=None)
        >>> parse_tool_call("$ ls -la").args
        {'command': 'ls -la'}
        >>> parse_tool_call('{"name": "submit", "arguments": {}}').name
        'submit'
        >>> parse_tool_call("dance").error
        "unknown tool 'dance'; the tools are shell, view, create, str_replace, run_tests, submit"
    """
    stripped = text.strip()
    tagged = _TOOL_CALL_TAG.search(stripped)
    if tagged:
        stripped = tagged.group(1).strip()
    stripped = _unfence(stripped).strip() if stripped.startswith("```") else stripped
    if not stripped:
        return ToolCall("", error="the action is empty")
    if stripped.startswith("{"):
        return _from_json(stripped)
    if stripped[:2] in ("$ ", "$\t", "$\n"):  # `$(...)` is no shorthand: it names no tool
        return _checked("shell", {"command": stripped[1:].strip()})
    head, _, rest = stripped.partition("\n")
    word, _, inline = head.strip().partition(" ")
    name = _ALIASES.get(word.lower(), word.lower())
    if name not in TOOLS:
        return ToolCall(
            name[:40], error=f"unknown tool {word[:40]!r}; the tools are {', '.join(TOOLS)}"
        )
    inline = inline.strip()
    if name == "shell":
        command = "\n".join(part for part in (inline, rest) if part)
        return _checked("shell", {"command": _unfence(command).strip()})
    if name in ("run_tests", "submit"):
        if inline or rest.strip():
            return ToolCall(name, error=f"{name} takes no arguments")
        return ToolCall(name)
    if name == "view":
        path, _, span = inline.partition(" ")
        args: dict[str, Any] = {"path": path}
        span = span.strip()
        if span:
            match = _RANGE.match(span)
            if match is None:
                return ToolCall(name, args, f"bad line range {span[:40]!r}; write e.g. 10-40")
            args["start"] = int(match.group(1))
            if match.group(2) is not None:
                args["end"] = int(match.group(2))
        return _checked(name, args)
    if name == "create":
        body = _unfence(rest) if rest.lstrip().startswith("```") else rest
        return _checked(name, {"path": inline, "content": body})
    # str_replace
    match = _BLOCK.search(rest)
    if match is None:
        return ToolCall(
            name,
            {"path": inline},
            "str_replace needs a <<<<<<< SEARCH / ======= / >>>>>>> REPLACE block after the path",
        )
    return _checked(name, {"path": inline, "old": match.group(1), "new": match.group(2)})


_ARG_ALIASES = {
    "cmd": "command",
    "file": "path",
    "filename": "path",
    "file_path": "path",
    "file_text": "content",
    "text": "content",
    "old_str": "old",
    "new_str": "new",
    "start_line": "start",
    "end_line": "end",
}


def _from_json(text: str) -> ToolCall:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return ToolCall("", error=f"the JSON call does not parse: {exc.msg} at character {exc.pos}")
    if not isinstance(data, dict):
        return ToolCall("", error="a JSON call is an object with a name and arguments")
    raw_name = data.get("name", data.get("tool"))
    if not isinstance(raw_name, str):
        return ToolCall("", error="the JSON call has no string 'name'")
    name = _ALIASES.get(raw_name.lower(), raw_name.lower())
    if name not in TOOLS:
        return ToolCall(
            name[:40], error=f"unknown tool {raw_name[:40]!r}; the tools are {', '.join(TOOLS)}"
        )
    args = data.get("arguments", data.get("args", data.get("parameters")))
    if args is None:
        args = {k: v for k, v in data.items() if k not in ("name", "tool")}
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return ToolCall(name, error="the call's arguments are not a JSON object")
    if not isinstance(args, dict):
        return ToolCall(name, error="the call's arguments are not a JSON object")
    args = {_ARG_ALIASES.get(str(k), str(k)): v for k, v in args.items()}
    if name == "view" and isinstance(args.get("view_range"), list) and args["view_range"]:
        span = args.pop("view_range")
        args["start"] = span[0]
        if len(span) > 1:
            args["end"] = span[1]
    if name in ("run_tests", "submit"):
        return ToolCall(name)
    return _checked(name, args)


_REQUIRED = {
    "shell": {"command": str},
    "view": {"path": str},
    "create": {"path": str, "content": str},
    "str_replace": {"path": str, "old": str, "new": str},
}


def _checked(name: str, args: dict[str, Any]) -> ToolCall:
    for key, kind in _REQUIRED[name].items():
        value = args.get(key)
        if not isinstance(value, kind):
            return ToolCall(name, args, f"{name} needs a {key}")
        if key in ("command", "path") and not value.strip():
            return ToolCall(name, args, f"{name} needs a non-empty {key}")
    for key in ("start", "end"):
        if key in args and (isinstance(args[key], bool) or not isinstance(args[key], int)):
            return ToolCall(name, args, f"view's {key} is a line number")
    if name == "str_replace" and args["old"] == "":
        return ToolCall(name, args, "str_replace needs a non-empty SEARCH text")
    clean = {k: args[k] for k in (*_REQUIRED[name], "start", "end") if k in args}
    return ToolCall(name, clean)
