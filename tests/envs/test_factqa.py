"""Tests of `turnwise/FactQA-v0`: rules, rewards, expert, gold answers, splits, determinism."""

from __future__ import annotations

import itertools
import math
import random
import re
from typing import Any

import gymnasium
import pytest

import turnwise
from turnwise.envs.factqa import FactQAEnv
from turnwise.envs.factqa.kb import (
    MAX_RESULTS,
    SPLIT_SIZES,
    Catalog,
    generate,
    name_pool,
    name_split,
    normalise,
    words,
)
from turnwise.info import validate_reset_info, validate_step_info, weighted_reward
from turnwise.registry import entry

DIFFICULTIES = ("easy", "medium")
SPLITS = ("train", "valid", "test")
# medium-train-00001 asks for the flag of Midra Marton's birth country (Soris). Pinned so that
# generation never changes under the versioned id.
FLAG = "medium-train-00001"
FLAG_QUESTION = "What colour is the flag of the country where Midra Marton was born?"
GRAMMAR = "Commands: search <words>, read <title>, answer <text>."


def make(difficulty: str = "easy", **kwargs: Any) -> FactQAEnv:
    return FactQAEnv(difficulty, **kwargs)


def play(env: FactQAEnv, actions: list[Any]) -> list[tuple[Any, ...]]:
    """Step through `actions`; return everything observable about each step."""
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs["text"], reward, terminated, truncated, repr(sorted(info.items()))))
    return out


def expert_episode(env: FactQAEnv, task_id: str, seed: int = 0) -> tuple[dict[str, Any], list]:
    _, reset_info = env.reset(seed=seed, options={"task_id": task_id})
    steps = []
    info = reset_info
    while (action := env.expert_action()) is not None:
        if not action.startswith("search "):
            assert action in info["admissible_actions"]
        _, reward, terminated, truncated, info = env.step(action)
        assert not truncated, f"{task_id}: the expert ran out of turns"
        steps.append({**info, "action": action, "reward": reward, "terminated": terminated})
    return reset_info, steps


def random_episode(env: FactQAEnv, rng: random.Random, seed: int) -> list[dict[str, Any]]:
    """Uniformly random admissible actions until the episode ends."""
    _, info = env.reset(seed=seed)
    steps = []
    while True:
        action = rng.choice(info["admissible_actions"])
        _, reward, terminated, truncated, info = env.step(action)
        steps.append({**info, "action": action, "reward": reward})
        if terminated or truncated:
            return steps


# -------------------------------------------------------------------- making and contract
def test_registered_and_made_through_turnwise_and_gymnasium() -> None:
    record = entry("turnwise/FactQA-v0")
    assert record.family == "text" and record.available
    assert record.entry_point == "turnwise.envs.factqa.env:FactQAEnv"
    assert record in turnwise.list_envs("text")
    env = turnwise.make("turnwise/FactQA-v0", difficulty="easy")
    assert isinstance(env.unwrapped, FactQAEnv) and env.unwrapped.max_turns == 8
    _, info = env.reset(seed=1)
    assert info["task_id"].startswith("easy-train-")
    env.close()
    genv = gymnasium.make("turnwise/FactQA-v0", split="test")
    _, info = genv.reset(seed=2)
    assert info["task_id"].startswith("medium-test-") and info["max_turns"] == 12
    genv.close()


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_check_env_passes(difficulty: str) -> None:
    from turnwise.testing import check_env

    check_env(make(difficulty), n_tasks=3, seed=0, expert=True)


def test_reset_info_and_defaults() -> None:
    env = make("medium")
    obs, info = env.reset(seed=0, options={"task_id": FLAG})
    assert validate_reset_info(info) == []
    assert info["instruction"] == FLAG_QUESTION
    assert info["gold_answer"] == "brown"
    assert info["max_turns"] == 12 and info["split"] == "train" and info["state_key"] == "read="
    assert info["admissible_actions"] == ["search Midra Marton"]
    assert obs["text"].startswith(f"Question: {FLAG_QUESTION}\n") and GRAMMAR in obs["text"]
    assert env.reward_weights == {"valid": 0.1, "outcome": 1.0, "progress": 0.5}
    assert make("easy").max_turns == 8 and make("easy", max_turns=3).max_turns == 3
    assert [len(make(d).tasks(s)) for d in DIFFICULTIES for s in SPLITS] == [1000, 100, 200] * 2


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="unknown difficulty 'hard'; choose one of easy, medium"):
        make("hard")
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make(split="dev")
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        make(max_turns=0)
    env = make("easy")
    with pytest.raises(KeyError, match="medium-train-00001"):
        env.reset(options={"task_id": FLAG})  # a medium task in an easy env
    with pytest.raises(KeyError):
        Catalog.of("easy").seed("easy-train-01000")


# -------------------------------------------------------------------- the expert and gold answers
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("split", SPLITS)
def test_expert_solves_and_answers_the_gold_answer(difficulty: str, split: str) -> None:
    env = make(difficulty, split=split)
    hops = 1 if difficulty == "easy" else 2
    ids = env.tasks()
    for task_id in ids[:: max(1, len(ids) // 25)]:
        reset_info, steps = expert_episode(env, task_id, seed=len(task_id))
        assert steps[-1]["terminated"] and steps[-1]["success"]
        assert steps[-1]["action"] == f"answer {reset_info['gold_answer']}"
        assert reset_info["gold_answer"] == env.task.answer
        assert steps[-1]["action"] == reset_info["gold_action"]
        # search, read, ..., answer; a search may already list the next needed document.
        reads = [s["action"].removeprefix("read ") for s in steps if s["action"].startswith("read")]
        assert tuple(reads) == env.task.needed
        assert steps[0]["action"] == f"search {env.task.needed[0]}"
        assert hops + 2 <= len(steps) <= 2 * hops + 1 <= env.max_turns // 2 + 1
        assert all(s["valid_action"] for s in steps)
        assert math.isclose(sum(s["reward_terms"]["progress"] for s in steps), 1.0)
        assert sum(s["reward"] for s in steps) == pytest.approx(1.0 + 0.5)


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_questions_need_exactly_their_documents(difficulty: str) -> None:
    """The answer is in the last needed document and no earlier one; each needed document
    names the next; every document has 2 to 4 sentences."""
    for index in range(0, 1000, 20):
        task = generate(difficulty, "train", index)
        assert len(task.needed) == (1 if difficulty == "easy" else 2)
        assert task.needed[0] == task.question_links[0] and task.needed[0] in task.question
        docs = [task.documents[t] for t in task.needed]
        assert task.answer in docs[-1].mentions and task.answer in docs[-1].text
        for earlier, later in itertools.pairwise(docs):
            assert task.answer not in earlier.mentions and later.title in earlier.links
        for doc in task.documents.values():
            assert 2 <= len(re.findall(r"[.!?](?:\s|$)", doc.text)) <= 4, doc.text
            assert doc.body_words == words(doc.text) and doc.title_words == words(doc.title)
            assert set(doc.links) <= set(task.documents)
        # Searching a needed title always lists it first.
        assert all(task.search(title)[0] == title for title in task.needed)


def test_random_agent_rarely_succeeds() -> None:
    rates = {}
    for difficulty in DIFFICULTIES:
        env = make(difficulty)
        rng = random.Random(0)
        episodes = [random_episode(env, rng, seed) for seed in range(300)]
        rates[difficulty] = sum(e[-1]["success"] for e in episodes) / len(episodes)
    # About 9% (easy) and 1% (medium) over thousands of episodes.
    assert 0.0 < rates["easy"] < 0.2, rates
    assert rates["medium"] < 0.05, rates


# -------------------------------------------------------------------- rewards
def test_progress_is_potential_based() -> None:
    env = make("medium")
    env.reset(seed=0, options={"task_id": FLAG})
    transcript = [
        ("search Midra", 0.0),
        ("read Midra Dunbrook", 0.0),  # not needed
        ("read Midra Marton", 0.5),
        ("read Midra Marton", 0.0),  # again: nothing new
        ("search Soris", 0.0),
        ("read soris", 0.5),
    ]
    for action, progress in transcript:
        *_, info = env.step(action)
        assert info["valid_action"], action
        assert info["reward_terms"]["progress"] == progress, action
    assert env.read == ("Midra Dunbrook", "Midra Marton", "Soris")
    *_, info = env.step("answer Brown")
    assert info["reward_terms"] == {"outcome": 1.0, "progress": 0.0, "valid": 0.0}


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_progress_sums_to_at_most_one_and_to_one_when_all_needed_read(difficulty: str) -> None:
    env = make(difficulty, reward_weights={"valid": 0.3, "progress": 2.0, "outcome": 5.0})
    rng = random.Random(1)
    for seed in range(60):
        _, info = env.reset(seed=seed)
        total = 0.0
        for turn in range(env.max_turns):
            choices = [*info["admissible_actions"], "read Nowhere"]
            action = env.expert_action() if turn % 3 == 0 else rng.choice(choices)
            _, reward, terminated, truncated, info = env.step(action)
            assert validate_step_info(info, float(reward), terminated or truncated) == []
            assert reward == pytest.approx(
                weighted_reward(info["reward_terms"], env.reward_weights)
            )
            total += info["reward_terms"]["progress"]
            assert info["reward_terms"]["progress"] >= 0.0
            all_read = set(env.task.needed) <= set(env.read)
            assert math.isclose(total, 1.0) if all_read else total < 1.0
            if terminated or truncated:
                break
        assert total <= 1.0 + 1e-12


# -------------------------------------------------------------------- answers
def test_answer_normalisation() -> None:
    assert normalise("  'The   Amber Window'. ") == "the amber window"
    assert normalise("«Brown»!") == normalise("BROWN") == "brown"
    assert normalise("St. Ives") == "st. ives"  # inner punctuation stays
    assert normalise("...") == normalise("   ") == ""
    env = make("medium")
    for answer, correct in [
        ("brown", True),
        ("  BROWN. ", True),
        ('"Brown"', True),
        ("brown!?", True),
        ("answer brown", False),
        ("brown colour", False),
        ("b r o w n", False),
        ("green", False),
    ]:
        env.reset(seed=0, options={"task_id": FLAG})
        obs, _, terminated, truncated, info = env.step(f"answer {answer}")
        assert terminated and not truncated and info["valid_action"], answer
        assert info["success"] is correct and info["reward_terms"]["outcome"] == float(correct)
        assert obs["text"] == ("Your answer is correct." if correct else "Your answer is wrong.")
        assert env.admissible_actions() == [] and env.expert_action() is None
    # The verb is case-insensitive and may carry a colon.
    env.reset(seed=0, options={"task_id": FLAG})
    assert env.step("Answer: Brown")[4]["success"] is True


# -------------------------------------------------------------------- invalid actions
def test_invalid_actions_say_what_was_wrong() -> None:
    cases = {
        "": f"empty command. {GRAMMAR}",
        "   ": f"empty command. {GRAMMAR}",
        "dance": f"unknown command 'dance'. {GRAMMAR}",
        "<script>alert(1)</script>": f"unknown command. {GRAMMAR}",
        "search": "search for what? Type 'search <words>'; names from the question work best.",
        "search the of ?!": "search for what? Type 'search <words>'; names from the question "
        "work best.",
        "read": "read what? Type 'read <title>' with a title a search listed.",
        "read Soris": "no document titled 'Soris' has appeared in your search results; search "
        "first, then read one of the titles it lists.",
        "read Atlantis": "no document titled 'Atlantis' has appeared in your search results; "
        "search first, then read one of the titles it lists.",
        "read \x1b[31mSoris": "no document titled has appeared in your search results; search "
        "first, then read one of the titles it lists.",
        "answer": "answer what? Type 'answer <your answer>'.",
        "answer ...": "answer what? Type 'answer <your answer>'.",
    }
    env = make("medium", max_turns=50)
    env.reset(seed=0, options={"task_id": FLAG})
    env.step("search Midra Marton")
    env.step("read Midra Marton")  # Soris is named in it, but no search has listed it yet
    before = (env.state_key(), env.admissible_actions(), env.read)
    for action, problem in cases.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs["text"] == f"Invalid action: {problem}", action
        assert not info["valid_action"] and not terminated
        assert info["reward_terms"] == {"outcome": 0.0, "progress": 0.0, "valid": -1.0}
        assert reward == pytest.approx(-0.1)
        assert (env.state_key(), env.admissible_actions(), env.read) == before
        assert not truncated


def test_search_with_no_match_is_valid_and_lists_nothing() -> None:
    env = make("easy")
    _, info = env.reset(seed=0)
    obs, reward, *_, info = env.step("search zzzqqq")
    assert obs["text"] == "No document matches those words."
    assert info["valid_action"] and reward == 0.0
    assert not any(a.startswith("read ") for a in info["admissible_actions"])


def test_turn_limit_truncates() -> None:
    env = make("easy")
    env.reset(seed=3)
    for turn in range(1, 9):
        _, _, terminated, truncated, info = env.step("search the")
        assert not terminated and truncated == (turn == 8)
    assert info["truncation_reason"] == "max_turns" and info["success"] is False


# -------------------------------------------------------------------- search, admissible, state
def test_search_ranks_titles_first_and_lists_at_most_five() -> None:
    task = generate("medium", "train", 123)
    for title in task.documents:
        results = task.search(title)
        assert results[0] == title and len(results) <= MAX_RESULTS
        assert task.search(title.upper()) == results
    assert task.search("") == task.search("the of") == []
    assert len(task.search("city")) == MAX_RESULTS  # a word that every city document has


def test_admissible_actions_are_valid() -> None:
    """Every admissible action is valid, at every state of a few random episodes."""
    env = make("medium")
    rng = random.Random(3)
    for seed in range(4):
        _, info = env.reset(seed=seed)
        task_id, path = info["task_id"], []
        while True:
            admissible = info["admissible_actions"]
            assert admissible and len(admissible) == len(set(admissible))
            assert sum(a.startswith("search ") for a in admissible) <= 3
            for action in admissible:
                env.reset(seed=seed, options={"task_id": task_id})
                play(env, path)
                assert env.step(action)[4]["valid_action"], (path, action)
            env.reset(seed=seed, options={"task_id": task_id})
            play(env, path)
            action = rng.choice(admissible)
            path.append(action)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break


def test_admissible_actions_offer_reads_searches_and_answers() -> None:
    env = make("medium")
    _, info = env.reset(seed=0, options={"task_id": FLAG})
    env.step("search Midra Marton")
    *_, info = env.step("read Midra Marton")
    assert info["admissible_actions"] == [
        "search Suavik",
        "search Soris",
        "search Suossa",
        "read Midra Marton",
        "read Midra Dunbrook",
        "read Midra Fenmoor",
        "read The Amber Window",
        "answer Suavik",
        "answer Soris",
        "answer astronomer",
        "answer Suossa",
    ]
    # A name already searched is no longer suggested.
    *_, info = env.step("search soris")
    assert "search Soris" not in info["admissible_actions"]


def test_state_key_is_the_documents_read() -> None:
    env = make("medium")
    _, info = env.reset(seed=0, options={"task_id": FLAG})
    assert info["state_key"] == "read="
    assert env.step("search Midra")[4]["state_key"] == "read="
    assert env.step("read Midra Marton")[4]["state_key"] == "read=Midra Marton"
    env.step("search Soris")
    assert env.step("read Soris")[4]["state_key"] == "read=Midra Marton,Soris"
    # Another order, other searches: the same key.
    env.reset(seed=5, options={"task_id": FLAG})
    play(env, ["search Soris", "read Soris", "search Marton", "read Midra Marton"])
    assert env.state_key() == "read=Midra Marton,Soris"


# -------------------------------------------------------------------- splits
def _entity_key(name: str, people: set[str]) -> str:
    """The string whose hash decides a name's split (people: their surname)."""
    return name.split()[-1] if name in people else name.removeprefix("The ")


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_splits_share_no_entity(difficulty: str) -> None:
    catalog = Catalog.of(difficulty)
    seen: dict[str, set[str]] = {}
    for split in SPLITS:
        ids = catalog.ids(split)
        names: set[str] = set()
        for task_id in ids[:: max(1, len(ids) // 150)]:
            task = catalog.task(task_id)
            people = {t for t, d in task.documents.items() if "was born in" in d.text}
            for name in task.entities:
                assert name_split(_entity_key(name, people)) == split, (task_id, name)
            names |= task.entities
        seen[split] = names
    assert not seen["train"] & seen["valid"]
    assert not seen["train"] & seen["test"]
    assert not seen["valid"] & seen["test"]
    for kind in ("surname", "city", "country", "river", "work"):
        pools = [set(name_pool(kind, split)) for split in SPLITS]
        assert all(pools) and not (
            pools[0] & pools[1] or pools[0] & pools[2] or pools[1] & pools[2]
        )


# -------------------------------------------------------------------- determinism
def test_generation_is_pinned() -> None:
    """Tasks of a versioned id must never change (nor depend on NumPy or Python versions)."""
    env = make("medium")
    env.reset(options={"task_id": FLAG})
    task = env.task
    assert (task.question, task.answer, task.needed) == (
        FLAG_QUESTION,
        "brown",
        ("Midra Marton", "Soris"),
    )
    assert task.documents["Soris"].text == (
        "Soris is a country whose capital is Nimholm. The flag of Soris is brown. "
        "The national animal of Soris is the bear. Soris borders Quaesh."
    )
    assert Catalog.of("easy").seed("easy-test-00199") == ("test", 7510907135911856603)
    assert generate("easy", "valid", 99) == generate("easy", "valid", 99)
    assert SPLIT_SIZES == {"train": 1000, "valid": 100, "test": 200}


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_same_task_and_seed_replay_byte_for_byte(difficulty: str) -> None:
    rng = random.Random(0)
    env = make(difficulty)
    task_id = env.tasks()[17]
    _, info = env.reset(seed=3, options={"task_id": task_id})
    actions: list[Any] = []
    for _ in range(env.max_turns):
        choices = [*info["admissible_actions"], "read Nowhere", "", "SEARCH the city"]
        action = rng.choice(choices)
        actions.append(action)
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    first_reset = env.reset(seed=3, options={"task_id": task_id})
    first = play(env, actions)
    again = make(difficulty)
    second_reset = again.reset(seed=3, options={"task_id": task_id})
    assert first_reset == second_reset
    assert first == play(again, actions)


def test_seed_alone_picks_the_task_deterministically() -> None:
    env = make("medium")
    picks = [env.reset(seed=s)[1]["task_id"] for s in (4, 5, 4)]
    assert picks[0] == picks[2]
    assert make("medium").reset(seed=4)[1]["task_id"] == picks[0]
