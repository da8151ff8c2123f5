"""FactQA knowledge bases: the generator, the search engine, the questions and the task ids.

Every task has its own small encyclopedia, generated from the task's seed: 3 countries, 7 cities,
6 people and 4 works (paintings, novels, ...), one document each, 20 documents in all. Each
document states a few facts about its subject, in 2–4 sentences:

    Mira Castell    Mira Castell was born in Doreth, a city in Vell. Mira Castell works as a
                    glassblower. Mira Castell lives in Kessa.
    Vell            Vell is a country whose capital is Doreth. The flag of Vell is green. The
                    national animal of Vell is the heron. Vell borders Sorand.
    Kessa           Kessa is a city in Vell. It lies on the river Ambel. It is known for its mills.
    The Amber ...   The Amber Lantern is a painting by Mira Castell, finished in 1642. It is
                    kept in Kessa.

People share first names and surnames (4 of each for 6 people), so a search for one name lists
several documents.

Each fact a question asks about is stated in exactly one document, so the documents a question
needs are known exactly: one for an `easy` question ("What colour is the flag of Vell?"), two
for a `medium` one ("What colour is the flag of the country where Mira Castell was born?": the
person, then the country). The bridge of a two-hop question (Vell) is named only in the first
document, and the answer never appears in it.

Names are built from syllables, so nothing refers to the real world. Splits never share a name:
each name string belongs to one split, fixed by its hash (people by their surname), and a task
only draws names of its own split. Generation uses only `random.Random(seed).random()`, the one
stream Python promises never to change, so a task id means the same task everywhere.

Example:
    >>> task = generate("medium", "train", seed=7)
    >>> len(task.documents), len(task.needed)
    (20, 2)
    >>> task.needed[0] in task.search(task.needed[0])[:1]
    True
    >>> task.answer in task.documents[task.needed[-1]].mentions
    True
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import ClassVar, NamedTuple, TypeVar

__all__ = [
    "DIFFICULTIES",
    "MAX_RESULTS",
    "SPLITS",
    "SPLIT_SIZES",
    "Catalog",
    "Document",
    "Task",
    "cached_words",
    "generate",
    "name_pool",
    "name_split",
    "normalise",
    "title_key",
    "words",
]

#: Splits in order; sizes as in KeyDoor.
SPLITS = ("train", "valid", "test")
SPLIT_SIZES = {"train": 1000, "valid": 100, "test": 200}
#: Difficulty -> number of documents a question needs (its hops).
DIFFICULTIES = {"easy": 1, "medium": 2}
#: `search` lists at most this many titles.
MAX_RESULTS = 5
# Bump when generation changes in a way that changes tasks (and so the env's version).
_GENERATOR_VERSION = 0

# ---------------------------------------------------------------------------- vocabulary
_FIRST = (
    ("mi", "ta", "lo", "be", "ka", "ro", "sa", "ve", "da", "no", "ha", "ju", "ele", "ori", "ama"),
    ("ra", "lin", "nor", "wen", "dra", "ssa", "ro", "la", "mir", "den", "ric", "na"),
)
_SURNAME = (
    ("cas", "dun", "hol", "mar", "pen", "vor", "ash", "bel", "cor", "fen", "gar", "lan", "ros"),
    ("tell", "ward", "rick", "moor", "brook", "ley", "wick", "ton", "ridge", "mere", "dale"),
)
_CITY = (
    ("do", "ke", "pel", "ar", "su", "va", "mor", "tir", "ost", "gel", "bra", "lu", "nim", "que"),
    ("", "a", "e", "o", "an"),
    ("reth", "ssa", "lun", "vik", "dor", "mund", "heim", "ford", "stad", "gard", "mouth", "holm"),
)
_COUNTRY = (
    ("vel", "ar", "sor", "kal", "ost", "mir", "tal", "zan", "bre", "dor", "ely", "qua", "hes"),
    ("l", "ia", "ona", "and", "is", "ara", "ur", "en", "ovia", "esh"),
)
_RIVER = (
    ("am", "sel", "tor", "lin", "ober", "isk", "wen", "rha", "cal", "dru", "ym", "fal"),
    ("bel", "ra", "os", "ne", "dwy", "an", "ith", "ora"),
)
_WORK = (
    (
        "amber", "silent", "broken", "golden", "hidden", "crimson", "quiet", "wandering",
        "frozen", "last", "distant", "painted", "hollow", "silver", "sleeping", "burning",
        "lonely", "secret", "northern", "restless",
    ),
    (
        "lantern", "harbour", "orchard", "tower", "crown", "bridge", "mirror", "compass",
        "feather", "voyage", "letter", "clock", "meadow", "violin", "anchor", "sparrow", "gate",
        "tide", "hearth", "window",
    ),
)  # fmt: skip
COLOURS = ("red", "blue", "green", "yellow", "white", "black", "orange", "purple", "grey", "brown")
ANIMALS = (
    "heron", "lynx", "otter", "stag", "falcon", "bear", "wolf", "hare", "swan", "badger",
    "eagle", "salmon",
)  # fmt: skip
PROFESSIONS = (
    "glassblower", "baker", "cartographer", "weaver", "blacksmith", "astronomer", "sailor",
    "potter", "librarian", "clockmaker", "physician", "carpenter",
)  # fmt: skip
KNOWN_FOR = (
    "glassworks", "markets", "bridges", "vineyards", "shipyards", "libraries", "festivals",
    "mills", "gardens", "fountains",
)  # fmt: skip
WORK_KINDS = ("painting", "novel", "statue", "song", "tapestry", "poem")
# Words a search ignores: they occur everywhere and identify nothing.
_STOPWORDS = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "has",
    "how", "in", "is", "it", "its", "lie", "lies", "of", "on", "or", "that", "the", "this", "to",
    "was", "what", "where", "which", "who", "whose", "with",
))  # fmt: skip
_WORD = re.compile(r"[^\W_]+")
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")

_FIRST_NAMES = tuple("".join(p).capitalize() for p in product(*_FIRST))
N_COUNTRIES, N_CITIES, N_PEOPLE, N_WORKS, N_RIVERS = 3, 7, 6, 4, 4

_T = TypeVar("_T")


# ---------------------------------------------------------------------------- text helpers
def normalise(text: str) -> str:
    """`text` compared as an answer or a title: case-folded, runs of whitespace collapsed, and
    punctuation at either end stripped.

    Example:
        >>> normalise("  'The   Amber Lantern'. ")
        'the amber lantern'
    """
    return " ".join(_EDGES.sub("", " ".join(text.split())).casefold().split())


@functools.lru_cache(maxsize=4096)
def title_key(title: str) -> str:
    """`normalise(title)`, cached (titles recur)."""
    return normalise(title)


def words(text: str) -> frozenset[str]:
    """The searchable words of `text`: lower-cased letters and digits, stopwords dropped.

    Example:
        >>> sorted(words("Where was Mira Castell born?"))
        ['born', 'castell', 'mira']
    """
    return frozenset(w for w in _WORD.findall(text.casefold()) if w not in _STOPWORDS)


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def name_split(name: str) -> str:
    """The one split a name belongs to: 80% train, 10% valid, 10% test, by a stable hash.

    Example:
        >>> name_split("Vell") in SPLITS
        True
    """
    digest = hashlib.blake2b(f"factqa-name/{name.casefold()}".encode(), digest_size=8).digest()
    bucket = int.from_bytes(digest, "big") % 20
    return "train" if bucket < 16 else "valid" if bucket < 18 else "test"


def _combos(parts: Sequence[Sequence[str]]) -> list[str]:
    return ["".join(p).capitalize() for p in product(*parts)]


@functools.cache
def name_pool(kind: str, split: str) -> tuple[str, ...]:
    """The names of `kind` (`first`, `surname`, `city`, `country`, `river`, `work`) that `split`
    may use. First names are shared by all splits; people are split by their surname.

    Example:
        >>> set(name_pool("city", "valid")) & set(name_pool("city", "test"))
        set()
    """
    if kind == "first":
        return _FIRST_NAMES
    if kind == "work":
        names = ["The " + " ".join(w.capitalize() for w in p) for p in product(*_WORK)]
    else:
        parts = {"surname": _SURNAME, "city": _CITY, "country": _COUNTRY, "river": _RIVER}[kind]
        names = _combos(parts)
    return tuple(n for n in names if name_split(n.removeprefix("The ")) == split)


class _Rng:
    """Draws derived only from `random.Random.random()`, whose stream Python guarantees across
    versions (unlike `choice`, `sample` and `shuffle`, or NumPy's `Generator`)."""

    __slots__ = ("_random",)

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed).random

    def below(self, n: int) -> int:
        return int(self._random() * n)

    def choice(self, seq: Sequence[_T]) -> _T:
        return seq[self.below(len(seq))]

    def sample(self, seq: Sequence[_T], k: int) -> list[_T]:
        pool = list(seq)
        if k > len(pool):
            raise ValueError(f"cannot draw {k} of {len(pool)}")
        for i in range(k):  # a partial Fisher-Yates shuffle
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]


# ---------------------------------------------------------------------------- documents
class Document(NamedTuple):
    """One encyclopedia entry."""

    title: str
    text: str
    mentions: tuple[str, ...]
    """The values its facts name (candidate answers), in the order they appear."""
    links: tuple[str, ...]
    """Titles of the other documents it names."""
    title_words: frozenset[str]
    """`words(title)`."""
    body_words: frozenset[str]
    """`words(text)`."""

    def score(self, query: frozenset[str]) -> int:
        """Keyword overlap with `query`: 3 per title word, 1 per body word, and 4 more when the
        query holds the whole title (so searching a title always finds its document first)."""
        title = len(query & self.title_words)
        score = 3 * title + len(query & self.body_words)
        if title and title == len(self.title_words):
            score += 4
        return score


#: `words`, cached: for the names of the knowledge base, which recur.
cached_words = functools.lru_cache(maxsize=8192)(words)
# Sentences of each kind of document; `{0}` is the title.
_PERSON_TEXT = "{0} was born in {1}, a city in {2}. {0} works as {3}. {0} lives in {4}."
_COUNTRY_TEXT = (
    "{0} is a country whose capital is {1}. The flag of {0} is {2}. "
    "The national animal of {0} is the {3}. {0} borders {4}."
)
_CITY_TEXT = "{0} is a city in {1}. It lies on the river {2}. It is known for its {3}."
_WORK_TEXT = "{0} is {1} by {2}, finished in {4}. It is kept in {3}."
_FIXED_WORDS = {
    t: words(re.sub(r"\{\d\}", " ", t))
    for t in (_PERSON_TEXT, _COUNTRY_TEXT, _CITY_TEXT, _WORK_TEXT)
}


def _document(
    template: str, values: Sequence[str], mentions: tuple[str, ...], links: tuple[str, ...]
) -> Document:
    # The words of the text, from its parts: much faster than `words(text)`, and equal to it.
    body = _FIXED_WORDS[template].union(*map(cached_words, values))
    title = values[0]
    return Document(title, template.format(*values), mentions, links, cached_words(title), body)


@dataclass(frozen=True)
class Task:
    """A question, its gold answer, and the knowledge base it is asked over."""

    question: str
    answer: str
    template: str
    """Which kind of question (`flag`, `birth_flag`, ...; see `TEMPLATES`)."""
    needed: tuple[str, ...]
    """Titles of the documents the question needs, in the order a reader finds them."""
    documents: dict[str, Document]
    """Every document, by title, in generation order."""
    question_links: tuple[str, ...]
    """Titles named in the question."""
    entities: frozenset[str]
    """Every generated name (people, cities, countries, rivers, works)."""

    def search(self, query: str) -> list[str]:
        """Titles of up to `MAX_RESULTS` documents sharing words with `query`, best first
        (ties by title)."""
        terms = words(query)
        if not terms:
            return []
        scored = [(doc.score(terms), doc.title) for doc in self.documents.values()]
        ranked = sorted((-s, t) for s, t in scored if s > 0)
        return [title for _, title in ranked[:MAX_RESULTS]]


# ---------------------------------------------------------------------------- generation
@dataclass
class _World:
    """The facts of one task, before they are written down."""

    capital: dict[str, str]  # country -> city
    flag: dict[str, str]
    animal: dict[str, str]
    neighbour: dict[str, str]
    country: dict[str, str]  # city -> country
    river: dict[str, str]
    known: dict[str, str]
    born: dict[str, str]  # person -> city
    home: dict[str, str]
    job: dict[str, str]
    kind: dict[str, str]  # work -> kind
    maker: dict[str, str]
    kept: dict[str, str]
    year: dict[str, str]

    def documents(self) -> list[Document]:
        docs = []
        values: tuple[str, ...]
        for p, birth in self.born.items():
            origin, job, home = self.country[birth], self.job[p], self.home[p]
            values = (p, birth, origin, _article(job), home)
            docs.append(
                _document(_PERSON_TEXT, values, (birth, origin, job, home), (birth, origin, home))
            )
        for c, cap in self.capital.items():
            flag, animal, near = self.flag[c], self.animal[c], self.neighbour[c]
            values = (c, cap, flag, animal, near)
            docs.append(_document(_COUNTRY_TEXT, values, (cap, flag, animal, near), (cap, near)))
        for city, nation in self.country.items():
            river, known = self.river[city], self.known[city]
            values = (city, nation, river, known)
            docs.append(_document(_CITY_TEXT, values, (nation, river, known), (nation,)))
        for w, maker in self.maker.items():
            kind, kept, year = self.kind[w], self.kept[w], self.year[w]
            values = (w, _article(kind), maker, kept, year)
            docs.append(_document(_WORK_TEXT, values, (kind, maker, year, kept), (maker, kept)))
        return docs


def _draw_world(rng: _Rng, split: str) -> tuple[_World, frozenset[str]]:
    used: set[str] = set()

    def draw(kind: str, k: int) -> list[str]:
        pool, names = name_pool(kind, split), list[str]()
        while len(names) < k:  # pools hold dozens of names or more: this ends fast
            name = rng.choice(pool)
            if name not in used:
                used.add(name)
                names.append(name)
        return names

    countries = draw("country", N_COUNTRIES)
    rivers = draw("river", N_RIVERS)
    cities = draw("city", N_CITIES)
    works = draw("work", N_WORKS)
    # Few first names and surnames, so people share them: searching one name finds several.
    firsts = rng.sample(_FIRST_NAMES, 4)
    surnames = draw("surname", 4)
    people: list[str] = []
    while len(people) < N_PEOPLE:
        person = f"{rng.choice(firsts)} {rng.choice(surnames)}"
        if person not in people:
            people.append(person)
    # The first city of each country is its capital; the others go to any country.
    country = {city: countries[i] if i < N_COUNTRIES else rng.choice(countries) for i, city in
               enumerate(cities)}  # fmt: skip
    capital = dict(zip(countries, cities, strict=False))
    born = {p: rng.choice(cities) for p in people}
    home = {p: rng.choice([c for c in cities if c != born[p]]) for p in people}
    world = _World(
        capital=capital,
        flag=dict(zip(countries, rng.sample(COLOURS, N_COUNTRIES), strict=True)),
        animal=dict(zip(countries, rng.sample(ANIMALS, N_COUNTRIES), strict=True)),
        neighbour={c: rng.choice([o for o in countries if o != c]) for c in countries},
        country=country,
        river={c: rng.choice(rivers) for c in cities},
        known={c: rng.choice(KNOWN_FOR) for c in cities},
        born=born,
        home=home,
        job=dict(zip(people, rng.sample(PROFESSIONS, N_PEOPLE), strict=True)),
        kind={w: rng.choice(WORK_KINDS) for w in works},
        maker={w: rng.choice(people) for w in works},
        kept={w: rng.choice(cities) for w in works},
        year={w: str(1400 + rng.below(500)) for w in works},
    )
    named = {*countries, *cities, *works, *people, *world.river.values()}
    return world, frozenset(named)


@dataclass(frozen=True)
class _Template:
    name: str
    text: str
    subjects: str
    """Which subjects it asks about: `person`, `country`, `city` or `work`."""
    hops: tuple[str, ...]
    """Attributes followed from the subject; all but the last name the next document."""


#: Question templates by difficulty. `{}` is the subject's name.
TEMPLATES: dict[str, tuple[_Template, ...]] = {
    "easy": (
        _Template("birth_city", "In which city was {} born?", "person", ("born",)),
        _Template("birth_country", "In which country was {} born?", "person", ("origin",)),
        _Template("home", "In which city does {} live?", "person", ("home",)),
        _Template("profession", "What is the profession of {}?", "person", ("job",)),
        _Template("capital", "What is the capital of {}?", "country", ("capital",)),
        _Template("flag", "What colour is the flag of {}?", "country", ("flag",)),
        _Template("animal", "What is the national animal of {}?", "country", ("animal",)),
        _Template("river", "On which river does {} lie?", "city", ("river",)),
        _Template("maker", "Who made {}?", "work", ("maker",)),
    ),
    "medium": (
        _Template(
            "birth_flag",
            "What colour is the flag of the country where {} was born?",
            "person",
            ("origin", "flag"),
        ),
        _Template(
            "birth_animal",
            "What is the national animal of the country where {} was born?",
            "person",
            ("origin", "animal"),
        ),
        _Template(
            "birth_river",
            "On which river does the city where {} was born lie?",
            "person",
            ("born", "river"),
        ),
        _Template(
            "home_river",
            "On which river does the city where {} lives lie?",
            "person",
            ("home", "river"),
        ),
        _Template(
            "maker_birth", "In which city was the maker of {} born?", "work", ("maker", "born")
        ),
        _Template(
            "maker_profession",
            "What is the profession of the person who made {}?",
            "work",
            ("maker", "job"),
        ),
        _Template(
            "capital_river",
            "On which river does the capital of {} lie?",
            "country",
            ("capital", "river"),
        ),
        _Template(
            "kept_river",
            "On which river does the city where {} is kept lie?",
            "work",
            ("kept", "river"),
        ),
    ),
}


def _follow(world: _World, entity: str, attribute: str) -> str:
    if attribute == "origin":
        return world.country[world.born[entity]]
    table: dict[str, str] = getattr(world, attribute)
    return table[entity]


def _subjects(world: _World, kind: str) -> list[str]:
    tables = {
        "person": world.born,
        "country": world.capital,
        "city": world.country,
        "work": world.maker,
    }
    return list(tables[kind])


def generate(difficulty: str, split: str, seed: int) -> Task:
    """The task of `seed`: a fresh knowledge base and one question of `difficulty` over it."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}"
        )
    rng = _Rng(seed)
    world, entities = _draw_world(rng, split)
    docs = {doc.title: doc for doc in world.documents()}
    # A template and a subject at random, unless the answer is already in an earlier needed
    # document (then a one-document shortcut would exist): draw again.
    while True:
        template = rng.choice(TEMPLATES[difficulty])
        subject = rng.choice(_subjects(world, template.subjects))
        chain = [subject]
        for attribute in template.hops:
            chain.append(_follow(world, chain[-1], attribute))
        needed, answer = tuple(chain[:-1]), chain[-1]
        if not any(answer in docs[title].mentions for title in needed[:-1]):
            break
    return Task(
        question=template.text.format(subject),
        answer=answer,
        template=template.name,
        needed=needed,
        documents=docs,
        question_links=(subject,),
        entities=entities,
    )


# ---------------------------------------------------------------------------- task ids
class Catalog:
    """The task ids of one difficulty, their seeds, and a cache of their tasks.

    A task id is `<difficulty>-<split>-<index>` (`medium-train-00042`); its seed is a hash of
    the difficulty, split and index. Use `Catalog.of`, which shares one catalog per difficulty.

    Example:
        >>> catalog = Catalog.of("easy")
        >>> catalog.ids("valid")[:2]
        ('easy-valid-00000', 'easy-valid-00001')
        >>> catalog.task("easy-valid-00001") is catalog.task("easy-valid-00001")
        True
    """

    _shared: ClassVar[dict[str, Catalog]] = {}
    #: Tasks kept across resets, least recently used dropped first.
    CACHE_SIZE: ClassVar[int] = 2048

    def __init__(self, difficulty: str) -> None:
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f"unknown difficulty {difficulty!r}; choose one of {', '.join(DIFFICULTIES)}"
            )
        self.difficulty = difficulty
        self._ids = {
            split: tuple(f"{difficulty}-{split}-{i:05d}" for i in range(SPLIT_SIZES[split]))
            for split in SPLITS
        }
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    @classmethod
    def of(cls, difficulty: str) -> Catalog:
        """The process-wide catalog of `difficulty`."""
        if difficulty not in cls._shared:
            cls._shared[difficulty] = cls(difficulty)
        return cls._shared[difficulty]

    def ids(self, split: str) -> tuple[str, ...]:
        """Task ids of `split`, in order."""
        if split not in self._ids:
            raise ValueError(f"unknown split {split!r}; FactQA has {SPLITS}")
        return self._ids[split]

    def seed(self, task_id: str) -> tuple[str, int]:
        """The split and generator seed of `task_id`."""
        difficulty, split, index = ([*task_id.split("-"), "", ""])[:3]
        if (
            difficulty != self.difficulty
            or split not in SPLITS
            or not (index.isascii() and index.isdigit() and len(index) == 5)
            or int(index) >= SPLIT_SIZES[split]
        ):
            raise KeyError(f"no FactQA task {task_id!r} of difficulty {self.difficulty}")
        text = f"factqa/{_GENERATOR_VERSION}/{difficulty}/{split}/{int(index)}"
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return split, int.from_bytes(digest, "big")

    def task(self, task_id: str) -> Task:
        """The task of `task_id`, generated on first use and cached."""
        task = self._tasks.get(task_id)
        if task is None:
            split, seed = self.seed(task_id)
            task = generate(self.difficulty, split, seed)
            self._tasks[task_id] = task
            if len(self._tasks) > self.CACHE_SIZE:
                self._tasks.popitem(last=False)
        else:
            self._tasks.move_to_end(task_id)
        return task
