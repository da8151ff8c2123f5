"""Tool calls parse from plain text and JSON; anything malformed is an error, never a raise."""

from __future__ import annotations

import pytest

from turnwise.envs.swe.tools import parse_tool_call


def test_plain_text_calls() -> None:
    assert parse_tool_call("shell ls -la").args == {"command": "ls -la"}
    assert parse_tool_call("shell\n```bash\ngrep -rn foo .\n```").args == {
        "command": "grep -rn foo ."
    }
    assert parse_tool_call("view a.py").args == {"path": "a.py"}
    assert parse_tool_call("view a.py 5").args == {"path": "a.py", "start": 5}
    assert parse_tool_call("view a.py 5:9").args == {"path": "a.py", "start": 5, "end": 9}
    assert parse_tool_call("run_tests").name == "run_tests"
    assert parse_tool_call("  submit \n").name == "submit"
    created = parse_tool_call("create pkg/new.py\nx = 1\ny = 2\n")
    assert created.args == {"path": "pkg/new.py", "content": "x = 1\ny = 2"}  # env adds the \\n


def test_str_replace_block_keeps_text_exactly() -> None:
    call = parse_tool_call(
        "str_replace a.py\n<<<<<<< SEARCH\n    if x > 1:\n=======\n    if x >= 1:\n>>>>>>> REPLACE"
    )
    assert call.ok
    assert call.args == {"path": "a.py", "old": "    if x > 1:\n", "new": "    if x >= 1:\n"}
    deleting = parse_tool_call("str_replace a.py\n<<<<<<< SEARCH\nx\n=======\n>>>>>>> REPLACE")
    assert deleting.args["new"] == ""


def test_json_calls_in_the_common_shapes() -> None:
    flat = parse_tool_call('{"tool": "view", "path": "a.py", "view_range": [3, 8]}')
    assert flat.args == {"path": "a.py", "start": 3, "end": 8}
    openai = parse_tool_call(
        '{"name": "str_replace", "arguments": "{\\"path\\": \\"a\\", \\"old_str\\": \\"x\\", '
        '\\"new_str\\": \\"y\\"}"}'
    )
    assert openai.args == {"path": "a", "old": "x", "new": "y"}
    tagged = parse_tool_call('<tool_call>{"name": "bash", "arguments": {"cmd": "ls"}}</tool_call>')
    assert (tagged.name, tagged.args) == ("shell", {"command": "ls"})


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty"),
        ("dance wildly", "unknown tool"),
        ("view", "non-empty path"),
        ("view a.py ten", "bad line range"),
        ("submit now", "takes no arguments"),
        ("str_replace a.py\nold\nnew", "SEARCH"),
        ("str_replace a.py\n<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE", "non-empty SEARCH"),
        ('{"name": "view", "arguments": {"path": 3}}', "needs a path"),
        ('{"name": "view", "arguments": {"path": "a", "start": true}}', "line number"),
        ("{not json", "does not parse"),
        ("[1, 2]", "unknown tool"),
        ('{"name": "shell", "arguments": [1]}', "not a JSON object"),
        ("shell", "non-empty command"),
        ("$(reboot)", "unknown tool"),
    ],
)
def test_malformed_calls_say_what_is_wrong(text: str, error: str) -> None:
    call = parse_tool_call(text)
    assert not call.ok
    assert error in (call.error or "")


def test_hostile_text_never_raises() -> None:
    for text in ["\x00" * 50, "{" * 5000, "view " + "a" * 10_000, "$", "$ ", "```", "<tool_call>"]:
        parse_tool_call(text)  # must not raise
