"""Shared fixtures, and skipping of tests whose hardware or engine is missing here.

Markers `gpu`, `vllm`, `docker`, `browser` and `gui` name what a test needs; when it is missing
the test is skipped with a reason that says exactly what is missing (never silently passed).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from turnwise import Env, StepResult
from turnwise.testing.requirements import REQUIREMENTS


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, missing in REQUIREMENTS.items():
        if item.get_closest_marker(marker) is not None:
            reason = missing()
            if reason is not None:
                pytest.skip(reason)


class CounterEnv(Env):
    """Say `inc` until the counter reaches the target; `dec` goes back (a repeated state)."""

    family = "other"
    default_reward_weights = {"valid": 0.1, "progress": 0.5}  # noqa: RUF012

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.count = 0
        self.target = 0
        self.closed_calls = 0

    def tasks(self, split: str | None = None) -> Sequence[str]:
        split = split or self.split
        return [f"{split}-{i}" for i in range(1, 6)]

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self.target = int(task_id.rsplit("-", 1)[1])
        self.count = 0
        flavour = ["plain", "fancy"][int(self.np_random.integers(2))]
        return f"[{flavour}] count to {self.target}", {"instruction": f"reach {self.target}"}

    def _step(self, action: str) -> StepResult:
        move = {"inc": 1, "dec": -1}.get(action.strip())
        if move is None:
            return StepResult(f"unknown action {action[:30]!r}", valid=False)
        self.count += move
        done = self.count >= self.target
        return StepResult(
            f"count is {self.count}",
            {"outcome": float(done), "progress": move / self.target},
            terminated=done,
            success=done,
        )

    def admissible_actions(self) -> list[str]:
        return ["inc", "dec"]

    def state_key(self) -> str:
        return f"count={self.count}"

    def expert_action(self) -> str | None:
        return "inc"

    def _close(self) -> None:
        self.closed_calls += 1


@pytest.fixture
def counter_env() -> CounterEnv:
    return CounterEnv(max_turns=10)


class ChatServer:
    """A scripted OpenAI-compatible chat server: `replies` are answered first, then `default`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.replies: deque[str] = deque()
        self.default = "?"
        self.bodies: list[dict[str, Any]] = []
        self.usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.bodies.append(body)
        text = self.replies.popleft() if self.replies else self.default
        message = {"role": "assistant", "content": text}
        return {
            "id": "scripted",
            "model": body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": dict(self.usage),
        }


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """`ChatServer` over real HTTP on loopback (e.g. a judge for `openai:URL/v1#MODEL`)."""
    fastapi = pytest.importorskip(
        "fastapi", reason="needs fastapi (pip install 'turnwise[agents]')"
    )
    from turnwise.agents.server import ServerThread

    app = fastapi.FastAPI()
    server: ChatServer | None = None

    @app.post("/v1/chat/completions")
    async def chat(body: dict[str, Any] = fastapi.Body()) -> Any:  # noqa: B008
        assert server is not None
        return server.answer(body)

    with ServerThread(app) as thread:
        server = ChatServer(thread.url)
        yield server
