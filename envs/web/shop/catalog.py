"""The shop's catalog: products generated deterministically from a seed, stored in SQLite.

Products belong to one of twenty product types in five departments. Each type has a pool of
attributes (`waterproof`, `stainless steel`, ...), one or two option dimensions (size, colour,
capacity, ...) and a price range. A product draws two to four attributes, a subset of each
option dimension's values and a price; its title is built from its brand, some attributes and
the type's noun, so a keyword search over titles, attributes and descriptions finds it. Many
attributes are shared across types (`waterproof` jackets, boots, backpacks and tents), so a
search has to be specific to be useful.

The catalog is written once per `(CATALOG_VERSION, seed)` into
`turnwise.paths.cache_dir("shop", ...)` (to a temporary file, then renamed, so concurrent
builders never see half a file) and opened read-only afterwards. Search is SQLite FTS5 with its
BM25 ranking and the Porter stemmer (`jackets` finds `jacket`); ties go to the lower product
index, so results are deterministic.

Example:
    >>> catalog = Catalog.open(seed=0)
    >>> len(catalog), catalog.products[0].product_id
    (3000, 'P0000')
    >>> hits, total = catalog.search("waterproof hiking boots", page=1)
    >>> total > 10 and all(catalog.product(h).ptype == "hiking boots" for h in hits[:3])
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from turnwise.paths import cache_dir

__all__ = [
    "CATALOG_VERSION",
    "PAGE_SIZE",
    "PRODUCT_TYPES",
    "Catalog",
    "Product",
    "ProductType",
    "search_terms",
]

#: Bump whenever generation changes what a seed produces (and so the env's version).
CATALOG_VERSION = 1
#: Results per search page.
PAGE_SIZE = 10
#: Products per type; twenty types make 3000 products.
PER_TYPE = 150
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class ProductType:
    """A kind of product: its noun, department, attribute pool, option dimensions and prices."""

    name: str
    department: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price_range: tuple[float, float]


def _t(
    name: str,
    department: str,
    attributes: str,
    options: dict[str, str],
    low: float,
    high: float,
) -> ProductType:
    # Compact table syntax below: comma-separated pools.
    split = lambda s: tuple(x.strip() for x in s.split(","))  # noqa: E731
    return ProductType(
        name,
        department,
        split(attributes),
        tuple((dim, split(values)) for dim, values in options.items()),
        (low, high),
    )


_COLORS = "black, navy blue, red, olive green, grey, white, beige"
PRODUCT_TYPES: tuple[ProductType, ...] = (
    _t("hiking jacket", "clothing",
       "waterproof, windproof, insulated, breathable, packable, hooded, lightweight, fleece lined",
       {"size": "small, medium, large, x-large, xx-large", "color": _COLORS}, 39, 189),
    _t("t-shirt", "clothing",
       "cotton, moisture wicking, quick dry, slim fit, crew neck, v-neck, organic, long sleeve",
       {"size": "small, medium, large, x-large", "color": _COLORS}, 9, 39),
    _t("jeans", "clothing",
       "stretch, slim fit, relaxed fit, high waist, distressed, button fly, bootcut",
       {"size": "28w, 30w, 32w, 34w, 36w, 38w", "color": "dark wash, light wash, black, grey"},
       24, 99),
    _t("hoodie", "clothing",
       "fleece lined, cotton, zip up, pullover, oversized, water resistant, machine washable",
       {"size": "small, medium, large, x-large", "color": _COLORS}, 19, 79),
    _t("hiking boots", "footwear",
       "waterproof, leather, non slip, ankle support, vibram sole, breathable, insulated",
       {"size": "7, 8, 9, 10, 11, 12, 13", "color": "brown, black, grey, tan"}, 49, 219),
    _t("running shoes", "footwear",
       "lightweight, cushioned, breathable, non slip, arch support, wide toe box, reflective",
       {"size": "6, 7, 8, 9, 10, 11, 12", "color": "black, white, blue, pink, grey"}, 29, 159),
    _t("sandals", "footwear",
       "adjustable strap, arch support, waterproof, leather, memory foam, non slip",
       {"size": "6, 7, 8, 9, 10, 11", "color": "black, brown, tan, white"}, 14, 89),
    _t("coffee mug", "kitchen",
       "ceramic, dishwasher safe, microwave safe, insulated, stainless steel, large capacity, handmade",
       {"color": "white, black, blue, green, red, grey"}, 7, 39),
    _t("water bottle", "kitchen",
       "stainless steel, insulated, leak proof, bpa free, wide mouth, dishwasher safe, lightweight",
       {"capacity": "500 ml, 750 ml, 1 liter, 1.5 liter", "color": _COLORS}, 9, 49),
    _t("chef knife", "kitchen",
       "stainless steel, high carbon, ergonomic handle, full tang, dishwasher safe, damascus",
       {"blade length": "6 inch, 8 inch, 10 inch"}, 15, 149),
    _t("bed sheet set", "home",
       "cotton, deep pocket, wrinkle free, cooling, hypoallergenic, machine washable, organic",
       {"size": "twin, full, queen, king", "color": "white, grey, beige, navy blue, sage green"},
       25, 159),
    _t("throw pillow", "home",
       "velvet, machine washable, hypoallergenic, decorative, linen, removable cover",
       {"size": "16x16 inch, 18x18 inch, 20x20 inch", "color": _COLORS}, 9, 49),
    _t("desk lamp", "home",
       "led, dimmable, usb charging, adjustable arm, touch control, eye caring, wireless charging",
       {"color": "black, white, silver, gold"}, 15, 99),
    _t("wireless headphones", "electronics",
       "noise cancelling, bluetooth, over ear, foldable, long battery life, lightweight, water resistant",
       {"color": "black, white, blue, silver, rose gold"}, 19, 299),
    _t("phone case", "electronics",
       "shockproof, slim, wireless charging compatible, clear, leather, kickstand, waterproof",
       {"model": "iphone 14, iphone 15, galaxy s23, galaxy s24, pixel 8",
        "color": "black, clear, blue, red, purple"}, 7, 49),
    _t("charging cable", "electronics",
       "fast charging, usb c, braided, durable, right angle, data transfer",
       {"length": "3 ft, 6 ft, 10 ft", "color": "black, white, grey, red"}, 6, 29),
    _t("backpack", "outdoor",
       "waterproof, lightweight, laptop compartment, anti theft, water resistant, padded straps",
       {"capacity": "20 liter, 30 liter, 40 liter, 50 liter", "color": _COLORS}, 19, 149),
    _t("camping tent", "outdoor",
       "waterproof, easy setup, lightweight, windproof, double layer, ventilated",
       {"capacity": "2 person, 3 person, 4 person, 6 person", "color": "green, orange, grey, blue"},
       49, 349),
    _t("shampoo", "beauty",
       "sulfate free, paraben free, for dry hair, natural, vegan, color safe, anti dandruff",
       {"size": "8 oz, 12 oz, 16 oz, 32 oz", "scent": "unscented, lavender, coconut, citrus, mint"},
       6, 39),
    _t("face moisturizer", "beauty",
       "fragrance free, hyaluronic acid, spf 30, for sensitive skin, vegan, oil free, anti aging",
       {"size": "1 oz, 1.7 oz, 2.5 oz"}, 9, 69),
)  # fmt: skip

_SYLLABLES = ("nor", "vik", "ta", "lo", "mer", "zen", "ka", "ri", "sol", "den", "bra", "quo")
_DESCRIBE = (
    "Built for everyday use, this {noun} is {attrs}.",
    "A {attrs} {noun} that customers rate highly for comfort and value.",
    "Our best-selling {noun}: {attrs}, backed by a one-year warranty.",
)


@dataclass(frozen=True)
class Product:
    """One product of the catalog (immutable; loaded once per process)."""

    index: int
    product_id: str
    ptype: str
    department: str
    brand: str
    title: str
    price: float
    rating: float
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    description: str

    def option_values(self, dim: str) -> tuple[str, ...]:
        """The values of option dimension `dim` (empty when the product has no such option)."""
        return next((values for name, values in self.options if name == dim), ())


def search_terms(query: str) -> list[str]:
    """The words of `query` a search uses: lower-case letters and digits, nothing else.

    Anything else (quotes, operators, SQL, markup) is a separator, which is what makes the
    FTS5 query built from these words safe.

    Example:
        >>> search_terms("Waterproof <b>jacket</b>'; DROP TABLE products;--")
        ['waterproof', 'b', 'jacket', 'b', 'drop', 'table', 'products']
    """
    return _WORD.findall(query.lower())[:32]


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def generate(seed: int) -> list[Product]:
    """The products of catalog `seed`, in index order (pure; no files)."""
    rng = random.Random(f"turnwise-shop/{CATALOG_VERSION}/{seed}")
    brands = sorted({_brand(rng) for _ in range(80)})
    products: list[Product] = []
    titles: set[str] = set()
    for ptype in PRODUCT_TYPES:
        for _ in range(PER_TYPE):
            attributes = tuple(sorted(rng.sample(ptype.attributes, rng.randint(2, 4))))
            options = []
            for dim, values in ptype.options:
                kept = set(rng.sample(values, rng.randint(2, len(values))))
                options.append((dim, tuple(v for v in values if v in kept)))
            shown = list(attributes)
            rng.shuffle(shown)
            title_words = " ".join(shown[: rng.randint(1, len(shown))])
            # Titles are unique, so a link's name tells products apart on a results page.
            while True:
                brand = rng.choice(brands)
                title = f"{brand} {title_words} {ptype.name}".title()
                if title not in titles:
                    titles.add(title)
                    break
            low, high = ptype.price_range
            price = round(int(rng.uniform(low, high)) + 0.99, 2)
            joined = ", ".join(shown[:-1]) + " and " + shown[-1] if len(shown) > 1 else shown[0]
            description = rng.choice(_DESCRIBE).format(noun=ptype.name, attrs=joined)
            index = len(products)
            products.append(
                Product(
                    index=index,
                    product_id=f"P{index:04d}",
                    ptype=ptype.name,
                    department=ptype.department,
                    brand=brand,
                    title=title,
                    price=price,
                    rating=round(rng.uniform(2.5, 5.0), 1),
                    attributes=attributes,
                    options=tuple(options),
                    description=description,
                )
            )
    return products


_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE products (
    idx INTEGER PRIMARY KEY, product_id TEXT UNIQUE NOT NULL, ptype TEXT NOT NULL,
    department TEXT NOT NULL, brand TEXT NOT NULL, title TEXT NOT NULL, price REAL NOT NULL,
    rating REAL NOT NULL, attributes TEXT NOT NULL, options TEXT NOT NULL,
    description TEXT NOT NULL);
CREATE VIRTUAL TABLE products_fts USING fts5(
    title, attributes, description, tokenize = 'porter unicode61');
"""


def _write(path: Path, seed: int) -> None:
    """Build the database of `seed` at `path` atomically (temporary file, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=".catalog-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(_SCHEMA)
            rows = generate(seed)
            conn.executemany(
                "INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (p.index, p.product_id, p.ptype, p.department, p.brand, p.title, p.price,
                     p.rating, json.dumps(p.attributes), json.dumps(p.options), p.description)
                    for p in rows
                ],
            )  # fmt: skip
            conn.executemany(
                "INSERT INTO products_fts (rowid, title, attributes, description) VALUES (?,?,?,?)",
                [(p.index, p.title, " ".join(p.attributes), p.description) for p in rows],
            )
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("version", str(CATALOG_VERSION)), ("seed", str(seed))],
            )
            conn.commit()
        finally:
            conn.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _row_product(row: tuple[object, ...]) -> Product:
    idx, pid, ptype, dept, brand, title, price, rating, attrs, options, desc = row
    return Product(
        index=int(str(idx)),
        product_id=str(pid),
        ptype=str(ptype),
        department=str(dept),
        brand=str(brand),
        title=str(title),
        price=float(str(price)),
        rating=float(str(rating)),
        attributes=tuple(json.loads(str(attrs))),
        options=tuple((d, tuple(v)) for d, v in json.loads(str(options))),
        description=str(desc),
    )


class Catalog:
    """An opened catalog: every product in memory, and keyword search through SQLite FTS5.

    Use `Catalog.open(seed)`, which builds the database on first use and shares one catalog per
    `(path)` across the process. Searching is thread-safe (the site answers from threads).
    """

    _opened: dict[Path, Catalog] = {}  # noqa: RUF012
    _opening = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.Lock()
        rows = self._conn.execute("SELECT * FROM products ORDER BY idx").fetchall()
        self.products: tuple[Product, ...] = tuple(_row_product(r) for r in rows)
        self._by_id = {p.product_id: p for p in self.products}
        self.seed = int(self._conn.execute("SELECT value FROM meta WHERE key='seed'").fetchone()[0])

    @classmethod
    def open(cls, seed: int = 0, root: Path | None = None) -> Catalog:
        """The catalog of `seed`, built under `root` (default: the turnwise cache) if missing."""
        folder = (root or cache_dir("shop")) / f"catalog-v{CATALOG_VERSION}-seed{seed}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "catalog.sqlite"
        with cls._opening:
            if path not in cls._opened:
                if not path.exists():
                    _check_fts5()
                    _write(path, seed)
                cls._opened[path] = cls(path)
            return cls._opened[path]

    def __len__(self) -> int:
        return len(self.products)

    def product(self, product_id: str) -> Product:
        """The product with id `product_id` (KeyError if there is none)."""
        return self._by_id[product_id]

    def get(self, product_id: str) -> Product | None:
        """The product with id `product_id`, or None."""
        return self._by_id.get(product_id)

    def search(self, query: str, page: int = 1) -> tuple[list[str], int]:
        """Product ids of result page `page` (1-based) for `query`, and the total hit count.

        Any word of the query may match (OR); BM25 ranks products matching more and rarer
        words first, with title matches weighted highest.
        """
        terms = search_terms(query)
        if not terms:
            return [], 0
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))
        offset = (max(page, 1) - 1) * PAGE_SIZE
        with self._lock:
            total = self._conn.execute(
                "SELECT count(*) FROM products_fts WHERE products_fts MATCH ?", (match,)
            ).fetchone()[0]
            rows = self._conn.execute(
                "SELECT rowid FROM products_fts WHERE products_fts MATCH ? "
                "ORDER BY bm25(products_fts, 4.0, 2.0, 1.0), rowid LIMIT ? OFFSET ?",
                (match, PAGE_SIZE, offset),
            ).fetchall()
        return [self.products[r[0]].product_id for r in rows], int(total)

    def digest(self) -> str:
        """A hash of every product's content: equal digests mean equal catalogs."""
        h = hashlib.sha256()
        for p in self.products:
            h.update(repr(p).encode())
        return h.hexdigest()[:16]


def _check_fts5() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(a)")
    except sqlite3.OperationalError as exc:
        raise RuntimeError(
            "the shop's search needs SQLite with FTS5, which this Python's sqlite3 lacks; "
            "use a Python built against a standard SQLite (Debian's and python.org's have it)"
        ) from exc
    finally:
        conn.close()
