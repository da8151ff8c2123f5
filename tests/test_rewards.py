from __future__ import annotations

import asyncio
import math

import pytest

from turnwise.parsing import parse_tagged
from turnwise.rewards import (
    Format,
    GaussianClick,
    StepContext,
    ValidAction,
    gaussian_coverage,
    gaussian_point,
    is_hook,
    score_batch,
)


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


# ---------------------------------------------------------------------------- GUI-G² grounding
BOX = (100.0, 50.0, 80.0, 20.0)  # left, top, width, height: centre (140, 60), σ = (40, 10)


def test_gaussian_point_known_answers() -> None:
    assert gaussian_point((140, 60), BOX) == 1.0
    # One σ right of the centre in x (σx = 0.5 × 80 = 40): exp(-1/2).
    assert gaussian_point((180, 60), BOX) == pytest.approx(math.exp(-0.5))
    # One σ in x and two in y: exp(-(1 + 4) / 2).
    assert gaussian_point((180, 80), BOX) == pytest.approx(math.exp(-2.5))
    # The variance adapts to the element: the same 10-pixel miss costs a thin box more.
    wide, thin = (0.0, 0.0, 200.0, 20.0), (90.0, 0.0, 20.0, 20.0)
    assert gaussian_point((110, 10), wide) > gaussian_point((110, 10), thin)
    assert gaussian_point((140, 60), BOX, alpha=0.25) == 1.0
    assert gaussian_point((180, 60), BOX, alpha=0.25) == pytest.approx(math.exp(-2.0))


def test_gaussian_coverage_known_answers() -> None:
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    # Centred: the box spans ±1σ in both axes.
    assert gaussian_coverage((140, 60), BOX) == pytest.approx((phi(1) - phi(-1)) ** 2)
    # On the left edge: [0, 2σ] in x, ±1σ in y.
    assert gaussian_coverage((100, 60), BOX) == pytest.approx(
        (phi(2) - phi(0)) * (phi(1) - phi(-1))
    )
    # A predicted element of its own size (smaller σ) puts more mass inside.
    assert gaussian_coverage((140, 60), BOX, predicted_size=(40, 10)) == pytest.approx(
        (phi(2) - phi(-2)) ** 2
    )
    assert gaussian_coverage((900, 900), BOX) == pytest.approx(0.0, abs=1e-12)


def test_gaussian_rewards_handle_empty_boxes() -> None:
    # Zero-size boxes fall back to σ = 1 pixel instead of dividing by zero.
    assert gaussian_point((10, 10), (10, 10, 0, 0)) == 1.0
    assert gaussian_point((11, 10), (10, 10, 0, 0)) == pytest.approx(math.exp(-0.5))
    assert gaussian_coverage((10, 10), (10, 10, 0, 0)) == 0.0


def test_gaussian_click_hook_reads_the_point_and_the_target_box() -> None:
    hook = GaussianClick(point_weight=2.0, coverage_weight=1.0)
    expected = 2 * gaussian_point((180, 60), BOX) + gaussian_coverage((180, 60), BOX)
    assert hook(ctx("click(180, 60)", point=[180, 60], target_box=list(BOX))) == pytest.approx(
        expected
    )
    assert is_hook(hook)
    assert hook(ctx("key('enter')", target_box=list(BOX))) == 0.0  # no point, no score
    assert hook(ctx("click(1, 1)", point=[1, 1])) == 0.0  # no target known
    with pytest.raises(ValueError, match="alpha"):
        GaussianClick(alpha=0.0)


class _Replies:
    """A judge policy answering from a list, recording the prompts it got."""

    name, tokenizer = "replies", None

    def __init__(self, *texts: str) -> None:
        self.texts, self.prompts = list(texts), []

    def generate(self, requests):  # type: ignore[no-untyped-def]
        from turnwise.agents.policy import Generation

        self.prompts += [r.messages[-1]["content"] for r in requests]
        return [Generation(self.texts.pop(0), [1], None, "stop", [1, 1]) for _ in requests]


def test_judge_reward_scores_steps_and_leaves_missing_ones_out() -> None:
    import turnwise
    from turnwise.rewards import JudgeReward
    from turnwise.wrappers import ProcessRewards

    policy = _Replies('{"reasoning": "progress", "score": 7}', "no idea", "still none")
    hook = JudgeReward(policy, name="judge")
    hook.judge.retries = 1
    env = ProcessRewards(turnwise.make("turnwise/KeyDoor-v0"), [hook], {"judge": 0.5})
    _, info = env.reset(seed=0)
    *_, reward, _, _, info = env.step("look")
    assert info["reward_terms"]["judge"] == pytest.approx(0.7)
    assert reward == pytest.approx(sum(info["reward_weights"].get(k, 1.0) * v
                                       for k, v in info["reward_terms"].items()))  # fmt: skip
    assert "Task: " in policy.prompts[0] and "It did:\nlook" in policy.prompts[0]
    # Malformed twice (a retry): the term is missing, not zero, and the info says so.
    _, reward, _, _, info = env.step("look")
    assert "judge" not in info["reward_terms"] and info["missing_terms"] == ["judge"]
    assert "- saw:" in policy.prompts[1] and "could not be read" in policy.prompts[2]
    assert hook.judge.stats.missing == 1 and hook.judge.stats.retries == 1
    with pytest.raises(ValueError, match="scale"):
        JudgeReward(policy, scale=0)
