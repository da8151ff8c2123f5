"""The shop's web site: server-rendered HTML pages on a loopback HTTP server.

Pages (every one has the header links "Turnwise Shop" and "Cart"):

=====================  ==========================================================================
`GET /`                a search form
`GET /search?q=&page=` ten results per page (BM25 over the catalog), "Previous page"/"Next page"
`GET /product/<id>`    title, price, rating, features, description; options as a `<select>`
                       (the first dimension) and radio buttons (the second); "Add to cart" and
                       "Buy now"; "Back to results" when reached from a search
`GET /cart`            the cart's lines, a "Remove" button per line, "Checkout"
`POST /cart/add`       adds the product with the options chosen, then shows the cart
`POST /cart/remove`    removes a line
`POST /buy`            buys the product with the options chosen (ends the episode)
`POST /checkout`       buys the cart's lines (ends the episode)
`GET /order`           the order confirmation
=====================  ==========================================================================

The server is the standard library's `ThreadingHTTPServer` in a daemon thread, bound to
127.0.0.1 on a free port. It needs no dependency, starts in milliseconds and stops
deterministically with `shutdown()`; the pages are small enough that an ASGI stack would add
weight and nothing else. Each browser context carries a `shop_session` cookie naming its
session (cart and purchase), so one server can serve concurrent episodes; requests without the
cookie share the session `default`. Everything echoed back (the query above all) goes through
`html.escape`, and the query reaches SQLite only as bound words (see `catalog.search_terms`).

Example:
    >>> import urllib.request
    >>> from turnwise.envs.web.shop.catalog import Catalog
    >>> with ShopSite(Catalog.open(seed=0)) as site:
    ...     page = urllib.request.urlopen(site.url + "/search?q=%3Cb%3Ejacket").read().decode()
    >>> "&lt;b&gt;jacket" in page and "<b>jacket" not in page
    True
"""

from __future__ import annotations

import html
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from .catalog import PAGE_SIZE, Catalog, Product

__all__ = ["COOKIE", "Line", "Session", "ShopSite"]

#: The cookie that names a browser context's session.
COOKIE = "shop_session"
_MAX_BODY = 64 * 1024
_STYLE = (
    "body{font-family:sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem}"
    "header nav a{margin-right:1rem}li{margin:.3rem 0}fieldset{margin:.5rem 0}"
)


@dataclass(frozen=True)
class Line:
    """A product with the options chosen for it (a cart line or a bought item)."""

    product_id: str
    options: tuple[tuple[str, str], ...]

    @property
    def chosen(self) -> dict[str, str]:
        return dict(self.options)


@dataclass
class Session:
    """One shopper's state: the cart, and the order once placed (then it never changes)."""

    cart: list[Line] = field(default_factory=list)
    order: tuple[Line, ...] | None = None


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _href(path: str, **params: object) -> str:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v not in (None, "")})
    return _e(path + ("?" + query if query else ""))


def _page(title: str, body: str, cart_count: int) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)} - Turnwise Shop</title><style>{_STYLE}</style></head><body>"
        '<header><nav aria-label="Shop">'
        f'<a href="/">Turnwise Shop</a><a href="/cart">Cart ({cart_count})</a></nav></header>'
        f"<main>{body}</main></body></html>"
    )


def _search_form(query: str = "") -> str:
    return (
        '<form role="search" action="/search" method="get">'
        '<label for="q">Search products</label> '
        f'<input type="search" id="q" name="q" value="{_e(query)}"> '
        '<button type="submit">Search</button></form>'
    )


def _describe_options(line: Line) -> str:
    return ", ".join(f"{dim}: {value}" for dim, value in line.options) or "no options chosen"


class ShopSite:
    """The shop's HTTP server over `catalog`; a context manager (`start()` / `stop()`).

    Args:
        catalog: the products to sell.
        latency: seconds every response waits before being sent (to test slow pages).
    """

    def __init__(self, catalog: Catalog, latency: float = 0.0) -> None:
        self.catalog = catalog
        self.latency = latency
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------- lifecycle
    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>` (the server must be started)."""
        if self._server is None:
            raise RuntimeError("the shop site is not running; call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ShopSite:
        """Bind a free loopback port and serve from a daemon thread (no-op if running)."""
        if self._server is None:
            self._server = _Server(("127.0.0.1", 0), _Handler, self)
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="turnwise-shop", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port (safe to call twice)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ShopSite:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------- sessions
    def open_session(self, session_id: str) -> Session:
        """A fresh, empty session under `session_id` (replacing any older one)."""
        with self._lock:
            session = self._sessions[session_id] = Session()
        return session

    def session(self, session_id: str) -> Session:
        """The session `session_id`, created empty if new."""
        with self._lock:
            return self._sessions.setdefault(session_id, Session())

    def close_session(self, session_id: str) -> None:
        """Forget `session_id` (unknown ids are ignored)."""
        with self._lock:
            self._sessions.pop(session_id, None)

    # ------------------------------------------------------------- pages
    def home(self, session: Session) -> str:
        body = "<h1>Search the shop</h1>" + _search_form()
        return _page("Search", body, len(session.cart))

    def search(self, session: Session, query: str, page: int) -> str:
        hits, total = self.catalog.search(query, page)
        pages = max(1, -(-total // PAGE_SIZE))
        parts = [_search_form(query), f"<h1>Results for &quot;{_e(query)}&quot;</h1>"]
        if not total:
            parts.append("<p>No products match. Try other words.</p>")
        elif not hits:
            parts.append(f"<p>There is no page {page}; the results have {pages} pages.</p>")
        else:
            first = (page - 1) * PAGE_SIZE + 1
            parts.append(f"<p>Showing {first} to {first + len(hits) - 1} of {total} results.</p>")
            parts.append('<ol aria-label="Results">')
            for pid in hits:
                p = self.catalog.product(pid)
                link = _href(f"/product/{pid}", q=query, page=page)
                parts.append(f'<li><a href="{link}">{_e(p.title)}</a> ${p.price:.2f}</li>')
            parts.append("</ol>")
        nav = []
        if 1 < page <= pages:
            nav.append(f'<a href="{_href("/search", q=query, page=page - 1)}">Previous page</a>')
        if hits:
            nav.append(f"<span>Page {page} of {pages}</span>")
        if page < pages:
            nav.append(
                f'<a rel="next" href="{_href("/search", q=query, page=page + 1)}">Next page</a>'
            )
        parts.append(f'<nav aria-label="Result pages">{" ".join(nav)}</nav>')
        return _page(f"Results for {query}", "".join(parts), len(session.cart))

    def product(self, session: Session, p: Product, query: str, page: int) -> str:
        parts = []
        if query:
            back = _href("/search", q=query, page=page)
            parts.append(f'<p><a href="{back}">Back to results</a></p>')
        parts += [
            f"<h1>{_e(p.title)}</h1>",
            f"<p>Price: ${p.price:.2f}</p><p>Rating: {p.rating} out of 5</p>",
            "<h2>Features</h2><ul>",
            *(f"<li>{_e(a)}</li>" for a in p.attributes),
            f"</ul><p>{_e(p.description)}</p>",
            '<form method="post" action="/buy" aria-label="Options">',
            f'<input type="hidden" name="product" value="{_e(p.product_id)}">',
        ]
        for n, (dim, values) in enumerate(p.options):
            if n == 0:
                parts.append(
                    f'<p><label for="opt-{n}">{_e(dim.capitalize())}</label> '
                    f'<select id="opt-{n}" name="{_e(dim)}"><option value="">Choose {_e(dim)}</option>'
                    + "".join(f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)
                    + "</select></p>"
                )
            else:
                radios = "".join(
                    f'<label><input type="radio" name="{_e(dim)}" value="{_e(v)}"> {_e(v)}</label> '
                    for v in values
                )
                parts.append(
                    f"<fieldset><legend>{_e(dim.capitalize())}</legend>{radios}</fieldset>"
                )
        parts.append(
            '<button type="submit" formaction="/cart/add">Add to cart</button> '
            '<button type="submit">Buy now</button></form>'
        )
        return _page(p.title, "".join(parts), len(session.cart))

    def cart(self, session: Session) -> str:
        parts = ["<h1>Your cart</h1>"]
        if not session.cart:
            parts.append("<p>Your cart is empty.</p>")
        else:
            parts.append('<ul aria-label="Cart">')
            total = 0.0
            for n, line in enumerate(session.cart):
                p = self.catalog.product(line.product_id)
                total += p.price
                parts.append(
                    f'<li><a href="/product/{_e(p.product_id)}">{_e(p.title)}</a> '
                    f"({_e(_describe_options(line))}) ${p.price:.2f} "
                    '<form method="post" action="/cart/remove" style="display:inline">'
                    f'<input type="hidden" name="line" value="{n}">'
                    f'<button type="submit" aria-label="Remove line {n + 1}">Remove</button>'
                    "</form></li>"
                )
            parts.append(f"</ul><p>Total: ${total:.2f}</p>")
            parts.append('<form method="post" action="/checkout"><button>Checkout</button></form>')
        parts.append('<p><a href="/">Continue shopping</a></p>')
        return _page("Cart", "".join(parts), len(session.cart))

    def order(self, session: Session) -> str:
        if session.order is None:
            return _page("Order", "<h1>No order yet</h1>", len(session.cart))
        items = "".join(
            f"<li>{_e(self.catalog.product(line.product_id).title)} "
            f"({_e(_describe_options(line))})</li>"
            for line in session.order
        )
        body = f"<h1>Thank you for your order</h1><ul>{items}</ul><p>Your order is final.</p>"
        return _page("Order placed", body, 0)

    def not_found(self, session: Session, what: str) -> str:
        body = f'<h1>Not found</h1><p>{_e(what)}</p><p><a href="/">Back to the shop</a></p>'
        return _page("Not found", body, len(session.cart))

    # ------------------------------------------------------------- actions
    def line_from_form(self, form: Mapping[str, list[str]]) -> Line | None:
        """The product and its valid chosen options from a posted form (None: no product)."""
        product = self.catalog.get((form.get("product") or [""])[0])
        if product is None:
            return None
        chosen = []
        for dim, values in product.options:
            value = (form.get(dim) or [""])[0]
            if value in values:
                chosen.append((dim, value))
        return Line(product.product_id, tuple(chosen))

    def add_line(self, session: Session, line: Line) -> None:
        """Put `line` in the cart (ignored once the order is placed)."""
        with self._lock:
            if session.order is None:
                session.cart.append(line)

    def remove_line(self, session: Session, line: str) -> None:
        """Remove cart line number `line` (0-based, as posted); anything else is ignored."""
        with self._lock:
            if line.isdigit() and int(line) < len(session.cart):
                del session.cart[int(line)]

    def place_order(self, session: Session, lines: Iterable[Line]) -> bool:
        """Buy `lines` unless an order was already placed or there is nothing to buy."""
        with self._lock:
            items = tuple(lines)
            if session.order is not None or not items:
                return False
            session.order = items
            session.cart = []
            return True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[_Handler], site: ShopSite) -> None:
        self.site = site
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        # The env's own observations report what happened; a log line per request is noise.
        pass

    def _session(self) -> Session:
        cookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except Exception:
            return self.server.site.session("default")
        morsel = cookie.get(COOKIE)
        return self.server.site.session(morsel.value if morsel else "default")

    def _send(self, status: HTTPStatus, body: str = "", location: str | None = None) -> None:
        site = self.server.site
        if site.latency > 0:
            time.sleep(site.latency)
        data = body.encode()
        self.send_response(status)
        if location is not None:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        site, session = self.server.site, self._session()
        url = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(url.query)
        query = (params.get("q") or [""])[0][:500]
        try:
            page = max(1, min(int((params.get("page") or ["1"])[0]), 10_000))
        except ValueError:
            page = 1
        path = url.path
        if path == "/":
            self._send(HTTPStatus.OK, site.home(session))
        elif path == "/search":
            self._send(HTTPStatus.OK, site.search(session, query, page))
        elif path.startswith("/product/"):
            product = site.catalog.get(path.removeprefix("/product/"))
            if product is None:
                self._send(HTTPStatus.NOT_FOUND, site.not_found(session, "No such product."))
            else:
                self._send(HTTPStatus.OK, site.product(session, product, query, page))
        elif path == "/cart":
            self._send(HTTPStatus.OK, site.cart(session))
        elif path == "/order":
            self._send(HTTPStatus.OK, site.order(session))
        else:
            self._send(HTTPStatus.NOT_FOUND, site.not_found(session, "No such page."))

    def do_POST(self) -> None:
        site, session = self.server.site, self._session()
        try:
            length = min(int(self.headers.get("Content-Length", "0")), _MAX_BODY)
        except ValueError:
            length = 0
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/buy", "/cart/add"):
            line = site.line_from_form(form)
            if line is None:
                self._send(HTTPStatus.NOT_FOUND, site.not_found(session, "No such product."))
            elif path == "/buy":
                site.place_order(session, [line])
                self._send(HTTPStatus.SEE_OTHER, location="/order")
            else:
                site.add_line(session, line)
                self._send(HTTPStatus.SEE_OTHER, location="/cart")
        elif path == "/cart/remove":
            site.remove_line(session, (form.get("line") or [""])[0])
            self._send(HTTPStatus.SEE_OTHER, location="/cart")
        elif path == "/checkout":
            site.place_order(session, list(session.cart))
            self._send(HTTPStatus.SEE_OTHER, location="/order" if session.order else "/cart")
        else:
            self._send(HTTPStatus.NOT_FOUND, site.not_found(session, "No such page."))
