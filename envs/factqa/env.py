"""`FactQAEnv`: answer a question by searching and reading a small synthetic encyclopedia.

Commands (the verb is case-insensitive; titles and answers are compared after `normalise`):

    search <words>     titles of up to 5 documents sharing words with the query, best first
    read <title>       the text of a document whose title a search has listed
    answer <text>      ends the episode; correct when it equals the gold answer

An invalid step (unknown command, nothing to search for, a title no search has listed, an empty
answer) changes nothing, and its observation says what was wrong. See `turnwise.envs.factqa.kb`
for the knowledge base and the questions, and `docs/envs/factqa.md`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from turnwise.core import Env, StepResult

from .kb import (
    DIFFICULTIES,
    SPLITS,
    Catalog,
    Document,
    Task,
    cached_words,
    normalise,
    title_key,
    words,
)

__all__ = ["GRAMMAR", "MAX_SUGGESTIONS", "MAX_TURNS", "FactQAEnv"]

GRAMMAR = "Commands: search <words>, read <title>, answer <text>."
#: Default turn limit per difficulty.
MAX_TURNS = {"easy": 8, "medium": 12}
#: `admissible_actions` suggests at most this many searches.
MAX_SUGGESTIONS = 3
_ZERO = {"outcome": 0.0, "progress": 0.0}
_INTRO = "Find the answer in a small encyclopedia: search it, read what it lists, then answer."


def _quoted(text: str) -> str:
    """` 'text'` when it is short, plain ASCII; otherwise nothing (never echo hostile input)."""
    if 0 < len(text) <= 40 and text.isascii() and all(c.isalnum() or c in " -'" for c in text):
        return f" '{text}'"
    return ""


class FactQAEnv(Env):
    """Search-and-answer over a seeded synthetic knowledge base, with a gold answer per task.

    Args:
        difficulty: `easy` (the answer is in the document about the entity the question names:
            one hop) or `medium` (that document names a second entity, whose document holds
            the answer: two hops).
        split, reward_weights, max_action_length, render_mode: as in `turnwise.Env`.
        max_turns: defaults to 8 (easy) or 12 (medium); the expert needs 3 (easy) or 4–5.

    Reset info adds `gold_answer`, the exact answer string, and `gold_action`, the action that
    gives it (`answer <gold_answer>`; IGPO scores its belief in that reply), to the standard keys;
    `instruction` is the question.

    Reward terms: `outcome` (1.0 for a correct answer), `progress` (potential-based: the
    change in the fraction of the needed documents read; it sums to 1.0 once all are read),
    and the base class's `valid`.

    Example:
        >>> env = FactQAEnv("medium")
        >>> obs, info = env.reset(seed=0, options={"task_id": "medium-train-00001"})
        >>> info["instruction"]
        'What colour is the flag of the country where Midra Marton was born?'
        >>> info["gold_answer"], env.expert_action()
        ('brown', 'search Midra Marton')
        >>> print(env.step("search Midra Marton")[0]["text"])
        Search results:
        - Midra Marton
        - Midra Dunbrook
        - Midra Fenmoor
        - The Amber Window
        >>> obs, reward, terminated, truncated, info = env.step("read midra marton")
        >>> print(obs["text"])
        Midra Marton
        Midra Marton was born in Suavik, a city in Soris. Midra Marton works as an astronomer. Midra Marton lives in Suossa.
        >>> info["reward_terms"], reward, info["state_key"]
        ({'outcome': 0.0, 'progress': 0.5, 'valid': 0.0}, 0.25, 'read=Midra Marton')
        >>> env.step("read Soris")[0]["text"]
        "Invalid action: no document titled 'Soris' has appeared in your search results; search first, then read one of the titles it lists."
    """

    family = "text"
    splits = SPLITS
    default_reward_weights: ClassVar[Mapping[str, float]] = {
        **Env.default_reward_weights,
        "outcome": 1.0,
        "progress": 0.5,
    }

    def __init__(
        self,
        difficulty: str = "medium",
        *,
        split: str = "train",
        max_turns: int | None = None,
        reward_weights: Mapping[str, float] | None = None,
        max_action_length: int = 4096,
        render_mode: str | None = None,
    ) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}"
            )
        super().__init__(
            split=split,
            max_turns=MAX_TURNS[difficulty] if max_turns is None else max_turns,
            reward_weights=reward_weights,
            max_action_length=max_action_length,
            render_mode=render_mode,
        )
        self.difficulty = difficulty
        self._catalog = Catalog.of(difficulty)
        self._task: Task | None = None
        self._seen: dict[str, str] = {}  # normalised title -> title, in the order first listed
        self._read: dict[str, Document] = {}  # title -> document, in the order first read
        self._searched: set[frozenset[str]] = set()

    # ---------------------------------------------------------------- contract
    def tasks(self, split: str | None = None) -> Sequence[str]:
        return self._catalog.ids(self.split if split is None else split)

    @property
    def task(self) -> Task:
        """The task of the current episode: question, gold answer, needed documents, all documents."""
        if self._task is None:
            raise RuntimeError("call reset() first: there is no task before the first episode")
        return self._task

    @property
    def read(self) -> tuple[str, ...]:
        """Titles read so far this episode, in the order first read."""
        return tuple(self._read)

    def _reset_task(self, task_id: str) -> tuple[str, dict[str, Any]]:
        task = self._catalog.task(task_id)
        self._task = task
        self._seen = {}
        self._read = {}
        self._searched = set()
        text = f"Question: {task.question}\n{_INTRO}\n{GRAMMAR}"
        info = {"instruction": task.question, "gold_answer": task.answer}
        info["gold_action"] = f"answer {task.answer}"
        return text, info

    def _step(self, action: str) -> StepResult:
        parts = action.split(None, 1)
        if not parts:
            return self._invalid(f"empty command. {GRAMMAR}")
        verb = parts[0].casefold().rstrip(":")
        rest = parts[1].strip() if len(parts) > 1 else ""
        if verb == "search":
            return self._search(rest)
        if verb == "read":
            return self._read_document(rest)
        if verb == "answer":
            return self._answer(rest)
        return self._invalid(f"unknown command{_quoted(parts[0])}. {GRAMMAR}")

    def admissible_actions(self) -> list[str]:
        """Valid actions now: up to `MAX_SUGGESTIONS` searches for names in the question and
        the documents read (not searched yet), `read` for every title listed so far, and
        `answer` for every value the documents read mention. Other searches are valid too."""
        if self._ended or self._task is None:
            return []
        names = list(self._task.question_links)
        answers: list[str] = []
        for doc in self._read.values():
            names += doc.links
            answers += doc.mentions
        suggestions: list[str] = []
        for name in dict.fromkeys(names):
            if cached_words(name) not in self._searched:
                suggestions.append(f"search {name}")
                if len(suggestions) == MAX_SUGGESTIONS:
                    break
        return [
            *suggestions,
            *(f"read {title}" for title in self._seen.values()),
            *(f"answer {value}" for value in dict.fromkeys(answers)),
        ]

    def state_key(self) -> str:
        """`read=<titles read, sorted>`: what the agent has learnt, whatever it searched."""
        return "read=" + ",".join(sorted(self._read))

    def expert_action(self) -> str | None:
        """The next step of a shortest evidence path, reading the needed documents in order:
        read the next one if a search has listed it, else search its title; then answer.
        None once the episode has ended."""
        if self._ended or self._task is None:
            return None
        for title in self._task.needed:
            if title not in self._read:
                return f"read {title}" if title_key(title) in self._seen else f"search {title}"
        return f"answer {self._task.answer}"

    # ---------------------------------------------------------------- commands
    def _invalid(self, problem: str) -> StepResult:
        return StepResult(self._invalid_observation(problem), dict(_ZERO), valid=False)

    def _potential(self) -> float:
        needed = self.task.needed
        return sum(title in self._read for title in needed) / len(needed)

    def _search(self, query: str) -> StepResult:
        terms = words(query)
        if not terms:
            return self._invalid(
                "search for what? Type 'search <words>'; names from the question work best."
            )
        self._searched.add(terms)
        titles = self.task.search(query)
        if not titles:
            return StepResult("No document matches those words.", dict(_ZERO))
        for title in titles:
            self._seen.setdefault(title_key(title), title)
        return StepResult("Search results:\n" + "\n".join(f"- {t}" for t in titles), dict(_ZERO))

    def _read_document(self, title: str) -> StepResult:
        if not normalise(title):
            return self._invalid("read what? Type 'read <title>' with a title a search listed.")
        known = self._seen.get(normalise(title))
        if known is None:
            return self._invalid(
                f"no document titled{_quoted(title)} has appeared in your search results; "
                "search first, then read one of the titles it lists."
            )
        doc = self.task.documents[known]
        before = self._potential()
        self._read.setdefault(known, doc)
        progress = self._potential() - before
        return StepResult(f"{doc.title}\n{doc.text}", {"outcome": 0.0, "progress": progress})

    def _answer(self, text: str) -> StepResult:
        given = normalise(text)
        if not given:
            return self._invalid("answer what? Type 'answer <your answer>'.")
        correct = given == normalise(self.task.answer)
        observation = "Your answer is correct." if correct else "Your answer is wrong."
        terms = {"outcome": 1.0 if correct else 0.0, "progress": 0.0}
        return StepResult(observation, terms, terminated=True, success=correct)
