"""`LLMJudge`: versioned prompts, the cache, counted calls, retries and missing verdicts."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.judging import JudgePrompt, LLMJudge, extract_json


class Scripted:
    """A policy answering from a list of replies, one per request, recording what it was asked."""

    name = "scripted"
    tokenizer = None

    def __init__(self, replies: Sequence[str], *, fail: bool = False) -> None:
        self.replies = list(replies)
        self.asked: list[GenerationRequest] = []
        self.fail = fail

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        if self.fail:
            raise ConnectionError("judge server down")
        self.asked.extend(requests)
        out = []
        for _ in requests:
            text = self.replies.pop(0)
            out.append(Generation(text, [7] * len(text.split()), None, "stop", [1] * 10))
        return out


def parse_grade(text: str) -> int:
    data = extract_json(text)
    grade = data.get("grade") if isinstance(data, dict) else None
    if not isinstance(grade, int) or not 0 <= grade <= 10:
        raise ValueError('give {"grade": N} with N from 0 to 10')
    return grade


RUBRIC = JudgePrompt("grade", 1, "You grade answers.", "Answer: {answer}", parse_grade)


def test_a_verdict_is_parsed_cached_and_counted() -> None:
    policy = Scripted(['Sure. {"grade": 6}'])
    judge = LLMJudge(policy, price_per_mtok=(1.0, 2.0))
    first = judge.ask(RUBRIC, answer="4")
    again = judge.ask(RUBRIC, answer="4")
    assert (first.value, first.cached, again.value, again.cached) == (6, False, 6, True)
    assert first.prompt == again.prompt == "grade@v1"
    assert len(policy.asked) == 1  # the second question cost nothing
    stats = judge.stats
    assert (stats.questions, stats.calls, stats.cache_hits, stats.retries, stats.missing) == (
        2, 1, 1, 0, 0,
    )  # fmt: skip
    # 10 prompt tokens at $1/M and 3 completion tokens at $2/M.
    assert (stats.prompt_tokens, stats.completion_tokens) == (10, 3)
    assert stats.cost_usd == pytest.approx((10 * 1.0 + 3 * 2.0) / 1e6)


def test_a_malformed_reply_is_answered_and_asked_again() -> None:
    policy = Scripted(["I think it is fine.", '{"grade": 11}', '{"grade": 3}'])
    judge = LLMJudge(policy, retries=2)
    verdict = judge.ask(RUBRIC, answer="x")
    assert (
        verdict.value == 3 and verdict.replies[-1] == '{"grade": 3}' and len(verdict.replies) == 3
    )
    retry = policy.asked[1].messages
    assert retry is not None and retry[-2] == {
        "role": "assistant",
        "content": "I think it is fine.",
    }
    assert "could not be read" in retry[-1]["content"] and "no JSON object" in retry[-1]["content"]
    assert judge.stats.retries == 2 and judge.stats.calls == 3 and judge.stats.missing == 0


def test_a_judge_that_never_parses_is_missing_not_zero() -> None:
    judge = LLMJudge(Scripted(["no", "still no"]), retries=1)
    verdict = judge.ask(RUBRIC, answer="x")
    assert verdict.missing and verdict.value is None
    assert verdict.error is not None and "no JSON object" in verdict.error
    assert verdict.replies == ["no", "still no"]
    assert judge.stats.missing == 1
    # A missing verdict is not cached: the next ask tries again.
    judge.policy.replies = ['{"grade": 2}']
    assert judge.ask(RUBRIC, answer="x").value == 2


def test_a_failing_policy_leaves_verdicts_missing() -> None:
    judge = LLMJudge(Scripted([], fail=True))
    verdicts = judge.ask_many(RUBRIC, [{"answer": "a"}, {"answer": "b"}])
    assert [v.missing for v in verdicts] == [True, True]
    assert "judge server down" in str(verdicts[0].error)
    assert judge.stats.missing == 2 and judge.stats.calls == 0


def test_versions_and_wording_key_the_cache(tmp_path: Path, caplog: Any) -> None:
    cache = tmp_path / "judge.jsonl"
    judge = LLMJudge(Scripted(['{"grade": 5}']), cache=cache)
    assert judge.ask(RUBRIC, answer="q").value == 5
    # A new process with the same cache file asks nothing new.
    later = LLMJudge(Scripted([]), cache=cache)
    assert later.ask(RUBRIC, answer="q").cached
    # A new version of the prompt is a different question.
    v2 = JudgePrompt("grade", 2, RUBRIC.system, RUBRIC.user, parse_grade)
    later.policy.replies = ['{"grade": 9}']
    assert later.ask(v2, answer="q").value == 9
    # A broken cache line is skipped with a warning, not fatal.
    with cache.open("a") as f:
        f.write("{not json\n")
    with caplog.at_level(logging.WARNING):
        third = LLMJudge(Scripted([]), cache=cache)
    assert "broken cache entry" in caplog.text
    assert third.ask(v2, answer="q").value == 9
    assert [json.loads(line)["prompt"] for line in cache.read_text().splitlines()[:2]] == [
        "grade@v1",
        "grade@v2",
    ]


def test_a_spec_string_loads_the_policy_and_bad_ones_fail_clearly() -> None:
    with pytest.raises(ValueError, match="unknown policy spec"):
        LLMJudge("gpt-4")
    with pytest.raises(TypeError, match="policy spec or a Policy"):
        LLMJudge(42)
    with pytest.raises(ValueError, match="retries"):
        LLMJudge(Scripted([]), retries=-1)
