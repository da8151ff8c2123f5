"""`turnwise serve`: the OpenAI-compatible server, over real HTTP on loopback.

Most tests serve `EchoPolicy`, a deterministic fake that records every `generate` call (so
batching is seen where it happens); the last ones serve the tiny offline checkpoint through the
real `turnwise serve` command and the `hf` backend.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="needs fastapi (pip install 'turnwise[agents]')")
pytest.importorskip("uvicorn", reason="needs uvicorn (pip install 'turnwise[agents]')")

import httpx

from turnwise.agents.openai_policy import OpenAIAPIError, OpenAIPolicy
from turnwise.agents.policy import Generation, GenerationRequest, Sampling
from turnwise.agents.server import ServerThread, create_app
from turnwise.cli import main
from turnwise.cli.serve import ServeConfig

MODEL = "echo"


class ByteTokenizer:
    """One token per UTF-8 byte: enough for text prompts and token names."""

    def __len__(self) -> int:
        return 256

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(text.encode())

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode(errors="replace")


class EchoPolicy:
    """Answers `<prompt>` (cut at max_tokens bytes); fails on prompts containing BOOM."""

    name = "fake:echo"

    def __init__(self, delay: float = 0.0) -> None:
        self.tokenizer = ByteTokenizer()
        self.batches: list[int] = []
        self.delay = delay

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        self.batches.append(len(requests))
        time.sleep(self.delay)
        out = []
        for request in requests:
            if request.messages is not None:
                prompt = self.tokenizer.encode(request.messages[-1]["content"])
            else:
                prompt = list(request.prompt_token_ids or [])
            if b"BOOM" in bytes(prompt):
                raise RuntimeError("the model exploded")
            ids = [*b"<", *prompt, *b">"]
            cut = ids[: request.sampling.max_tokens]
            out.append(
                Generation(
                    text=self.tokenizer.decode(cut),
                    token_ids=cut,
                    logprobs=[-0.25 * (i + 1) for i in range(len(cut))],
                    finish_reason="length" if len(cut) < len(ids) else "stop",
                    prompt_token_ids=prompt,
                )
            )
        return out


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, EchoPolicy]]:
    policy = EchoPolicy()
    app = create_app(policy, model_name=MODEL, max_body_bytes=64 * 1024)
    with ServerThread(app) as server:
        yield server.url, policy


def chat_body(content: Any = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}


# ----------------------------------------------------------------------------- round trips
def test_openai_policy_round_trip(echo: tuple[str, EchoPolicy]) -> None:
    url, _ = echo
    with OpenAIPolicy(url, MODEL) as policy:
        chat, tokens, short = policy.generate(
            [
                GenerationRequest(messages=[{"role": "user", "content": "héllo"}]),
                GenerationRequest(prompt_token_ids=[104, 105]),
                GenerationRequest(prompt_token_ids=[104, 105], sampling=Sampling(max_tokens=2)),
            ]
        )
    assert chat.text == "<héllo>" and chat.token_ids == [*"<héllo>".encode()]
    assert chat.logprobs == [-0.25 * (i + 1) for i in range(len(chat.token_ids))]  # exact
    assert chat.prompt_token_ids == [*"héllo".encode()] and chat.finish_reason == "stop"
    assert tokens.text == "<hi>" and tokens.token_ids == [60, 104, 105, 62]
    assert tokens.prompt_token_ids == [104, 105] and tokens.logprobs is not None
    assert short.text == "<h" and short.finish_reason == "length"


def test_responses_follow_the_openai_schema(echo: tuple[str, EchoPolicy]) -> None:
    url, _ = echo
    with httpx.Client(base_url=url) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/v1/models").json()["data"][0]["id"] == MODEL
        data = client.post("/v1/chat/completions", json=chat_body("ab", logprobs=True)).json()
        assert data["object"] == "chat.completion" and data["id"].startswith("chatcmpl-")
        choice = data["choices"][0]
        assert choice["message"] == {"role": "assistant", "content": "<ab>"}
        assert [t["token"] for t in choice["logprobs"]["content"]] == ["<", "a", "b", ">"]
        assert choice["token_ids"] == [60, 97, 98, 62]
        assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}
        # A text prompt and a batch of token prompts on the completions endpoint.
        body = {"model": MODEL, "prompt": "xy", "logprobs": 0, "max_tokens": 3}
        data = client.post("/v1/completions", json=body).json()
        assert (
            data["choices"][0]["text"] == "<xy" and data["choices"][0]["finish_reason"] == "length"
        )
        assert data["choices"][0]["logprobs"]["text_offset"] == [0, 1, 2]
        data = client.post("/v1/completions", json={"model": MODEL, "prompt": [[97], [98]]}).json()
        assert [c["text"] for c in data["choices"]] == ["<a>", "<b>"]


def test_the_openai_sdk_calls_the_server(echo: tuple[str, EchoPolicy]) -> None:
    openai = pytest.importorskip("openai", reason="needs the openai SDK")
    url, _ = echo
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == [MODEL]
    reply = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "sdk"}], logprobs=True, seed=1
    )
    assert reply.choices[0].message.content == "<sdk>"
    assert reply.choices[0].logprobs is not None and len(reply.choices[0].logprobs.content) == 5
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    completion = client.completions.create(model=MODEL, prompt=[115, 100, 107], max_tokens=8)
    assert completion.choices[0].text == "<sdk>"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "x"}])


# ----------------------------------------------------------------------------- batching
def test_concurrent_requests_share_one_generate_call() -> None:
    policy = EchoPolicy()
    # A long window, closed early once the batch is full: 8 requests, one call of 8.
    app = create_app(policy, model_name=MODEL, max_batch_size=8, batch_window_ms=2000)
    with ServerThread(app) as server, OpenAIPolicy(server.url, MODEL) as client:
        started = time.monotonic()
        gens = client.generate([GenerationRequest(prompt_token_ids=[97 + i]) for i in range(8)])
        assert time.monotonic() - started < 2.0
    assert [g.text for g in gens] == [f"<{chr(97 + i)}>" for i in range(8)]
    assert policy.batches == [8]


def test_batches_are_capped() -> None:
    policy = EchoPolicy(delay=0.2)
    app = create_app(policy, model_name=MODEL, max_batch_size=3, batch_window_ms=20)
    with ServerThread(app) as server, OpenAIPolicy(server.url, MODEL) as client:
        client.generate([GenerationRequest(prompt_token_ids=[97]) for _ in range(7)])
    # Requests that wait while a batch runs join the next one, up to the cap.
    assert sum(policy.batches) == 7 and max(policy.batches) == 3


def test_a_failing_request_does_not_fail_its_batch_mates() -> None:
    policy = EchoPolicy()
    app = create_app(policy, model_name=MODEL, max_batch_size=3, batch_window_ms=2000)
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        texts = ["fine", "BOOM", "also fine"]
        with ThreadPoolExecutor(3) as pool:
            replies = list(
                pool.map(lambda t: client.post("/v1/chat/completions", json=chat_body(t)), texts)
            )
        assert [r.status_code for r in replies] == [200, 500, 200]
        error = replies[1].json()["error"]
        assert error["type"] == "server_error" and "the model exploded" in error["message"]
        assert client.get("/health").status_code == 200
    assert policy.batches[0] == 3  # tried together first, then one by one


# ----------------------------------------------------------------------------- hostile input
HOSTILE: list[tuple[str, Any, str]] = [
    ("not json", b"{'model': 1", "not valid JSON"),
    ("a list", [1, 2], "must be a JSON object"),
    ("deep nesting", b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
    ("a huge number", b'{"seed": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ("bad utf-8", b'{"model": "\xff"}', "not valid JSON"),
    ("no model", {"messages": []}, "model"),
    ("messages not a list", chat_body() | {"messages": "hi"}, "messages"),
    ("empty messages", chat_body() | {"messages": []}, "messages"),
    ("unknown role", chat_body() | {"messages": [{"role": "god", "content": "x"}]}, "role"),
    ("content a number", chat_body(5), "content"),
    ("temperature a word", chat_body(temperature="hot"), "temperature"),
    ("temperature NaN", b'{"model": "echo", "messages": [], "temperature": NaN}', "temperature"),
    ("negative max_tokens", chat_body(max_tokens=-1), "max_tokens"),
    ("too many max_tokens", chat_body(max_tokens=10**9), "limit of 8192"),
    ("top_p zero", chat_body(top_p=0), "top_p"),
    ("seed too big", chat_body(seed=2**70), "seed"),
    ("n=2", chat_body(n=2), "n must be 1"),
    ("streaming", chat_body(stream=True), "does not stream"),
    ("top_logprobs", chat_body(logprobs=True, top_logprobs=5), "top_logprobs"),
    ("empty stop", chat_body(stop=[""]), "stop"),
    ("penalty", chat_body(presence_penalty=1.0), "presence_penalty"),
]
COMPLETIONS: list[tuple[str, Any, str]] = [
    ("negative token", {"model": MODEL, "prompt": [-1]}, "out of range"),
    ("token beyond vocab", {"model": MODEL, "prompt": [256]}, "out of range"),
    ("empty prompt", {"model": MODEL, "prompt": []}, "empty"),
    ("mixed prompt", {"model": MODEL, "prompt": [1, "a"]}, "prompt"),
    ("echo", {"model": MODEL, "prompt": "a", "echo": True}, "echo"),
    ("top logprobs", {"model": MODEL, "prompt": "a", "logprobs": 5}, "logprobs must be 0"),
]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [("/v1/chat/completions", body, says) for _, body, says in HOSTILE]
    + [("/v1/completions", body, says) for _, body, says in COMPLETIONS],
    ids=[case[0] for case in HOSTILE + COMPLETIONS],
)
def test_hostile_input_gets_400_json(
    echo: tuple[str, EchoPolicy], path: str, body: Any, says: str
) -> None:
    url, _ = echo
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.post(url + path, content=content, timeout=30)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error" and says in error["message"]


def test_oversized_bodies_are_refused_and_the_server_survives(
    echo: tuple[str, EchoPolicy],
) -> None:
    url, _ = echo
    huge = json.dumps(chat_body("x" * 100_000)).encode()
    with httpx.Client(base_url=url, timeout=30) as client:
        reply = client.post("/v1/chat/completions", content=huge)
        assert reply.status_code == 400 and "limit of 65536 bytes" in reply.text
        # A chunked body declares no length: it is cut off while being read.
        chunks = (huge[i : i + 4096] for i in range(0, len(huge), 4096))
        reply = client.post("/v1/chat/completions", content=chunks)
        assert reply.status_code == 400 and "limit" in reply.json()["error"]["message"]
        reply = client.post("/v1/chat/completions", json=chat_body("still here"))
        assert reply.json()["choices"][0]["message"]["content"] == "<still here>"


def test_unknown_model_and_api_key() -> None:
    app = create_app(EchoPolicy(), model_name=MODEL, api_key="sk-local")
    with ServerThread(app) as server:
        assert httpx.get(server.url + "/v1/models").status_code == 401
        with (
            OpenAIPolicy(server.url, "other", api_key="sk-local") as policy,
            pytest.raises(OpenAIAPIError, match=r"HTTP 404.*serves 'echo'"),
        ):
            policy.generate([GenerationRequest(messages=[{"role": "user", "content": "x"}])])
        with OpenAIPolicy(server.url, MODEL, api_key="sk-local") as policy:
            assert policy.generate([GenerationRequest(prompt_token_ids=[97])])[0].text == "<a>"


# ----------------------------------------------------------------------------- the command
def test_serve_help_and_loopback_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--help"]) == 0
    assert "--max-batch-size" in capsys.readouterr().out
    assert ServeConfig(path=Path("x")).host == "127.0.0.1"
    with ServerThread(create_app(EchoPolicy())) as server:
        assert server.host == "127.0.0.1"
    assert main(["serve", "/no/such/checkpoint"]) == 2
    assert "not a Hugging Face checkpoint" in capsys.readouterr().err
    assert main(["serve", "x", "--device", "tpu"]) == 2


def _tiny_checkpoint() -> Path:
    pytest.importorskip("torch", reason="needs torch (pip install 'turnwise[agents]')")
    try:
        from turnwise.agents.hf import HFPolicy  # noqa: F401
        from turnwise.agents.tiny import default_checkpoint
    except ImportError as exc:
        pytest.skip(f"needs the hf backend and tiny models: {exc}")
    return default_checkpoint()


@pytest.mark.slow
def test_turnwise_serve_a_tiny_checkpoint_end_to_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _tiny_checkpoint()
    import uvicorn

    # The real command, in-process (a subprocess would pay torch's import again): the one hook
    # is a uvicorn.Server that the test can tell to shut down, as Ctrl-C would.
    servers: list[uvicorn.Server] = []

    class StoppableServer(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            servers.append(self)

    monkeypatch.setattr(uvicorn, "Server", StoppableServer)
    codes: list[int] = []
    args = ["serve", str(path), "--port", "0", "--device", "cpu", "--model-name", "tiny"]
    thread = threading.Thread(target=lambda: codes.append(main(args)), daemon=True)
    thread.start()
    try:
        out = ""
        deadline = time.monotonic() + 120
        while "turnwise serve:" not in out:
            assert thread.is_alive() and time.monotonic() < deadline, out + capsys.readouterr().err
            time.sleep(0.05)
            out += capsys.readouterr().out
        # Printed once the model is loaded and the port bound: loopback unless told otherwise.
        base_url = out.split("turnwise serve: 'tiny' at ")[1].split()[0]
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        _wait_started(servers)
        with OpenAIPolicy.from_spec(f"openai:{base_url}#tiny") as policy:
            greedy = Sampling(temperature=0, max_tokens=6)
            chat = GenerationRequest(
                messages=[{"role": "user", "content": "You are in the hall."}], sampling=greedy
            )
            first = policy.generate([chat] * 4)  # concurrent: batched at the server
            gen = first[0]
            assert all(g.text == gen.text and g.token_ids == gen.token_ids for g in first)
            assert 1 <= len(gen.token_ids) <= 6 and gen.logprobs is not None
            assert len(gen.logprobs) == len(gen.token_ids) and all(lp <= 0 for lp in gen.logprobs)
            assert gen.prompt_token_ids
            # The token-exact path: the chat's own context as ids gives the same greedy tokens.
            request = GenerationRequest(prompt_token_ids=gen.prompt_token_ids, sampling=greedy)
            (again,) = policy.generate([request])
            assert again.token_ids == gen.token_ids and again.text == gen.text
    finally:
        for server in servers:
            server.should_exit = True
        thread.join(timeout=30)
    assert codes == [0]


def _wait_started(servers: list[Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (servers and servers[0].started):
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
