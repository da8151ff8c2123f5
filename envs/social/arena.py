"""`TextArenaEnv`: curated TextArena social games, one seat per player, as a turnwise `ParallelEnv`.

TextArena (`pip install 'turnwise[social]'`) ships 100+ text games; the curated ones
(`turnwise.envs.social.arena_games.GAMES`) are the social games that run offline. textarena is
imported only when an env is built, so `import turnwise` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from turnwise.envs.social.arena_games import GAMES, GameSpec, game_spec
from turnwise.multiagent import JointStep, ParallelEnv
from turnwise.testing.hostile import free_text_hostile

__all__ = ["CURATED_GAMES", "TASKS_PER_SPLIT", "TextArenaEnv", "task_seed"]

#: The curated textarena ids (`arena_games.GAMES` has what turnwise knows about each).
CURATED_GAMES: tuple[str, ...] = tuple(GAMES)

#: Tasks per split; task `<split>/<i>` is textarena's reset seed `FIRST_SEED[split] + i`.
TASKS_PER_SPLIT: Mapping[str, int] = {"train": 200, "test": 50}
FIRST_SEED: Mapping[str, int] = {"train": 0, "test": 10_000}
_GAME = -1  # textarena's sender id for messages from the game itself
_BLANK = "Invalid action: the action is blank (it was played as saying nothing)."


def task_seed(task_id: str) -> int:
    """textarena's reset seed of `task_id` (`train/0007` -> 7, `test/0000` -> 10000).

    Example:
        >>> task_seed("train/0007"), task_seed("test/0002")
        (7, 10002)
    """
    split, _, number = task_id.partition("/")
    if split not in TASKS_PER_SPLIT or not number.isdigit():
        raise ValueError(f"not a TextArena task id: {task_id!r} (expected e.g. 'train/0000')")
    if int(number) >= TASKS_PER_SPLIT[split]:
        raise ValueError(f"{split} has {TASKS_PER_SPLIT[split]} tasks, not task {number}")
    return FIRST_SEED[split] + int(number)


def _textarena() -> Any:
    try:
        import textarena
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"TextArenaEnv needs textarena (missing module {exc.name!r}): "
            "pip install 'turnwise[social]'"
        ) from exc
    return textarena


class TextArenaEnv(ParallelEnv):
    """A curated TextArena game; each of its players is a seat (`player_0` is textarena's Player 0).

    * **Games** (`game=`, one per env): `SimpleNegotiation-v0` (also `-short`, `-long`),
      `TruthAndDeception-v0`, `IteratedPrisonersDilemma-v0`, `Taboo-v0` (4 seats, two teams),
      `PublicGoodsGame-v0` (3 seats), `IteratedUltimatumGame-v0` (also `-alternate`); see
      `arena_games.GAMES` for the category, seats and move syntax of each. textarena's bare game
      is played, without the wrappers that format prompts and actions for LLMs.
    * **Tasks** are `train/0000` ... `train/0199` and `test/0000` ... `test/0049`: task `i` is
      textarena's reset seed `i` (train) or `10000 + i` (test), which draws the game (resources
      and private values, the pair of facts, the taboo words).
    * **Turns.** TextArena games are sequential: each joint step plays the move of the seat to
      move (`info["to_move"]`). Every seat observes what textarena showed it since its previous
      observation (`[GAME] ...`, `[Player 1] ...`, a seat's own moves not echoed), then whose turn
      it is. Waiting seats have `admissible_actions == []` and their actions are ignored. The
      seat's role and rules prompt is its `instruction`; it is not repeated in the observation.
    * **Moves** are passed to the game as they are, in the game's own syntax (`[Offer: ...]`,
      `[Accept]`, `[Cooperate]`, ...; nothing is wrapped in brackets for you). Where a phase has
      a finite set of moves (a dilemma decision, an ultimatum offer), `admissible_actions` lists
      them. A move textarena rejects has `valid_action` False and its reason in the mover's
      observation; textarena lets the mover try again, and ends the game (or eliminates the
      player, or skips its turn) after repeated invalid moves, as each game decides. An action
      the base class rejects (not a string, too long, missing), or a blank one, from the mover
      is invalid and is played as an empty message: to textarena an invalid move where it
      expects a bracketed move, silence in a chat phase. In a chat phase any other text is a
      legal move, hostile strings included (`accepted_hostile_actions`).
    * **Rewards**: `outcome`, textarena's final reward of each player (+1 win, -1 loss, 0 draw),
      on the step that ends the game; where the game keeps a running score, its change over the
      turn: `value` (SimpleNegotiation: the player's inventory value, resources × its private
      values, so the sum over a game is the final gain), `payoff` (prisoner's dilemma, public
      goods, ultimatum) or `points` (Taboo: the team's points). Plus the base's `valid` term.
    * **Success** (per seat, when the game ends): SimpleNegotiation, the inventory value rose
      and the player did not forfeit by invalid moves; every other game, a positive `outcome`.
    * **Expert**: none (`expert_action` returns None). **Partners**: `partners` names the
      scripted players of `turnwise.envs.social.partners` (`random-moves`, and `negotiator` in
      SimpleNegotiation), for `turnwise.wrappers.SingleAgent` and `turnwise match`.
    * Deterministic: the task fixes textarena's seed, and textarena's draws from Python's global
      `random` run on a stream private to the env (the caller's `random` state is untouched),
      so the same task and moves replay the same game.

    Args:
        game: a curated textarena id (a `ValueError` lists them).
        split, reward_weights, max_action_length, render_mode: as in `ParallelEnv`.
        max_turns: joint steps before truncation (default: the game's length with room for
            invalid moves, `GAMES[game].max_turns`).

    Example:
        >>> env = TextArenaEnv("IteratedUltimatumGame-v0")
        >>> obs, infos = env.reset(options={"task_id": "train/0000"})
        >>> infos["player_1"]["instruction"].splitlines()[0]
        'You are Player 1, playing 5 rounds of Iterated Ultimatum Game.'
        >>> print(obs["player_1"]["text"])
        [GAME] --- Round 1 begins! ---
        Player 0 is the proposer, Player 1 is the responder.
        It is Player 0's turn.
        >>> infos["player_1"]["admissible_actions"], infos["player_0"]["admissible_actions"][20]
        ([], '[Offer: $20]')
        >>> _ = env.step({"player_0": "I keep most of it. [Offer: $20]", "player_1": ""})
        >>> obs, rewards, _, _, infos = env.step({"player_0": "", "player_1": "[Accept]"})
        >>> print(obs["player_0"]["text"])
        [Player 1] [Accept]
        [GAME] Player 1 accepted! Round 1 gains: Player 0 +$30, Player 1 +$20. New totals: Player 0: $30, Player 1: $20.
        [GAME] --- Round 2 begins! ---
        Player 0 is the proposer, Player 1 is the responder.
        It is your turn.
        >>> infos["player_0"]["reward_terms"], rewards["player_1"]
        ({'payoff': 30.0, 'valid': 0.0}, 20.0)
    """

    metadata: ClassVar[dict[str, Any]] = {
        **ParallelEnv.metadata,
        "name": "turnwise/TextArena-v0",
    }

    def __init__(
        self,
        game: str = "SimpleNegotiation-v0",
        *,
        split: str = "train",
        max_turns: int | None = None,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        self.game_spec: GameSpec = game_spec(game)
        self.game = self.game_spec.id
        #: Hostile strings that are legal moves of a chat phase (`turnwise.testing.hostile`).
        self.accepted_hostile_actions = free_text_hostile() if self.game_spec.chat else ()
        #: Scripted partners by name (`turnwise.matches.load_seat_agent`).
        self.partners = {"random-moves": "turnwise.envs.social.partners:RandomPartner"}
        if self.game_spec.category == "negotiation":
            self.partners["negotiator"] = "turnwise.envs.social.partners:NegotiationPartner"
        # textarena draws from Python's global `random`; the game gets a stream of its own.
        self._random_state: Any = None
        self._textarena_env: Any = self._make_game()
        super().__init__(
            [f"player_{i}" for i in range(self.game_spec.players)],
            split=split,
            max_turns=self.game_spec.max_turns if max_turns is None else max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self._invalid: list[tuple[int, str]] = []  # (player id, reason) of this move
        self._start_tally: dict[int, float] = {}
        self._tally_now: dict[int, float] = {}
        self._log_hash = hashlib.sha256()
        self._logged = 0
        self._digest = ""

    # ------------------------------------------------------------------ the game
    @property
    def textarena_env(self) -> Any:
        """The bare textarena env being played (read it; stepping it directly breaks the env)."""
        if self._textarena_env is None:
            self._textarena_env = self._make_game()
        return self._textarena_env

    def tasks(self, split: str | None = None) -> Sequence[str]:
        split = split or self.split
        if split not in TASKS_PER_SPLIT:
            raise ValueError(f"unknown split {split!r}; {self.env_id} has {self.splits}")
        return [f"{split}/{i:04d}" for i in range(TASKS_PER_SPLIT[split])]

    def _reset_task(
        self, task_id: str
    ) -> tuple[Mapping[str, str], Mapping[str, Mapping[str, Any]]]:
        game = self.textarena_env
        with self._game_random(seed=task_seed(task_id)):
            game.reset(num_players=self.game_spec.players, seed=task_seed(task_id))
        self._record_invalid_moves(game.state)
        self._invalid = []
        self._start_tally = self._tally()
        self._tally_now = dict(self._start_tally)
        self._log_hash, self._logged = hashlib.sha256(), 0
        self._update_digest()
        messages = self._drain()
        observations, infos = {}, {}
        for player, seat in enumerate(self.possible_agents):
            prompts = [text for _, text, kind in messages[player] if kind == "PROMPT"]
            rest = [m for m in messages[player] if m[2] != "PROMPT"]
            observations[seat] = self._render(player, rest, [], {})
            infos[seat] = {
                "instruction": "\n\n".join(prompts),
                "game": self.game,
                "to_move": self._seat_to_move(),
            }
        return observations, infos

    def _step(self, moves: Mapping[str, str | None]) -> JointStep:
        game = self.textarena_env
        state = game.state
        mover = int(state.current_player_id)
        move = moves.get(self.possible_agents[mover])
        # A move the base rejected, or a blank one, is played as saying nothing: the game decides
        # what that means (an invalid move where it expects a bracketed move, silence in a chat).
        blank = move is None or not move.strip()
        self._invalid = []
        with self._game_random():
            game.step("" if blank or move is None else move)
            if self.game_spec.finish_if_stuck is not None:
                self.game_spec.finish_if_stuck(game)
        before, self._tally_now = self._tally_now, self._tally()
        self._update_digest()
        done = bool(state.done)
        rewards = {int(p): float(r) for p, r in (state.rewards or {}).items()} if done else {}
        reasons = [reason for player, reason in self._invalid if player == mover]
        messages = self._drain()
        observations: dict[str, str] = {}
        terms: dict[str, dict[str, float]] = {}
        success: dict[str, bool] = {}
        for player, seat in enumerate(self.possible_agents):
            own = player == mover
            # A blank move is legal in a chat phase by textarena's rules, but never a real move.
            note = _BLANK if own and move is not None and blank else ""
            observations[seat] = self._render(
                player, messages[player], reasons if own else [], rewards, note
            )
            terms[seat] = {}
            if self.game_spec.term is not None:
                terms[seat][self.game_spec.term] = self._tally_now[player] - before[player]
            if done:
                terms[seat]["outcome"] = rewards.get(player, 0.0)
                success[seat] = self._succeeded(player, rewards)
        return JointStep(
            observations=observations,
            reward_terms=terms,
            valid={self.possible_agents[mover]: not reasons and not blank},
            terminated=done,
            success=success,
            infos={} if done else {s: {"to_move": self._seat_to_move()} for s in observations},
        )

    def admissible_actions(self, agent: str) -> list[str] | None:
        state = getattr(self._textarena_env, "state", None)
        if state is None or self._task_id is None:
            return None
        if state.done or agent != self.possible_agents[int(state.current_player_id)]:
            return []
        return self.game_spec.admissible(self._textarena_env)

    def state_key(self, agent: str) -> str:
        # The game's whole state (its `game_state`, every message so far, whose turn), hashed:
        # equal keys mean the same game at the same point, the conversation included.
        state = getattr(self._textarena_env, "state", None)
        turn = getattr(state, "turn", 0)
        return f"{self.game}|{self.task_id}|{agent}|turn {turn}|{self._digest}"

    def render(self) -> str | None:
        to_move = self._seat_to_move() if self.agents else "nobody (no game in progress)"
        header = f"TextArena {self.game}, task {self.task_id}, turn {self.turn}; to move: {to_move}"
        seats = "\n\n".join(f"[{a}]\n{o.get('text', '')}" for a, o in self._last_obs.items())
        text = f"{header}\n\n{seats}"
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _close(self) -> None:
        # textarena holds no OS resources: drop the game (a later reset builds a new one).
        self._textarena_env = None

    # ------------------------------------------------------------------ helpers
    def _make_game(self) -> Any:
        textarena = _textarena()
        with self._game_random(seed=0):
            # The bare game: the `-raw` registration has none of textarena's LLM wrappers.
            return textarena.make(f"{self.game}-raw")

    @contextlib.contextmanager
    def _game_random(self, seed: int | None = None) -> Iterator[None]:
        """Run textarena code on the game's own `random` stream, leaving the caller's intact."""
        outer = random.getstate()
        if seed is not None:
            random.seed(seed)
        elif self._random_state is not None:
            random.setstate(self._random_state)
        try:
            yield
        finally:
            self._random_state = random.getstate()
            random.setstate(outer)

    def _record_invalid_moves(self, state: Any) -> None:
        """Note every invalid move textarena's state is told of (its own message may be missing,
        e.g. when the move ends the game), by wrapping this state object's `set_invalid_move`."""
        original = state.set_invalid_move

        def set_invalid_move(*args: Any, **kwargs: Any) -> Any:
            reason = kwargs.get("reason", args[0] if args else "")
            self._invalid.append((int(state.current_player_id), str(reason)))
            return original(*args, **kwargs)

        state.set_invalid_move = set_invalid_move

    def _tally(self) -> dict[int, float]:
        tally = self.game_spec.tally
        if tally is None:
            return {}
        return tally(self.textarena_env.state.game_state, self.game_spec.players)

    def _succeeded(self, player: int, rewards: Mapping[int, float]) -> bool:
        if self.game_spec.success == "gained":
            forfeited = bool(self.textarena_env.state.game_info[player].get("invalid_move"))
            gained = self._tally_now[player] > self._start_tally[player]
            return gained and not forfeited
        return rewards.get(player, 0.0) > 0

    def _seat_to_move(self) -> str:
        state = getattr(self._textarena_env, "state", None)
        return "" if state is None else self.possible_agents[int(state.current_player_id)]

    def _drain(self) -> list[list[tuple[int, str, str]]]:
        """Per player, the messages textarena queued for it since the last call (then cleared)."""
        state = self.textarena_env.state
        drained = []
        for player in range(self.game_spec.players):
            queue = state.observations.get(player, [])
            drained.append([(int(s), str(text), kind.name) for s, text, kind in queue])
            state.observations[player] = []
        return drained

    def _render(
        self,
        player: int,
        messages: Sequence[tuple[int, str, str]],
        invalid_reasons: Sequence[str],
        rewards: Mapping[int, float],
        note: str = "",
    ) -> str:
        """What `player` sees: its new messages, why its move was invalid, then whose turn it is
        (or how the game ended)."""
        lines = [note] if note else []
        for sender, text, kind in messages:
            if kind == "PLAYER_ACTION" and sender == player:
                continue  # the seat knows what it said
            name = "GAME" if sender == _GAME else f"Player {sender}"
            shown = text.strip() or ("(nothing)" if kind == "PLAYER_ACTION" else "")
            lines.append(f"[{name}] {shown}")
        shown_so_far = "\n".join(lines)
        lines += [f"[GAME] Invalid move: {r}" for r in invalid_reasons if r not in shown_so_far]
        state = self.textarena_env.state
        if state.done:
            reason = str(state.game_info.get(player, {}).get("reason", "")).strip()
            lines.append(f"Game over. {reason}".strip())
            lines.append(f"Your outcome: {rewards.get(player, 0.0):g}.")
        elif int(state.current_player_id) == player:
            lines.append("It is your turn.")
        else:
            lines.append(f"It is Player {state.current_player_id}'s turn.")
        return "\n".join(lines)

    def _update_digest(self) -> None:
        """Fold the new messages into the running hash of the game, and hash the whole state."""
        state = self.textarena_env.state
        for sender, text in state.logs[self._logged :]:
            self._log_hash.update(json.dumps([sender, text]).encode())
        self._logged = len(state.logs)
        snapshot = hashlib.sha256(self._log_hash.digest())
        position = [_canonical(state.game_state), state.current_player_id, state.done]
        snapshot.update(json.dumps(position, sort_keys=True, default=repr).encode())
        self._digest = snapshot.hexdigest()[:16]


def _canonical(value: Any) -> Any:
    """`value` with every mapping key a string, so that `json.dumps(sort_keys=True)` works."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value
