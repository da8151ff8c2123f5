"""The `openai` policy against scripted OpenAI-compatible servers, over real HTTP on loopback.

A small FastAPI app plays the server: each request pops the next scripted answer (an error status,
a stall, or a normal completion), and the app records when requests arrive and how many are in
flight, so retries, backoff and the concurrency limit are checked where they happen. Delays are
milliseconds, set through `Backoff`. The round trip against `turnwise serve` itself is in
test_server.py.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs fastapi (pip install 'turnwise[agents]')")
pytest.importorskip("uvicorn", reason="needs uvicorn (pip install 'turnwise[agents]')")

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from turnwise.agents.openai_policy import (
    Backoff,
    OpenAIAPIError,
    OpenAIPolicy,
    is_retryable_status,
    parse_spec,
)
from turnwise.agents.policy import GenerationRequest, Sampling
from turnwise.agents.server import ServerThread, bind_socket

FAST = Backoff(initial=0.001, maximum=0.005)


class Script:
    """What the scripted server answers next, and what it saw."""

    def __init__(self) -> None:
        self.actions: deque[Any] = deque()
        self.arrivals: list[float] = []
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.vllm_style = False  # token ids only as `token_id:N` log-prob tokens
        self.refuse_logprobs = False
        self.completions = True


def completion(body: dict[str, Any], script: Script) -> dict[str, Any]:
    text = "echo: " + body["messages"][-1]["content"]
    ids = [1000 + i for i in range(len(text.split()))]
    logprobs = [-0.5 * (i + 1) for i in range(len(ids))]
    tokens = [f"token_id:{t}" if script.vllm_style else f"w{t}" for t in ids]
    content = [{"token": tok, "logprob": lp} for tok, lp in zip(tokens, logprobs, strict=True)]
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "logprobs": {"content": content} if body.get("logprobs") else None,
        "finish_reason": "length",
    }
    if not script.vllm_style:
        choice["token_ids"] = ids
    return {"id": "x", "model": body["model"], "choices": [choice], "usage": {"total_tokens": 3}}


def scripted_app(current: dict[str, Script]) -> FastAPI:
    """The app answers with `current["script"]`, so one server serves every test."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        script = current["script"]
        body = await request.json()
        script.arrivals.append(time.monotonic())
        script.bodies.append(body)
        script.headers.append(dict(request.headers))
        script.in_flight += 1
        script.max_in_flight = max(script.max_in_flight, script.in_flight)
        try:
            action = script.actions.popleft() if script.actions else "ok"
            if isinstance(action, tuple) and action[0] == "stall":
                await asyncio.sleep(action[1])
            elif isinstance(action, tuple):
                status, headers = action
                error = {"message": f"scripted {status}", "type": "x"}
                return JSONResponse({"error": error}, status_code=status, headers=headers)
            if script.refuse_logprobs and body.get("logprobs"):
                error = {"message": "logprobs are not supported by this model"}
                return JSONResponse({"error": error}, status_code=400)
            await asyncio.sleep(script.delay)
            return completion(body, script)
        finally:
            script.in_flight -= 1

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        return JSONResponse({"detail": "Not Found"}, status_code=404)

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, dict[str, Script]]]:
    current = {"script": Script()}
    with ServerThread(scripted_app(current)) as thread:
        yield thread.url, current


@pytest.fixture
def scripted(server: tuple[str, dict[str, Script]]) -> tuple[str, Script]:
    url, current = server
    current["script"] = Script()
    return url, current["script"]


def chat(text: str = "hello there", **sampling: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=[{"role": "user", "content": text}], sampling=Sampling(**sampling)
    )


# ----------------------------------------------------------------------------- configuration
def test_spec_and_base_url() -> None:
    assert parse_spec("openai:https://api.example.com/v1#gpt-x") == (
        "https://api.example.com/v1",
        "gpt-x",
    )
    policy = OpenAIPolicy.from_spec("openai:http://127.0.0.1:9/#m")
    assert policy.base_url == "http://127.0.0.1:9/v1"  # a bare host gets /v1
    assert policy.name == "openai:http://127.0.0.1:9/v1#m"
    for bad in ("openai:http://h/v1", "openai:#m", "openai:ftp://h#m"):
        with pytest.raises(ValueError):
            OpenAIPolicy.from_spec(bad)


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial=1, maximum=5, jitter=0.5)
    delays = [backoff.delay(attempt) for attempt in range(6) for _ in range(20)]
    assert all(0.5 <= d <= 5 for d in delays)
    assert len(set(delays)) > 10  # jitter spreads them
    assert Backoff(initial=1, maximum=5, jitter=0).delay(10) == 5
    assert Backoff(max_retry_after=3).delay(0, retry_after=100) == 3
    assert [is_retryable_status(s) for s in (401, 403, 422, 502)] == [False, False, False, True]


# ----------------------------------------------------------------------------- round trip
def test_text_token_ids_logprobs_and_request_fields(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    with OpenAIPolicy(url, "m", extra_body={"return_token_ids": True}) as policy:
        request = chat("a b c", temperature=0.3, top_p=0.9, max_tokens=7, stop=("\n",), seed=5)
        (gen,) = policy.generate([request])
    assert gen.text == "echo: a b c"
    assert gen.token_ids == [1000, 1001, 1002, 1003]
    assert gen.logprobs == [-0.5, -1.0, -1.5, -2.0]
    assert gen.finish_reason == "length"
    assert gen.info["usage"] == {"total_tokens": 3}
    body = script.bodies[0]
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["max_tokens"] == 7
    assert body["stop"] == ["\n"] and body["seed"] == 5 and body["logprobs"] is True
    assert body["return_token_ids"] is True and body["n"] == 1


def test_vllm_token_id_strings_give_token_ids(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.vllm_style = True
    with OpenAIPolicy(url, "m") as policy:
        (gen,) = policy.generate([chat("x y")])
    assert gen.token_ids == [1000, 1001, 1002]
    assert gen.logprobs == [-0.5, -1.0, -1.5]


def test_falls_back_without_logprobs_when_refused(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.refuse_logprobs = True
    with OpenAIPolicy(url, "m") as policy:
        first, second = policy.generate([chat("one")]), policy.generate([chat("two")])
    assert first[0].text == "echo: one" and first[0].logprobs is None
    assert second[0].text == "echo: two"
    assert not policy.logprobs
    # Asked once with log-probs, once without; the next request no longer asks.
    assert ["logprobs" in b for b in script.bodies] == [True, False, False]


def test_api_key_header(scripted: tuple[str, Script], monkeypatch: pytest.MonkeyPatch) -> None:
    url, script = scripted
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIPolicy(url, "m") as policy:
        policy.generate([chat()])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    with OpenAIPolicy(url, "m") as policy:
        policy.generate([chat()])
    assert "authorization" not in script.headers[0]
    assert script.headers[1]["authorization"] == "Bearer sk-env"


# ----------------------------------------------------------------------------- retries
def test_retries_429_and_5xx_with_backoff(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.actions.extend([(429, {}), (500, {}), (503, {})])
    with OpenAIPolicy(url, "m", backoff=FAST, max_retries=3) as policy:
        (gen,) = policy.generate([chat()])
    assert gen.text == "echo: hello there"
    assert len(script.arrivals) == 4 and policy.retries == 3


def test_retry_after_is_honoured(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.actions.extend([(429, {"Retry-After": "0.3"}), (503, {"retry-after-ms": "200"})])
    with OpenAIPolicy(url, "m", backoff=FAST) as policy:
        policy.generate([chat()])
    gaps = [b - a for a, b in zip(script.arrivals, script.arrivals[1:], strict=False)]
    assert len(gaps) == 2
    assert gaps[0] >= 0.3 and gaps[1] >= 0.2  # not the 1-5 ms the backoff alone would give


def test_retries_timeouts(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.actions.append(("stall", 2.0))
    with OpenAIPolicy(url, "m", timeout=0.3, backoff=FAST) as policy:
        (gen,) = policy.generate([chat()])
    assert gen.text == "echo: hello there"
    assert len(script.arrivals) == 2


def test_gives_up_after_max_retries(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.actions.extend([(502, {})] * 5)
    with (
        OpenAIPolicy(url, "m", backoff=FAST, max_retries=2) as policy,
        pytest.raises(OpenAIAPIError) as caught,
    ):
        policy.generate([chat()])
    assert caught.value.status == 502 and caught.value.attempts == 3
    assert "scripted 502" in str(caught.value) and "after 3 attempts" in str(caught.value)
    assert len(script.arrivals) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_no_retry_on_other_4xx(scripted: tuple[str, Script], status: int) -> None:
    url, script = scripted
    script.actions.append((status, {}))
    with (
        OpenAIPolicy(url, "m", backoff=FAST) as policy,
        pytest.raises(OpenAIAPIError, match=f"HTTP {status}: scripted {status}"),
    ):
        policy.generate([chat()])
    assert len(script.arrivals) == 1 and policy.retries == 0


def test_unreachable_server_retries_then_says_so() -> None:
    sock = bind_socket()  # bound but never listening: connections are refused
    port = sock.getsockname()[1]
    try:
        with (
            OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "m", backoff=FAST, max_retries=2) as p,
            pytest.raises(OpenAIAPIError, match="no response after 3 attempts: ConnectError"),
        ):
            p.generate([chat()])
        assert p.retries == 2
    finally:
        sock.close()


# ----------------------------------------------------------------------------- concurrency
def test_concurrency_limit_is_respected(scripted: tuple[str, Script]) -> None:
    url, script = scripted
    script.delay = 0.05
    with OpenAIPolicy(url, "m", max_concurrency=3) as policy:
        gens = policy.generate([chat(f"n {i}") for i in range(12)])
    assert [g.text for g in gens] == [f"echo: n {i}" for i in range(12)]  # in request order
    assert script.max_in_flight == 3


def test_agenerate_and_generate_inside_a_running_loop(scripted: tuple[str, Script]) -> None:
    url, _ = scripted
    policy = OpenAIPolicy(url, "m")

    async def main() -> list[str]:
        # The collector's way: await on its own loop, concurrently with other work.
        first, second = await asyncio.gather(
            policy.agenerate([chat("a")]), policy.agenerate([chat("b"), chat("c")])
        )
        # A synchronous caller that happens to run inside a loop must not deadlock it.
        third = policy.generate([chat("d")])
        await policy.aclose()
        return [g.text for g in [*first, *second, *third]]

    async def without_aclose() -> str:
        return (await policy.agenerate([chat("e")]))[0].text

    try:
        assert asyncio.run(main()) == ["echo: a", "echo: b", "echo: c", "echo: d"]
        assert asyncio.run(without_aclose()) == "echo: e"
        assert asyncio.run(without_aclose()) == "echo: e"
        # Clients of finished loops are dropped: the background loop's and the last run's stay.
        assert len(policy._states) <= 2
    finally:
        policy.close()
        policy.close()  # safe twice


def test_token_prompts_on_a_server_without_them(scripted: tuple[str, Script]) -> None:
    url, _ = scripted
    request = GenerationRequest(prompt_token_ids=[1, 2, 3])
    with (
        OpenAIPolicy(url, "m", backoff=FAST) as policy,
        pytest.raises(OpenAIAPIError, match="does not accept token-id prompts"),
    ):
        policy.generate([request])
