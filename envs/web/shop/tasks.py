"""Shop tasks: WebShop-style goals, their splits, the score of a purchase, progress, the plan.

A task names a target product and asks for some of its attributes, one value of each of its
option dimensions and a price limit above its price, in words::

    i need a waterproof and breathable hiking jacket with size large and color navy blue,
    and price lower than 120.00 dollars

Any product that fits as well as the target scores the same (1.0), so the agent need not find
the very product the goal was drawn from.

Scoring a bought item follows the idea of WebShop's reward (Yao et al., 2022, "WebShop: Towards
Scalable Real-World Web Interaction with Grounded Language Agents"): the share of what was asked
for that the item gets right, scaled by whether it is the right kind of product::

    score = r_type * (n_attributes_matched + n_options_matched + [price <= limit])
                   / (n_attributes_asked   + n_options_asked   + 1)

with `r_type` 1.0 for the same product type, 0.5 for another type of the same department and
0.1 otherwise. Our attributes and options are exact catalog strings, so matches are exact
(WebShop matches scraped text fuzzily). Several items bought at once (a cart checkout) score
their mean, so buying extra items never helps.

Splits partition the catalog's products (by a hash of the product id): train, valid and test
never share a target product.

Example:
    >>> from turnwise.envs.web.shop.catalog import Catalog
    >>> tasks = ShopTasks(Catalog.open(seed=0))
    >>> goal = tasks.goal("shop-test-00000")
    >>> score(goal, tasks.catalog.product(goal.product_id), goal.options).total
    1.0
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from .catalog import CATALOG_VERSION, Catalog, Product

__all__ = [
    "SPLITS",
    "SPLIT_SIZES",
    "Goal",
    "Score",
    "ShopTasks",
    "fits",
    "potential",
    "score",
]

SPLITS = ("train", "valid", "test")
#: Tasks per split (each with its own target product).
SPLIT_SIZES = {"train": 1000, "valid": 100, "test": 200}
# Share of products (out of 10 hash buckets) whose tasks belong to each split.
_BUCKETS = {"train": range(0, 8), "valid": range(8, 9), "test": range(9, 10)}
_TEMPLATES = (
    "i need {a} {attrs} {noun} {opts}, and price lower than {price} dollars",
    "i am looking for {a} {attrs} {noun} {opts}, with a price lower than {price} dollars",
    "find me {a} {attrs} {noun} {opts}, and price lower than {price} dollars",
    "i want to buy {a} {attrs} {noun} {opts} that costs less than {price} dollars",
)
TYPE_MATCH = {"type": 1.0, "department": 0.5, "none": 0.1}


@dataclass(frozen=True)
class Goal:
    """What a task asks for, and the product it was drawn from."""

    task_id: str
    product_id: str
    ptype: str
    department: str
    attributes: tuple[str, ...]
    options: Mapping[str, str] = field(hash=False)
    price_limit: float
    instruction: str

    @property
    def query(self) -> str:
        """The instruction's key words: the attributes and the product type."""
        return " ".join((*self.attributes, self.ptype))


@dataclass(frozen=True)
class Score:
    """The parts of a purchase's score (see the module docstring) and their total."""

    r_type: float
    attributes: int
    options: int
    price: bool
    asked: int

    @property
    def total(self) -> float:
        return round(self.r_type * (self.attributes + self.options + self.price) / self.asked, 6)


def score(goal: Goal, product: Product, chosen: Mapping[str, str]) -> Score:
    """How well `product`, bought with options `chosen` (`dimension -> value`), meets `goal`.

    Example:
        >>> from turnwise.envs.web.shop.catalog import Catalog
        >>> tasks = ShopTasks(Catalog.open(seed=0))
        >>> goal = tasks.goal("shop-test-00000")
        >>> product = tasks.catalog.product(goal.product_id)
        >>> s = score(goal, product, {})  # no option chosen
        >>> s.total == round((len(goal.attributes) + 1) / (len(goal.attributes) + len(goal.options) + 1), 6)
        True
    """
    if product.ptype == goal.ptype:
        r_type = TYPE_MATCH["type"]
    elif product.department == goal.department:
        r_type = TYPE_MATCH["department"]
    else:
        r_type = TYPE_MATCH["none"]
    attrs = sum(a in product.attributes for a in goal.attributes)
    opts = sum(
        chosen.get(dim) == value and value in product.option_values(dim)
        for dim, value in goal.options.items()
    )
    asked = len(goal.attributes) + len(goal.options) + 1
    return Score(r_type, attrs, opts, product.price <= goal.price_limit, asked)


def fits(goal: Goal, product: Product) -> bool:
    """Whether `product` can score 1.0: right type, every attribute, the price, the options.

    Example:
        >>> from turnwise.envs.web.shop.catalog import Catalog
        >>> tasks = ShopTasks(Catalog.open(seed=0))
        >>> goal = tasks.goal("shop-valid-00003")
        >>> fits(goal, tasks.catalog.product(goal.product_id))
        True
    """
    return (
        product.ptype == goal.ptype
        and all(a in product.attributes for a in goal.attributes)
        and product.price <= goal.price_limit
        and all(v in product.option_values(d) for d, v in goal.options.items())
    )


def potential(goal: Goal, product: Product | None, selected: Mapping[str, str]) -> float:
    """Φ of a page: 0 unless it shows a product that `fits` the goal; then 0.5 plus 0.5 times
    the share of the goal's options currently selected on it.

    The env pays `progress` = the rise of Φ's highest value so far, so an episode's progress
    adds up to at most 1.0 and wandering back and forth earns nothing.

    Example:
        >>> from turnwise.envs.web.shop.catalog import Catalog
        >>> tasks = ShopTasks(Catalog.open(seed=0))
        >>> goal = tasks.goal("shop-train-00000")
        >>> product = tasks.catalog.product(goal.product_id)
        >>> potential(goal, None, {}), potential(goal, product, {}), potential(goal, product, goal.options)
        (0.0, 0.5, 1.0)
    """
    if product is None or not fits(goal, product):
        return 0.0
    right = sum(selected.get(d) == v for d, v in goal.options.items())
    return 0.5 + 0.5 * (right / len(goal.options) if goal.options else 1.0)


def _bucket(seed: int, product_id: str) -> int:
    digest = hashlib.blake2b(f"{seed}/{product_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10


def _article(attrs: str, noun: str) -> str:
    if noun.endswith("s"):  # sandals, jeans, hiking boots, running shoes
        return "a pair of"
    return "an" if attrs[0] in "aeiou" else "a"


def _phrase(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class ShopTasks:
    """The task ids of one catalog, by split, and the goal of each (built on first use)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._goals: dict[str, Goal] = {}
        self._ids: dict[str, tuple[str, ...]] = {}

    @cached_property
    def _pools(self) -> dict[str, list[Product]]:
        pools: dict[str, list[Product]] = {s: [] for s in SPLITS}
        for product in self.catalog.products:
            bucket = _bucket(self.catalog.seed, product.product_id)
            split = next(s for s, r in _BUCKETS.items() if bucket in r)
            pools[split].append(product)
        return pools

    def ids(self, split: str) -> tuple[str, ...]:
        """Task ids of `split`, in order (`shop-<split>-<nnnnn>`)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; the shop has {SPLITS}")
        if split not in self._ids:
            self._build(split)
        return self._ids[split]

    def goal(self, task_id: str) -> Goal:
        """The goal of `task_id` (KeyError naming it if there is no such task)."""
        if task_id not in self._goals:
            split = task_id.split("-")[1] if task_id.count("-") == 2 else ""
            if split in SPLITS:
                self.ids(split)
        try:
            return self._goals[task_id]
        except KeyError:
            raise KeyError(f"no shop task {task_id!r}") from None

    def split_of(self, product_id: str) -> str:
        """The split whose tasks may target `product_id`."""
        bucket = _bucket(self.catalog.seed, product_id)
        return next(s for s, r in _BUCKETS.items() if bucket in r)

    def _build(self, split: str) -> None:
        rng = random.Random(f"turnwise-shop-tasks/{CATALOG_VERSION}/{self.catalog.seed}/{split}")
        pool = self._pools[split]
        targets = rng.sample(pool, min(SPLIT_SIZES[split], len(pool)))
        ids = []
        for n, product in enumerate(targets):
            task_id = f"shop-{split}-{n:05d}"
            self._goals[task_id] = self._make_goal(task_id, product, rng)
            ids.append(task_id)
        self._ids[split] = tuple(ids)

    @staticmethod
    def _make_goal(task_id: str, product: Product, rng: random.Random) -> Goal:
        attributes = tuple(
            rng.sample(product.attributes, rng.randint(1, min(3, len(product.attributes))))
        )
        options = {dim: rng.choice(values) for dim, values in product.options}
        # A limit 5–50% above the price, rounded up to ten dollars: never below the price.
        limit = float(math.ceil(product.price * rng.uniform(1.05, 1.5) / 10) * 10)
        attrs = _phrase(attributes)
        opts = "with " + _phrase([f"{dim} {value}" for dim, value in options.items()])
        instruction = rng.choice(_TEMPLATES).format(
            a=_article(attrs, product.ptype), attrs=attrs, noun=product.ptype, opts=opts,
            price=f"{limit:.2f}",
        )  # fmt: skip
        return Goal(
            task_id=task_id,
            product_id=product.product_id,
            ptype=product.ptype,
            department=product.department,
            attributes=attributes,
            options=options,
            price_limit=limit,
            instruction=instruction,
        )
