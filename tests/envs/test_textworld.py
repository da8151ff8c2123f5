"""Tests of `turnwise/TextWorld-v0`: generation, splits, rewards, expert, validity, state keys.

The games are generated once into the normal cache (`turnwise.paths.cache_dir`), so only the
first run pays for generation (a few seconds a game); later runs replay cached games.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("textworld", reason="needs textworld (pip install 'turnwise[text]')")

import gymnasium

import turnwise
from turnwise.envs.textworld import TextWorldEnv
from turnwise.envs.textworld.env import clean_feedback
from turnwise.envs.textworld.games import GameStore, candidate_seed, split_of
from turnwise.info import validate_reset_info, validate_step_info
from turnwise.testing import check_env, hostile_actions

SIZES = {"train": 2, "valid": 1, "test": 1}
# Small games of each challenge: what the expert test plays.
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "coin_collector": ("tw-coin_collector", {"level": 2}),
    "treasure_hunter": ("tw-treasure_hunter", {"level": 1}),
    "simple": ("tw-simple", {"rewards": "dense", "goal": "detailed"}),
    "cooking": ("tw-cooking", {"recipe": 1, "take": 1, "open": True}),
    "custom": ("custom", {"nb_rooms": 2, "nb_objects": 3, "quest_length": 2}),
}
COIN = CONFIGS["coin_collector"]
_ENVS: dict[str, TextWorldEnv] = {}


def env_for(name: str, **kwargs: Any) -> TextWorldEnv:
    """A fresh env of one of `CONFIGS` (engines and knowledge bases load once per process)."""
    challenge, settings = CONFIGS[name]
    return TextWorldEnv(challenge, settings, split_sizes=SIZES, **kwargs)


@pytest.fixture(scope="module")
def coin() -> Iterator[TextWorldEnv]:
    env = env_for("coin_collector")
    yield env
    env.close()


def expert_episode(env: TextWorldEnv, task_id: str, seed: int = 0) -> list[dict[str, Any]]:
    _, info = env.reset(seed=seed, options={"task_id": task_id})
    steps = []
    while (action := env.expert_action()) is not None:
        assert action in info["admissible_actions"], (action, info["admissible_actions"])
        obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated, f"{task_id}: the expert ran out of turns"
        steps.append({**info, "reward": reward, "terminated": terminated, "text": obs["text"]})
    return steps


def transcript(env: TextWorldEnv, actions: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs["text"], reward, terminated, truncated, repr(sorted(info.items()))))
    return out


# -------------------------------------------------------------------- settings and ids
def test_settings_are_validated_with_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown challenge 'tw-zork'"):
        TextWorldEnv("tw-zork")
    with pytest.raises(ValueError, match=r"bad settings for tw-cooking: argument --go: invalid"):
        TextWorldEnv("tw-cooking", {"go": 2})
    with pytest.raises(ValueError, match="unrecognized arguments: --lvl 3"):
        TextWorldEnv("tw-coin_collector", {"lvl": 3})
    with pytest.raises(ValueError, match="tw-treasure_hunter levels are 1-30, got 31"):
        TextWorldEnv("tw-treasure_hunter", {"level": 31})
    with pytest.raises(ValueError, match="needs over 100 rooms"):
        TextWorldEnv("tw-coin_collector", {"level": 160})
    with pytest.raises(ValueError, match="unknown split 'dev' in split_sizes"):
        TextWorldEnv(split_sizes={"dev": 3})
    with pytest.raises(ValueError, match=r"split_sizes\['test'\] must be a positive int"):
        TextWorldEnv(split_sizes={"test": 0})
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        TextWorldEnv(split="dev")


def test_task_ids_encode_challenge_settings_split_and_index() -> None:
    env = TextWorldEnv("tw-cooking", {"recipe": 2, "take": 1, "open": True})
    assert env.tasks()[3] == "tw-cooking-go1+open+recipe2+recipe_seed0+take1-train-00003"
    assert len(env.tasks("train")) == 100 and len(env.tasks("test")) == 20
    # The cooking split follows the env's split unless pinned, and a pin shows in the ids.
    assert env.config.settings_for("valid")["split"] == "valid"
    pinned = TextWorldEnv("tw-simple", {"test": False})
    assert pinned.tasks()[0] == "tw-simple-goal-detailed+rewards-dense+test-false-train-00000"
    assert pinned.config.settings_for("test")["test"] is False
    assert TextWorldEnv("tw-simple").config.settings_for("test")["test"] is True
    assert TextWorldEnv("tw-coin_collector").max_turns == 100
    assert TextWorldEnv("tw-coin_collector", {"level": 80}).max_turns == 160
    env.close()


def test_split_membership_partitions_the_hash_space() -> None:
    counts = {"train": 0, "valid": 0, "test": 0}
    for i in range(4000):
        counts[split_of(f"{i * 2654435761 % 2**32:08x}" + "0" * 56)] += 1
    assert counts["train"] == pytest.approx(2000, rel=0.1)
    assert counts["valid"] == pytest.approx(1000, rel=0.15)
    assert counts["test"] == pytest.approx(1000, rel=0.15)
    seeds = {
        candidate_seed("k", split, index, attempt)
        for split in counts
        for index in range(20)
        for attempt in range(5)
    }
    assert len(seeds) == 300 and all(0 < s < 2**31 for s in seeds)


def test_clean_feedback_drops_banner_prompt_and_status() -> None:
    raw = (
        "\n\n  ________ \n |  $$$$  \\\n  \\$$  \n\nWelcome to TextWorld!\n\n-= Hall =-\n"
        "A hall.\n\n\n\n>                                  -= Hall =-0/1"
    )
    assert clean_feedback(raw, intro=True) == "Welcome to TextWorld!\n\n-= Hall =-\nA hall."
    end = (
        "\nYou take the coin.\n\n\n     *** The End ***\n\nYou scored 1 out of a possible 1, "
        "in 3 turns.\n\n\nWould you like to RESTART, RESTORE a saved game, QUIT or UNDO the "
        "last command?\n>     "
    )
    assert clean_feedback(end) == (
        "You take the coin.\n\n*** The End ***\n\nYou scored 1 out of a possible 1, in 3 turns."
    )
    assert clean_feedback("a > b") == "a > b"


# -------------------------------------------------------------------- the contract
def test_make_through_turnwise_and_gymnasium() -> None:
    challenge, settings = COIN
    env = turnwise.make(
        "turnwise/TextWorld-v0", challenge=challenge, settings=settings, split_sizes=SIZES
    )
    assert isinstance(env.unwrapped, TextWorldEnv)
    obs, info = env.reset(seed=1)
    assert info["task_id"].startswith("tw-coin_collector-level2-train-")
    assert validate_reset_info(info) == [] and obs["text"] and info["instruction"]
    env.step(info["admissible_actions"][0])
    env.close()
    genv = gymnasium.make(
        "turnwise/TextWorld-v0",
        challenge=challenge,
        settings=settings,
        split="test",
        split_sizes=SIZES,
    )
    _, info = genv.reset(seed=2)
    assert info["task_id"].endswith("-test-00000") and info["split"] == "test"
    genv.close()
    genv.close()


@pytest.mark.slow
def test_check_env_passes() -> None:
    check_env(env_for("coin_collector"), n_tasks=1, seed=0, expert=True)


def test_reset_info_rewards_and_defaults(coin: TextWorldEnv) -> None:
    assert coin.reward_weights == {"valid": 0.1, "outcome": 1.0, "score": 0.5}
    obs, info = coin.reset(seed=0, options={"task_id": coin.tasks()[0]})
    assert not obs["text"].startswith((" ", "\n", "_")) and "$$" not in obs["text"]
    assert info["score"] == 0 and info["max_score"] == 1
    assert info["admissible_actions"] == sorted(info["admissible_actions"])
    assert {"look", "inventory"} <= set(info["admissible_actions"])
    assert info["instruction"] and info["instruction"] in obs["text"]
    assert coin.record.task_id == coin.tasks()[0] and coin.record.attempts >= 1


# -------------------------------------------------------------------- generation and splits
@pytest.mark.slow
def test_generation_is_deterministic_by_seed(coin: TextWorldEnv, tmp_path: Any) -> None:
    """Generating a task again, in a fresh cache, gives the same seed, hash and game file."""
    task_id = coin.tasks()[0]
    cached = coin.store.record(task_id)
    fresh_store = GameStore(coin.config, SIZES, root=tmp_path)
    fresh = fresh_store.record(task_id)
    assert (fresh.seed, fresh.digest, fresh.walkthrough) == (
        cached.seed,
        cached.digest,
        cached.walkthrough,
    )
    # Byte for byte, but for the Z-machine header's serial (bytes 18-23): Inform writes the
    # compile date there, so a game cached yesterday differs from one compiled today only there.
    fresh_game = bytearray(fresh_store.path(fresh).read_bytes())
    cached_game = bytearray(coin.store.path(cached).read_bytes())
    fresh_game[18:24] = cached_game[18:24] = b"000000"
    assert fresh_game == cached_game
    json_file = fresh_store.path(fresh).with_suffix(".json")
    assert json_file.read_bytes() == coin.store.path(cached).with_suffix(".json").read_bytes()
    assert coin.store.record(coin.tasks()[1]).digest != cached.digest


@pytest.mark.slow
def test_splits_never_share_a_game(coin: TextWorldEnv) -> None:
    records = [coin.store.record(t) for split in SIZES for t in coin.tasks(split)]
    assert len({r.digest for r in records}) == len(records) == 4
    assert len({r.seed for r in records}) == 4
    for record in records:
        assert split_of(record.digest) == record.split
    with pytest.raises(turnwise.UnknownTaskError):
        coin.reset(options={"task_id": "tw-coin_collector-level3-train-00000"})
    with pytest.raises(turnwise.UnknownTaskError):
        coin.reset(options={"task_id": coin.tasks()[0].replace("00000", "00007")})


# -------------------------------------------------------------------- expert and rewards
@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_expert_wins_with_score_terms_summing_to_one(name: str) -> None:
    env = env_for(name)
    task_id = env.tasks()[0]
    steps = expert_episode(env, task_id)
    assert steps and steps[-1]["terminated"] and steps[-1]["success"] is True
    assert all(s["valid_action"] for s in steps)
    assert [s["reward_terms"]["outcome"] for s in steps] == [0.0] * (len(steps) - 1) + [1.0]
    assert math.isclose(sum(s["reward_terms"]["score"] for s in steps), 1.0)
    assert steps[-1]["score"] == steps[-1]["max_score"] > 0
    assert math.isclose(sum(s["reward"] for s in steps), 1.0 + 0.5)
    assert "*** The End ***" in steps[-1]["text"] and "RESTART" not in steps[-1]["text"]
    for step in steps:
        assert validate_step_info(step, float(step["reward"]), step["terminated"]) == []
    # After the end: the base class answers, the expert has nothing more to say.
    _, reward, terminated, _, info = env.step(steps[-1]["text"][:10])
    assert terminated and reward == 0.0 and info["episode_over"] and env.expert_action() is None
    env.close()


@pytest.mark.slow
def test_losing_ends_the_episode_without_success() -> None:
    env = env_for("simple")
    env.reset(seed=0, options={"task_id": env.tasks()[0]})
    # Follow the expert until it has taken the food; eating it loses the game.
    while True:
        action = env.expert_action()
        assert action is not None
        *_, info = env.step(action)
        food = action.split(" from ")[0].removeprefix("take ") if action.startswith("take") else ""
        if food and food != "old key":
            break
    assert f"eat {food}" in info["admissible_actions"]
    obs, _, terminated, truncated, info = env.step(f"eat {food}")
    assert terminated and not truncated and info["success"] is False
    assert info["reward_terms"]["outcome"] == 0.0 and "You lost" in obs["text"]
    env.close()


# -------------------------------------------------------------------- validity
def test_commands_are_normalised(coin: TextWorldEnv) -> None:
    _, info = coin.reset(seed=0, options={"task_id": coin.tasks()[0]})
    command = next(a for a in info["admissible_actions"] if a.startswith("go "))
    shouted = "  " + command.upper().replace(" ", " \t ") + " "
    _, _, _, _, info = coin.step(shouted)
    assert info["valid_action"] and info["reward_terms"]["valid"] == 0.0


@pytest.mark.slow
def test_invalid_and_hostile_commands_never_reach_the_engine(coin: TextWorldEnv) -> None:
    """Interleaving invalid commands changes nothing: the valid steps replay identically,
    down to the engine's own turn count in its final message."""
    task_id = coin.tasks()[0]
    plain = expert_episode(coin, task_id, seed=3)
    # Commands TextWorld's own parser would accept, but that are not admissible here.
    parser_accepts = ["take all", "x coin", "n", "wait", "inventory please", "score"]
    junk = [h.value for h in hostile_actions()] + parser_accepts
    _, info = coin.reset(seed=3, options={"task_id": task_id})
    key = info["state_key"]
    mixed = []
    for i in range(len(plain)):
        for bad in junk[i :: len(plain)]:
            obs, reward, terminated, truncated, bad_info = coin.step(bad)
            assert not (terminated or truncated)
            assert bad_info["valid_action"] is False and obs["text"].startswith("Invalid action")
            assert bad_info["state_key"] == key and reward == pytest.approx(-0.1)
            terms = bad_info["reward_terms"]
            assert terms.pop("valid") == -1.0 and set(terms.values()) <= {0.0}
        command = coin.expert_action()
        assert command is not None
        obs, reward, terminated, _, info = coin.step(command)
        key = info["state_key"]
        mixed.append((obs["text"], reward, terminated, info["reward_terms"]))
    assert mixed == [(s["text"], s["reward"], s["terminated"], s["reward_terms"]) for s in plain]
    assert "in 3 turns" in mixed[-1][0]  # level 2: two moves and `take coin`, nothing else


def test_invalid_observations_say_what_was_wrong(coin: TextWorldEnv) -> None:
    coin.reset(seed=0, options={"task_id": coin.tasks()[0]})
    texts = {a: coin.step(a)[0]["text"] for a in ("", "dance", "take unicorn", "\x1b[2J$(reboot)")}
    assert texts[""].startswith("Invalid action: empty command.")
    assert texts["dance"].startswith("Invalid action: unknown command 'dance'. Commands start")
    assert "take" in texts["dance"] and "go" in texts["dance"]
    assert texts["take unicorn"].startswith("Invalid action: you can't do 'take unicorn' here")
    assert "reboot" not in texts["\x1b[2J$(reboot)"] and "\x1b" not in texts["\x1b[2J$(reboot)"]


# -------------------------------------------------------------------- state keys and determinism
def test_state_key_is_the_engine_state(coin: TextWorldEnv) -> None:
    _, info = coin.reset(seed=0, options={"task_id": coin.tasks()[0]})
    start = info["state_key"]
    assert start.startswith("location=") and start.endswith(";inventory=;changed=")
    go = coin.expert_action()
    assert go is not None and go.startswith("go ")
    back = {"north": "south", "south": "north", "east": "west", "west": "east"}[go.split()[1]]
    moved = coin.step(go)[4]["state_key"]
    assert moved != start and moved.split(";")[0] != start.split(";")[0]
    assert coin.step("look")[4]["state_key"] == moved
    assert coin.step("inventory")[4]["state_key"] == moved
    assert coin.step(f"go {back}")[4]["state_key"] == start
    # Another seed: same states, same keys.
    _, info = coin.reset(seed=99, options={"task_id": coin.tasks()[0]})
    assert info["state_key"] == start
    steps = expert_episode(coin, coin.tasks()[0])
    assert "coin" in steps[-1]["state_key"].split(";")[1]
    assert "-at(coin, " in steps[-1]["state_key"]


def test_same_task_and_seed_replay_byte_for_byte(coin: TextWorldEnv) -> None:
    task_id = coin.tasks()[1]
    _, info = coin.reset(seed=5, options={"task_id": task_id})
    actions: list[Any] = []
    for i in range(8):
        choices = [*info["admissible_actions"], "go nowhere", ""]
        action = choices[(i * 7) % len(choices)]
        actions.append(action)
        *_, terminated, truncated, info = coin.step(action)
        if terminated or truncated:
            break
    first_reset = coin.reset(seed=5, options={"task_id": task_id})
    first = transcript(coin, actions)
    other = env_for("coin_collector")
    second_reset = other.reset(seed=5, options={"task_id": task_id})
    assert repr(first_reset) == repr(second_reset)
    assert first == transcript(other, actions)
    other.close()
