"""`WebEnv` and the `WebTask` protocol: the env owns the browser, a task owns its page's rules.

A web benchmark is a `WebEnv` subclass that lists task ids (`tasks(split)`) and builds a
`WebTask` for each (`make_task(task_id)`). The env does everything else, the same way for every
benchmark: a fresh browser context per episode, limited to the task's origins; observations
(accessibility tree with stable ids, URL, instruction, the last error, optionally a screenshot);
parsing and performing actions; reporting blocked navigation, dialogs, timeouts and crashes;
calling `task.evaluate(page)` after every action and turning its `TaskState` into the step's
reward terms and end of episode.

Observation (a dict; `text` alone is enough for a text agent):

    text         "Instruction: ...\\nURL: /path\\n[Error: ...\\n]\\n<accessibility tree>"
    url          the page URL, relative to the task's start origin (`/cart?x=1`), so replays
                 on another port or machine read the same
    instruction  the task's instruction
    error        what went wrong with the last action ("" when nothing did)
    image        (only with `screenshots=True`) the viewport, uint8 H×W×3

Validity: an action is invalid (`info["valid_action"] == False`, reward term `valid` = -1) when it
does not parse, names an id that is not on the page, cannot be performed (hidden element, not a
text field, timeout), navigates outside the task's origins, or triggers a JavaScript dialog
(dismissed). The episode goes on after any of these. If the browser dies (or a page hangs it and
the watchdog kills it), the browser is restarted, the task page reloaded from its start, the
observation says so, and `info["browser_restarted"]` is True for the rest of the episode.

`admissible_actions()` is None: typing and `goto` admit unbounded text, and listing a click
per element would repeat the observation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from gymnasium import spaces

from turnwise.core import Env, Observation, StepResult
from turnwise.spaces import DEFAULT_MAX_LENGTH, String, image_space

from .actions import Action, ActionError, ActionSet, perform
from .observe import TAG_SCRIPT, PageSnapshot, screenshot, snapshot

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from turnwise.sandboxes.browser import Browser, Session

__all__ = ["PageAction", "TaskState", "WebEnv", "WebTask", "display_url"]

T = TypeVar("T")
_ID_OF = """(selector) => {
  const element = document.querySelector(selector);
  return element ? element.getAttribute('data-tw-id') : null;
}"""
_EMPTY = PageSnapshot("", "about:blank", "", frozenset())


@dataclass
class TaskState:
    """What a task says about the page after an action.

    Attributes:
        reward_terms: named reward parts of this step (e.g. `outcome`, `progress`).
        done: the episode is over (the task was completed or failed for good).
        success: the task was accomplished (read when `done`).
        info: extra info keys for the step (JSON-friendly values).
    """

    reward_terms: dict[str, float] = field(default_factory=dict)
    done: bool = False
    success: bool = False
    info: dict[str, Any] = field(default_factory=dict)


class PageAction(Protocol):
    """What `WebEnv` needs of a parsed action: its name (and text, for `answer`).

    The web actions (`Action`) are one kind; an env with another action language (pixels and
    coordinates: `turnwise.envs.web.pixels`) overrides `WebEnv._parse` and `WebEnv._perform`.
    """

    @property
    def name(self) -> str: ...

    @property
    def text(self) -> str | None: ...


@runtime_checkable
class WebTask(Protocol):
    """One task on a web page. The env calls, in order:

    1. `setup(page)` once the page is at `start_url` in a fresh context (seed it, log in, ...);
    2. after every action, `evaluate(page)`; its `TaskState` gives the step's reward terms, and
       `done`/`success` end the episode;
    3. `expert_action(env)` whenever an oracle step is wanted (None if there is no oracle).

    Optional: `evaluate_answer(page, text) -> TaskState`, called instead of `evaluate` when the
    agent says `answer("text")`; a task without it rejects `answer` as invalid.

    Attributes:
        task_id: the env's id of this task.
        instruction: the goal, as the agent sees it (may be set by `setup`).
        start_url: where the episode starts (an absolute URL on an allowed origin).
        allowed_origins: origins the page may load from (`http://127.0.0.1:8000`); everything
            else is blocked and reported.
    """

    # Read-only properties, so that plain attributes of any sequence type implement them.
    @property
    def task_id(self) -> str: ...

    @property
    def instruction(self) -> str: ...

    @property
    def start_url(self) -> str: ...

    @property
    def allowed_origins(self) -> Sequence[str]: ...

    def setup(self, page: Page) -> None: ...

    def evaluate(self, page: Page) -> TaskState: ...

    def expert_action(self, env: WebEnv) -> str | None: ...


def display_url(url: str, base: str) -> str:
    """`url` relative to the origin of `base` when they share it, else `url` itself.

    Example:
        >>> display_url("http://127.0.0.1:8123/cart?x=1", "http://127.0.0.1:8123/")
        '/cart?x=1'
        >>> display_url("about:blank", "http://127.0.0.1:8123/")
        'about:blank'
    """
    parts, home = urlsplit(url), urlsplit(base)
    if parts.netloc and (parts.scheme, parts.netloc) == (home.scheme, home.netloc):
        return url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"
    return url


class WebEnv(Env):
    """Base class of web envs: one browser page per episode, driven by text actions.

    Subclasses implement `tasks(split)` and `make_task(task_id)`, and may set `freeze_time_ms`
    (fake, paused page clock; each step advances it by `tick_ms`) and `default_reward_weights`.
    One that drives the page with another action language overrides `_parse` and `_perform`.

    Args:
        screenshots: add `image` (the viewport, uint8 H×W×3) to observations.
        viewport: `(width, height)` of the page.
        browser: a `turnwise.sandboxes.browser.Browser` to use (not closed by the env);
            default: this process's shared browser from the default pool.
        executable_path: Chromium binary for the shared browser (default: `TURNWISE_CHROMIUM`
            or the system's `chromium`).
        actions: names of the actions to offer (default: all of them).
        split, max_turns, reward_weights, max_action_length, render_mode: as in `turnwise.Env`.
    """

    family = "web"
    #: When set, the page clock is faked and paused at this epoch time (ms) for determinism.
    freeze_time_ms: ClassVar[int | None] = None
    #: Virtual milliseconds the page clock advances after each action (with `freeze_time_ms`).
    tick_ms: ClassVar[int] = 1000

    def __init__(
        self,
        *,
        screenshots: bool = False,
        viewport: tuple[int, int] = (1280, 720),
        browser: Browser | None = None,
        executable_path: str | None = None,
        actions: Sequence[str] | None = None,
        split: str = "train",
        max_turns: int = 30,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.screenshots = bool(screenshots)
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.action_set = ActionSet(actions)
        parts: dict[str, spaces.Space[Any]] = {
            "text": String(DEFAULT_MAX_LENGTH),
            "url": String(DEFAULT_MAX_LENGTH),
            "instruction": String(DEFAULT_MAX_LENGTH),
            "error": String(DEFAULT_MAX_LENGTH),
        }
        if self.screenshots:
            parts["image"] = image_space(self.viewport[1], self.viewport[0])
        self.observation_space = spaces.Dict(parts)
        self._given_browser = browser
        self._executable_path = executable_path
        self._browser: Browser | None = browser
        self._session: Session | None = None
        self._task: WebTask | None = None
        self._snapshot = _EMPTY
        self._image: Any = None
        self._error = ""
        self._restarted = False

    # ------------------------------------------------------------------ to implement
    def make_task(self, task_id: str) -> WebTask:
        """The task with this id (called at every reset)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ for tasks and experts
    @property
    def task(self) -> WebTask:
        """The current episode's task."""
        if self._task is None:
            raise RuntimeError("call reset() first: there is no task before the first episode")
        return self._task

    @property
    def session(self) -> Session:
        """The current episode's browser session (context and page)."""
        if self._session is None:
            raise RuntimeError("call reset() first: there is no page before the first episode")
        return self._session

    @property
    def page(self) -> Page:
        """The current episode's page."""
        return self.session.page

    @property
    def snapshot(self) -> PageSnapshot:
        """The last observation's page snapshot (tree, URL, title, ids shown)."""
        return self._snapshot

    def id_of(self, selector: str) -> int | None:
        """The element id of the first element matching a CSS `selector` (task/expert code only:
        the selector is trusted), or None when nothing matches."""
        page = self.page
        with self.session.guard():
            page.evaluate(TAG_SCRIPT)
            value = page.evaluate(_ID_OF, selector)
        return int(value) if value and value.isdigit() else None

    # ------------------------------------------------------------------ the contract
    def _reset_task(self, task_id: str) -> tuple[Observation, dict[str, Any]]:
        self._task = self.make_task(task_id)
        self._restarted = False
        self._error = ""
        from turnwise.sandboxes.browser import BrowserCrashed

        try:
            self._open_page()
        except BrowserCrashed:
            self._restart_browser()
            self._open_page()
        self._observe()
        info = {"instruction": self.task.instruction, "browser_restarted": self._restarted}
        return self._observation(), info

    def _step(self, action: str) -> StepResult:
        from turnwise.sandboxes.browser import BrowserCrashed

        parsed = self._parse(action)
        if isinstance(parsed, str):
            return self._result(parsed, valid=False)
        try:
            problem, state = self._act(parsed)
            events = self.session.drain_events()
            self._observe()
        except BrowserCrashed:
            self._restart_browser()
            self._open_page()
            state = self._evaluate(None)
            self._observe()
            problem, events = (
                "the browser stopped responding or crashed; it was restarted and the task "
                "reloaded from its start page",
                [],
            )
        notes = [e.message for e in events if e.kind != "blocked_request"]
        valid = problem is None and not any(
            e.kind in ("blocked_navigation", "dialog") for e in events
        )
        error = "; ".join(([problem] if problem else []) + notes)
        return self._result(error, valid=valid, state=state)

    def state_key(self) -> str:
        """The page: its URL (relative to the task's origin) and its accessibility tree."""
        return f"{self._url()}\n{self._snapshot.tree}"

    def expert_action(self) -> str | None:
        """The task's oracle step (None when the task has none, or once the episode ended)."""
        if self._ended or self._task is None:
            return None
        return self._task.expert_action(self)

    def _close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        if self._browser is not None and self._given_browser is None:
            from turnwise.sandboxes.browser import default_pool

            default_pool().release(self._browser)
        self._browser = None

    def _invalid_observation(self, problem: str) -> Observation:
        self._error = f"Invalid action: {problem}"
        return self._observation()

    # ------------------------------------------------------------------ machinery
    def _the_browser(self) -> Browser:
        if self._browser is None:
            from turnwise.sandboxes.browser import default_pool

            self._browser = default_pool().acquire(self._executable_path)
        return self._browser

    def _open_page(self) -> None:
        """A fresh context at the task's start page, set up by the task."""
        task = self.task
        if self._session is not None:
            self._session.close()
            self._session = None
        browser = self._the_browser()
        session = browser.new_session(
            task.allowed_origins, viewport=self.viewport, freeze_time_ms=self.freeze_time_ms
        )
        self._session = session
        self._restarted = self._restarted or session.restarted
        browser.call(lambda: session.page.goto(task.start_url, wait_until="load"))
        browser.call(lambda: task.setup(session.page))
        session.drain_events()

    def _restart_browser(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
        self._the_browser().restart()
        self._restarted = True

    def _parse(self, text: str) -> PageAction | str:
        """`text` as an action of this env's language, or the message saying why it is not one.

        Override it (with `_perform`) to drive the page with another action language.
        """
        try:
            return self.action_set.parse(text)
        except ActionError as exc:
            return str(exc)

    def _perform(self, action: PageAction) -> str | None:
        """Do a parsed action (not `answer`) on the page; return what went wrong in words, or
        None. Raises `BrowserCrashed` when the browser died or hung."""
        if not isinstance(action, Action):
            raise TypeError(f"{type(self).__name__} cannot perform {type(action).__name__}")
        return perform(self.session, action, self.task.start_url, self._snapshot.ids)

    def _act(self, action: PageAction) -> tuple[str | None, TaskState]:
        """Perform `action`; return what went wrong (None if nothing) and the task's verdict."""
        session = self.session
        if action.name == "answer":
            check = getattr(self.task, "evaluate_answer", None)
            if check is None:
                return "this task takes no answer; act on the page instead.", self._evaluate(None)
            text = action.text or ""
            return None, self._evaluate(lambda: check(session.page, text))
        problem = self._perform(action)
        if self.freeze_time_ms is not None:
            session.browser.call(lambda: session.page.clock.run_for(self.tick_ms))
        return problem, self._evaluate(None)

    def _evaluate(self, check: Any) -> TaskState:
        page = self.session.page
        task = self.task
        state = self._page_call(check if check is not None else lambda: task.evaluate(page))
        if not isinstance(state, TaskState):
            raise TypeError(f"{type(task).__name__}.evaluate returned {type(state).__name__}")
        return state

    def _observe(self) -> None:
        session = self.session
        self._snapshot = self._page_call(lambda: snapshot(session.page, session.cdp))
        if self.screenshots:
            self._image = session.browser.call(lambda: screenshot(session.page))

    def _page_call(self, fn: Callable[[], T]) -> T:
        """`fn()` under the watchdog, retried when a late navigation replaced the page."""
        from playwright.sync_api import Error

        from turnwise.sandboxes.browser import is_navigation_error

        session = self.session
        for attempt in range(3):
            try:
                return session.browser.call(fn)
            except Error as exc:
                if attempt == 2 or not is_navigation_error(exc):
                    raise
                session.settle()
        raise AssertionError("unreachable")

    def _url(self) -> str:
        return display_url(self._snapshot.url, self._task.start_url if self._task else "")

    def _observation(self) -> Observation:
        instruction = self._task.instruction if self._task is not None else ""
        lines = [f"Instruction: {instruction}", f"URL: {self._url()}"]
        if self._error:
            lines.append(f"Error: {self._error}")
        lines.append(self._snapshot.tree)
        obs: Observation = {
            "text": "\n".join(lines),
            "url": self._url(),
            "instruction": instruction,
            "error": self._error,
        }
        if self.screenshots:
            # A copy: an invalid step shows the same screen, and observations must not share data.
            obs["image"] = self._image.copy()
        return obs

    def _result(self, error: str, *, valid: bool, state: TaskState | None = None) -> StepResult:
        self._error = error
        state = state if state is not None else TaskState()
        info = {**state.info, "browser_restarted": self._restarted}
        return StepResult(
            self._observation(),
            dict(state.reward_terms),
            valid=valid,
            terminated=bool(state.done),
            success=bool(state.success) if state.done else None,
            info=info,
        )
