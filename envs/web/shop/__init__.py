"""The shop: `turnwise/Shop-v0`, WebShop-style tasks on a generated multi-page web shop.

* `catalog` — the deterministic catalog (3000 products) in SQLite, with FTS5 keyword search;
* `site` — the server-rendered pages, on a loopback HTTP server;
* `tasks` — goals and instructions, splits, WebShop's score of a purchase, the progress potential;
* `env` — `ShopEnv`, the `WebEnv` that plays them in Chromium, and its expert.

See docs/envs/web.md.
"""

from .env import ShopEnv, ShopTask

__all__ = ["ShopEnv", "ShopTask"]
