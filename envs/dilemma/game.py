"""The rules of the iterated prisoner's dilemma, free of any env machinery.

A task is a payoff variant and a number of rounds, written `"<variant>-<rounds>"` (`classic-5`).
Every variant is a true prisoner's dilemma (T > R > P > S, and 2R > T + S so that taking turns
exploiting each other pays less than cooperating) and also has R − P ≥ P − S, which is what makes
tit-for-tat a safe expert (see `success_threshold`).

Example:
    >>> task = parse_task("classic-5")
    >>> task.payoffs.of("cooperate", "defect"), task.rounds
    (0.0, 5)
    >>> success_threshold(task)
    4.0
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "COOPERATE",
    "DEFECT",
    "MOVES",
    "PAYOFFS",
    "SPLITS",
    "Payoffs",
    "Task",
    "parse_move",
    "parse_task",
    "success_threshold",
    "tit_for_tat",
]

COOPERATE = "cooperate"
DEFECT = "defect"
MOVES = (COOPERATE, DEFECT)


@dataclass(frozen=True)
class Payoffs:
    """A payoff matrix: `temptation` T, `reward` R, `punishment` P and `sucker` S."""

    name: str
    temptation: float
    reward: float
    punishment: float
    sucker: float

    def __post_init__(self) -> None:
        for name in ("temptation", "reward", "punishment", "sucker"):
            # Floats, so that payoffs and reward terms have one type whatever was passed.
            object.__setattr__(self, name, float(getattr(self, name)))
        t, r, p, s = self.temptation, self.reward, self.punishment, self.sucker
        if not (t > r > p > s and 2 * r > t + s and r - p >= p - s):
            raise ValueError(f"{self.name}: need T > R > P > S, 2R > T + S and R - P >= P - S")

    def of(self, mine: str, theirs: str) -> float:
        """My payoff when I play `mine` and they play `theirs` (both valid moves)."""
        if mine == COOPERATE:
            return self.reward if theirs == COOPERATE else self.sucker
        return self.temptation if theirs == COOPERATE else self.punishment

    def describe(self) -> str:
        """The matrix in words, as players see it."""
        return (
            f"  both cooperate: you get {self.reward:g} each\n"
            f"  you defect, they cooperate: you get {self.temptation:g}, they get {self.sucker:g}\n"
            f"  you cooperate, they defect: you get {self.sucker:g}, they get {self.temptation:g}\n"
            f"  both defect: you get {self.punishment:g} each"
        )


#: The payoff variants: Axelrod's tournament matrix, the donation game (give 1 so the other
#: gets 3) and a high-stakes matrix seen only in the test split.
PAYOFFS: dict[str, Payoffs] = {
    p.name: p
    for p in (
        Payoffs("classic", temptation=5, reward=3, punishment=1, sucker=0),
        Payoffs("donation", temptation=3, reward=2, punishment=0, sucker=-1),
        Payoffs("lopsided", temptation=8, reward=5, punishment=2, sucker=0),
    )
}

#: Task ids per split: train and test share no (variant, rounds) pair.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"{v}-{n}" for v in ("classic", "donation") for n in (3, 5, 8)),
    "test": tuple(f"{v}-{n}" for v in ("classic", "donation", "lopsided") for n in (4, 10)),
}


@dataclass(frozen=True)
class Task:
    """One game: its payoff matrix and number of rounds."""

    id: str
    payoffs: Payoffs
    rounds: int


def parse_task(task_id: str) -> Task:
    """The `Task` of an id like `classic-5` (any variant of `PAYOFFS`, 1 to 100 rounds)."""
    variant, _, rounds = task_id.rpartition("-")
    if variant not in PAYOFFS or not rounds.isdigit() or not 1 <= int(rounds) <= 100:
        raise ValueError(f"not a dilemma task id: {task_id!r} (expected e.g. 'classic-5')")
    return Task(task_id, PAYOFFS[variant], int(rounds))


def parse_move(text: str) -> str | None:
    """`cooperate` or `defect` (any case, surrounding whitespace ignored), else None."""
    move = text.strip().lower()
    return move if move in MOVES else None


def success_threshold(task: Task) -> float:
    """The total a player needs for `success`: (rounds − 1)·P + S.

    That is mutual defection throughout, less one round of being exploited: a player who ends
    below it was exploited beyond the one round any cooperative strategy risks. Tit-for-tat
    always reaches it: it is exploited (S instead of P) in round 1 at worst, and after that only
    right after a round in which the opponent cooperated, which paid it at least R; as
    R − P ≥ P − S, each such pair is worth at least 2P.
    """
    p = task.payoffs
    return (task.rounds - 1) * p.punishment + p.sucker


def tit_for_tat(their_history: list[str]) -> str:
    """Cooperate first, then play what the opponent played last (a forfeit counts as cooperate)."""
    return their_history[-1] if their_history else COOPERATE
