"""The `openai` backend: any OpenAI-compatible server as a `Policy` (spec `openai:URL#MODEL`).

Requests go out concurrently, at most `max_concurrency` at a time, and each is retried with
exponential backoff and jitter when the failure is transient: a timeout, a dropped or refused
connection, 408, 429 or a 5xx (a `Retry-After` header is honoured). Any other 4xx is the
caller's mistake and raises `OpenAIAPIError` at once, naming the status and the server's message.

Chat requests go to `/chat/completions` with `logprobs: true` (dropped for good if the server
refuses them); `prompt_token_ids` requests go to `/completions` with the token list as the prompt,
the token-exact path that vLLM and `turnwise serve` accept. Generated token ids come from the
`token_ids` field of a choice (`turnwise serve`, vLLM's `return_token_ids`) or from log-prob
tokens spelled `token_id:123` (vLLM's `return_tokens_as_token_ids`); otherwise they are `[]`.

Why raw httpx and not the `openai` SDK: the SDK retries on its own schedule (and its own list of
statuses), hides non-standard response fields behind model extras and adds a typed layer for
every endpoint. Here the retry policy is the one written below: a small `Backoff` dataclass that
tests drive with millisecond delays, over a single `httpx.AsyncClient`. The SDK remains the
reference client: the tests call `turnwise serve` with it.

`generate` is synchronous (the `Policy` protocol) and works whether or not the calling thread runs
an event loop: it hands the work to a private loop on a background thread instead of calling
`asyncio.run`. Async callers (the rollout collector) `await policy.agenerate(requests)`.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from turnwise.agents.policy import Generation, GenerationRequest

__all__ = ["Backoff", "OpenAIAPIError", "OpenAIPolicy", "parse_spec"]

log = logging.getLogger("turnwise.agents.openai")

# Network failures worth another try; others (a bad URL scheme, a proxy misconfiguration) are not.
_TRANSIENT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class OpenAIAPIError(RuntimeError):
    """The server refused a request, or stayed unreachable through every retry.

    `status` is the HTTP status of the last answer (None when no answer came) and `message` is
    the server's own explanation (its `error.message`, or the body).
    """

    def __init__(self, url: str, status: int | None, message: str, *, attempts: int = 1) -> None:
        self.url = url
        self.status = status
        self.message = message
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "no response"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{url}: {what}{tries}: {message}")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retry number `attempt` (0-based) of a transient failure.

    The delay doubles from `initial` up to `maximum`; jitter takes up to `jitter` of it away at
    random, so clients that failed together do not come back together. A server's `Retry-After`
    replaces the computed delay (capped at `max_retry_after`).
    """

    initial: float = 0.5
    """Seconds before the first retry."""
    maximum: float = 20.0
    """Longest computed delay, in seconds."""
    multiplier: float = 2.0
    """Growth of the delay per attempt."""
    jitter: float = 0.5
    """Fraction of the delay that may be removed at random (0 disables jitter)."""
    max_retry_after: float = 60.0
    """Longest wait a server's `Retry-After` header can impose, in seconds."""

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError(f"need 0 <= initial <= maximum and multiplier >= 1, got {self}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")

    def delay(self, attempt: int, retry_after: float | None = None, rng: Any = random) -> float:
        """Seconds to wait before retry `attempt`.

        Example:
            >>> Backoff(initial=1, jitter=0).delay(3)
            8.0
            >>> Backoff(initial=1, jitter=0).delay(3, retry_after=2.5)
            2.5
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return float(base * (1 - self.jitter * rng.random()))


def is_retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth another try: 408, 429 and 5xx are; other 4xx never.

    Example:
        >>> [is_retryable_status(s) for s in (400, 404, 408, 429, 500, 503)]
        [False, False, True, True, True, True]
    """
    return status in (408, 429) or status >= 500


def parse_spec(spec: str) -> tuple[str, str]:
    """Split `openai:URL#MODEL` into the base URL and the model name.

    Example:
        >>> parse_spec("openai:http://127.0.0.1:8000/v1#tiny")
        ('http://127.0.0.1:8000/v1', 'tiny')
    """
    body = spec.removeprefix("openai:")
    url, sep, model = body.rpartition("#")
    if not sep or not url or not model:
        raise ValueError(
            f"an openai spec looks like openai:http://HOST:PORT/v1#MODEL, got {spec!r}"
        )
    return url, model


def _normalise_base_url(url: str) -> str:
    """`http://host:8000` means `http://host:8000/v1`, as every OpenAI-compatible server serves."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url must be an http(s) URL like http://127.0.0.1:8000/v1, got {url!r}"
        )
    url = url.rstrip("/")
    return url + "/v1" if parts.path in ("", "/") else url


@dataclass
class _LoopState:
    """What belongs to one event loop: httpx clients and asyncio semaphores cannot cross loops."""

    client: httpx.AsyncClient
    semaphore: asyncio.Semaphore


class OpenAIPolicy:
    """A `Policy` served by an OpenAI-compatible endpoint (OpenAI, vLLM, `turnwise serve`, ...).

    Args:
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1` (a bare host gets `/v1`).
        model: the model name the server knows.
        api_key: sent as a bearer token; defaults to `$OPENAI_API_KEY`, and no header at all when
            neither is set (local servers need none).
        timeout: seconds one HTTP attempt may take (connecting gets at most 10 of them).
        max_retries: retries of one request after transient failures (0: try once).
        backoff: delays between retries.
        max_concurrency: requests in flight at once, per event loop.
        logprobs: ask for the log-probs of the generated tokens.
        extra_body: more JSON fields for every request, e.g. `{"return_token_ids": True}` for vLLM.

    Example:
        >>> policy = OpenAIPolicy("http://127.0.0.1:8000", "tiny", max_concurrency=4)
        >>> policy.name, policy.tokenizer
        ('openai:http://127.0.0.1:8000/v1#tiny', None)
    """

    tokenizer: Any = None
    """The server's tokenizer is not known here, so token-exact agents build prompts elsewhere."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        backoff: Backoff | None = None,
        max_concurrency: int = 16,
        logprobs: bool = True,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if timeout <= 0 or max_retries < 0 or max_concurrency < 1:
            raise ValueError("need timeout > 0, max_retries >= 0 and max_concurrency >= 1")
        self.base_url = _normalise_base_url(base_url)
        self.model = model
        self.name = f"openai:{self.base_url}#{model}"
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff or Backoff()
        self.max_concurrency = max_concurrency
        self.logprobs = logprobs
        self.extra_body = dict(extra_body or {})
        self.retries = 0
        """Retries made so far (all requests together), for logs and tests."""
        self._rng = random.Random()
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_spec(cls, spec: str, **kwargs: Any) -> OpenAIPolicy:
        """The policy named by `openai:URL#MODEL`; keyword arguments go to the constructor."""
        url, model = parse_spec(spec)
        return cls(url, model, **kwargs)

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.base_url!r}, {self.model!r})"

    # ------------------------------------------------------------------ the Policy protocol
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer every request (concurrently); blocks until all are done.

        Safe to call from inside a running event loop: the requests run on this policy's own
        loop in a background thread, so the caller's loop is never re-entered.
        """
        loop = self._background_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise RuntimeError("generate() called from the policy's own loop: await agenerate()")
        future: Future[list[Generation]] = asyncio.run_coroutine_threadsafe(
            self.agenerate(requests), loop
        )
        return future.result()

    async def agenerate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Answer every request concurrently (at most `max_concurrency` in flight), in order.

        If one request fails for good, the others are cancelled and its error is raised.
        """
        state = self._state()
        tasks = [asyncio.ensure_future(self._generate_one(state, r)) for r in requests]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            raise

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the connections of `generate`'s loop and stop its thread (safe twice)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        state = self._states.pop(loop, None)
        if state is not None:
            asyncio.run_coroutine_threadsafe(state.client.aclose(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    async def aclose(self) -> None:
        """Close the connections opened on the running loop (by `agenerate`)."""
        state = self._states.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.aclose()

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _background_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name=f"turnwise-openai-{self.model}", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        with self._lock:
            # Each `asyncio.run` is a new loop; forget the state of the ones that have ended
            # (their clients hold references to their loop, so weak keys alone would not).
            for old in [old for old in self._states if old.is_closed()]:
                del self._states[old]
            state = self._states.get(loop)
            if state is None:
                headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
                client = httpx.AsyncClient(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
                    # One connection per concurrent request, kept alive between turns.
                    limits=httpx.Limits(max_connections=self.max_concurrency),
                )
                state = _LoopState(client, asyncio.Semaphore(self.max_concurrency))
                self._states[loop] = state
            return state

    # ------------------------------------------------------------------ one request
    async def _generate_one(self, state: _LoopState, request: GenerationRequest) -> Generation:
        chat = request.messages is not None
        path = "/chat/completions" if chat else "/completions"
        want_logprobs = self.logprobs
        # The semaphore is held through the backoff sleeps too: when the server is overloaded,
        # queued requests should wait rather than pile on more 429s.
        async with state.semaphore:
            try:
                try:
                    data = await self._post(state.client, path, self._body(request, want_logprobs))
                except OpenAIAPIError as exc:
                    refused = exc.status in (400, 422) and "logprob" in exc.message.lower()
                    if not (want_logprobs and refused):
                        raise
                    # Not a retry of the same request: a different one, sent once.
                    log.warning("%s refuses log-probs (%s); asking without them", self.name, exc)
                    self.logprobs = False
                    data = await self._post(state.client, path, self._body(request, False))
            except OpenAIAPIError as exc:
                raise self._explain(exc, chat) from None
        try:
            return _parse_choice(data, chat, request.prompt_token_ids)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise OpenAIAPIError(
                self.base_url + path, 200, f"unexpected response ({exc!r}): {str(data)[:300]}"
            ) from None

    def _explain(self, exc: OpenAIAPIError, chat: bool) -> OpenAIAPIError:
        """Token-id prompts need a server with a token-accepting completions endpoint: say so."""
        message = exc.message.lower()
        missing_endpoint = exc.status in (404, 405) and "model" not in message
        refused_prompt = exc.status in (400, 422) and "prompt" in message
        if chat or not (missing_endpoint or refused_prompt):
            return exc
        return OpenAIAPIError(
            exc.url,
            exc.status,
            f"{exc.message} -- this server does not accept token-id prompts on /completions; "
            "token-exact agents need one that does (turnwise serve, vLLM) or chat messages",
        )

    def _body(self, request: GenerationRequest, logprobs: bool) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": self.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "n": 1,
        }
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if request.messages is not None:
            body["messages"] = request.messages
            if logprobs:
                body["logprobs"] = True
        else:
            body["prompt"] = request.prompt_token_ids
            if logprobs:
                body["logprobs"] = 0  # the sampled token's log-prob, no alternatives
        return {**body, **self.extra_body}

    async def _post(self, client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
        """POST with retries on transient failures; the parsed JSON of the first success."""
        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            status: int | None = None
            try:
                response = await client.post(path, json=body)
            except _TRANSIENT_ERRORS as exc:
                failure = f"{type(exc).__name__}: {exc}".rstrip(": ")
            except httpx.HTTPError as exc:
                raise OpenAIAPIError(url, None, f"{type(exc).__name__}: {exc}") from None
            else:
                status = response.status_code
                if status < 300:
                    try:
                        return response.json()
                    except ValueError:
                        raise OpenAIAPIError(
                            url, status, f"not JSON: {response.text[:300]!r}"
                        ) from None
                failure = _error_message(response)
                if not is_retryable_status(status):
                    raise OpenAIAPIError(url, status, failure, attempts=attempt + 1)
                retry_after = _retry_after(response.headers)
            if attempt == self.max_retries:
                raise OpenAIAPIError(url, status, failure, attempts=attempt + 1)
            delay = self.backoff.delay(attempt, retry_after, self._rng)
            self.retries += 1
            log.info("%s: %s; retry %d in %.2f s", url, failure, attempt + 1, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises


def _error_message(response: httpx.Response) -> str:
    """The server's explanation: OpenAI's `{"error": {"message": ...}}`, FastAPI's `detail`, or text."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])[:500]
    return str(data)[:500]


def _retry_after(headers: httpx.Headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if given."""
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None  # an unreadable header: fall back to our own backoff


def _token_ids_from_strings(tokens: Sequence[Any]) -> list[int] | None:
    """vLLM's `return_tokens_as_token_ids` spells each token `token_id:123`."""
    ids = []
    for token in tokens:
        if not (isinstance(token, str) and token.startswith("token_id:")):
            return None
        ids.append(int(token.removeprefix("token_id:")))
    return ids


def _parse_choice(data: Any, chat: bool, prompt_ids: list[int] | None) -> Generation:
    """A `Generation` from a (chat) completion response with one choice."""
    choice = data["choices"][0]
    text = (choice["message"]["content"] if chat else choice["text"]) or ""
    tokens: list[Any] = []
    logprobs: list[float] | None = None
    raw = choice.get("logprobs")
    if isinstance(raw, dict):
        if chat and raw.get("content") is not None:
            tokens = [entry.get("token") for entry in raw["content"]]
            logprobs = [float(entry["logprob"]) for entry in raw["content"]]
        elif not chat and raw.get("token_logprobs") is not None:
            tokens = list(raw.get("tokens") or [])
            logprobs = [float(v) for v in raw["token_logprobs"]]
    token_ids = choice.get("token_ids")
    if token_ids is None:
        token_ids = _token_ids_from_strings(tokens) if tokens else None
    token_ids = [int(t) for t in token_ids or []]
    if token_ids and logprobs is not None and len(logprobs) != len(token_ids):
        log.warning("%d log-probs for %d tokens: dropping them", len(logprobs), len(token_ids))
        logprobs = None
    reported_prompt = data.get("prompt_token_ids") or choice.get("prompt_token_ids")
    info = {key: data[key] for key in ("id", "model", "usage") if key in data}
    return Generation(
        text=text,
        token_ids=token_ids,
        logprobs=logprobs,
        finish_reason=str(choice.get("finish_reason") or "stop"),
        prompt_token_ids=[int(t) for t in reported_prompt] if reported_prompt else prompt_ids,
        info=info,
    )
