"""`turnwise/TextArena-v0`: curated TextArena games as turnwise multi-agent envs, and partners."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest

pytest.importorskip("textarena", reason="needs textarena: pip install 'turnwise[social]'")

import turnwise
from turnwise import UnknownTaskError
from turnwise.envs.social.arena import CURATED_GAMES, TextArenaEnv, task_seed
from turnwise.envs.social.arena_games import EXCLUDED, GAMES
from turnwise.envs.social.partners import NegotiationPartner, RandomPartner
from turnwise.episode import Agent
from turnwise.matches import load_seat_agent, partner_names
from turnwise.testing import check_env, check_parallel_env
from turnwise.wrappers.single_agent import SingleAgent

P0, P1 = "player_0", "player_1"
Result = tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]


def move(env: TextArenaEnv, action: Any, others: Any = "") -> Result:
    """Step with `action` from the seat to move and `others` from every other seat."""
    mover = env._seat_to_move()
    return env.step({a: action if a == mover else others for a in env.agents})


def inventory_values(env: TextArenaEnv) -> dict[int, int]:
    """Each player's inventory value, computed from textarena's state."""
    game_state = env.textarena_env.state.game_state
    resources, values = game_state["player_resources"], game_state["player_values"]
    return {p: sum(q * values[p][r] for r, q in resources[p].items()) for p in (0, 1)}


# ---------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("game", CURATED_GAMES)
def test_every_curated_game_passes_check_parallel_env(game: str) -> None:
    report = check_parallel_env(TextArenaEnv(game), n_tasks=1)
    assert report["expert"].skipped  # no oracle: skipped, not failed
    assert "replayed identically" in report["determinism"].detail


@pytest.mark.parametrize("game", ["SimpleNegotiation-v0", "IteratedUltimatumGame-v0"])
def test_one_seat_against_partners_passes_check_env(game: str) -> None:
    partner: Agent = NegotiationPartner() if game.startswith("Simple") else RandomPartner(game)
    # player_1 is not first to move: the wrapper plays player_0's first move at reset.
    env = SingleAgent(TextArenaEnv(game), P1, {P0: partner})
    assert check_env(env, n_tasks=1).ok


def test_turnwise_make_builds_each_game_and_bad_names_fail_clearly() -> None:
    env = turnwise.make("turnwise/TextArena-v0", game="Taboo-v0", max_turns=9)
    assert isinstance(env, TextArenaEnv) and env.max_turns == 9
    assert env.possible_agents == ["player_0", "player_1", "player_2", "player_3"]
    assert TextArenaEnv("PublicGoodsGame-v0").possible_agents[-1] == "player_2"
    with pytest.raises(ValueError, match=r"'Chess-v0' is not a curated.*SimpleNegotiation-v0"):
        TextArenaEnv("Chess-v0")
    with pytest.raises(ValueError, match="OpenRouter"):
        TextArenaEnv("Debate-v0")
    assert set(EXCLUDED) == {
        "UsedCarNegotiation-v0", "Codenames-v0", "DontSayIt-v0", "Debate-v0",
        "IteratedStagHunt-v0",
    }  # fmt: skip
    assert {s.category for s in GAMES.values()} >= {
        "negotiation", "deception", "communication", "repeated dilemma", "cooperation",
    }  # fmt: skip


def test_a_missing_textarena_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "textarena", None)  # `import textarena` now fails
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'turnwise\[social\]'"):
        TextArenaEnv()


def test_importing_the_env_does_not_import_textarena() -> None:
    code = "import sys, turnwise, turnwise.envs.social.arena; print('textarena' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------- tasks, replay
def test_tasks_map_to_disjoint_textarena_seeds() -> None:
    env = TextArenaEnv()
    train, test = env.tasks("train"), env.tasks("test")
    assert (len(train), len(test)) == (200, 50) and train[0] == "train/0000"
    train_seeds, test_seeds = {task_seed(t) for t in train}, {task_seed(t) for t in test}
    assert train_seeds == set(range(200)) and not train_seeds & test_seeds
    _, infos = env.reset(seed=3)
    assert infos[P0]["task_id"] in train and infos[P1]["split"] == "train"
    _, infos = env.reset(options={"task_id": "test/0049"})
    assert infos[P0]["split"] == "test" and infos[P0]["max_turns"] == 30
    with pytest.raises(UnknownTaskError, match="train/0200"):
        env.reset(options={"task_id": "train/0200"})


def test_tasks_draw_different_games() -> None:
    env = TextArenaEnv()
    instructions = set()
    for task in ("train/0000", "train/0001", "test/0000"):
        _, infos = env.reset(options={"task_id": task})
        instructions.add(infos[P0]["instruction"])
    assert len(instructions) == 3


def _play(game: str, task: str, actions: list[str]) -> list[Any]:
    env = TextArenaEnv(game)
    record: list[Any] = [env.reset(seed=7, options={"task_id": task})]
    for action in actions:
        if not env.agents:
            break
        random.random()  # the caller using `random` between moves changes nothing
        record.append(move(env, action))
    return record


def test_the_same_task_and_moves_replay_identically_and_leave_global_random_alone() -> None:
    actions = (["{Hi all}", "I stay quiet.", "{ok}"] * 3 + ["[5]", "[20]", "[0]"]) * 2
    random.seed(1234)
    first = _play("PublicGoodsGame-v0", "train/0005", actions)
    after = random.random()
    # The caller's stream moved only by the caller's own draws (one per move).
    random.seed(1234)
    for _ in range(len(first) - 1):
        random.random()
    assert after == random.random()
    assert len(first) == 25 and first[-1][4][P0]["reward_terms"]["payoff"] == 15 + 37.5 / 3
    assert _play("PublicGoodsGame-v0", "train/0005", actions) == first


def test_textarena_sees_the_same_random_stream_whatever_the_caller_did() -> None:
    def first_instruction(caller_seed: int) -> str:
        random.seed(caller_seed)
        env = TextArenaEnv("TruthAndDeception-v0")
        return str(env.reset(options={"task_id": "train/0003"})[1][P1]["instruction"])

    assert first_instruction(1) == first_instruction(2)


def test_state_keys_tell_seats_and_moments_apart_and_replay() -> None:
    env = TextArenaEnv("IteratedPrisonersDilemma-v0")
    _, infos = env.reset(options={"task_id": "train/0000"})
    start = infos[P0]["state_key"]
    assert start.startswith("IteratedPrisonersDilemma-v0|train/0000|player_0|turn 0|")
    assert start != infos[P1]["state_key"]
    *_, infos = move(env, "hello")
    assert infos[P0]["state_key"] != start
    again = TextArenaEnv("IteratedPrisonersDilemma-v0")
    again.reset(options={"task_id": "train/0000"})
    *_, replayed = move(again, "hello")
    assert replayed[P0]["state_key"] == infos[P0]["state_key"]
    assert move(again, "hi")[4][P0]["state_key"] != move(env, "bye")[4][P0]["state_key"]


# ---------------------------------------------------------------------------- turns, moves
def test_only_the_seat_to_move_acts_and_everyone_sees_what_they_may() -> None:
    env = TextArenaEnv("IteratedPrisonersDilemma-v0")
    obs, infos = env.reset(options={"task_id": "train/0000"})
    assert infos[P0]["instruction"].startswith("You are Player 0 in an Iterated Prisoner's")
    assert infos[P1]["admissible_actions"] == [] and "admissible_actions" not in infos[P0]
    assert obs[P0]["text"] == "It is your turn." and infos[P1]["to_move"] == P0
    obs, _, _, _, infos = env.step({P0: "Let's cooperate.", P1: "[Defect] ignored"})
    assert infos[P1]["valid_action"] and infos[P0]["valid_action"]
    assert obs[P1]["text"] == "[Player 0] Let's cooperate.\nIt is your turn."
    assert obs[P0]["text"] == "It is Player 1's turn."  # its own words are not echoed
    assert infos[P1]["to_move"] == P1
    move(env, "Sure.")
    obs, _, _, _, infos = move(env, "[Defect]")
    assert "[Defect]" not in obs[P1]["text"]  # a decision stays secret until both decided
    assert infos[P1]["admissible_actions"] == ["[Cooperate]", "[Defect]"]
    obs, _, _, _, infos = move(env, "[Cooperate]")
    assert "Player 0 defected, Player 1 cooperated." in obs[P1]["text"]
    assert infos[P0]["reward_terms"]["payoff"] == 5.0
    assert infos[P1]["reward_terms"]["payoff"] == 0.0


def test_an_invalid_move_carries_the_games_reason_and_repeats_end_the_game() -> None:
    env = TextArenaEnv("IteratedUltimatumGame-v0")
    env.reset(options={"task_id": "train/0000"})
    obs, rewards, terminated, _, infos = move(env, "half of it", others="[Offer: $9]")
    assert not infos[P0]["valid_action"] and infos[P1]["valid_action"]
    assert rewards[P0] == pytest.approx(-0.1)
    assert "Reason: Proposer must make an offer using the format [Offer: $X]." in obs[P0]["text"]
    assert obs[P1]["text"] == "[Player 0] half of it\nIt is Player 0's turn."
    assert infos[P0]["to_move"] == P0 and not terminated[P0]  # textarena: one more try
    obs, rewards, terminated, truncated, infos = move(env, "[Offer: $51]")
    assert terminated == {P0: True, P1: True} and not any(truncated.values())
    assert "Invalid move: Offer must be between $0 and $50." in obs[P0]["text"]
    assert "Game over. Offer must be between $0 and $50.\nYour outcome: 1." in obs[P1]["text"]
    assert infos[P0]["reward_terms"] == {"payoff": 0.0, "outcome": -1.0, "valid": -1.0}
    assert (infos[P0]["success"], infos[P1]["success"]) == (False, True)
    assert env.agents == []


@pytest.mark.parametrize("bad", [None, 42, "x" * 5000])
def test_actions_the_base_rejects_are_played_as_saying_nothing(bad: Any) -> None:
    env = TextArenaEnv("IteratedUltimatumGame-v0")
    env.reset(options={"task_id": "train/0000"})
    obs, _, _, _, infos = env.step({P0: bad, P1: "[Accept]"})
    assert not infos[P0]["valid_action"]
    assert obs[P0]["text"].startswith("Invalid action: ")
    assert "Proposer must make an offer using the format [Offer: $X]" in obs[P0]["text"]
    assert "[Player 0] (nothing)" in obs[P1]["text"]


def test_a_blank_move_in_a_chat_is_invalid_but_the_game_goes_on() -> None:
    env = TextArenaEnv("SimpleNegotiation-v0")
    env.reset(options={"task_id": "train/0000"})
    obs, _, _, _, infos = env.step({P0: " \n ", P1: "ignored"})
    assert not infos[P0]["valid_action"] and infos[P1]["valid_action"]
    assert obs[P0]["text"].startswith("Invalid action: the action is blank")
    assert "Player 0 made no new trade offer." in obs[P1]["text"]
    assert infos[P1]["to_move"] == P1  # textarena took it as a move: the turn passed


# ---------------------------------------------------------------------------- rewards
def test_the_negotiation_value_term_is_the_change_of_inventory_value() -> None:
    env = TextArenaEnv("SimpleNegotiation-v0-short")
    env.reset(options={"task_id": "train/0004"})
    game_state = env.textarena_env.state.game_state
    values = game_state["player_values"]
    start = inventory_values(env)
    *_, infos = move(env, "Deal? [Offer: 2 Wheat, 1 Wood -> 1 Ore]")
    assert infos[P0]["reward_terms"]["value"] == 0.0  # an offer changes nothing yet
    obs, rewards, _, _, infos = move(env, "Yes. [Accept]")
    assert "Player 1 accepted the trade offer from Player 0." in obs[P0]["text"]
    # By hand: Player 0 gave 2 Wheat and 1 Wood and got 1 Ore; Player 1 the other way round.
    gain0 = values[0]["Ore"] - 2 * values[0]["Wheat"] - values[0]["Wood"]
    gain1 = 2 * values[1]["Wheat"] + values[1]["Wood"] - values[1]["Ore"]
    assert (gain0, gain1) == (40 - 2 * 6 - 8, 2 * 6 + 10 - 33) == (20, -11)  # this task's values
    assert infos[P0]["reward_terms"]["value"] == gain0 != 0
    assert infos[P1]["reward_terms"]["value"] == gain1 != 0
    assert rewards[P1] == gain1
    totals = {P0: float(gain0), P1: float(gain1)}
    while env.agents:
        *_, infos = move(env, "[Deny]")
        for seat in (P0, P1):
            totals[seat] += infos[seat]["reward_terms"]["value"]
    end = inventory_values(env)
    assert totals == {P0: end[0] - start[0], P1: end[1] - start[1]}
    # textarena: the larger gain wins; success: a gain, whoever won.
    winner = P0 if gain0 > gain1 else P1
    assert infos[winner]["reward_terms"]["outcome"] == 1.0
    assert infos[P0 if winner == P1 else P1]["reward_terms"]["outcome"] == -1.0
    assert infos[P0]["success"] == (gain0 > 0) and infos[P1]["success"] == (gain1 > 0)
    assert game_state["inventory_value"][0]["change"] == gain0


@pytest.mark.parametrize("guess_right", [True, False])
def test_truth_and_deception_outcomes(guess_right: bool) -> None:
    env = TextArenaEnv("TruthAndDeception-v0")
    _, infos = env.reset(options={"task_id": "test/0001"})
    assert "the Deceiver" in infos[P0]["instruction"] and "(correct)" in infos[P0]["instruction"]
    assert "(correct)" not in infos[P1]["instruction"]
    for _ in range(5):
        *_, infos = move(env, "Let me tell you about these facts.")
    assert infos[P1]["admissible_actions"] == ["[Fact 1]", "[Fact 2]"]
    first_is_true = env.textarena_env.state.game_state["fact1"]["is_correct"]
    guess = "[Fact 1]" if first_is_true == guess_right else "[Fact 2]"
    obs, rewards, terminated, _, infos = move(env, f"I say {guess}")
    assert terminated[P0] and terminated[P1]
    sign = 1.0 if guess_right else -1.0
    assert (rewards[P0], rewards[P1]) == (-sign, sign)
    assert infos[P1]["success"] is guess_right and infos[P0]["success"] is not guess_right
    assert "Game over. Player 1 guessed" in obs[P0]["text"]


def test_taboo_scores_a_team_point_for_a_right_guess() -> None:
    env = TextArenaEnv("Taboo-v0")
    obs, _ = env.reset(options={"task_id": "train/0002"})
    word = env.textarena_env.state.game_state["word_to_guess"]
    assert f"The current word to guess is '{word}'" in obs[P0]["text"]
    assert word not in obs[P1]["text"]  # only the Clue Giver is told
    move(env, "Something you would use.")
    *_, infos = move(env, f"[{word}]")
    points = {a: infos[a]["reward_terms"]["points"] for a in infos}
    assert points == {"player_0": 1.0, "player_1": 1.0, "player_2": 0.0, "player_3": 0.0}


def test_public_goods_ends_when_every_player_is_eliminated() -> None:
    # textarena would loop forever on the next move; the env ends the game as a draw.
    env = TextArenaEnv("PublicGoodsGame-v0")
    env.reset(options={"task_id": "train/0000"})
    for _ in range(9):
        move(env, "{hello}")
    for player in range(3):
        for _ in range(3):
            *_, terminated, _, infos = move(env, "no idea")
        if player < 2:
            move(env, "[5]")  # an eliminated player must still make a valid move to pass on
    assert env.textarena_env.state.elimination_order == [0, 1, 2]
    assert all(terminated.values()) and env.agents == []
    assert {a: info["reward_terms"]["outcome"] for a, info in infos.items()} == dict.fromkeys(
        ["player_0", "player_1", "player_2"], 0.0
    )


# ---------------------------------------------------------------------------- partners
def test_negotiation_partners_make_trades_both_gain_from() -> None:
    env = TextArenaEnv("SimpleNegotiation-v0")
    for task in ("train/0000", "train/0001", "test/0000"):
        players = {a: NegotiationPartner() for a in env.possible_agents}
        obs, infos = env.reset(options={"task_id": task})
        start = inventory_values(env)
        while env.agents:
            moves = {a: players[a].act(obs[a], infos[a]) for a in env.agents}
            obs, _, _, _, infos = env.step(moves)
            assert all(info["valid_action"] for info in infos.values()), moves
        end = inventory_values(env)
        assert end[0] > start[0] and end[1] > start[1]
        assert infos[P0]["success"] and infos[P1]["success"]
        # Each partner tracked its inventory from the text alone.
        resources = env.textarena_env.state.game_state["player_resources"]
        assert [players[a].inventory for a in (P0, P1)] == [resources[0], resources[1]]


def test_the_negotiation_partner_accepts_only_what_raises_its_value() -> None:
    partner = NegotiationPartner()
    instruction = (
        "You are Player 1 in the Negotiation Game.\n"
        "\t+ [Wheat]   Qty: 5    Value: 6\n\t+ [Ore]     Qty: 2    Value: 35\n"
    )
    offer = "[GAME] Player 0 made the following offer to Player 1: Offered items: {} -> Requested items: {}"
    partner.act({"text": "It is Player 0's turn."}, {"instruction": instruction})
    good = {"text": offer.format("1 Ore", "5 Wheat") + "\nIt is your turn."}
    assert partner.act(good, {}) == "[Accept]"  # +35 - 30
    bad = {"text": offer.format("4 Wheat", "1 Ore") + "\nIt is your turn."}
    assert partner.act(bad, {}) != "[Accept]"  # +24 - 35
    unaffordable = {"text": offer.format("2 Ore", "6 Wheat") + "\nIt is your turn."}
    assert partner.act(unaffordable, {}) != "[Accept]"  # it holds only 5 Wheat
    assert partner.act({"text": "It is Player 0's turn."}, {"admissible_actions": []}) == ""


def test_random_partners_play_every_game_repeatably() -> None:
    def game_of(game: str, seed: int) -> list[Any]:
        env = TextArenaEnv(game)
        players = {a: RandomPartner(seed=seed + i) for i, a in enumerate(env.possible_agents)}
        obs, infos = env.reset(options={"task_id": "train/0001"})
        log = []
        while env.agents:
            moves: Mapping[str, str] = {a: players[a].act(obs[a], infos[a]) for a in env.agents}
            obs, rewards, _, _, infos = env.step(dict(moves))
            log.append((moves, rewards))
        return log

    for game in CURATED_GAMES:
        log = game_of(game, 0)
        assert log == game_of(game, 0), game
        assert log, game
    proposals = [m[P0] for m, _ in game_of("IteratedUltimatumGame-v0", 3)[::2]]
    assert all(p.startswith("[Offer: $") for p in proposals)


def test_partners_are_named_for_matches() -> None:
    assert partner_names(TextArenaEnv()) == ["negotiator", "random-moves"]
    env = TextArenaEnv("Taboo-v0")
    assert partner_names(env) == ["random-moves"]
    assert isinstance(load_seat_agent("random-moves", env, "player_3", seed=1), RandomPartner)


# ---------------------------------------------------------------------------- misc
def test_render_and_close() -> None:
    env = TextArenaEnv("IteratedUltimatumGame-v0", render_mode="ansi")
    env.reset(options={"task_id": "train/0000"})
    text = env.render()
    assert text is not None
    assert text.startswith("TextArena IteratedUltimatumGame-v0, task train/0000, turn 0")
    assert "[player_1]\n[GAME] --- Round 1 begins! ---" in text
    env.close()
    env.close()
    _, infos = env.reset(options={"task_id": "train/0001"})  # a closed env can start again
    assert infos[P0]["task_id"] == "train/0001"
