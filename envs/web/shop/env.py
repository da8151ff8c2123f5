"""`ShopEnv`: WebShop-style shopping on a real multi-page site, in Chromium.

The env starts the shop's HTTP server (`ShopSite`) on a free loopback port at the first reset and
stops it on `close()`. Each episode is a `ShopTask`: a fresh browser context with its own
session cookie (its own cart and order), the instruction of a goal (`tasks.Goal`), and these
reward terms after every action:

* `outcome`: the purchase's score (`tasks.score`, WebShop's formula) on the step that buys,
  0.0 before. Buying ("Buy now" on a product page, or "Checkout" in the cart) ends the episode;
  success means a score of 1.0.
* `progress`: the rise of the best potential so far, Φ = `tasks.potential` of the page (0.5 on
  a product page that fits the goal, plus 0.5 × the share of the goal's options selected on it).
  It is never negative and an episode's progress adds up to at most 1.0.
* `valid`: the base class's (-1.0 for an invalid action).

The expert is an oracle over the catalog: it searches for the goal's key words, pages through
the results to the first product that fits the goal, selects the goal's options and buys. Its
actions use the ids of the current page (`WebEnv.id_of`), so they are the actions an agent
could have written.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from turnwise.core import Env

from ..base import TaskState, WebEnv
from .catalog import Catalog, Product, search_terms
from .site import COOKIE, ShopSite
from .tasks import SPLITS, Goal, ShopTasks, fits, potential, score

if TYPE_CHECKING:
    from playwright.sync_api import Page

__all__ = ["ShopEnv", "ShopTask"]

# Reads the product form's current choices. Fixed, trusted text: no agent input goes into it.
_READ_OPTIONS = """() => {
  const form = document.querySelector('form[action="/buy"]');
  if (!form) return null;
  const out = {};
  for (const [name, value] of new FormData(form)) {
    if (name !== 'product' && typeof value === 'string' && value) out[name] = value;
  }
  return out;
}"""


def _css(text: str) -> str:
    """`text` as a CSS string literal (catalog values only; JSON quoting is valid CSS)."""
    return json.dumps(text)


def _click(env: WebEnv, selector: str) -> str:
    """`click(<id>)` of the element `selector` finds ("noop()" if the page lacks it)."""
    element = env.id_of(selector)
    return "noop()" if element is None else f"click({element})"


@dataclass
class ShopTask:
    """One shopping episode on `site`: the `WebTask` of the shop (see the module docstring)."""

    goal: Goal
    site: ShopSite
    session_id: str
    task_id: str = ""
    instruction: str = ""
    start_url: str = ""
    allowed_origins: Sequence[str] = ()
    best: float = 0.0
    """The highest potential reached so far in the episode."""
    purchase: dict[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        self.task_id = self.goal.task_id
        self.instruction = self.goal.instruction
        self.start_url = self.site.url + "/"
        self.allowed_origins = (self.site.url,)

    @property
    def catalog(self) -> Catalog:
        return self.site.catalog

    # ---------------------------------------------------------------- the WebTask protocol
    def setup(self, page: Page) -> None:
        """Give the fresh context its own session, then load the start page under it."""
        self.site.open_session(self.session_id)
        page.context.add_cookies([{"name": COOKIE, "value": self.session_id, "url": self.site.url}])
        page.goto(self.start_url, wait_until="load")

    def evaluate(self, page: Page) -> TaskState:
        """Score the order once placed (ending the episode); until then, pay progress."""
        session = self.site.session(self.session_id)
        if session.order is not None:
            return self._purchased(session.order)
        product, selected = self.page_product(page)
        phi = potential(self.goal, product, selected)
        gain = max(0.0, phi - self.best)
        self.best = max(self.best, phi)
        return TaskState({"outcome": 0.0, "progress": gain})

    def expert_action(self, env: WebEnv) -> str | None:
        """The oracle's next action on the current page (None once the order is placed)."""
        if self.site.session(self.session_id).order is not None:
            return None
        page = env.page
        url = urlsplit(page.url)
        product, selected = self.page_product(page)
        if product is not None:
            if fits(self.goal, product):
                return self._choose_and_buy(env, product, selected)
            if env.id_of('a[href^="/search?"]') is None:
                return "go_back()"
            return _click(env, 'a[href^="/search?"]')
        if url.path == "/search":
            params = parse_qs(url.query)
            query = (params.get("q") or [""])[0]
            if search_terms(query) == search_terms(self.goal.query):
                action = self._pick_result(env, query, params)
                if action is not None:
                    return action
        return self._search(env)

    # ---------------------------------------------------------------- helpers
    def page_product(self, page: Page) -> tuple[Product | None, dict[str, str]]:
        """The product `page` shows (None elsewhere) and the options selected on it."""
        path = urlsplit(page.url).path
        if not path.startswith("/product/"):
            return None, {}
        product = self.catalog.get(path.removeprefix("/product/"))
        if product is None:
            return None, {}
        try:
            chosen = page.evaluate(_READ_OPTIONS)
        except Exception:
            # A page still loading has no form to read yet; a closed page is the env's concern.
            if page.is_closed():
                raise
            chosen = None
        if not isinstance(chosen, dict):
            return product, {}
        return product, {str(k): str(v) for k, v in chosen.items()}

    def _purchased(self, order: tuple[Any, ...]) -> TaskState:
        if self.purchase is None:
            items = []
            for line in order:
                parts = score(self.goal, self.catalog.product(line.product_id), line.chosen)
                items.append({"product_id": line.product_id, "options": line.chosen,
                              "score": parts.total, "r_type": parts.r_type,
                              "attributes_matched": parts.attributes,
                              "options_matched": parts.options, "price_ok": parts.price})  # fmt: skip
            total = round(sum(i["score"] for i in items) / len(items), 6)
            self.purchase = {"items": items, "score": total}
        total = float(self.purchase["score"])
        return TaskState(
            {"outcome": total, "progress": 0.0},
            done=True,
            success=total >= 1.0,
            info={"purchase": self.purchase},
        )

    def _choose_and_buy(self, env: WebEnv, product: Product, selected: Mapping[str, str]) -> str:
        for n, (dim, _) in enumerate(product.options):
            want = self.goal.options.get(dim)
            if want is None or selected.get(dim) == want:
                continue
            if n == 0:
                element = env.id_of(f"select[name={_css(dim)}]")
                return f"select({element}, {json.dumps(want)})"
            return _click(env, f"input[type=radio][name={_css(dim)}][value={_css(want)}]")
        return _click(env, 'form[action="/buy"] button:not([formaction])')

    def _pick_result(self, env: WebEnv, query: str, params: Mapping[str, list[str]]) -> str | None:
        try:
            page_no = int((params.get("page") or ["1"])[0])
        except ValueError:
            page_no = 1
        hits, _ = self.catalog.search(query, page_no)
        for pid in hits:
            if fits(self.goal, self.catalog.product(pid)):
                element = env.id_of(f'a[href^="/product/{pid}?"]')
                if element is not None:
                    return f"click({element})"
        following = env.id_of('a[rel="next"]')
        return None if following is None else f"click({following})"

    def _search(self, env: WebEnv) -> str:
        box = env.id_of('input[name="q"]')
        if box is None:
            return _click(env, 'a[href="/"]')
        value = env.session.browser.call(lambda: env.page.input_value('input[name="q"]'))
        if value != self.goal.query:
            return f"fill({box}, {json.dumps(self.goal.query)})"
        return _click(env, "form[role=search] button")


class ShopEnv(WebEnv):
    """`turnwise/Shop-v0`: buy what the instruction asks for in a generated web shop.

    Args:
        catalog_seed: which generated catalog (3000 products) to sell; tasks depend on it.
        latency: seconds every page of the site waits before answering (to test slow pages).
        split, max_turns, reward_weights, max_action_length, render_mode, screenshots,
            viewport, browser, executable_path, actions: as in `WebEnv`.

    Example:
        >>> env = ShopEnv(split="test")
        >>> env.tasks()[:2]
        ('shop-test-00000', 'shop-test-00001')
        >>> env.close()
    """

    splits = SPLITS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **Env.default_reward_weights,
        "outcome": 1.0,
        "progress": 0.5,
    }

    def __init__(
        self,
        *,
        catalog_seed: int = 0,
        latency: float = 0.0,
        split: str = "train",
        max_turns: int = 20,
        **kwargs: Any,
    ) -> None:
        # Before the base class: it may list tasks while checking the split.
        self.catalog = Catalog.open(seed=catalog_seed)
        self.shop_tasks = ShopTasks(self.catalog)
        self.site = ShopSite(self.catalog, latency=latency)
        self._session_id: str | None = None
        super().__init__(split=split, max_turns=max_turns, **kwargs)

    def tasks(self, split: str | None = None) -> tuple[str, ...]:
        return self.shop_tasks.ids(self.split if split is None else split)

    def goal(self, task_id: str | None = None) -> Goal:
        """The goal of `task_id` (default: the current episode's task)."""
        task_id = task_id if task_id is not None else self.task_id
        if task_id is None:
            raise RuntimeError("call reset() first, or name a task")
        return self.shop_tasks.goal(task_id)

    def make_task(self, task_id: str) -> ShopTask:
        self.site.start()
        if self._session_id is not None:
            self.site.close_session(self._session_id)
        # Random, but invisible: the cookie never shows in observations, so replays still match.
        self._session_id = secrets.token_hex(8)
        return ShopTask(self.shop_tasks.goal(task_id), self.site, self._session_id)

    def _close(self) -> None:
        try:
            super()._close()
        finally:
            self.site.stop()
