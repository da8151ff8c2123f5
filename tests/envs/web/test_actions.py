"""Tests of the web action set (parsing, descriptions, tool schema) and of `WebEnv` acting on a
small local site: unknown ids, blocked navigation, dialogs, hostile text, crashes, screenshots."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

from turnwise.envs.web import Action, ActionError, ActionSet, TaskState, WebEnv
from turnwise.envs.web.actions import ACTIONS

ACTIONS_SET = ActionSet()

PARSED = [
    ("click(12)", Action("click", 12)),
    ("  click( 12 )  ", Action("click", 12)),
    ('click("12")', Action("click", 12)),
    ("`click(12)`;", Action("click", 12)),
    ('fill(7, "hello world")', Action("fill", 7, "hello world")),
    ("fill(7, 'it\\'s')", Action("fill", 7, "it's")),
    ('fill(id=7, text="x")', Action("fill", 7, "x")),
    ('fill(7, text="x")', Action("fill", 7, "x")),
    ('fill(7, "\\u00e9\\n")', Action("fill", 7, "é\n")),
    ('fill(7, "<script>alert(1)</script>")', Action("fill", 7, "<script>alert(1)</script>")),
    ('fill(7, "__import__(\'os\').system(\'rm -rf /\')")', Action("fill", 7, "__import__('os').system('rm -rf /')")),
    ('select(9, "Blue")', Action("select", 9, "Blue")),
    ('press("Enter")', Action("press", None, "Enter")),
    ('press("Control+a")', Action("press", None, "Control+a")),
    ('scroll("down")', Action("scroll", None, "down")),
    ("go_back()", Action("go_back")),
    ('goto("/cart")', Action("goto", None, "/cart")),
    ('answer("42")', Action("answer", None, "42")),
    ("noop()", Action("noop")),
]  # fmt: skip

MALFORMED = [
    ("", "empty action"),
    ("click", "as a call"),
    ("click 12", "as a call"),
    ("click()", "missing id"),
    ("click(12, 13)", "takes 1 argument"),
    ("click(twelve)", "must be a number"),
    ("click(-1)", "must be a number"),
    ("click(" + "9" * 5000 + ")", "must be a number"),
    ("fill(7, hello)", "must be quoted"),
    ('fill(7, "unterminated)', "cannot read"),
    ('fill(7, "bad \\N{nope}")', "bad escape"),
    ('fill(text="x", 7)', "positional arguments come first"),
    ('fill(7, text="x", text="y")', "given twice"),
    ('fill(7, colour="x")', "takes 2 argument"),
    ('press("Hyper+x")', "unknown key"),
    ('scroll("left")', '"up" or "down"'),
    ('goto("  ")', "URL is empty"),
    ("rm -rf /", "unknown action"),
    ("__import__('os').system('ls')", "unknown action"),
    ("click(1); click(2)", "write one call"),
    ("((((((((((((", "starts with its name"),
    ("click(1)\x00", "cannot read"),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[p[0][:30] for p in PARSED])
def test_parse(text: str, expected: Action) -> None:
    assert ACTIONS_SET.parse(text) == expected
    assert ACTIONS_SET.parse(expected.to_text()) == expected


@pytest.mark.parametrize(("text", "message"), MALFORMED, ids=[m[0][:30] for m in MALFORMED])
def test_malformed_actions_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ActionError, match=message.replace("(", r"\(")):
        ACTIONS_SET.parse(text)


def test_describe_examples_and_tool_schema_cover_every_action() -> None:
    text = ACTIONS_SET.describe()
    assert all(spec.signature in text for spec in ACTIONS)
    assert [ACTIONS_SET.parse(e).name for e in ACTIONS_SET.examples()] == [s.name for s in ACTIONS]
    tools = json.loads(json.dumps(ACTIONS_SET.tool_schema()))
    fill = next(t["function"] for t in tools if t["function"]["name"] == "fill")
    assert fill["parameters"]["required"] == ["id", "text"]
    assert fill["parameters"]["properties"]["id"]["type"] == "integer"
    assert ACTIONS_SET.from_tool_call("fill", '{"id": 3, "text": "hi"}') == Action("fill", 3, "hi")
    assert ACTIONS_SET.from_tool_call("scroll", {"direction": "up"}) == Action("scroll", None, "up")
    for name, arguments in (
        ("fly", "{}"),
        ("click", "{"),
        ("click", {"id": True}),
        ("click", "[]"),
    ):
        with pytest.raises(ActionError):
            ACTIONS_SET.from_tool_call(name, arguments)


def test_a_subset_offers_only_its_actions() -> None:
    subset = ActionSet(["click", "noop"])
    assert len(subset.tool_schema()) == 2
    with pytest.raises(ActionError, match="unknown action"):
        subset.parse('goto("/")')
    with pytest.raises(ValueError, match="unknown web actions"):
        ActionSet(["teleport"])


# ---------------------------------------------------------------------------- on a page
PAGES = {
    "/": "<title>Home</title><h1>Home</h1><a id=away href='http://example.invalid/'>away</a>"
    "<a id=next href='/next'>next</a><button id=alert onclick=\"alert('hi')\">alert</button>"
    "<input id=name aria-label=name><select id=colour><option>Red</option><option>Blue</option>"
    "</select><button id=done onclick=\"document.title='Done'\">done</button>",
    "/next": "<title>Next</title><p>the next page</p>",
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = PAGES.get(self.path, "missing").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)


class _Task:
    task_id = "home"
    instruction = "Type your name and press done."

    def __init__(self, origin: str) -> None:
        self.start_url = origin + "/"
        self.allowed_origins = (origin,)

    def setup(self, page: Any) -> None:
        pass

    def evaluate(self, page: Any) -> TaskState:
        done = page.title() == "Done"
        named = page.input_value("#name") == "Ada" if page.title() != "Next" else False
        return TaskState({"outcome": float(done and named)}, done=done, success=done and named)

    def expert_action(self, env: WebEnv) -> str | None:
        if env.page.input_value("#name") != "Ada":
            return f'fill({env.id_of("#name")}, "Ada")'
        return f"click({env.id_of('#done')})"


class _TinyEnv(WebEnv):
    def __init__(self, origin: str, **kwargs: Any) -> None:
        self.origin = origin
        super().__init__(**kwargs)

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return ["home"]

    def make_task(self, task_id: str) -> _Task:
        return _Task(self.origin)


@pytest.fixture(scope="module")
def env() -> Iterator[_TinyEnv]:
    from turnwise.sandboxes.browser import Browser

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with Browser(action_timeout_s=2.0, hang_timeout_s=10.0) as browser:
        tiny = _TinyEnv(f"http://127.0.0.1:{server.server_address[1]}", browser=browser)
        yield tiny
        tiny.close()
    server.shutdown()


def _step(env: WebEnv, action: str) -> tuple[dict[str, Any], dict[str, Any]]:
    obs, _, _, _, info = env.step(action)
    return obs, info


@pytest.mark.browser
def test_observation_shows_the_tree_with_ids_that_actions_use(env: _TinyEnv) -> None:
    obs, info = env.reset(seed=0)
    assert info["instruction"] == obs["instruction"] and obs["url"] == "/"
    assert obs["text"].startswith("Instruction: Type your name and press done.\nURL: /\n")
    name = env.id_of("#name")
    assert f'[{name}] textbox "name"' in obs["text"]
    obs, info = _step(env, f'fill({name}, "Ada")')
    assert info["valid_action"] and f'[{name}] textbox "name" value="Ada"' in obs["text"]
    assert env.id_of("#name") == name  # stable across steps
    obs, info = _step(env, f'select({env.id_of("#colour")}, "Blue")')
    assert info["valid_action"] and 'value="Blue"' in obs["text"]
    obs, reward, terminated, _, info = env.step(f"click({env.id_of('#done')})")
    assert terminated and info["success"] and reward == 1.0


BAD_ACTIONS = [
    ("click(99999)", "there is no element [99999]"),
    ("click(away)", "the id must be a number"),
    ('goto("http://example.invalid/")', "outside this task's site"),
    ('fill(ALERT, "x")', "it is not a text field"),
    ("click(AWAY)", "navigation to http://example.invalid/ blocked"),
    ("click(ALERT)", "an alert dialog was dismissed: hi"),
    ('answer("42")', "this task takes no answer"),
    ("go_back()", "there is no previous page"),
]


@pytest.mark.browser
def test_bad_actions_are_invalid_and_the_episode_goes_on(env: _TinyEnv) -> None:
    env.reset(seed=0)  # one episode for all: none of these may change the page
    for action, error in BAD_ACTIONS:
        action = action.replace("ALERT", str(env.id_of("#alert")))
        action = action.replace("AWAY", str(env.id_of("#away")))
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["valid_action"] and reward == pytest.approx(-0.1), action
        assert error in obs["error"] and f"Error: {obs['error']}" in obs["text"], action
        assert not (terminated or truncated) and obs["url"] == "/" and "Home" in obs["text"]
        obs, info = _step(env, "noop()")
        assert info["valid_action"] and obs["error"] == ""


@pytest.mark.browser
def test_hostile_text_is_typed_as_text(env: _TinyEnv) -> None:
    env.reset(seed=0)
    hostile = "<img src=x onerror=alert(1)>'; DROP TABLE x; -- $(reboot) \u202e"
    action = Action("fill", env.id_of("#name"), hostile).to_text()
    _, info = _step(env, action)
    assert info["valid_action"] and env.page.input_value("#name") == hostile
    assert env.session.drain_events() == []  # no dialog: nothing ran


@pytest.mark.browser
def test_navigation_and_going_back(env: _TinyEnv) -> None:
    env.reset(seed=0)
    obs, info = _step(env, f"click({env.id_of('#next')})")
    assert obs["url"] == "/next" and "the next page" in obs["text"]
    obs, info = _step(env, "go_back()")
    assert info["valid_action"] and obs["url"] == "/"
    obs, info = _step(env, 'goto("next")')
    assert info["valid_action"] and obs["url"] == "/next"


@pytest.mark.browser
def test_a_crash_restarts_the_browser_and_marks_the_episode(env: _TinyEnv) -> None:
    _, info = env.reset(seed=0)
    assert info["browser_restarted"] is False
    assert env._browser is not None
    env._browser.kill()
    obs, info = _step(env, "noop()")
    assert info["browser_restarted"] and not info["valid_action"]
    assert "restarted" in obs["error"] and "Home" in obs["text"]
    obs, info = _step(env, "noop()")
    assert info["browser_restarted"] and info["valid_action"]
    _, info = env.reset(seed=0)
    assert info["browser_restarted"] is False


@pytest.mark.browser
def test_screenshots_join_the_observation(env: _TinyEnv) -> None:
    shot = _TinyEnv(env.origin, browser=env._browser, screenshots=True, viewport=(400, 300))
    obs, _ = shot.reset(seed=0)
    assert obs["image"].shape == (300, 400, 3) and obs["image"].dtype == np.uint8
    assert shot.observation_space.contains(obs) and obs["image"].max() > 0
    shot.close()
    shot.close()
