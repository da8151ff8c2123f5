"""Tests of `turnwise/KeyDoor-v0`: rules, rewards, expert, splits, determinism, robustness."""

from __future__ import annotations

import functools
import math
import re
from collections import Counter
from typing import Any

import gymnasium
import numpy as np
import pytest

import turnwise
from turnwise.envs.keydoor import KeyDoorEnv
from turnwise.envs.keydoor.tasks import PRESETS, SPLIT_SIZES, Catalog
from turnwise.envs.keydoor.world import DIRECTIONS, World, WorldConfig, generate
from turnwise.info import validate_reset_info, validate_step_info, weighted_reward

DIFFICULTIES = ("easy", "medium", "hard")
SPLITS = ("train", "valid", "test")
# easy-train-00002: the study holds a purple key and a lamp; east is open, north is locked
# (purple door) and leads to the attic with the coin. Pinned so that generation never changes.
STUDY = "easy-train-00002"
STUDY_TEXT = (
    "You are in the study. You see a purple key and a lamp. "
    "Exits: east, north (locked, purple door)."
)


def make(difficulty: str = "easy", **kwargs: Any) -> KeyDoorEnv:
    return KeyDoorEnv(difficulty, **kwargs)


def play(env: KeyDoorEnv, actions: list[Any]) -> list[tuple[Any, ...]]:
    """Step through `actions`; return everything observable about each step."""
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs["text"], reward, terminated, truncated, repr(sorted(info.items()))))
    return out


def expert_episode(env: KeyDoorEnv, task_id: str, seed: int = 0) -> list[dict[str, Any]]:
    _, info = env.reset(seed=seed, options={"task_id": task_id})
    infos = []
    while (action := env.expert_action()) is not None:
        assert action in info["admissible_actions"]
        _, reward, terminated, truncated, info = env.step(action)
        assert not truncated, f"{task_id}: the expert ran out of turns"
        infos.append({**info, "reward": reward, "terminated": terminated})
    return infos


def content(text: str) -> Counter[str]:
    """The words of an observation, whatever order things are listed in."""
    return Counter(re.sub(r"[,.()]", " ", text).split())


# -------------------------------------------------------------------- making and contract
def test_make_through_turnwise_and_gymnasium() -> None:
    env = turnwise.make("turnwise/KeyDoor-v0", difficulty="hard")
    assert isinstance(env.unwrapped, KeyDoorEnv)
    assert env.unwrapped.difficulty == "hard" and env.unwrapped.max_turns == 50
    obs, info = env.reset(seed=1)
    assert info["task_id"].startswith("hard-train-") and obs["text"].startswith("You are in")
    env.step(info["admissible_actions"][0])
    env.close()
    genv = gymnasium.make("turnwise/KeyDoor-v0", difficulty="easy", split="test")
    _, info = genv.reset(seed=2)
    assert info["task_id"].startswith("easy-test-") and info["split"] == "test"
    genv.close()
    genv.close()


def test_check_env_passes() -> None:
    testing = pytest.importorskip("turnwise.testing")
    check_env = getattr(testing, "check_env", None)
    if check_env is None:
        pytest.skip("turnwise.testing.check_env is not written yet")
    for difficulty in DIFFICULTIES:
        check_env(make(difficulty), n_tasks=3, seed=0, expert=True)


def test_reset_info_and_defaults() -> None:
    env = make("medium")
    _, info = env.reset(seed=5)
    assert validate_reset_info(info) == []
    assert info["instruction"] == "Find the gold coin and take it."
    assert info["max_turns"] == 30 and info["split"] == "train"
    assert info["admissible_actions"][-2:] == ["look", "inventory"]
    assert info["state_key"] == env.state_key()
    assert env.reward_weights == {"valid": 0.1, "outcome": 1.0, "progress": 0.5}
    assert make("easy").max_turns == 15
    assert make("easy", reward_weights={"progress": 2.0}).reward_weights["progress"] == 2.0


def test_argument_validation() -> None:
    with pytest.raises(ValueError, match="unknown difficulty 'extreme'; choose one of easy"):
        make("extreme")
    with pytest.raises(ValueError, match=r"n_rooms must lie within \[2, 12\]"):
        make(n_rooms=20)
    with pytest.raises(ValueError, match="min <= max"):
        make(n_rooms=(5, 3))
    with pytest.raises(TypeError, match="n_locked must be an int or a"):
        make(n_locked="2")
    with pytest.raises(TypeError, match="n_rooms must be an int"):
        make(n_rooms=True)
    with pytest.raises(ValueError, match=r"n_locked=\(2, 3\) is too many: with as few as 2 rooms"):
        make("hard", n_rooms=2)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        make(split="dev")
    with pytest.raises(ValueError, match="max_turns must be at least 1"):
        make(max_turns=0)


def test_custom_configuration_has_its_own_tasks() -> None:
    env = make("medium", n_rooms=7, n_locked=(1, 3))
    assert env.config == WorldConfig((7, 7), (1, 3), (1, 1))
    assert env.tasks()[0] == "r7l1to3d1-train-00000"
    assert env.max_turns == 50  # 5 * (7 rooms + 3 doors)
    for task_id in env.tasks()[:20]:
        env.reset(options={"task_id": task_id})
        world = env.world
        assert len(world.rooms) == 7 and 1 <= len(world.doors) <= 3
        assert sum(1 for item in world.items if item.opens < 0 and not item.goal) == 1
    # The same configuration reached through its preset keeps the preset's ids.
    assert make("medium", n_rooms=(4, 5)).tasks()[0] == "medium-train-00000"


# -------------------------------------------------------------------- determinism
def test_generation_is_pinned() -> None:
    """Worlds of a versioned id must never change (nor depend on NumPy or Python versions)."""
    env = make("easy")
    obs, _ = env.reset(seed=0, options={"task_id": STUDY})
    assert obs["text"] == STUDY_TEXT
    assert env.world.solution() == [
        "take purple key",
        "unlock north door with purple key",
        "go north",
        "take gold coin",
    ]
    config = PRESETS["hard"].config
    assert generate(config, 12345).layout_hash == generate(config, 12345).layout_hash
    assert make("hard").tasks("test")[-1] == "hard-test-00199"


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_same_task_and_seed_replay_byte_for_byte(difficulty: str) -> None:
    rng = np.random.default_rng(0)
    env = make(difficulty)
    task_id = env.tasks()[17]
    _, info = env.reset(seed=3, options={"task_id": task_id})
    actions: list[Any] = []
    for i in range(env.max_turns - 1):
        choices = info["admissible_actions"] + ["go up", "take unicorn", "", "LOOK"]
        action = choices[int(rng.integers(len(choices)))] if i % 5 else "inventory"
        actions.append(action)
        *_, info = env.step(action)
    first_reset = env.reset(seed=3, options={"task_id": task_id})
    first = play(env, actions)
    again = make(difficulty)
    second_reset = again.reset(seed=3, options={"task_id": task_id})
    assert first_reset == second_reset
    assert first == play(again, actions)


def test_seed_changes_presentation_only() -> None:
    env = make("hard")
    task_id = env.tasks()[3]
    runs = []
    for seed in range(8):
        obs, info = env.reset(seed=seed, options={"task_id": task_id})
        texts, keys, rewards = [obs["text"]], [info["state_key"]], []
        while (action := env.expert_action()) is not None:
            for command in ("inventory", "look", action):
                obs, reward, *_, info = env.step(command)
                texts.append(obs["text"])
                keys.append(info["state_key"])
                rewards.append(reward)
        runs.append((texts, keys, rewards))
    texts0, keys0, rewards0 = runs[0]
    for texts, keys, rewards in runs[1:]:
        assert keys == keys0 and rewards == rewards0
        assert [content(t) for t in texts] == [content(t) for t in texts0]
    assert len({tuple(texts) for texts, _, _ in runs}) > 1, "seeds never changed presentation"


def test_seed_alone_picks_the_task_deterministically() -> None:
    env = make("medium")
    picks = [env.reset(seed=s)[1]["task_id"] for s in (4, 5, 4)]
    assert picks[0] == picks[2]
    assert make("medium").reset(seed=4)[1]["task_id"] == picks[0]


# -------------------------------------------------------------------- expert and rewards
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("split", SPLITS)
def test_expert_solves_with_progress_summing_to_one(difficulty: str, split: str) -> None:
    env = make(difficulty, split=split)
    ids = env.tasks()
    for task_id in ids[:: max(1, len(ids) // 15)]:
        steps = expert_episode(env, task_id, seed=len(task_id))
        assert steps[-1]["terminated"] and steps[-1]["success"]
        assert all(s["valid_action"] for s in steps)
        assert sum(s["reward_terms"]["outcome"] for s in steps) == 1.0
        assert math.isclose(sum(s["reward_terms"]["progress"] for s in steps), 1.0)
        assert all(s["reward_terms"]["progress"] > 0 for s in steps)
        assert len(steps) == env.world.distance(env.world.initial) <= env.max_turns
        total = sum(s["reward"] for s in steps)
        assert math.isclose(total, 1.0 + 0.5 * 1.0)  # outcome + progress weight x 1.0


@functools.cache
def all_worlds(difficulty: str) -> dict[str, list[World]]:
    """Every world of every split, freshly generated from the seeds the catalog assigned."""
    catalog = Catalog.of(PRESETS[difficulty].config, difficulty)
    return {
        split: [generate(catalog.config, catalog.seed(t)) for t in catalog.ids(split)]
        for split in SPLITS
    }


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_every_task_is_solvable_well_within_the_turn_limit(difficulty: str) -> None:
    env = make(difficulty)
    worlds = [w for split in SPLITS for w in all_worlds(difficulty)[split]]
    longest = max(world.distance(world.initial) for world in worlds)
    assert 0 < longest <= env.max_turns // 2


def shortest_by_replay(env: KeyDoorEnv, task_id: str) -> int:
    """Breadth-first search over the env's own behaviour, ignoring its solver entirely.

    A node is an action sequence; its state is whatever `info["state_key"]` says after replaying
    it from reset. Returns the least number of steps to success.
    """

    def replay(path: tuple[str, ...]) -> dict[str, Any]:
        _, info = env.reset(seed=0, options={"task_id": task_id})
        for action in path:
            _, _, terminated, _, info = env.step(action)
            info["terminated"] = terminated
        return info

    start = replay(())
    seen = {start["state_key"]}
    frontier: list[tuple[tuple[str, ...], dict[str, Any]]] = [((), start)]
    while frontier:
        nxt = []
        for path, info in frontier:
            for action in info["admissible_actions"]:
                after = replay((*path, action))
                if after.get("terminated"):
                    return len(path) + 1
                if after["state_key"] not in seen:
                    seen.add(after["state_key"])
                    nxt.append(((*path, action), after))
        frontier = nxt
    raise AssertionError(f"{task_id} cannot be solved")


@pytest.mark.parametrize(
    ("difficulty", "kwargs", "n"),
    [("easy", {}, 4), ("medium", {}, 3), ("hard", {"n_distractors": 0}, 1)],
)
def test_expert_path_is_as_short_as_an_independent_search(
    difficulty: str, kwargs: dict[str, Any], n: int
) -> None:
    env = make(difficulty, **kwargs)
    for task_id in env.tasks()[:n]:
        assert len(expert_episode(env, task_id)) == shortest_by_replay(env, task_id)


def test_progress_is_negative_when_moving_away_and_zero_for_look() -> None:
    env = make("easy")
    env.reset(seed=0, options={"task_id": STUDY})  # 4 steps from the coin
    _, reward, *_, info = env.step("go east")
    assert info["reward_terms"] == {"outcome": 0.0, "progress": -0.25, "valid": 0.0}
    assert reward == pytest.approx(0.5 * -0.25)
    for action in ("look", "inventory"):
        _, reward, *_, info = env.step(action)
        assert info["reward_terms"] == {"outcome": 0.0, "progress": 0.0, "valid": 0.0}
        assert reward == 0.0 and info["valid_action"]
    _, _, *_, info = env.step("go west")
    assert info["reward_terms"]["progress"] == 0.25
    _, _, *_, info = env.step("take lamp")  # a distractor: no progress either way
    assert info["reward_terms"]["progress"] == 0.0 and info["valid_action"]


def test_reward_is_the_weighted_sum_of_terms() -> None:
    weights = {"valid": 0.3, "progress": 2.0, "outcome": 5.0}
    env = make("medium", reward_weights=weights)
    rng = np.random.default_rng(1)
    for seed in range(5):
        _, info = env.reset(seed=seed)
        for turn in range(env.max_turns):
            choices = [*info["admissible_actions"], "go nowhere"]
            action = env.expert_action() if turn % 3 == 0 else None
            action = action or choices[int(rng.integers(len(choices)))]
            _, reward, terminated, truncated, info = env.step(action)
            ended = terminated or truncated
            assert validate_step_info(info, float(reward), ended) == []
            assert info["reward_weights"] == {k: weights[k] for k in info["reward_terms"]}
            assert reward == pytest.approx(weighted_reward(info["reward_terms"], weights))
            if ended:
                break


# -------------------------------------------------------------------- state keys
def test_state_key_is_the_real_state() -> None:
    env = make("easy")
    _, info = env.reset(seed=0, options={"task_id": STUDY})
    start = info["state_key"]
    assert start == "room=study;inventory=;unlocked="
    assert env.step("go east")[4]["state_key"] != start
    assert env.step("look")[4]["state_key"] != start
    assert env.step("go west")[4]["state_key"] == start
    assert env.step("look")[4]["state_key"] == start
    assert env.step("go north")[4]["state_key"] == start  # invalid: nothing changed
    env.step("take purple key")
    env.step("take lamp")
    *_, info = env.step("unlock north door with purple key")
    assert info["state_key"] == "room=study;inventory=lamp,purple key;unlocked=purple door"
    # Another seed lists things in another order but reaches the same keys.
    _, info = env.reset(seed=99, options={"task_id": STUDY})
    assert info["state_key"] == start


# -------------------------------------------------------------------- commands
def test_admissible_actions_are_exactly_the_valid_ones() -> None:
    """Try every command the grammar can form, at every state of an expert episode."""
    env = make("hard")
    task_id = env.tasks()[11]
    _, info = env.reset(seed=0, options={"task_id": task_id})
    world = env.world
    names = [item.name for item in world.items]
    keys = [n for n in names if n.endswith(" key")]
    grammar = ["look", "inventory", *(f"go {d}" for d in DIRECTIONS)]
    grammar += [f"take {n}" for n in names]
    grammar += [f"unlock {d} door with {k}" for d in DIRECTIONS for k in [*keys, "apple"]]
    path: list[str] = []
    for action in world.solution():
        admissible = info["admissible_actions"]
        assert len(admissible) == len(set(admissible))
        assert set(admissible) <= set(grammar)
        for command in grammar:
            env.reset(seed=0, options={"task_id": task_id})
            play(env, path)
            before = env.state_key()
            _, _, _, _, step_info = env.step(f"  {command.upper()} ")
            assert step_info["valid_action"] == (command in admissible), command
            if not step_info["valid_action"]:
                assert step_info["state_key"] == before
        env.reset(seed=0, options={"task_id": task_id})
        play(env, path)
        *_, info = env.step(action)
        path.append(action)
    assert env.admissible_actions() == [] and env.expert_action() is None


def test_admissible_order_is_canonical() -> None:
    env = make("easy")
    for seed in (0, 1, 2):
        _, info = env.reset(seed=seed, options={"task_id": STUDY})
        assert info["admissible_actions"] == [
            "go east",
            "take lamp",
            "take purple key",
            "look",
            "inventory",
        ]


def find_wrong_key_state() -> tuple[KeyDoorEnv, list[str], str, str, str]:
    """A hard task and a prefix of its solution after which a held key misfits a locked exit."""
    env = make("hard")
    for task_id in env.tasks():
        env.reset(seed=0, options={"task_id": task_id})
        world = env.world
        path: list[str] = []
        for action in world.solution():
            room, taken, unlocked = env.state
            for d, (_, lock) in enumerate(world.exits[room]):
                if lock < 0 or unlocked >> lock & 1:
                    continue
                for i, item in enumerate(world.items):
                    if taken >> i & 1 and item.name.endswith(" key") and item.opens != lock:
                        door = world.doors[lock].name
                        return env, [task_id, *path], DIRECTIONS[d], item.name, door
            env.step(action)
            path.append(action)
    raise AssertionError("no task puts a wrong key in hand at a locked door")


def test_invalid_commands_say_what_was_wrong() -> None:
    grammar = (
        "Commands: look, inventory, go <direction>, take <item>, "
        "unlock <direction> door with <key>."
    )
    cases = {
        "": f"empty command. {grammar}",
        "dance": f"unknown command 'dance'. {grammar}",
        "<script>alert(1)</script>": f"unknown command. {grammar}",
        "north": "unknown command 'north'; to move, type 'go north'.",
        "look around": "'look' takes nothing after it; type just 'look'.",
        "go": "go where? Type 'go <direction>'; directions are north, south, east and west.",
        "go up": "unknown direction 'up'; directions are north, south, east and west.",
        "go west": "there is no exit to the west.",
        "go north": "the door to the north is locked (purple door).",
        "take": "take what? Type 'take <item>', e.g. 'take red key'.",
        "take the lamp": "name the item without 'the', e.g. 'take red key'.",
        "take banana": "there is no 'banana' here.",
        "take gold coin": "there is no 'gold coin' here.",
        "take \x1b[31mkey": "there is no such item here.",
        "unlock": "type 'unlock <direction> door with <key>', e.g. "
        "'unlock north door with red key'.",
        "unlock north with purple key": "type 'unlock <direction> door with <key>', e.g. "
        "'unlock north door with red key'.",
        "unlock up door with purple key": "unknown direction 'up'; directions are north, "
        "south, east and west.",
        "unlock west door with purple key": "there is no door to the west.",
        "unlock east door with purple key": "the way east has no lock.",
        "unlock north door with purple key": "you do not have the purple key.",
        "unlock north door with blue key": "you do not have the blue key.",
    }
    env = make("easy")
    _, info = env.reset(seed=0, options={"task_id": STUDY})
    for action, problem in cases.items():
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs["text"] == f"Invalid action: {problem}", action
        assert not info["valid_action"] and not terminated and not truncated
        assert info["reward_terms"] == {"outcome": 0.0, "progress": 0.0, "valid": -1.0}
        assert reward == pytest.approx(-0.1)
        assert info["state_key"] == "room=study;inventory=;unlocked="
        env.reset(seed=0, options={"task_id": STUDY})
    play(env, ["take purple key", "take lamp", "unlock north door with purple key"])
    later = {
        "take purple key": "you already have the purple key.",
        "unlock north door with lamp": "the purple door to the north is already unlocked.",
    }
    for action, problem in later.items():
        assert env.step(action)[0]["text"] == f"Invalid action: {problem}"
    env.reset(seed=0, options={"task_id": STUDY})
    play(env, ["take lamp"])
    assert env.step("unlock north door with lamp")[0]["text"] == (
        "Invalid action: the lamp is not a key."
    )
    env, prefix, direction, key, door = find_wrong_key_state()
    env.reset(seed=0, options={"task_id": prefix[0]})
    play(env, prefix[1:])
    obs, *_, info = env.step(f"unlock {direction} door with {key}")
    assert obs["text"] == f"Invalid action: the {key} does not fit the {door}."
    assert not info["valid_action"]


HOSTILE: list[Any] = [
    "",
    " \t\n\u00a0\u3000 ",
    "\x00",
    "go\x00north",
    "\x1b[2J\x1b[31mgo north\x1b[0m",
    "\u202ehtron og",
    "look \u202eht\u202dron og\u202c",
    "l" + "\u0301" * 300 + "ook",
    "; rm -rf / #",
    "$(reboot)",
    "<img src=x onerror='alert(1)'>",
    "{0.__class__}%s%n",
    "go \ud800north",
    "\udc00\ud800",
    "take " + "A" * 4000,
    "unlock north door with " + "\x07" * 100,
    "x" * (1 << 20),
    None,
    123,
    b"look",
    ["look"],
]


@pytest.mark.parametrize("limit", [4096, 2 << 20])
def test_hostile_actions_never_raise_and_are_invalid(limit: int) -> None:
    env = make("medium", max_action_length=limit, max_turns=len(HOSTILE) + 1)
    _, info = env.reset(seed=0)
    key = info["state_key"]
    for action in HOSTILE:
        obs, _, terminated, truncated, info = env.step(action)
        assert not info["valid_action"], repr(action)[:40]
        assert info["state_key"] == key and not terminated and not truncated
        text = obs["text"]
        assert text.startswith("Invalid action: ") and len(text) < 200
        # Nothing hostile is echoed back into the observation.
        assert text.isascii() and text.isprintable()


# -------------------------------------------------------------------- episode end
def test_truncation_at_max_turns_then_steps_stay_invalid() -> None:
    env = make("medium", max_turns=3)
    _, info = env.reset(seed=0)
    for turn in range(1, 4):
        _, _, terminated, truncated, info = env.step("look")
        assert not terminated and truncated == (turn == 3)
    assert info["success"] is False and info["truncation_reason"] == "max_turns"
    assert info["admissible_actions"] == [] and env.expert_action() is None
    for action in ("look", env.world.solution()[0], "", None):
        obs, reward, terminated, truncated, info = env.step(action)
        assert not info["valid_action"] and info["episode_over"]
        assert (terminated, truncated) == (False, True)
        assert "episode is over" in obs["text"]
        assert reward == pytest.approx(weighted_reward(info["reward_terms"], env.reward_weights))


def test_steps_after_success_are_invalid() -> None:
    env = make("easy")
    steps = expert_episode(env, STUDY)
    assert steps[-1]["success"] and steps[-1]["admissible_actions"] == []
    assert env.expert_action() is None
    _, _, terminated, truncated, info = env.step("take gold coin")
    assert (terminated, truncated) == (True, False)
    assert info["success"] and not info["valid_action"]
    assert info["state_key"] == steps[-1]["state_key"]


def test_step_before_reset_raises_reset_needed() -> None:
    env = make()
    with pytest.raises(gymnasium.error.ResetNeeded):
        env.step("look")
    with pytest.raises(RuntimeError, match="call reset"):
        _ = env.world


# -------------------------------------------------------------------- splits
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_splits_are_disjoint_even_by_layout(difficulty: str) -> None:
    env = make(difficulty)
    ids = {split: env.tasks(split) for split in SPLITS}
    assert {split: len(v) for split, v in ids.items()} == SPLIT_SIZES
    assert all(
        v[i].startswith(f"{difficulty}-{split}-") for split, v in ids.items() for i in (0, -1)
    )
    assert len(set().union(*ids.values())) == sum(SPLIT_SIZES.values())
    catalog = Catalog.of(PRESETS[difficulty].config, difficulty)
    hashes: dict[str, set[str]] = {}
    for split, task_ids in ids.items():
        hashes[split] = {w.layout_hash for w in all_worlds(difficulty)[split]}
        assert len(hashes[split]) == len(task_ids), f"{split} repeats a world"
        assert hashes[split] == catalog.layout_hashes(split)
    assert not hashes["train"] & hashes["valid"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["valid"] & hashes["test"]


def test_layout_hash_sees_every_difference() -> None:
    world = generate(PRESETS["medium"].config, 7)
    base = world.layout_hash

    def rebuilt(**changes: Any) -> World:
        fields = {
            "rooms": world.rooms,
            "positions": world.positions,
            "exits": world.exits,
            "doors": world.doors,
            "items": world.items,
        }
        return World(**{**fields, **changes})

    assert rebuilt().layout_hash == base
    moved = (world.items[0]._replace(room=(world.items[0].room + 1) % len(world.rooms)),)
    assert rebuilt(items=moved + world.items[1:]).layout_hash != base
    renamed = ("cloakroom", *world.rooms[1:])
    assert rebuilt(rooms=renamed).layout_hash != base
    recoloured = (world.doors[0]._replace(colour="pink"), *world.doors[1:])
    assert rebuilt(doors=recoloured).layout_hash != base


def test_unknown_task_id_is_reported() -> None:
    env = make("easy")
    with pytest.raises(turnwise.UnknownTaskError, match="Did you mean"):
        env.reset(options={"task_id": "easy-train-0001"})
    with pytest.raises(turnwise.UnknownTaskError):
        env.reset(options={"task_id": "medium-train-00001"})
    _, info = env.reset(options={"task_id": "easy-test-00003", "split": "train"})
    assert info["split"] == "test"
