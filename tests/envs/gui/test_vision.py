"""Screenshots reach a vision model: an LLM agent with `images=True` plays a desktop task through
the `openai` policy, over real HTTP on loopback.

No vision model runs here, so a small FastAPI app stands in for the server. It decodes the image
each request carries, records it, and answers with the next step of the task's plan. The test
checks that every turn sent exactly one image, the current screenshot pixel for pixel, as a PNG
data URL, and that the episode ends in success.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="needs fastapi (pip install 'turnwise[agents]')")

from fastapi import FastAPI, Request
from PIL import Image

from turnwise.agents.agent import LLMAgent
from turnwise.agents.openai_policy import OpenAIPolicy
from turnwise.agents.policy import Sampling
from turnwise.agents.prompting import template_for
from turnwise.agents.server import ServerThread
from turnwise.envs.gui.desktop import DesktopEnv
from turnwise.envs.gui.tasks import make_task
from turnwise.episode import run_episode

pytestmark = pytest.mark.gui
TASK = "append-line/test/0002"


class Seen:
    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.images: list[np.ndarray] = []
        self.parts: list[list[str]] = []
        self.texts: list[str] = []


def vision_stand_in(seen: Seen) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        last = body["messages"][-1]
        seen.parts.append([p["type"] for p in last["content"]])
        seen.texts.append(last["content"][0]["text"])
        url = last["content"][1]["image_url"]["url"]
        prefix = "data:image/png;base64,"
        assert url.startswith(prefix)
        png = Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :])))
        seen.images.append(np.asarray(png.convert("RGB")))
        # Earlier turns went back as text: only the current screenshot travels.
        assert all(isinstance(m["content"], str) for m in body["messages"][:-1])
        reply = seen.replies[len(seen.images) - 1]
        return {
            "id": "x",
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"<action>{reply}</action>"},
                    "finish_reason": "stop",
                }
            ],
        }

    return app


@pytest.fixture
def served() -> Iterator[tuple[str, Seen]]:
    seen = Seen(make_task(TASK).plan())
    with ServerThread(vision_stand_in(seen)) as thread:
        yield thread.url, seen


class Recorder(gymnasium.Wrapper[Any, str, Any, str]):
    """Keeps every observation's image, to compare with what the server received."""

    def __init__(self, env: DesktopEnv) -> None:
        super().__init__(env)
        self.images: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> Any:
        obs, info = self.env.reset(**kwargs)
        self.images.append(obs["image"])
        return obs, info

    def step(self, action: str) -> Any:
        result = self.env.step(action)
        self.images.append(result[0]["image"])
        return result


def test_an_agent_with_images_sends_each_screenshot_to_the_model(
    served: tuple[str, Seen],
) -> None:
    url, seen = served
    policy = OpenAIPolicy(url, "vision-stand-in", logprobs=False)
    template = template_for("turnwise/Desktop-v0", images=True)
    agent = LLMAgent(policy, template=template, sampling=Sampling(temperature=0, max_tokens=64))
    assert agent.token_exact is False
    with DesktopEnv(split="test") as env:
        recorder = Recorder(env)
        traj = run_episode(recorder, agent, task_id=TASK, seed=0)
    policy.close()
    assert traj.success and traj.num_turns == len(seen.replies)
    assert seen.parts == [["text", "image_url"]] * traj.num_turns
    for sent, shown in zip(seen.images, recorder.images, strict=False):
        assert np.array_equal(sent, shown)  # the PNG is lossless: the very screenshot
    assert "(The 800x600 screenshot is attached.)" in seen.texts[0]


def test_images_need_messages_mode_and_a_vision_backend() -> None:
    from turnwise.agents.tokens import render_chat

    template = template_for("gui", images=True)

    class WithTokenizer:
        name, tokenizer = "stub", None

        def generate(self, requests: Any) -> Any:
            raise AssertionError

    with pytest.raises(ValueError, match="token_exact=False"):
        LLMAgent(WithTokenizer(), template=template, token_exact=True)  # type: ignore[arg-type]
    image_message = {
        "role": "user",
        "content": [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {}}],
    }
    with pytest.raises(ValueError, match="text messages only"):
        render_chat(object(), [image_message], True)
