"""Scripted partners for `TextArenaEnv`, as `turnwise.episode.Agent`s.

They read only what any seat gets (its observations, and its infos: the reset `instruction`,
`admissible_actions`), so they can play a seat of `TextArenaEnv` or be the partners of
`turnwise.wrappers.SingleAgent`, which lets a learner train one seat against them. On a turn that
is not theirs (`admissible_actions == []`) they answer an empty string, which the env ignores.

Example:
    >>> from turnwise.envs.social.arena import TextArenaEnv
    >>> from turnwise.wrappers import SingleAgent
    >>> env = SingleAgent(TextArenaEnv("SimpleNegotiation-v0"), "player_0",
    ...                   {"player_1": NegotiationPartner()})
    >>> obs, info = env.reset(seed=0, options={"task_id": "train/0000"})
    >>> obs, reward, terminated, truncated, info = env.step("Hello! [Offer: 2 Wheat -> 1 Wood]")
    >>> print(obs["text"])
    [GAME] Player 0 made the following offer to Player 1: Offered items: 2 Wheat -> Requested items: 1 Wood
    It is Player 1's turn.
    [Player 1] [Offer: 2 Brick -> 3 Sheep]
    [GAME] Player 1 rejected the trade offer.
    [GAME] Player 1 made the following offer to Player 0: Offered items: 2 Brick -> Requested items: 3 Sheep
    It is your turn.
    >>> obs, reward, terminated, truncated, info = env.step("[Accept]")  # Brick 24, Sheep 13 to me
    >>> reward, info["reward_terms"]
    (9.0, {'value': 9.0, 'valid': 0.0})
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from turnwise.envs.social.arena_games import NEGOTIATION_BASE_VALUES, GameSpec, game_spec

__all__ = ["NegotiationPartner", "RandomPartner"]

_ME = re.compile(r"You are Player (\d+)")
_HOLDING = re.compile(r"\[(\w+)\]\s+Qty:\s*(\d+)\s+Value:\s*(\d+)")
_OFFER = re.compile(
    r"Player (\d+) made the following offer to Player (\d+): "
    r"Offered items: (.+?) -> Requested items: (.+)"
)
_ACCEPTED = re.compile(r"Player (\d+) accepted the trade offer from Player (\d+)\.")
_ITEMS = re.compile(r"(\d+) (\w+)")

Bundle = dict[str, int]


def _bundle(text: str) -> Bundle:
    """`1 Wheat, 2 Ore` -> {"Wheat": 1, "Ore": 2}."""
    items: Bundle = {}
    for qty, name in _ITEMS.findall(text):
        items[name] = items.get(name, 0) + int(qty)
    return items


def _waiting(info: Mapping[str, Any]) -> bool:
    return info.get("admissible_actions") == []


class NegotiationPartner:
    """A rule-based SimpleNegotiation player that only makes trades it gains from.

    It reads its seat, resources and private values from its instruction, and follows every
    offer and accepted trade in its observations to keep its inventory up to date. On its turn:

    1. it accepts (`[Accept]`) the offer on the table if that offer is to it, raises its
       inventory value by at least `min_gain`, and it holds what is asked for;
    2. otherwise it offers the trade (1 to 3 units of one resource for 1 to 3 of another) that
       maximises the smaller of its own gain (by its values) and the other player's expected
       gain (by textarena's mean values, `NEGOTIATION_BASE_VALUES`), both positive; it rotates
       among its three best such trades so as not to repeat a rejected one forever;
    3. with no such trade, or right after textarena called one of its moves invalid, it answers
       `[Deny]`, always a legal move.

    It is deterministic: `reset(seed=...)` only clears what it remembers of the last game.
    """

    def __init__(self, min_gain: float = 1.0) -> None:
        self.min_gain = min_gain
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        self.me: int | None = None
        self.inventory: Bundle = {}
        self.values: Bundle = {}
        self.offer: tuple[int, int, Bundle, Bundle] | None = None  # from, to, offered, requested
        self.offers_made = 0
        self._stumbled = False

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        if "instruction" in info:
            self._start(str(info["instruction"]))
        self._read(str(observation.get("text", "")))
        if _waiting(info) or self.me is None:
            return ""
        if self._stumbled:
            self._stumbled = False
            return "[Deny]"
        if self.offer is not None:
            _, to, offered, requested = self.offer
            gain = self._gain(offered, requested)
            if to == self.me and gain >= self.min_gain and self._holds(requested):
                return "[Accept]"
        trades = self._trades()
        if not trades:
            return "[Deny]"
        give, get = trades[self.offers_made % min(3, len(trades))]
        self.offers_made += 1
        return f"[Offer: {_show(give)} -> {_show(get)}]"

    # ------------------------------------------------------------------ reading
    def _start(self, instruction: str) -> None:
        self.reset()
        me = _ME.search(instruction)
        self.me = int(me.group(1)) if me else None
        for name, qty, value in _HOLDING.findall(instruction):
            self.inventory[name], self.values[name] = int(qty), int(value)

    def _read(self, text: str) -> None:
        for line in text.splitlines():
            if "attempted an invalid move" in line or line.startswith("[GAME] Invalid move"):
                self._stumbled = True
            offer = _OFFER.search(line)
            if offer:
                giver, to = int(offer.group(1)), int(offer.group(2))
                self.offer = (giver, to, _bundle(offer.group(3)), _bundle(offer.group(4)))
            accepted = _ACCEPTED.search(line)
            if accepted and self.offer is not None:
                self._settle(int(accepted.group(1)), int(accepted.group(2)))

    def _settle(self, acceptor: int, proposer: int) -> None:
        _, _, offered, requested = self.offer or (0, 0, {}, {})
        if self.me == proposer:
            self._move(requested, offered)
        if self.me == acceptor:
            self._move(offered, requested)
        self.offer = None

    def _move(self, gained: Bundle, given: Bundle) -> None:
        for name, qty in gained.items():
            self.inventory[name] = self.inventory.get(name, 0) + qty
        for name, qty in given.items():
            self.inventory[name] = self.inventory.get(name, 0) - qty

    # ------------------------------------------------------------------ deciding
    def _gain(self, received: Bundle, given: Bundle) -> float:
        worth = self.values
        return float(
            sum(q * worth.get(n, 0) for n, q in received.items())
            - sum(q * worth.get(n, 0) for n, q in given.items())
        )

    def _holds(self, bundle: Bundle) -> bool:
        return all(self.inventory.get(name, 0) >= qty for name, qty in bundle.items())

    def _trades(self) -> list[tuple[Bundle, Bundle]]:
        """Good trades for both sides, best first (a deterministic order)."""
        scored = []
        for give in self.values:
            for get in self.values:
                if give == get:
                    continue
                for x in range(1, 4):
                    if self.inventory.get(give, 0) < x:
                        continue
                    for y in range(1, 4):
                        mine = y * self.values[get] - x * self.values[give]
                        theirs = x * NEGOTIATION_BASE_VALUES.get(give, 0) - y * (
                            NEGOTIATION_BASE_VALUES.get(get, 0)
                        )
                        if mine >= self.min_gain and theirs > 0:
                            scored.append((-min(mine, theirs), give, x, get, y))
        scored.sort()
        return [({give: x}, {get: y}) for _, give, x, get, y in scored]


def _show(bundle: Bundle) -> str:
    return ", ".join(f"{qty} {name}" for name, qty in bundle.items())


class RandomPartner:
    """Random legal-looking moves for any curated game; `reset(seed=...)` makes it repeatable.

    Where the seat's info lists `admissible_actions` (a dilemma decision, an ultimatum offer, a
    contribution) it picks one of them uniformly; in free-text phases it plays the game's random
    move (`GameSpec.random_move`: a random offer, a canned chat line, a random guess), which may
    well be invalid in the game, as a random player's would.

    Args:
        game: the curated textarena id being played (default: the `game` of the seat's reset
            info, as `TextArenaEnv` gives it).
        seed: seeds its own `random.Random` (never the global one).
    """

    def __init__(self, game: str | None = None, seed: int | None = None) -> None:
        self.spec: GameSpec | None = None if game is None else game_spec(game)
        self.rng = random.Random(seed)
        self.instruction = ""

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = random.Random(seed)
        self.instruction = ""

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        if "instruction" in info:
            self.instruction = str(info["instruction"])
            if "game" in info:
                self.spec = game_spec(str(info["game"]))
        if _waiting(info):
            return ""
        moves = info.get("admissible_actions")
        if moves:
            return str(self.rng.choice(list(moves)))
        if self.spec is None:
            raise ValueError("RandomPartner does not know the game: pass game=... or reset infos")
        return self.spec.random_move(self.rng, self.instruction)
