"""An OpenAI-compatible HTTP server for any `Policy` (what `turnwise serve PATH` runs).

Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (a text prompt
or a list of token ids: the token-exact path), `GET /health`. Responses follow the OpenAI schema
with `usage`; like vLLM's `return_token_ids`, every choice also carries `token_ids` (the generated
ids, exactly as sampled) and the prompt's ids ride along as `prompt_token_ids`, so clients that
know these fields get token-exact turns and others ignore them.

Requests that arrive together are answered by one `policy.generate` call: a `Batcher` gathers
them for a few milliseconds (or until `max_batch_size`) and runs the batch in a worker thread, so
the event loop keeps accepting requests while the model works and concurrent clients share
batched generation.

Everything a client sends is checked before it reaches the model: a body over the size limit, bad
JSON or a wrong field gives 400 with an OpenAI-style error object; an unknown model 404; a fault
in the model 500 with its message. The server keeps serving after any of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnwise.agents.policy import Generation, GenerationRequest, Policy, Sampling

__all__ = ["Batcher", "ServerThread", "bind_socket", "create_app"]

log = logging.getLogger("turnwise.agents.server")

_INT64 = 2**63
_CODES = {400: "invalid_request", 401: "invalid_api_key", 404: "model_not_found"}


class _APIError(Exception):
    """An error answered as OpenAI's `{"error": {...}}` with the given HTTP status."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.code = code or _CODES.get(status, "server_error")

    def response(self) -> JSONResponse:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        error = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


# ---------------------------------------------------------------------------- request schemas
class _Body(BaseModel):
    # Unknown fields (`user`, `stream_options`, ...) are ignored, as OpenAI-compatible servers do;
    # NaN and infinity never reach the sampler.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class _TextPart(_Body):
    type: Literal["text"]
    text: str


class _Message(_Body):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_TextPart] | None = None


class _Common(_Body):
    model: str
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, lt=_INT64)
    # Accepted only at values that ask for nothing this server lacks (see `_unsupported`).
    n: int | None = None
    stream: bool | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, float] | None = None


class _ChatBody(_Common):
    messages: list[_Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None


class _CompletionBody(_Common):
    prompt: str | list[int] | list[str] | list[list[int]]
    logprobs: int | None = None
    echo: bool | None = None
    best_of: int | None = None
    suffix: str | None = None
    add_special_tokens: bool = True
    """vLLM's extension: whether a text prompt gets the tokenizer's special tokens (BOS)."""


_BodyT = TypeVar("_BodyT", bound=_Common)


def _unsupported(body: _Common) -> str | None:
    """Why this server cannot honour `body` as asked, or None: never silently ignore a setting."""
    checks: list[tuple[bool, str]] = [
        (body.n not in (None, 1), "n must be 1: this server returns one choice per request"),
        (bool(body.stream), "stream must be false: this server does not stream"),
        (bool(body.presence_penalty), "presence_penalty is not supported (send 0)"),
        (bool(body.frequency_penalty), "frequency_penalty is not supported (send 0)"),
        (bool(body.logit_bias), "logit_bias is not supported"),
    ]
    if isinstance(body, _ChatBody):
        checks.append(
            (
                bool(body.top_logprobs),
                "top_logprobs must be 0: only the sampled token's log-prob is reported",
            )
        )
    if isinstance(body, _CompletionBody):
        checks += [
            (
                bool(body.logprobs),
                "logprobs must be 0: only the sampled token's log-prob is reported",
            ),
            (bool(body.echo), "echo is not supported"),
            (body.best_of not in (None, 1), "best_of must be 1"),
            (bool(body.suffix), "suffix is not supported"),
        ]
    return next((message for failed, message in checks if failed), None)


# ---------------------------------------------------------------------------- batching
class Batcher:
    """Turns requests that arrive close together into one `generate` call.

    The first waiting request opens a window of `window_s` seconds (closed early once
    `max_batch_size` requests wait); everything gathered goes to `generate` in a worker thread.
    One batch runs at a time, always on the same worker thread: the model is the bottleneck, and
    the next batch fills meanwhile.
    """

    def __init__(
        self,
        generate: Callable[[list[GenerationRequest]], list[Generation]],
        *,
        max_batch_size: int = 16,
        window_s: float = 0.005,
    ) -> None:
        if max_batch_size < 1 or window_s < 0:
            raise ValueError("need max_batch_size >= 1 and window_s >= 0")
        self.generate = generate
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        """Sizes of the latest `generate` calls, for tests and monitoring."""
        self._queue: asyncio.Queue[tuple[GenerationRequest, asyncio.Future[Generation]]] | None = (
            None
        )
        self._worker: asyncio.Task[None] | None = None
        # Always the same thread: torch's OpenMP workers belong to the thread that calls in, and
        # a fresh caller each batch (asyncio.to_thread) leaves the old ones spinning on the cores.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="turnwise-generate")

    async def submit(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        """Queue `requests` and wait for their generations (in order)."""
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue))
        futures = [loop.create_future() for _ in requests]
        for request, future in zip(requests, futures, strict=True):
            self._queue.put_nowait((request, future))
        return list(await asyncio.gather(*futures))

    async def aclose(self) -> None:
        """Stop the worker (at shutdown)."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        self._thread.shutdown(wait=False)

    async def _run(
        self, queue: asyncio.Queue[tuple[GenerationRequest, asyncio.Future[Generation]]]
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.window_s
            while len(batch) < self.max_batch_size:
                try:
                    if queue.empty():
                        timeout = deadline - loop.time()
                        if timeout <= 0:
                            break
                        batch.append(await asyncio.wait_for(queue.get(), timeout))
                    else:
                        batch.append(queue.get_nowait())
                except asyncio.TimeoutError:
                    break
            # A client that hung up has a cancelled future: don't spend the model on it.
            batch = [(request, future) for request, future in batch if not future.done()]
            if batch:
                await self._answer(batch)

    async def _answer(
        self, batch: list[tuple[GenerationRequest, asyncio.Future[Generation]]]
    ) -> None:
        requests = [request for request, _ in batch]
        try:
            loop = asyncio.get_running_loop()
            generations = await loop.run_in_executor(self._thread, self._call, requests)
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            # One bad request must not fail the others that happened to share its batch.
            log.warning(
                "a batch of %d failed (%r); answering its requests one by one", len(batch), exc
            )
            for item in batch:
                await self._answer([item])
            return
        for (_, future), generation in zip(batch, generations, strict=True):
            _settle(future, generation)

    def _call(self, requests: list[GenerationRequest]) -> list[Generation]:
        self.batch_sizes.append(len(requests))
        generations = list(self.generate(requests))
        if len(generations) != len(requests):
            raise RuntimeError(
                f"the policy answered {len(requests)} requests with {len(generations)} generations"
            )
        return generations


def _settle(future: asyncio.Future[Generation], outcome: Generation | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


# ---------------------------------------------------------------------------- the app
def create_app(
    policy: Policy,
    *,
    model_name: str | None = None,
    max_batch_size: int = 16,
    batch_window_ms: float = 5.0,
    default_max_tokens: int = 256,
    max_tokens_limit: int = 8192,
    max_body_bytes: int = 8 * 2**20,
    api_key: str | None = None,
) -> FastAPI:
    """An OpenAI-compatible FastAPI app that answers with `policy`.

    Args:
        policy: the model; `policy.tokenizer` (if any) tokenizes text prompts and names tokens.
        model_name: the id clients must send as `model` (default: `policy.name`).
        max_batch_size: most requests per `generate` call.
        batch_window_ms: how long the first waiting request waits for others to join it.
        default_max_tokens: completion length when a request gives none.
        max_tokens_limit: largest `max_tokens` a request may ask for.
        max_body_bytes: largest request body accepted.
        api_key: if set, requests must send `Authorization: Bearer API_KEY`.
    """
    name = model_name or policy.name
    batcher = Batcher(
        policy.generate, max_batch_size=max_batch_size, window_s=batch_window_ms / 1000
    )
    tokenizer = getattr(policy, "tokenizer", None)
    vocab_size = len(tokenizer) if tokenizer is not None else None
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()

    app = FastAPI(title=f"turnwise serve: {name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.policy = policy
    app.state.batcher = batcher

    @app.exception_handler(_APIError)
    async def api_error(request: Request, exc: _APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return _APIError(500, f"the server failed: {type(exc).__name__}: {exc}").response()

    def check_auth(request: Request) -> None:
        if api_key and not secrets.compare_digest(
            request.headers.get("authorization", ""), f"Bearer {api_key}"
        ):
            raise _APIError(401, "missing or wrong API key (send Authorization: Bearer KEY)")

    async def parse(request: Request, schema: type[_BodyT]) -> _BodyT:
        check_auth(request)
        data = await _read_json(request, max_body_bytes)
        try:
            body = schema.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            raise _APIError(400, f"{param}: {first['msg']}", param=param) from None
        if body.model != name:
            raise _APIError(
                404, f"the model {body.model!r} does not exist; this server serves {name!r}"
            )
        problem = _unsupported(body)
        if problem:
            raise _APIError(400, problem)
        return body

    async def generate(requests: list[GenerationRequest]) -> list[Generation]:
        try:
            return await batcher.submit(requests)
        except Exception as exc:
            log.exception("generation failed")
            raise _APIError(500, f"generation failed: {type(exc).__name__}: {exc}") from None

    def sampling(body: _Common, max_tokens: int | None) -> Sampling:
        max_tokens = max_tokens or default_max_tokens
        if max_tokens > max_tokens_limit:
            raise _APIError(
                400,
                f"max_tokens is {max_tokens}, above this server's limit of {max_tokens_limit}",
                param="max_tokens",
            )
        stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
        if len(stop) > 32 or any(not s for s in stop):
            raise _APIError(400, "stop must be at most 32 non-empty strings", param="stop")
        return Sampling(
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            max_tokens=max_tokens,
            stop=stop,
            seed=body.seed,
        )

    def token_text(token_id: int) -> str:
        # Without a tokenizer, vLLM's convention: clients can read the id back from the string.
        return f"token_id:{token_id}" if tokenizer is None else str(tokenizer.decode([token_id]))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "batches": len(batcher.batch_sizes)}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_auth(request)
        card = {"id": name, "object": "model", "created": created, "owned_by": "turnwise"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> dict[str, Any]:
        body = await parse(request, _ChatBody)
        messages = [_plain_message(m) for m in body.messages]
        request_ = GenerationRequest(
            messages=messages,
            sampling=sampling(body, body.max_completion_tokens or body.max_tokens),
        )
        (generation,) = await generate([request_])
        logprobs = None
        if body.logprobs and generation.logprobs is not None:
            pairs = zip(generation.token_ids, generation.logprobs, strict=True)
            logprobs = {"content": [_token_logprob(token_text(t), lp) for t, lp in pairs]}
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": generation.text},
            "logprobs": logprobs,
            "finish_reason": generation.finish_reason,
            "token_ids": generation.token_ids,
        }
        response = _envelope("chat.completion", name, [choice], [generation])
        return {**response, "prompt_token_ids": generation.prompt_token_ids}

    @app.post("/v1/completions")
    async def completions(request: Request) -> dict[str, Any]:
        body = await parse(request, _CompletionBody)
        sampling_ = sampling(body, body.max_tokens)
        prompts = _token_prompts(body, tokenizer, vocab_size)
        generations = await generate(
            [GenerationRequest(prompt_token_ids=ids, sampling=sampling_) for ids in prompts]
        )
        choices = []
        for index, (prompt, generation) in enumerate(zip(prompts, generations, strict=True)):
            logprobs = None
            if body.logprobs is not None and generation.logprobs is not None:
                tokens = [token_text(t) for t in generation.token_ids]
                offsets = [0, *itertools.accumulate(len(t) for t in tokens)][:-1]
                logprobs = {
                    "tokens": tokens,
                    "token_logprobs": generation.logprobs,
                    "top_logprobs": None,
                    "text_offset": offsets,
                }
            choices.append(
                {
                    "index": index,
                    "text": generation.text,
                    "logprobs": logprobs,
                    "finish_reason": generation.finish_reason,
                    "token_ids": generation.token_ids,
                    "prompt_token_ids": prompt,
                }
            )
        return _envelope("text_completion", name, choices, generations, prompts)

    return app


async def _read_json(request: Request, limit: int) -> Any:
    """The body as JSON, refusing anything over `limit` bytes before reading it all."""
    too_large = _APIError(
        400, f"the request body is over this server's limit of {limit} bytes", code="too_large"
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body has no length to check up front
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks))
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, absurd nesting or numbers
        raise _APIError(400, f"the request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise _APIError(400, f"the request body must be a JSON object, not {type(data).__name__}")
    return data


def _plain_message(message: _Message) -> dict[str, str]:
    """`{"role", "content"}` with text parts joined; `developer` is the newer name of `system`."""
    content = message.content
    if isinstance(content, list):
        content = "".join(part.text for part in content)
    role = "system" if message.role == "developer" else message.role
    return {"role": role, "content": content or ""}


def _token_prompts(
    body: _CompletionBody, tokenizer: Any, vocab_size: int | None
) -> list[list[int]]:
    """The prompt(s) of a completions request as token-id lists (text is tokenized here)."""
    prompt = body.prompt
    items: list[str | list[int]]
    if isinstance(prompt, str) or all(isinstance(t, int) for t in prompt):
        items = [cast("str | list[int]", prompt)]  # one text, or one list of ids
    else:
        items = list(cast("list[str | list[int]]", prompt))  # a batch of them
    if not items:
        raise _APIError(400, "prompt must not be empty", param="prompt")
    prompts = []
    for item in items:
        if isinstance(item, str):
            if tokenizer is None:
                raise _APIError(
                    400,
                    "this server has no tokenizer: send the prompt as token ids",
                    param="prompt",
                )
            item = list(tokenizer.encode(item, add_special_tokens=body.add_special_tokens))
        if not item:
            raise _APIError(400, "prompt must not be empty", param="prompt")
        bad = [t for t in item if t < 0 or (vocab_size is not None and t >= vocab_size)]
        if bad:
            limit = f" (the vocabulary has {vocab_size})" if vocab_size is not None else ""
            raise _APIError(
                400, f"prompt holds token ids out of range{limit}: {bad[:5]}", param="prompt"
            )
        prompts.append(item)
    return prompts


def _token_logprob(text: str, logprob: float) -> dict[str, Any]:
    # A token that splits a character decodes to U+FFFD, so its real bytes are unknown here.
    raw = None if "\ufffd" in text else list(text.encode())
    return {"token": text, "logprob": logprob, "bytes": raw, "top_logprobs": []}


def _envelope(
    kind: str,
    model: str,
    choices: list[dict[str, Any]],
    generations: Sequence[Generation],
    prompts: Sequence[list[int]] | None = None,
) -> dict[str, Any]:
    """The fields every (chat) completion response shares around its choices."""
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return {
        "id": f"{prefix}-{secrets.token_hex(12)}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": _usage(generations, prompts),
    }


def _usage(
    generations: Sequence[Generation], prompts: Sequence[list[int]] | None = None
) -> dict[str, int]:
    if prompts is None:
        prompts = [g.prompt_token_ids or [] for g in generations]
    prompt_tokens = sum(len(p) for p in prompts)
    completion_tokens = sum(len(g.token_ids) for g in generations)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# ---------------------------------------------------------------------------- running it
def bind_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A listening-ready TCP socket on `host:port` (port 0: a free one), IPv4 or IPv6."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.set_inheritable(True)
    return sock


class ServerThread:
    """Serves `app` with uvicorn on a background thread: for tests, notebooks and docs.

    Example:
        >>> from fastapi import FastAPI
        >>> with ServerThread(FastAPI()) as server:
        ...     server.url.startswith("http://127.0.0.1:")
        True
    """

    def __init__(
        self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, *, log_level: str = "warning"
    ) -> None:
        import uvicorn

        self.socket = bind_socket(host, port)
        self.host, self.port = self.socket.getsockname()[:2]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="on"))
        self._thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            daemon=True,
            name="turnwise-serve",
        )

    @property
    def url(self) -> str:
        """`http://HOST:PORT` (add `/v1` for OpenAI clients)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut down (safe twice)."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
