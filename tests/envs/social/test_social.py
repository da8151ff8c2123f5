"""`turnwise/Social-v0`: scenarios, the seven-dimension rubric, the conversation and its judge."""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import turnwise
from turnwise.agents.policy import Generation, GenerationRequest
from turnwise.envs.social.env import PROGRESS_TERM, SocialEnv
from turnwise.envs.social.rubric import (
    DIMENSIONS,
    EPISODE_RUBRIC,
    parse_episode_scores,
    parse_goal_progress,
)
from turnwise.envs.social.scenarios import (
    CATEGORIES,
    ScenarioError,
    load_scenarios,
    shipped_scenarios,
)
from turnwise.judging import LLMJudge
from turnwise.matches import load_seat_agent, play_match
from turnwise.testing import check_env, check_parallel_env

P0, P1 = "player_0", "player_1"
SCORES_A = {"goal": 8, "believability": 9, "knowledge": 5, "secret": -2, "relationship": 1,
            "social_rules": 0, "financial": -1}  # fmt: skip
SCORES_B = {"goal": 3, "believability": 6, "knowledge": 2, "secret": 0, "relationship": -4,
            "social_rules": -5, "financial": 4}  # fmt: skip
EPISODE_REPLY = json.dumps({"agent_1": SCORES_A, "agent_2": SCORES_B})


class ScriptedJudge:
    """A judge policy answering episode questions with `episode` and turn questions in turn."""

    name = "scripted-judge"
    tokenizer = None

    def __init__(self, episode: Sequence[str] = (EPISODE_REPLY,), turns: Sequence[str] = ()):
        self.episode, self.turns = deque(episode), deque(turns)
        self.asked: list[GenerationRequest] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Generation]:
        out = []
        for request in requests:
            self.asked.append(request)
            assert request.messages is not None
            final = "Score each agent" in request.messages[1]["content"]
            queue = self.episode if final else self.turns
            text = queue.popleft() if len(queue) > 1 else queue[0]
            out.append(Generation(text, [1, 2, 3], None, "stop", [1] * 20))
        return out


def talk(env: SocialEnv, lines: Sequence[Any], task: str | None = None) -> list[Any]:
    env.reset(options={"task_id": task or env.tasks("train")[0]})
    steps = []
    for i, line in enumerate(lines):
        speaker, other = (P0, P1) if i % 2 == 0 else (P1, P0)
        steps.append(env.step({speaker: line, other: "ignored: not my turn"}))
    return steps


# ----------------------------------------------------------------------------- scenarios
def test_the_shipped_scenarios_cover_every_category_in_both_splits() -> None:
    train, test = shipped_scenarios("train"), shipped_scenarios("test")
    assert (len(train), len(test)) == (20, 10)
    assert not {s.id for s in train} & {s.id for s in test}
    assert set(Counter(s.category for s in shipped_scenarios())) == set(CATEGORIES)
    for scenario in shipped_scenarios():
        a, b = scenario.characters
        assert a.name != b.name and all(c.secret and c.background for c in (a, b))
        # Each goal concerns the other character, by first name.
        assert b.first_name in scenario.goals[0] and a.first_name in scenario.goals[1]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "line 1: not JSON"),
        ('{"id": "x"}', "'split' must be a string"),
        ("[1, 2]", "a scenario is a JSON object"),
    ],
)
def test_a_broken_scenario_file_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ScenarioError, match=message):
        load_scenarios(path)


def test_scenario_fields_are_checked(tmp_path: Path) -> None:
    good = shipped_scenarios()[0].to_dict()
    path = tmp_path / "s.jsonl"
    cases = [
        ({**good, "category": "romance"}, "unknown category"),
        ({**good, "goals": ["one"]}, "two strings"),
        ({**good, "characters": [{**good["characters"][0], "age": "30"}, good["characters"][1]]},
         "age must be an integer"),
        ({**good, "characters": [good["characters"][0]] * 2}, "share a name"),
    ]  # fmt: skip
    for data, message in cases:
        path.write_text(json.dumps(data) + "\n")
        with pytest.raises(ScenarioError, match=message):
            load_scenarios(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    with pytest.raises(ScenarioError, match="appears twice"):
        load_scenarios(path)
    path.write_text(json.dumps(good) + "\n")
    env = SocialEnv(scenarios=path, split=good["split"])
    assert env.tasks() == [good["id"]]


# ----------------------------------------------------------------------------- the rubric
def test_the_rubric_parses_both_agents_and_rejects_what_it_cannot_use() -> None:
    first, second = parse_episode_scores("Here you go:\n```json\n" + EPISODE_REPLY + "\n```")
    assert first == {k: float(v) for k, v in SCORES_A.items()}
    assert second["social_rules"] == -5.0
    nested = {d: {"reasoning": "r", "score": v} for d, v in SCORES_A.items()}
    assert parse_episode_scores(json.dumps({"agent_1": nested, "agent_2": SCORES_B}))[0] == first
    bad = [
        ({"agent_1": SCORES_A}, "no scores for agent_2"),
        ({"agent_1": {**SCORES_A, "goal": 11}, "agent_2": SCORES_B}, "goal score 11 is outside"),
        ({"agent_1": {**SCORES_A, "secret": 3}, "agent_2": SCORES_B}, "secret score 3"),
        ({"agent_1": {k: v for k, v in SCORES_A.items() if k != "knowledge"},
          "agent_2": SCORES_B}, "no score for knowledge"),
        ({"agent_1": {**SCORES_A, "goal": "high"}, "agent_2": SCORES_B}, "not a number"),
    ]  # fmt: skip
    for data, message in bad:
        with pytest.raises(ValueError, match=message):
            parse_episode_scores(json.dumps(data))
    assert parse_goal_progress('{"agent_1": 4, "agent_2": "6"}') == (4.0, 6.0)
    assert EPISODE_RUBRIC.id == "social-episode@v1" and set(DIMENSIONS) == set(SCORES_A)


# ----------------------------------------------------------------------------- the conversation
def test_seats_take_turns_and_see_each_others_lines() -> None:
    env = SocialEnv()
    obs, infos = env.reset(options={"task_id": env.tasks("train")[0]})
    me, other = env.scenario.characters
    assert (
        "You speak first" in obs[P0]["text"] and f"{me.first_name} speaks first" in obs[P1]["text"]
    )
    assert me.secret in infos[P0]["instruction"] and me.secret not in infos[P1]["instruction"]
    assert env.scenario.goals[1] in infos[P1]["instruction"]
    assert env.scenario.goals[0] not in infos[P1]["instruction"]
    assert "admissible_actions" not in infos[P0] and infos[P1]["admissible_actions"] == []
    obs, _rewards, *_, infos = env.step({P0: f"{me.first_name}: Good morning!", P1: "ignored"})
    assert obs[P1]["text"] == f'{me.name} said: "Good morning!"\nYour turn.'
    assert obs[P0]["text"].endswith(f"Waiting for {other.first_name}.")
    assert infos[P0]["valid_action"] and infos[P1]["valid_action"]
    env.step({P1: "[non-verbal] nods slowly", P0: ""})
    env.step({P0: "   ", P1: ""})  # a silent turn is invalid
    assert env.transcript().splitlines() == [
        f'Turn 1: {me.name} said: "Good morning!"',
        f"Turn 2: {other.name} [non-verbal] nods slowly",
        f"Turn 3: {me.name} said nothing.",
    ]


def test_a_silent_or_rejected_turn_is_invalid_and_leaving_ends_the_talk() -> None:
    env = SocialEnv()
    steps = talk(env, ["", None, "[action]", "Leave."])
    assert [s[4][P0 if i % 2 == 0 else P1]["valid_action"] for i, s in enumerate(steps)] == [
        False, False, False, True,
    ]  # fmt: skip
    *_, terminated, truncated, _infos = steps[-1]
    assert terminated == {P0: True, P1: True} and not truncated[P0] and env.agents == []
    assert steps[-1][0][P0]["text"].endswith("The conversation is over.")


def test_the_judge_scores_seven_dimensions_at_the_end() -> None:
    judge = ScriptedJudge()
    env = SocialEnv(judge=judge, max_turns=4)
    steps = talk(env, ["Hello.", "Hi.", "Deal?", "Deal."])
    assert [s[2][P0] for s in steps[:-1]] == [False] * 3  # not over before max_turns
    obs, rewards, terminated, _, infos = steps[-1]
    assert terminated[P0] and "over" in obs[P1]["text"]
    terms = infos[P0]["reward_terms"]
    # Each score over its range's largest magnitude: goal/10, relationship/5, financial/5, ...
    assert terms == pytest.approx(
        {"goal": 0.8, "believability": 0.9, "knowledge": 0.5, "secret": -0.2,
         "relationship": 0.2, "social_rules": 0.0, "financial": -0.2, "valid": 0.0}
    )  # fmt: skip
    # The default weights average the seven: Sotopia's overall score, scaled.
    assert rewards[P0] == pytest.approx((0.8 + 0.9 + 0.5 - 0.2 + 0.2 + 0.0 - 0.2) / 7)
    assert rewards[P1] == pytest.approx((0.3 + 0.6 + 0.2 + 0.0 - 0.8 - 0.5 + 0.8) / 7)
    assert infos[P0]["success"] is True and infos[P1]["success"] is False  # goal 8 vs 3 (of 7)
    verdict = infos[P1]["judge"]
    assert verdict["scores"]["goal"] == 3.0 and not verdict["missing"]
    assert verdict["prompt"] == "social-episode@v1" and verdict["judge"] == "scripted-judge"
    # The judge saw both goals, both secrets and the transcript.
    asked = judge.asked[-1].messages
    assert asked is not None
    prompt = asked[1]["content"]
    for text in (*env.scenario.goals, *(c.secret for c in env.scenario.characters), "Deal."):
        assert text in prompt
    assert env.judge is not None and env.judge.stats.calls == 1


def test_turn_level_progress_is_potential_based() -> None:
    turns = ['{"agent_1": 2, "agent_2": 1}', '{"agent_1": 5, "agent_2": 1}', "garbage",
             "still garbage", '{"agent_1": 4, "agent_2": 6}']  # fmt: skip
    judge = LLMJudge(ScriptedJudge(turns=turns), retries=1)
    env = SocialEnv(judge=judge, judge_every_turn=True, max_turns=5)
    steps = talk(env, ["a", "b", "c", "d", "e"])
    progress = [s[4][P0]["reward_terms"].get(PROGRESS_TERM) for s in steps[:-1]]
    # 0 -> 2 -> 5, then a missing verdict (no term, potential kept), then 5 -> 4.
    assert progress[2] is None and steps[2][4][P0]["judge"]["missing"]
    assert [p for p in progress if p is not None] == pytest.approx([0.2, 0.3, -0.1])
    assert sum(s[4][P1]["reward_terms"].get(PROGRESS_TERM, 0) for s in steps[:-1]) == (
        pytest.approx(0.6)
    )
    assert judge.stats.missing == 1 and judge.stats.retries == 1


def test_a_missing_verdict_is_recorded_never_zero() -> None:
    judge = LLMJudge(ScriptedJudge(episode=["I liked it."]), retries=2)
    env = SocialEnv(judge=judge, max_turns=2)
    *_, (_obs, rewards, _terminated, _, infos) = talk(env, ["Hi.", "Bye."])
    for seat in (P0, P1):
        assert infos[seat]["reward_terms"] == {"valid": 0.0} and rewards[seat] == 0.0
        assert infos[seat]["judge"]["missing"] and infos[seat]["success"] is False
        assert "no JSON object" in infos[seat]["judge"]["error"]
        assert infos[seat]["judge"]["replies"] == ["I liked it."] * 3
    assert judge.stats.missing == 1 and judge.stats.calls == 3


def test_replays_are_deterministic_and_ask_the_judge_once() -> None:
    judge = ScriptedJudge()
    env = SocialEnv(judge=judge, max_turns=4)
    first = talk(env, ["Hello.", "Hi.", "Deal?", "leave"], task=env.tasks("test")[0])
    second = talk(env, ["Hello.", "Hi.", "Deal?", "leave"], task=env.tasks("test")[0])
    assert repr(first) == repr(second) and len(judge.asked) == 1


def test_conformance_with_and_without_a_judge() -> None:
    check_parallel_env(SocialEnv(), n_tasks=1)
    check_parallel_env(SocialEnv(judge=ScriptedJudge(), judge_every_turn=True), n_tasks=1)
    env = turnwise.make("turnwise/Social-v0", judge=ScriptedJudge())
    assert env.judge.name == "scripted-judge"
    with pytest.raises(TypeError, match="judge_cache needs a judge"):
        SocialEnv(judge_cache="cache.jsonl")


# ----------------------------------------------------------------------------- a real judge
def test_any_openai_compatible_server_can_judge(chat_server: Any, tmp_path: Path) -> None:
    chat_server.replies.extend(["Both did well.", EPISODE_REPLY])
    bodies = chat_server.bodies
    spec = f"openai:{chat_server.url}/v1#judge-model"
    env = SocialEnv(judge=spec, judge_cache=tmp_path / "cache.jsonl", max_turns=2)
    *_, (_, _, _, _, infos) = talk(env, ["Hi.", "Bye."])
    assert infos[P0]["judge"]["scores"]["goal"] == 8.0 and not infos[P0]["judge"]["missing"]
    assert len(bodies) == 2 and bodies[1]["messages"][-2]["content"] == "Both did well."
    assert bodies[0]["model"] == "judge-model" and bodies[0]["temperature"] == 0.0
    stats = env.judge.stats  # type: ignore[union-attr]
    assert (stats.calls, stats.retries, stats.prompt_tokens, stats.completion_tokens) == (
        2, 1, 200, 40,
    )  # fmt: skip
    # A second env with the same cache file replays the verdict without a request.
    again = SocialEnv(judge=spec, judge_cache=tmp_path / "cache.jsonl", max_turns=2)
    *_, (_, _, _, _, infos) = talk(again, ["Hi.", "Bye."])
    assert infos[P1]["judge"]["scores"]["goal"] == 3.0 and len(bodies) == 2


def test_a_local_model_as_judge_gives_missing_verdicts_when_it_cannot_answer() -> None:
    """The tiny offline model writes no JSON: after the retries its verdicts are missing."""
    pytest.importorskip("transformers")
    from turnwise.agents.hf import HFPolicy
    from turnwise.agents.policy import Sampling
    from turnwise.agents.tiny import default_checkpoint

    policy = HFPolicy.from_pretrained(default_checkpoint(), device="cpu")
    judge = LLMJudge(policy, retries=1, sampling=Sampling(0.0, max_tokens=16))
    env = SocialEnv(judge=judge, max_turns=2)
    *_, (_, _, _, _, infos) = talk(env, ["Hi.", "Bye."])
    assert infos[P0]["judge"]["missing"] and len(infos[P0]["judge"]["replies"]) == 2
    assert judge.stats.calls == 2 and judge.stats.completion_tokens > 0


# ----------------------------------------------------------------------------- seats and matches
def test_one_seat_against_a_partner_is_a_single_agent_env() -> None:
    env = turnwise.make(
        "turnwise/SingleAgent-v0", env="turnwise/Social-v0", partners="random", learner=P1
    )
    check_env(env, n_tasks=1)
    obs, info = env.reset(seed=3)
    # player_0 speaks first: its line is already in the learner's first observation.
    assert "speaks first" in obs["text"] and "said" in obs["text"] and "Your turn." in obs["text"]
    assert "Your goal:" in info["instruction"]


def test_a_match_reports_returns_judges_and_transcripts() -> None:
    env = SocialEnv(judge=ScriptedJudge(), max_turns=4)
    agents = {seat: load_seat_agent("random", env, seat, seed=i) for i, seat in enumerate((P0, P1))}
    results = play_match(env, agents, episodes=2, split="test")
    assert [r.turns for r in results] == [4, 4]
    assert {r.task_id for r in results} <= set(env.tasks("test"))
    assert results[0].judge[P0]["scores"]["goal"] == 8.0
    assert results[0].transcript is not None and results[0].transcript.count("Turn ") == 4
    again = play_match(env, agents, episodes=2, split="test")
    assert [r.to_dict() for r in again] == [r.to_dict() for r in results]
