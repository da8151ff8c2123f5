"""`MiniWoBEnv`: the MiniWoB++ task pages of the `miniwob` package, in Chromium.

Every page under the package's `html/miniwob/` is a task (130 in miniwob 1.1). The pages are
served by a stdlib HTTP server on 127.0.0.1 (one per process, in a daemon thread), and each
episode is one problem instance of one page:

    click-button/train/0007      instance 7 of the train split of click-button

Task ids: `<page>/<split>/<index>` with 1000 train and 100 test instances per page. The instance
is the seed of the page's generator: `setup` calls `Math.seedrandom("<task id>")` and then the
page's own `core.startEpisodeReal()` (the same calls miniwob's Python package makes), so an id
always shows the same problem, and train and test instances never share a seed. The env's own
seed changes nothing on the page.

Time: MiniWoB pages run on wall-clock timers (a 10–30 s episode limit, time-scaled rewards,
animations, delayed widgets). An LLM that thinks for seconds per turn would lose every episode
to the clock, and replays would differ. So the page clock is faked and paused
(`WebEnv.freeze_time_ms`) and advanced by `tick_ms` (1 s) after each action: animations and
delays play out identically on every replay. The page's episode timer is switched off; the
env's `max_turns` limits the episode instead. The reward-display HUD and click canvas that
MiniWoB draws beside the task are hidden (they are not part of the task).

Reward, read from the page after every action (`WOB_DONE_GLOBAL`, `WOB_RAW_REWARD_GLOBAL`):
`miniwob_reward` is the page's raw reward (in [-1, 1], without MiniWoB's time penalty) when the
episode ends, else 0; `outcome` is 1.0 when it ended with a positive reward (success), else 0.
By default `outcome` has weight 1 and `miniwob_reward` weight 0 (it is reported for trainers that
want the graded signal).

Experts exist for click-button, enter-text, click-checkboxes, click-link and focus-text;
`expert_action()` is None on the other pages.
"""

from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from turnwise.core import UnknownTaskError

from .actions import Action
from .base import TaskState, WebEnv

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from turnwise.sandboxes.browser import Browser

__all__ = ["INSTANCES", "MiniWoBEnv", "MiniWoBTask", "miniwob_pages", "miniwob_root"]

#: Problem instances per page in each split.
INSTANCES = {"train": 1000, "test": 100}
# Fixed, trusted page scripts (the seed is passed as an argument, never spliced into code).
_START = """(seed) => {
  // MiniWoB's reward HUD and click canvas sit beside the task and are not part of it.
  const style = document.createElement('style');
  style.textContent = '#reward-display, #click-canvas { display: none !important; }';
  document.head.appendChild(style);
  Math.seedrandom(seed);
  core.startEpisodeReal();
  // The env's turn limit replaces MiniWoB's wall-clock episode timer. endEpisode only pays
  // out while EP_TIMER is non-null, so it is set to a dead value rather than cleared.
  clearTimeout(core.EP_TIMER);
  core.EP_TIMER = -1;
  clearInterval(core.CD_TIMER);
  const q = core.getUtterance();
  return typeof q === 'string' ? q : String(q.utterance || '');
}"""
_STATUS = "() => [Boolean(WOB_DONE_GLOBAL), Number(WOB_RAW_REWARD_GLOBAL), WOB_REWARD_REASON]"
# Expert helpers: the data-tw-id of the element an oracle wants (the page text is data).
_BUTTON_WITH_TEXT = """(text) => {
  const b = [...document.querySelectorAll('#area button')].find(e => e.textContent === text);
  return b ? b.getAttribute('data-tw-id') : null;
}"""
_LINK_WITH_TEXT = """(text) => {
  const a = [...document.querySelectorAll('#area a, #area span.alink')]
    .find(e => e.textContent.trim() === text);
  return a ? a.getAttribute('data-tw-id') : null;
}"""
_CHECKBOXES = """() => [...document.querySelectorAll('#boxes label')].map(l => [
  l.textContent.trim(), l.querySelector('input').checked,
  l.querySelector('input').getAttribute('data-tw-id')])"""


def miniwob_root() -> Path:
    """The `html` folder of the installed `miniwob` package."""
    try:
        root = resources.files("miniwob") / "html"
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "MiniWoB needs the miniwob package: pip install 'turnwise[web]'"
        ) from exc
    return Path(str(root))


@functools.cache
def miniwob_pages() -> tuple[str, ...]:
    """Names of every MiniWoB++ task page, sorted (`click-button`, ...)."""
    return tuple(sorted(p.stem for p in (miniwob_root() / "miniwob").glob("*.html")))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A context closed while a file was on its way (the next episode started): not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


_server_lock = threading.Lock()
_servers: dict[int, str] = {}


def serve_miniwob() -> str:
    """The origin (`http://127.0.0.1:<port>`) of this process's MiniWoB server, started once."""
    with _server_lock:
        origin = _servers.get(os.getpid())  # a forked worker starts its own
        if origin is None:
            handler = functools.partial(_QuietHandler, directory=str(miniwob_root()))
            server = _QuietServer(("127.0.0.1", 0), handler)
            threading.Thread(target=server.serve_forever, name="miniwob-http", daemon=True).start()
            origin = f"http://127.0.0.1:{server.server_address[1]}"
            _servers[os.getpid()] = origin
        return origin


def _expert_click_button(env: MiniWoBEnv, query: str) -> str | None:
    text = query.partition('"')[2].rpartition('"')[0]
    found = env.page.evaluate(_BUTTON_WITH_TEXT, text)
    return f"click({found})" if found else None


def _expert_click_link(env: MiniWoBEnv, query: str) -> str | None:
    text = query.partition('"')[2].rpartition('"')[0]
    found = env.page.evaluate(_LINK_WITH_TEXT, text)
    return f"click({found})" if found else None


def _expert_enter_text(env: MiniWoBEnv, query: str) -> str | None:
    text = query.partition('"')[2].rpartition('"')[0]
    field = env.id_of("#tt")
    if env.page.input_value("#tt") != text:
        return Action("fill", field, text).to_text()
    return f"click({env.id_of('#subbtn')})"


def _expert_click_checkboxes(env: MiniWoBEnv, query: str) -> str | None:
    wanted = query.removeprefix("Select ").removesuffix(" and click Submit.")
    names = set() if wanted == "nothing" else {n.strip() for n in wanted.split(",")}
    for label, checked, element in env.page.evaluate(_CHECKBOXES):
        if (label in names) != checked:
            return f"click({element})"
    return f"click({env.id_of('#subbtn')})"


def _expert_focus_text(env: MiniWoBEnv, query: str) -> str | None:
    return f"click({env.id_of('#tt')})"


EXPERTS: dict[str, Callable[[MiniWoBEnv, str], str | None]] = {
    "click-button": _expert_click_button,
    "click-checkboxes": _expert_click_checkboxes,
    "click-link": _expert_click_link,
    "enter-text": _expert_enter_text,
    "focus-text": _expert_focus_text,
}


class MiniWoBTask:
    """One problem instance of one MiniWoB++ page (see the module docstring)."""

    def __init__(self, page_name: str, split: str, index: int, origin: str) -> None:
        self.page_name = page_name
        self.task_id = f"{page_name}/{split}/{index:04d}"
        self.start_url = f"{origin}/miniwob/{page_name}.html"
        self.allowed_origins = (origin,)
        self.instruction = ""

    def setup(self, page: Page) -> None:
        self.instruction = " ".join(str(page.evaluate(_START, self.task_id)).split())

    def evaluate(self, page: Page) -> TaskState:
        done, raw, reason = page.evaluate(_STATUS)
        success = bool(done) and raw > 0
        terms = {"outcome": float(success), "miniwob_reward": float(raw) if done else 0.0}
        info = {"miniwob_reason": str(reason)} if done and reason is not None else {}
        return TaskState(terms, done=bool(done), success=success, info=info)

    def expert_action(self, env: WebEnv) -> str | None:
        expert = EXPERTS.get(self.page_name)
        if expert is None or not isinstance(env, MiniWoBEnv):
            return None
        return expert(env, self.instruction)


class MiniWoBEnv(WebEnv):
    """The MiniWoB++ pages as turnwise tasks (`click-button/train/0007`).

    Args:
        pages: the page names to offer (default: all of `miniwob_pages()`), e.g.
            `["click-button", "enter-text"]`.
        max_turns: per episode (default 10: most pages take 1–5 actions).
        viewport: MiniWoB pages are 160×210 at the top left; the default 320×320 shows them
            whole with room for overflow.
        screenshots, browser, executable_path, actions, split, reward_weights,
        max_action_length, render_mode: as in `WebEnv`.

    Example:
        >>> env = MiniWoBEnv(pages=["click-button"])
        >>> env.tasks("test")[:2]
        ['click-button/test/0000', 'click-button/test/0001']
        >>> env.close()
    """

    splits = ("train", "test")
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **WebEnv.default_reward_weights,
        "outcome": 1.0,
        "miniwob_reward": 0.0,
    }
    # 2024-01-01T00:00:00Z: pages that show dates show the same ones on every replay.
    freeze_time_ms: ClassVar[int | None] = 1_704_067_200_000
    tick_ms: ClassVar[int] = 1000

    def __init__(
        self,
        pages: Sequence[str] | None = None,
        *,
        screenshots: bool = False,
        viewport: tuple[int, int] = (320, 320),
        browser: Browser | None = None,
        executable_path: str | None = None,
        actions: Sequence[str] | None = None,
        split: str = "train",
        max_turns: int = 10,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        known = miniwob_pages()
        chosen = tuple(known if pages is None else pages)
        unknown = [p for p in chosen if p not in known]
        if unknown or not chosen:
            raise ValueError(f"unknown MiniWoB pages {unknown}; see miniwob_pages() for the list")
        self.pages = chosen
        self._ids = {
            split: [f"{p}/{split}/{i:04d}" for p in chosen for i in range(n)]
            for split, n in INSTANCES.items()
        }
        super().__init__(
            screenshots=screenshots,
            viewport=viewport,
            browser=browser,
            executable_path=executable_path,
            actions=actions,
            split=split,
            max_turns=max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )

    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._ids[self.split if split is None else split]

    def make_task(self, task_id: str) -> MiniWoBTask:
        page_name, split, index = [*task_id.split("/"), "", ""][:3]
        if page_name not in self.pages or split not in INSTANCES or not index.isdigit():
            raise UnknownTaskError(f"unknown MiniWoB task {task_id!r}")
        return MiniWoBTask(page_name, split, int(index), serve_miniwob())
