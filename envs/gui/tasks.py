"""Desktop tasks: a setup (files and an app), a state-based checker, and an expert.

Each task kind is a class; a task id `kind/split/index` builds one instance with its own seeded
content, so every id always means the same files, instruction and answer.

==================  ===========  ==============================================================
kind                app          what the checker reads
==================  ===========  ==============================================================
`write-line`        Mousepad     the saved text file equals the requested line
`replace-word`      Mousepad     every occurrence of a word replaced, nothing else changed
`append-line`       Mousepad     a line added at the end, the rest unchanged
`sheet-total`       Gnumeric     the cell under a column holds the column's sum (formula or value)
`sheet-fill`        Gnumeric     a column's empty cells hold the requested numbers
==================  ===========  ==============================================================

Partial completion (`progress` in [0, 1]) is measured on the saved file: for text, how much
closer it is to the goal than the starting file (difflib's similarity ratio); for sheets, the
share of target cells that are right. Nothing is read from the screen.

The expert works from any state: it closes stray dialogs, then replays a short plan (select
all and retype the whole goal text; or navigate to the cells with the keyboard and type), and
saves. `tests/envs/gui/test_desktop.py` runs it on every kind.
"""

from __future__ import annotations

import difflib
import json
import random
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

__all__ = ["KINDS", "DesktopTask", "Verdict", "make_task"]

_WORDS = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper",
    "kestrel", "lagoon", "meadow", "nectar", "orchid", "pebble", "quartz", "raven", "saffron",
    "tundra", "umber", "violet", "willow", "yarrow", "zephyr",
)  # fmt: skip
_ANIMALS = ("cat", "dog", "fox", "owl", "bee", "elk", "yak", "emu", "ant", "bat")
_ITEMS = ("Rent", "Food", "Bus", "Phone", "Power", "Water", "Books", "Gym", "Tea", "Gifts")
_FRUITS = ("Apples", "Pears", "Plums", "Grapes", "Limes", "Figs", "Kiwis", "Dates")


@dataclass(frozen=True)
class Verdict:
    """What the checker reads from the saved files: partial completion and success."""

    progress: float
    success: bool


class DesktopTask:
    """One task: files to create, the app to open them in, the goal, a checker and a plan.

    Subclasses set `kind`, `app` and `app_name` and implement `_build`, `check` and `plan`.
    """

    kind: ClassVar[str]
    app: ClassVar[str]
    """The executable (a Debian package's binary)."""
    app_name: ClassVar[str]
    """How the app titles its window: `notes.txt - Mousepad`."""

    def __init__(self, task_id: str, seed: str) -> None:
        self.task_id = task_id
        self.rng = random.Random(seed)
        self.instruction = ""
        self.filename = ""
        self._build()

    def _build(self) -> None:
        raise NotImplementedError

    @property
    def window(self) -> str:
        """A regular expression the app's main window title matches once the file is open (a
        leading `*` marks unsaved changes)."""
        return rf"^\*?{re.escape(self.filename)} - {self.app_name}$"

    def setup(self, folder: Path) -> list[str]:
        """Write the task's files into `folder`; return the app's command line."""
        raise NotImplementedError

    def check(self, folder: Path) -> Verdict:
        raise NotImplementedError

    def plan(self) -> list[str]:
        """The expert's actions from the app's main window, ending with the save."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- text editor
class _TextTask(DesktopTask):
    app = "mousepad"
    app_name = "Mousepad"
    initial = ""
    goal = ""

    def setup(self, folder: Path) -> list[str]:
        (folder / self.filename).write_text(self.initial, encoding="utf-8")
        return [self.app, self.filename]

    def check(self, folder: Path) -> Verdict:
        try:
            saved = (folder / self.filename).read_text(encoding="utf-8", errors="replace")
        except OSError:
            saved = ""
        if _same_text(saved, self.goal):
            return Verdict(1.0, True)
        start = difflib.SequenceMatcher(None, self.initial, self.goal).ratio()
        now = difflib.SequenceMatcher(None, saved, self.goal).ratio()
        gain = (now - start) / (1.0 - start) if start < 1.0 else 0.0
        return Verdict(min(max(gain, 0.0), 0.99), False)

    def plan(self) -> list[str]:
        return ['key("ctrl+a")', f"type({json.dumps(self.goal, ensure_ascii=False)})", _SAVE]


def _same_text(saved: str, goal: str) -> bool:
    # Editors may or may not end the file with a newline; nothing else may differ.
    return saved.rstrip("\n") == goal.rstrip("\n")


class WriteLine(_TextTask):
    kind = "write-line"

    def _build(self) -> None:
        words = self.rng.sample(_WORDS, 3)
        self.filename = "notes.txt"
        self.goal = f"{words[0]} {words[1]} {self.rng.randint(10, 99)} {words[2]}"
        self.instruction = (
            f'The file {self.filename} is open in the text editor. Write the line "{self.goal}" '
            "as its only content and save the file."
        )


class ReplaceWord(_TextTask):
    kind = "replace-word"

    def _build(self) -> None:
        old, new = self.rng.sample(_ANIMALS, 2)
        others = [a for a in _ANIMALS if a not in (old, new)]
        lines = []
        for i in range(4):
            subject = old if i != 2 else self.rng.choice(others)
            lines.append(f"The {subject} saw a {self.rng.choice(_WORDS)} {old} at noon.")
        self.filename = "story.txt"
        self.initial = "\n".join(lines) + "\n"
        self.goal = self.initial.replace(old, new)
        self.instruction = (
            f'In {self.filename}, which is open in the text editor, replace every "{old}" with '
            f'"{new}", change nothing else, and save the file.'
        )


class AppendLine(_TextTask):
    kind = "append-line"

    def _build(self) -> None:
        chores = self.rng.sample(
            ["water plants", "call mum", "buy milk", "fix bike", "pay bills", "walk dog"], 4
        )
        extra = f"{self.rng.choice(['read', 'sort', 'send', 'mend'])} {self.rng.choice(_WORDS)}"
        self.filename = "todo.txt"
        self.initial = "\n".join(f"- {c}" for c in chores[:3]) + "\n"
        self.goal = self.initial + f"- {extra}\n"
        self.instruction = (
            f'Add the line "- {extra}" at the end of {self.filename} (open in the text editor), '
            "keep the other lines as they are, and save the file."
        )


# ---------------------------------------------------------------------------- spreadsheet
class _SheetTask(DesktopTask):
    app = "gnumeric"
    app_name = "Gnumeric"
    header: tuple[str, ...] = ()
    rows: list[tuple[str | int | None, ...]]
    targets: dict[str, float]
    """Cell → the number it must hold."""

    def setup(self, folder: Path) -> list[str]:
        import openpyxl

        book = openpyxl.Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.title = "Sheet1"
        sheet.append(list(self.header))
        for row in self.rows:
            sheet.append(list(row))
        book.save(folder / self.filename)
        return [self.app, "--no-splash", self.filename]

    def _cells(self, folder: Path) -> dict[str, object]:
        import openpyxl

        path = folder / self.filename
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no default style" from Gnumeric's files
                book = openpyxl.load_workbook(path, data_only=True, read_only=True)
                sheet = book.worksheets[0]
                values = {cell: sheet[cell].value for cell in self.targets}
                book.close()
        except Exception:  # a half-written or broken file counts as no progress
            return {}
        return values

    def check(self, folder: Path) -> Verdict:
        values = self._cells(folder)
        right = 0
        for cell, want in self.targets.items():
            value = values.get(cell)
            if isinstance(value, (int, float)) and abs(float(value) - want) < 1e-6:
                right += 1
        return Verdict(right / len(self.targets), right == len(self.targets))


class SheetTotal(_SheetTask):
    kind = "sheet-total"

    def _build(self) -> None:
        count = self.rng.randint(3, 6)
        items = self.rng.sample(_ITEMS, count)
        costs = [self.rng.randint(5, 500) for _ in items]
        self.filename = "budget.xlsx"
        self.header = ("Item", "Cost")
        self.rows = list(zip(items, costs, strict=True))
        self.total_cell = f"B{count + 2}"
        self.targets = {self.total_cell: float(sum(costs))}
        self.instruction = (
            f"{self.filename} is open in the spreadsheet. In the cell right below the last cost "
            f"({self.total_cell}), put the total of the Cost column, then save the file."
        )

    def plan(self) -> list[str]:
        last = len(self.rows) + 1
        return [
            'key("ctrl+Home")',
            'key("right")',
            'key("ctrl+down")',
            'key("down")',
            f'type("=SUM(B2:B{last})\\n")',
            _SAVE,
        ]


class SheetFill(_SheetTask):
    kind = "sheet-fill"

    def _build(self) -> None:
        count = self.rng.randint(2, 4)
        fruits = self.rng.sample(_FRUITS, count)
        prices = [self.rng.randint(1, 9) for _ in fruits]
        amounts = [self.rng.randint(1, 40) for _ in fruits]
        self.filename = "order.xlsx"
        self.header = ("Fruit", "Price", "Qty")
        self.rows = [(f, p, None) for f, p in zip(fruits, prices, strict=True)]
        self.amounts = amounts
        self.targets = {f"C{i + 2}": float(a) for i, a in enumerate(amounts)}
        wanted = ", ".join(f"{f} {a}" for f, a in zip(fruits, amounts, strict=True))
        self.instruction = (
            f"{self.filename} is open in the spreadsheet. Fill in the Qty column (C) with these "
            f"quantities: {wanted}. Then save the file."
        )

    def plan(self) -> list[str]:
        typed = "".join(f"{a}\\n" for a in self.amounts)
        return ['key("ctrl+Home")', 'key("right")', 'key("right")', 'key("down")',
                f'type("{typed}")', _SAVE]  # fmt: skip


_SAVE = 'key("ctrl+s")'
KINDS: dict[str, type[DesktopTask]] = {
    cls.kind: cls for cls in (WriteLine, ReplaceWord, AppendLine, SheetTotal, SheetFill)
}


def make_task(task_id: str, kinds: Sequence[str] = tuple(KINDS)) -> DesktopTask:
    """The task with id `kind/split/index` (`ValueError` for an id that names none)."""
    kind, _, rest = task_id.partition("/")
    split, _, index = rest.partition("/")
    if kind not in kinds or split not in ("train", "test") or not index.isdigit():
        raise ValueError(f"unknown desktop task {task_id!r}")
    return KINDS[kind](task_id, seed=f"turnwise-desktop/{task_id}")
