"""The curated TextArena games of `turnwise/TextArena-v0`: what turnwise knows about each one.

Every game here was played to the end offline with textarena 0.7.4. A `GameSpec` records what
the env needs beyond textarena's own code: the number of seats, a turn limit, the move syntax,
the per-turn reward term the game's state exposes (`tally`), the moves of its finite phases
(`admissible`), what `success` means, and a random move for `RandomPartner`. Nothing here imports
textarena: the functions take textarena's env or its `game_state` dict.

Example:
    >>> spec = GAMES["SimpleNegotiation-v0"]
    >>> spec.category, spec.players, spec.term, spec.success
    ('negotiation', 2, 'value', 'gained')
    >>> sorted({s.category for s in GAMES.values()})
    ['communication', 'cooperation', 'deception', 'fairness', 'negotiation', 'repeated dilemma']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["EXCLUDED", "GAMES", "NEGOTIATION_BASE_VALUES", "GameSpec", "game_spec"]

#: The mean value of each SimpleNegotiation resource; each player's private values are drawn
#: within ±20% of it (textarena's design, public knowledge for a scripted player).
NEGOTIATION_BASE_VALUES: Mapping[str, int] = {
    "Wheat": 5,
    "Wood": 10,
    "Sheep": 15,
    "Brick": 25,
    "Ore": 40,
}

Tally = Callable[[Mapping[str, Any], int], dict[int, float]]


def _no_moves(ta_env: Any) -> list[str] | None:
    return None


@dataclass(frozen=True)
class GameSpec:
    """One curated game (textarena id `id`) and how turnwise plays it."""

    id: str
    """textarena's id; the env makes its bare version (`<id>-raw`, no LLM wrappers)."""
    category: str
    """negotiation, deception, communication, repeated dilemma, cooperation or fairness."""
    players: int
    """Seats: `player_0` ... `player_{players - 1}` (textarena's Player 0 ...)."""
    max_turns: int
    """Default turn limit of the env: the game's own length with room for invalid moves."""
    moves: str
    """The move syntax, in words (the docs and the class docstring quote it)."""
    chat: bool
    """Some phase takes any text as a legal move (so hostile strings can be legal there)."""
    random_move: Callable[[random.Random, str], str]
    """A random move, from the player's rng and its instruction, where `admissible` is None."""
    term: str | None = None
    """Name of the per-turn reward term, the change of `tally` over the turn."""
    tally: Tally | None = None
    """Per textarena player id, the running quantity the per-turn term is the change of."""
    success: Literal["won", "gained"] = "won"
    """`won`: textarena's final reward is positive. `gained`: the tally rose over the game and
    the player did not forfeit by invalid moves."""
    admissible: Callable[[Any], list[str] | None] = _no_moves
    """The mover's moves when the phase has a finite set of them, else None (free text)."""
    finish_if_stuck: Callable[[Any], None] | None = None
    """Ends a game textarena would not end by itself (called after every move)."""


# ---------------------------------------------------------------------------- negotiation
def _inventory_values(game_state: Mapping[str, Any], players: int) -> dict[int, float]:
    """Each player's inventory value: resources × that player's private values."""
    resources, values = game_state["player_resources"], game_state["player_values"]
    return {
        p: float(sum(qty * values[p][name] for name, qty in resources[p].items()))
        for p in range(players)
    }


def _random_negotiation_move(rng: random.Random, instruction: str) -> str:
    kind = rng.random()
    if kind < 0.2:
        return "[Accept]"
    if kind < 0.3:
        return "[Deny]"
    give, get = rng.sample(list(NEGOTIATION_BASE_VALUES), 2)
    return f"[Offer: {rng.randint(1, 3)} {give} -> {rng.randint(1, 3)} {get}]"


# ---------------------------------------------------------------------------- deception
def _truth_moves(ta_env: Any) -> list[str] | None:
    state = ta_env.state
    return ["[Fact 1]", "[Fact 2]"] if state.turn == state.max_turns - 1 else None


_TRUTH_CHAT = (
    "I am quite sure Fact 1 is the true one.",
    "Fact 2 sounds right to me.",
    "Why do you think so?",
    "Trust me, I have read about this.",
)


def _chat_from(lines: tuple[str, ...]) -> Callable[[random.Random, str], str]:
    """A random move for a chat phase: one of `lines`."""

    def move(rng: random.Random, instruction: str) -> str:
        return rng.choice(lines)

    return move


# ---------------------------------------------------------------------------- dilemma
def _scores(key: str) -> Tally:
    def tally(game_state: Mapping[str, Any], players: int) -> dict[int, float]:
        return {p: float(game_state[key][p]) for p in range(players)}

    return tally


def _dilemma_moves(ta_env: Any) -> list[str] | None:
    decide = ta_env.state.game_state["phase"] == "decision"
    return ["[Cooperate]", "[Defect]"] if decide else None


_DILEMMA_CHAT = ("Let's both cooperate.", "I might defect this time.", "What will you do?")


def _random_dilemma_move(rng: random.Random, instruction: str) -> str:
    return rng.choice(_DILEMMA_CHAT)


# ---------------------------------------------------------------------------- taboo
def _team_points(game_state: Mapping[str, Any], players: int) -> dict[int, float]:
    # Two teams of players // 2 seats each: Player 0, 1 are team 0, and so on.
    team_size = players // 2
    return {p: float(game_state["score"][p // team_size]) for p in range(players)}


_TABOO_CLUES = ("You find it in most homes.", "People use it every day.", "It is quite small.")
_TABOO_GUESSES = ("chair", "phone", "book", "lamp", "car", "apple", "watch", "bottle")


def _random_taboo_move(rng: random.Random, instruction: str) -> str:
    if "the Clue Giver for Team" in instruction:  # a Guesser's prompt names the Clue Giver too
        return rng.choice(_TABOO_CLUES)
    return f"[{rng.choice(_TABOO_GUESSES)}]"


# ---------------------------------------------------------------------------- public goods
def _public_goods_moves(ta_env: Any) -> list[str] | None:
    game_state = ta_env.state.game_state
    if game_state["phase"] != "decision":
        return None
    return [f"[{tokens}]" for tokens in range(int(game_state["endowment"]) + 1)]


_PUBLIC_GOODS_CHAT = (
    "{Let's all contribute everything.}",
    "{I will contribute half.}",
    "I will stay silent this turn.",
)


def _end_if_everyone_eliminated(ta_env: Any) -> None:
    # textarena would loop forever looking for the next live player once every player has been
    # eliminated (FFAMultiPlayerState.step); end the game as the game itself ends one without
    # live players: a draw.
    state = ta_env.state
    if not state.done and all(not state.is_player_alive(p) for p in range(state.num_players)):
        state.set_draw(reason="All players eliminated!")


# ---------------------------------------------------------------------------- ultimatum
def _ultimatum_moves(ta_env: Any) -> list[str] | None:
    game_state = ta_env.state.game_state
    if game_state["phase"] == "responding":
        return ["[Accept]", "[Reject]"]
    return [f"[Offer: ${amount}]" for amount in range(int(game_state["pool"]) + 1)]


def _random_ultimatum_move(rng: random.Random, instruction: str) -> str:
    return "[Reject]"  # never reached: every phase lists its moves


# ---------------------------------------------------------------------------- the list
_NEGOTIATION_MOVES = (
    "free text; a trade is `[Offer: 3 Sheep, 2 Ore -> 5 Brick]` (what you give -> what you "
    "want), and `[Accept]` takes the offer on the table (anything else, e.g. `[Deny]`, "
    "declines it)"
)


def _negotiation(id: str, max_turns: int) -> GameSpec:
    return GameSpec(
        id=id,
        category="negotiation",
        players=2,
        max_turns=max_turns,
        moves=_NEGOTIATION_MOVES,
        chat=True,
        random_move=_random_negotiation_move,
        term="value",
        tally=_inventory_values,
        success="gained",
    )


def _ultimatum(id: str, max_turns: int) -> GameSpec:
    return GameSpec(
        id=id,
        category="fairness",
        players=2,
        max_turns=max_turns,
        moves="the proposer `[Offer: $X]` (0 <= X <= 50), the responder `[Accept]` or `[Reject]`",
        chat=False,
        random_move=_random_ultimatum_move,
        term="payoff",
        tally=_scores("player_totals"),
        admissible=_ultimatum_moves,
    )


#: The curated games, by textarena id.
GAMES: Mapping[str, GameSpec] = {
    spec.id: spec
    for spec in (
        _negotiation("SimpleNegotiation-v0", 30),
        _negotiation("SimpleNegotiation-v0-short", 20),
        _negotiation("SimpleNegotiation-v0-long", 70),
        GameSpec(
            id="TruthAndDeception-v0",
            category="deception",
            players=2,
            max_turns=16,
            moves="free text for 5 turns, then the Guesser answers `[Fact 1]` or `[Fact 2]`",
            chat=True,
            random_move=_chat_from(_TRUTH_CHAT),
            admissible=_truth_moves,
        ),
        GameSpec(
            id="IteratedPrisonersDilemma-v0",
            category="repeated dilemma",
            players=2,
            max_turns=60,
            moves="free text for one turn each, then `[Cooperate]` or `[Defect]` (any text "
            "without `[Defect]` cooperates)",
            chat=True,
            random_move=_random_dilemma_move,
            term="payoff",
            tally=_scores("scores"),
            admissible=_dilemma_moves,
        ),
        GameSpec(
            id="Taboo-v0",
            category="communication",
            players=4,
            max_turns=80,
            moves="the Clue Giver free text without the taboo words, the Guesser `[word]`",
            chat=True,
            random_move=_random_taboo_move,
            term="points",
            tally=_team_points,
        ),
        GameSpec(
            id="PublicGoodsGame-v0",
            category="cooperation",
            players=3,
            max_turns=60,
            moves="free text, public only inside `{...}`, for 3 turns; then a contribution "
            "`[X]` (0 <= X <= 20)",
            chat=True,
            random_move=_chat_from(_PUBLIC_GOODS_CHAT),
            term="payoff",
            tally=_scores("total_scores"),
            admissible=_public_goods_moves,
            finish_if_stuck=_end_if_everyone_eliminated,
        ),
        _ultimatum("IteratedUltimatumGame-v0", 24),
        _ultimatum("IteratedUltimatumGame-v0-alternate", 28),
    )
}

#: TextArena social games left out, and why (none of them runs offline here).
EXCLUDED: Mapping[str, str] = {
    "UsedCarNegotiation-v0": "the wheel lacks the instruction files it reads at reset",
    "Codenames-v0": "downloads NLTK corpora from GitHub when its module is imported",
    "DontSayIt-v0": "downloads NLTK corpora from GitHub when its module is imported",
    "Debate-v0": "its jury asks models on OpenRouter (network, API key)",
    "IteratedStagHunt-v0": "its module has a SyntaxError in textarena 0.7.4 (nested f-string)",
}


def game_spec(game: str) -> GameSpec:
    """The spec of curated `game`; a `ValueError` listing the curated games for any other."""
    spec = GAMES.get(game)
    if spec is None:
        why = f" ({EXCLUDED[game]})" if game in EXCLUDED else ""
        raise ValueError(
            f"{game!r} is not a curated TextArena game{why}; curated: {', '.join(GAMES)}"
        )
    return spec
