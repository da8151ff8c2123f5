from __future__ import annotations

import asyncio

import pytest

from turnwise.parsing import parse_tagged
from turnwise.rewards import Format, StepContext, ValidAction, is_hook, score_batch


def ctx(action: str = "look", valid: bool = True, **info: object) -> StepContext:
    return StepContext(
        env_id="e",
        task_id="t",
        instruction="",
        turn=1,
        observation={"text": "before"},
        action=action,
        next_observation={"text": "after"},
        info={"valid_action": valid, **info},
        terminated=False,
        truncated=False,
    )


@pytest.mark.parametrize(
    ("text", "action", "ok"),
    [
        ("<action>go north</action>", "go north", True),
        ("  <think>hmm\nyes</think>\n<action> take key </action>\n", "take key", True),
        ("go north", "", False),
        ("<action>a</action><action>b</action>", "b", False),
        ("sure! <action>look</action>", "look", False),
        ("<action></action>", "", False),
        ("<think>x</think><think>y</think><action>look</action>", "look", False),
        ("<action>unclosed", "", False),
    ],
)
def test_parse_tagged(text: str, action: str, ok: bool) -> None:
    result = parse_tagged(text)
    assert (result.action, result.ok) == (action, ok)
    assert (result.error is None) == ok


def test_valid_action_hook() -> None:
    hook = ValidAction(invalid=-0.5)
    assert hook(ctx(valid=True)) == 0.0
    assert hook(ctx(valid=False)) == -0.5
    assert is_hook(hook)


def test_format_hook_reads_the_raw_reply() -> None:
    hook = Format()
    assert hook(ctx("look")) == -1.0
    assert hook(ctx("look", raw_action="<action>look</action>")) == 0.0
    custom = Format(pattern=r"[a-z ]+", ok=1.0, bad=0.0)
    assert custom(ctx("go north")) == 1.0 and custom(ctx("GO!")) == 0.0


class AsyncLength:
    name = "length"

    def __init__(self) -> None:
        self.calls: list[int] = []

    async def score(self, ctxs):
        self.calls.append(len(ctxs))
        await asyncio.sleep(0)
        return [float(len(c.action)) for c in ctxs]


def test_score_batch_sync_and_async() -> None:
    contexts = [ctx("a"), ctx("abc")]
    assert score_batch(ValidAction(), contexts) == [0.0, 0.0]
    hook = AsyncLength()
    assert is_hook(hook)
    assert score_batch(hook, contexts) == [1.0, 3.0]
    assert hook.calls == [2]  # one batched call, not one per step


def test_score_batch_works_inside_a_running_event_loop() -> None:
    async def main() -> list[float]:
        return score_batch(AsyncLength(), [ctx("four")])

    assert asyncio.run(main()) == [4.0]


def test_score_batch_rejects_wrong_count_and_propagates_errors() -> None:
    class Short:
        name = "short"

        async def score(self, ctxs):
            return [1.0]

    with pytest.raises(RuntimeError, match="1 scores for 2 steps"):
        score_batch(Short(), [ctx(), ctx()])

    class Broken:
        name = "broken"

        async def score(self, ctxs):
            raise ConnectionError("judge unreachable")

    async def main() -> None:
        score_batch(Broken(), [ctx()])

    with pytest.raises(ConnectionError, match="judge unreachable"):
        asyncio.run(main())


def test_is_hook_rejects_non_hooks() -> None:
    assert not is_hook(object())
    assert not is_hook(lambda c: 1.0)  # no name

    class SyncScore:
        name = "x"

        def score(self, ctxs):
            return []

    assert not is_hook(SyncScore())
