"""Tests of `turnwise/Shop-v0`: catalog, search, scoring, the site over plain HTTP, the env.

Most logic is covered without a browser (catalog, tasks, scoring, and the site through
`urllib`); the tests marked `browser` play the env in Chromium with one env per module.
"""

from __future__ import annotations

import html
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnwise.envs.web.shop.catalog import (
    PAGE_SIZE,
    PRODUCT_TYPES,
    Catalog,
    search_terms,
)
from turnwise.envs.web.shop.site import COOKIE, ShopSite
from turnwise.envs.web.shop.tasks import (
    SPLITS,
    Goal,
    ShopTasks,
    fits,
    potential,
    score,
)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "'; DROP TABLE products; -- \" OR 1=1"
# Seed 0's catalog, pinned: a change of generation must bump CATALOG_VERSION (and the env's -vN).
DIGEST_SEED_0 = "4e71ec3086994f02"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.open(seed=0)


@pytest.fixture(scope="module")
def tasks(catalog: Catalog) -> ShopTasks:
    return ShopTasks(catalog)


def other_type(catalog: Catalog, goal: Goal, same_department: bool) -> Any:
    return next(
        p
        for p in catalog.products
        if p.ptype != goal.ptype and (p.department == goal.department) == same_department
    )


# -------------------------------------------------------------------- catalog and search
def test_catalog_is_deterministic_large_and_built_atomically(
    catalog: Catalog, tmp_path: Path
) -> None:
    assert len(catalog) == 3000 and len({p.ptype for p in catalog.products}) == len(PRODUCT_TYPES)
    assert len({p.title for p in catalog.products}) == len(catalog)
    assert catalog.digest() == DIGEST_SEED_0
    fresh = Catalog.open(seed=0, root=tmp_path)
    assert fresh is not catalog and fresh.digest() == DIGEST_SEED_0
    assert Catalog.open(seed=1, root=tmp_path).digest() != DIGEST_SEED_0
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".sqlite"]
    assert leftovers == []
    for p in catalog.products[:50]:
        assert all(len(values) >= 2 for _, values in p.options)
        assert set(p.attributes) <= set(
            next(t for t in PRODUCT_TYPES if t.name == p.ptype).attributes
        )


def test_search_ranks_the_goal_on_the_first_pages(catalog: Catalog, tasks: ShopTasks) -> None:
    worst_fit, worst_target = 0, 0
    for split in SPLITS:
        for task_id in tasks.ids(split)[:100]:
            goal = tasks.goal(task_id)
            hits: list[str] = []
            for page in range(1, 10):
                hits += catalog.search(goal.query, page)[0]
            first_fit = next(i for i, pid in enumerate(hits) if fits(goal, catalog.product(pid)))
            worst_fit = max(worst_fit, first_fit)
            assert goal.product_id in hits, f"{task_id}: the target is not on the first 9 pages"
            worst_target = max(worst_target, hits.index(goal.product_id))
    # A product that fits is on the first five pages; the expert never pages further.
    assert worst_fit < 5 * PAGE_SIZE, worst_fit
    # Search matters: some targets are not on the first page.
    assert worst_target >= PAGE_SIZE


def test_the_whole_instruction_finds_the_right_type(catalog: Catalog, tasks: ShopTasks) -> None:
    for task_id in tasks.ids("test")[:40]:
        goal = tasks.goal(task_id)
        hits, total = catalog.search(goal.instruction)
        assert total > PAGE_SIZE
        assert catalog.product(hits[0]).ptype == goal.ptype, (task_id, goal.instruction)


def test_search_survives_hostile_queries(catalog: Catalog) -> None:
    for query in (XSS, SQL, "", "   ", '"', "AND OR NOT NEAR", "*" * 500, "\x00\ud800"):
        hits, total = catalog.search(query, page=1)
        assert isinstance(total, int) and len(hits) <= PAGE_SIZE
    assert catalog.search(SQL)[1] == catalog.search("drop table products or 1 1")[1]
    assert search_terms("Jackets, WATERPROOF!") == ["jackets", "waterproof"]
    assert catalog.search("jacket", page=10_000) == ([], catalog.search("jacket")[1])
    assert len(catalog) == 3000  # nothing was dropped


# -------------------------------------------------------------------- tasks and scoring
def test_splits_are_disjoint_and_deterministic(catalog: Catalog, tasks: ShopTasks) -> None:
    targets = {s: {tasks.goal(t).product_id for t in tasks.ids(s)} for s in SPLITS}
    assert [len(targets[s]) for s in SPLITS] == [len(tasks.ids(s)) for s in SPLITS]
    assert not targets["train"] & targets["valid"]
    assert not targets["train"] & targets["test"]
    assert not targets["valid"] & targets["test"]
    for split in SPLITS:
        assert all(tasks.split_of(pid) == split for pid in targets[split])
    again = ShopTasks(catalog)
    for task_id in tasks.ids("valid")[:20]:
        assert again.goal(task_id) == tasks.goal(task_id)
    with pytest.raises(KeyError, match="shop-nope-1"):
        tasks.goal("shop-nope-1")
    with pytest.raises(ValueError, match="unknown split"):
        tasks.ids("dev")


def test_goals_are_solvable_and_say_what_they_ask(catalog: Catalog, tasks: ShopTasks) -> None:
    for task_id in tasks.ids("train")[:200]:
        goal = tasks.goal(task_id)
        product = catalog.product(goal.product_id)
        assert fits(goal, product) and goal.price_limit > product.price
        assert goal.ptype in goal.instruction and f"{goal.price_limit:.2f}" in goal.instruction
        assert all(a in goal.instruction for a in goal.attributes)
        assert all(f"{d} {v}" in goal.instruction for d, v in goal.options.items())


def test_scoring_known_answers(catalog: Catalog, tasks: ShopTasks) -> None:
    goal = next(
        tasks.goal(t)
        for t in tasks.ids("test")
        if len(tasks.goal(t).options) == 2 and len(tasks.goal(t).attributes) == 2
    )
    target = catalog.product(goal.product_id)
    asked = 2 + 2 + 1
    exact = score(goal, target, goal.options)
    assert exact.total == 1.0 and exact.asked == asked
    dim, value = next(iter(goal.options.items()))
    wrong = next(v for v in target.option_values(dim) if v != value)
    assert score(goal, target, {**goal.options, dim: wrong}).total == pytest.approx(4 / 5)
    assert score(goal, target, {}).total == pytest.approx(3 / 5)
    # Not an option this product has: never matched, even when the value is the goal's.
    assert score(goal, target, {dim: "no such value"}).options == 0
    pricey = Goal(**{**goal.__dict__, "price_limit": target.price - 0.01})
    over = score(pricey, target, goal.options)
    assert not over.price and over.total == pytest.approx(4 / 5)
    cousin = other_type(catalog, goal, same_department=True)
    stranger = other_type(catalog, goal, same_department=False)
    assert score(goal, cousin, goal.options).r_type == 0.5
    far = score(goal, stranger, goal.options)
    assert far.r_type == 0.1 and far.total <= 0.1
    # An equivalent product (same type, attributes, options, price) scores 1.0 too.
    twin = next((p for p in catalog.products if p is not target and fits(goal, p)), None)
    if twin is not None:
        assert score(goal, twin, goal.options).total == 1.0


def test_potential_rises_with_the_right_product_and_options(
    catalog: Catalog, tasks: ShopTasks
) -> None:
    goal = next(tasks.goal(t) for t in tasks.ids("train") if len(tasks.goal(t).options) == 2)
    target = catalog.product(goal.product_id)
    dim, value = next(iter(goal.options.items()))
    assert potential(goal, None, goal.options) == 0.0
    assert potential(goal, other_type(catalog, goal, True), goal.options) == 0.0
    assert potential(goal, target, {}) == 0.5
    assert potential(goal, target, {dim: value}) == 0.75
    assert potential(goal, target, dict(goal.options)) == 1.0


# -------------------------------------------------------------------- the site over HTTP
class Client:
    """A tiny HTTP client with a session cookie, for the site without a browser."""

    def __init__(self, site: ShopSite, session_id: str) -> None:
        self.site = site
        jar = http.cookiejar.CookieJar()
        cookie = http.cookiejar.Cookie(
            0, COOKIE, session_id, None, False, "127.0.0.1", False, False, "/", True,
            False, None, False, None, None, {},
        )  # fmt: skip
        jar.set_cookie(cookie)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.site.url + path) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.site.url + path, data=data) as response:
            return response.status, response.geturl(), response.read().decode()


@pytest.fixture(scope="module")
def site(catalog: Catalog) -> Iterator[ShopSite]:
    with ShopSite(catalog) as running:
        yield running


def test_site_escapes_what_it_echoes(site: ShopSite) -> None:
    client = Client(site, "escape")
    for query in (XSS, SQL):
        status, page = client.get("/search?" + urllib.parse.urlencode({"q": query}))
        assert status == 200 and "<script>" not in page and "<img" not in page
        assert html.escape(query) in page  # shown, as text, in the box and the heading
    status, page = client.get("/product/" + urllib.parse.quote(XSS))
    assert status == 404 and "<script>" not in page
    status, page = client.get("/nowhere?q=" + urllib.parse.quote(XSS))
    assert status == 404 and "<script>" not in page


def test_site_pages_and_paging(site: ShopSite, catalog: Catalog) -> None:
    client = Client(site, "pages")
    status, home = client.get("/")
    assert status == 200 and 'role="search"' in home and "Cart (0)" in home
    status, page1 = client.get("/search?q=hiking+jacket")
    hits, total = catalog.search("hiking jacket")
    assert f"of {total} results" in page1 and page1.count("<li>") == PAGE_SIZE
    assert "Next page" in page1 and "Previous page" not in page1
    assert all(f"/product/{pid}?" in page1 for pid in hits)
    last = -(-total // PAGE_SIZE)
    status, end = client.get(f"/search?q=hiking+jacket&page={last}")
    assert "Previous page" in end and "Next page" not in end
    for bad in ("page=-3", "page=abc", "page=99999999999999999999"):
        assert client.get(f"/search?q=jacket&{bad}")[0] == 200
    status, none = client.get("/search?q=zzzzqqq")
    assert "No products match" in none
    product = catalog.products[0]
    status, page = client.get(f"/product/{product.product_id}?q=jacket&page=2")
    assert status == 200 and "Back to results" in page and "<select" in page
    assert 'type="radio"' in page and "Buy now" in page and "Add to cart" in page


def test_buying_over_http_records_the_order(
    site: ShopSite, catalog: Catalog, tasks: ShopTasks
) -> None:
    goal = tasks.goal(tasks.ids("valid")[0])
    client = Client(site, "buyer")
    session = site.open_session("buyer")
    form = {"product": goal.product_id, **goal.options}
    status, url, page = client.post("/cart/add", form)
    assert status == 200 and url.endswith("/cart") and "Checkout" in page and len(session.cart) == 1
    client.post("/cart/add", {"product": goal.product_id, "size": "nonsense"})
    client.post("/cart/remove", {"line": "1"})
    client.post("/cart/remove", {"line": "-1"})  # ignored, like any bad line number
    client.post("/cart/remove", {"line": "x"})
    assert len(session.cart) == 1
    _, url, page = client.post("/buy", form)
    assert url.endswith("/order") and "Thank you for your order" in page
    assert session.order is not None and len(session.order) == 1
    line = session.order[0]
    assert score(goal, catalog.product(line.product_id), line.chosen).total == 1.0
    # The order is final: buying again or checking out changes nothing.
    client.post("/buy", {"product": catalog.products[5].product_id})
    client.post("/checkout", {})
    assert session.order == (line,)
    # Another session is untouched, and bad posts are answered, not raised on.
    assert site.session("someone-else").order is None
    other = Client(site, "other")
    assert other.get("/cart")[1].count("Your cart is empty") == 1
    with pytest.raises(urllib.error.HTTPError) as err:
        other.post("/buy", {"product": "nope"})
    assert err.value.code == 404
    _, url, _ = other.post("/checkout", {})
    assert url.endswith("/cart") and site.session("other").order is None


def test_a_slow_site_still_answers(catalog: Catalog) -> None:
    with ShopSite(catalog, latency=0.3) as slow, urllib.request.urlopen(slow.url) as response:
        assert response.status == 200
    slow.stop()  # twice is fine


# -------------------------------------------------------------------- the env in Chromium
@pytest.fixture(scope="module")
def env() -> Iterator[Any]:
    import turnwise

    made = turnwise.make("turnwise/Shop-v0", split="train")
    yield made
    made.close()


def run_expert(env: Any, task_id: str) -> tuple[list[dict[str, Any]], list[str]]:
    _, info = env.reset(seed=0, options={"task_id": task_id})
    infos, actions = [], []
    while (action := env.unwrapped.expert_action()) is not None:
        actions.append(action)
        _, reward, terminated, truncated, info = env.step(action)
        infos.append({**info, "reward": reward, "obs_error": env.unwrapped._error})
        assert info["valid_action"], (task_id, actions, infos[-1])
        if terminated or truncated:
            break
    return infos, actions


@pytest.mark.browser
def test_the_expert_buys_the_goal_in_every_split(env: Any) -> None:
    shop = env.unwrapped
    for split in SPLITS:
        for task_id in shop.tasks(split)[:2]:
            infos, actions = run_expert(env, task_id)
            last = infos[-1]
            assert last["success"] is True and last["reward_terms"]["outcome"] == 1.0, actions
            assert sum(i["reward_terms"]["progress"] for i in infos) == pytest.approx(1.0)
            assert actions[0].startswith("fill(") and last["purchase"]["score"] == 1.0
            assert env.unwrapped.expert_action() is None


@pytest.mark.browser
def test_bad_input_is_invalid_and_the_episode_goes_on(env: Any) -> None:
    env.reset(seed=1)
    for action in ("click(987654)", "click(", "buy the jacket", 'goto("https://example.com/")'):
        obs, _, terminated, _, info = env.step(action)
        assert info["valid_action"] is False and not terminated, action
        assert obs["error"] and f"Error: {obs['error']}" in obs["text"] and obs["url"] == "/"
    obs, *_ = env.step('goto("/search?q=jacket")')
    assert "Results for" in obs["text"]


@pytest.mark.browser
def test_hostile_search_text_is_shown_as_text(env: Any) -> None:
    env.reset(seed=2)
    shop = env.unwrapped
    for text in (XSS, SQL):
        env.step(f"fill({shop.id_of('input[name=q]')}, {json.dumps(text)})")
        obs, _, _, _, info = env.step(f"click({shop.id_of('form[role=search] button')})")
        assert info["valid_action"] is True, obs["error"]
        assert obs["url"].startswith("/search?q=") and "dialog" not in obs["error"]
        # Rendered as text (not run, not parsed as markup): the heading shows it verbatim.
        heading = next(line for line in obs["text"].splitlines() if " heading " in line)
        assert json.loads(heading.split("heading ", 1)[1]) == f'Results for "{text}"'
    assert len(shop.catalog) == 3000


@pytest.mark.browser
def test_enter_in_the_search_box_searches(env: Any) -> None:
    env.reset(seed=2)
    shop = env.unwrapped
    env.step(f'fill({shop.id_of("input[name=q]")}, "waterproof jacket")')
    obs, _, _, _, info = env.step('press("Enter")')
    assert info["valid_action"] is True and obs["url"].startswith("/search?q=waterproof")


@pytest.mark.browser
def test_a_wrong_purchase_ends_the_episode_with_its_score(env: Any) -> None:
    shop = env.unwrapped
    env.reset(seed=3)
    goal = shop.goal()
    stranger = other_type(shop.catalog, goal, same_department=False)
    env.step(f'goto("/product/{stranger.product_id}")')
    buy = shop.id_of('form[action="/buy"] button:not([formaction])')
    obs, _, terminated, _, info = env.step(f"click({buy})")
    assert terminated and info["success"] is False
    expected = score(goal, stranger, {}).total
    assert info["reward_terms"]["outcome"] == pytest.approx(expected) and expected <= 0.1
    assert "Thank you for your order" in obs["text"]


@pytest.mark.browser
def test_a_slow_page_is_waited_for(env: Any) -> None:
    shop = env.unwrapped
    env.reset(seed=4)
    shop.site.latency = 0.5
    try:
        obs, _, _, _, info = env.step('goto("/cart")')
    finally:
        shop.site.latency = 0.0
    assert info["valid_action"] is True and "Your cart" in obs["text"]


@pytest.mark.browser
def test_check_env_passes() -> None:
    import turnwise
    from turnwise.testing import check_env

    # A shorter turn limit keeps the checker's invalid-action episodes short; the expert's
    # episodes on these tasks take at most 10 turns.
    report = check_env(turnwise.make("turnwise/Shop-v0", max_turns=12), n_tasks=1)
    assert report.ok
