"""`turnwise serve PATH`: a local HF checkpoint behind an OpenAI-compatible HTTP API.

Other harnesses (and turnwise's own `openai:URL#MODEL` policy) can then evaluate a local model
as if it were a hosted one. torch, transformers, FastAPI and uvicorn are imported only once the
command runs, so `turnwise --help` stays fast.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from turnwise.cli._common import CLIError, console

__all__ = ["ServeConfig", "serve"]

DEVICES = ("auto", "cpu", "cuda")


@dataclass
class ServeConfig:
    """Serve a local Hugging Face checkpoint with an OpenAI-compatible API (/v1/chat/completions,
    /v1/completions with token-id prompts, /v1/models, /health); concurrent requests are batched."""

    path: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar="PATH")]
    """The checkpoint folder (config, weights and tokenizer), as saved by save_pretrained."""
    host: str = "127.0.0.1"
    """Address to bind. The default accepts connections from this machine only; 0.0.0.0 exposes
    the model to the network (then set --api-key)."""
    port: int = 8000
    """Port to listen on (0 picks a free one; the address is printed at start)."""
    max_batch_size: Annotated[int, tyro.conf.arg(metavar="N")] = 16
    """Most requests answered by one batched generate call."""
    batch_window_ms: float = 5.0
    """How long a request waits for others to share its batch."""
    device: str = "auto"
    """Where the model runs: auto (CUDA if available, else CPU), cpu or cuda."""
    model_name: str = ""
    """The model id clients send as `model` (default: the checkpoint folder's name)."""
    api_key: str = ""
    """If set, clients must send `Authorization: Bearer API_KEY`."""
    max_tokens_limit: int = 8192
    """Largest max_tokens a request may ask for."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be in 0..65535, got {self.port}")
        if self.max_batch_size < 1:
            raise ValueError(f"--max-batch-size must be at least 1, got {self.max_batch_size}")
        if self.batch_window_ms < 0:
            raise ValueError(f"--batch-window-ms must be >= 0, got {self.batch_window_ms}")
        if self.device not in DEVICES:
            raise ValueError(f"--device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if self.max_tokens_limit < 1:
            raise ValueError(f"--max-tokens-limit must be at least 1, got {self.max_tokens_limit}")


def serve(config: ServeConfig) -> int:
    """Load the model, bind the address, serve until Ctrl-C; exit code 0."""
    out = console(stderr=True)
    path = Path(config.path).expanduser()
    if not (path / "config.json").is_file():
        raise CLIError(f"{path} is not a Hugging Face checkpoint folder (no config.json in it)")
    try:
        import uvicorn

        from turnwise.agents.hf import HFPolicy
        from turnwise.agents.policy import GenerationRequest, Sampling
        from turnwise.agents.server import bind_socket, create_app
    except ModuleNotFoundError as exc:
        raise CLIError(
            f"turnwise serve needs {exc.name}, which is not installed: pip install 'turnwise[agents]'"
        ) from None
    try:
        sock = bind_socket(config.host, config.port)
    except OSError as exc:
        raise CLIError(f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    name = config.model_name or path.resolve().name
    with out.status(f"loading {path} ...", spinner="dots"):
        policy = HFPolicy.from_pretrained(
            path, device=config.device, max_batch_size=config.max_batch_size
        )
        # One token on this (the main) thread before the port opens: a broken checkpoint fails
        # here, and torch's OpenMP pool starts here. Started first from the generation thread,
        # it left CPU generation ~5x slower (measured with the tiny model on 2 cores).
        warm_up = GenerationRequest(prompt_token_ids=[0], sampling=Sampling(max_tokens=1))
        policy.generate([warm_up])
    app = create_app(
        policy,
        model_name=name,
        max_batch_size=config.max_batch_size,
        batch_window_ms=config.batch_window_ms,
        max_tokens_limit=config.max_tokens_limit,
        api_key=config.api_key or None,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    # Printed to stdout and flushed, so scripts (and tests) can read the address of --port 0.
    print(f"turnwise serve: {name!r} at http://{shown}:{port}/v1", flush=True)
    if not _is_loopback(config.host) and not config.api_key:
        out.print(
            f"[yellow]warning:[/yellow] {config.host} is reachable from other machines and "
            "--api-key is not set: anyone who can connect can use this model"
        )
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="on"))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _is_loopback(host: str) -> bool:
    """Whether `host` accepts connections from this machine only.

    Example:
        >>> [_is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0")]
        [True, True, True, False]
    """
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    # An IPv6 address may carry a zone (`fe80::1%eth0`), which ip_address does not read.
    return all(ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses)
