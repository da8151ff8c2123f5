"""Bugs injected by AST mutation (the SWE-smith method), as small exact source edits.

`mutations(source)` lists every candidate bug in a module's functions: a flipped comparison, a
swapped arithmetic or boolean operator, an integer off by one, a flipped boolean constant, a
negated `if`/`while` condition. Each is an edit of a few characters at the node's exact position,
so the rest of the file (formatting, comments) is untouched and the gold patch is tiny.

Example:
    >>> src = "def clamp(x, hi):\\n    if x > hi and hi:\\n        return hi\\n    return x\\n"
    >>> [m.describe() for m in mutations(src)]  # doctest: +NORMALIZE_WHITESPACE
    ['clamp: `x > hi` -> `x >= hi`', 'clamp: `x > hi and hi` -> `x > hi or hi`',
     'clamp: `x > hi and hi` -> `not (x > hi and hi)`']
    >>> print(mutations(src)[0].apply(src), end="")
    def clamp(x, hi):
        if x >= hi and hi:
            return hi
        return x
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Mutation", "mutations"]

_COMPARE_SWAPS: dict[type[ast.cmpop], str] = {
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.In: "not in",
    ast.NotIn: "in",
    ast.Is: "is not",
    ast.IsNot: "is",
}
_COMPARE_TEXT = {
    ast.Lt: r"<",
    ast.LtE: r"<=",
    ast.Gt: r">",
    ast.GtE: r">=",
    ast.Eq: r"==",
    ast.NotEq: r"!=",
    ast.In: r"in",
    ast.NotIn: r"not\s+in",
    ast.Is: r"is",
    ast.IsNot: r"is\s+not",
}
_BINOP_SWAPS: dict[type[ast.operator], tuple[str, str]] = {
    ast.Add: (r"\+", "-"),
    ast.Sub: (r"-", "+"),
    ast.FloorDiv: (r"//", "*"),
    ast.Mult: (r"\*", "//"),
}
_BOOL_SWAPS: dict[type[ast.boolop], tuple[str, str]] = {
    ast.And: (r"and", "or"),
    ast.Or: (r"or", "and"),
}


@dataclass(frozen=True)
class Mutation:
    """One edit: replace `source[start:end]` (character offsets) with `new`."""

    function: str
    """The qualified name of the function it is in (`Class.method`)."""
    kind: str
    """`compare`, `binop`, `boolop`, `constant` or `negate`."""
    line: int
    start: int
    end: int
    old: str
    new: str

    def apply(self, source: str) -> str:
        if source[self.start : self.end] != self.old:
            raise ValueError(f"the source at {self.line} is not {self.old!r}: it changed")
        return source[: self.start] + self.new + source[self.end :]

    def describe(self) -> str:
        return f"{self.function}: `{self.old}` -> `{self.new}`"


class _Offsets:
    """Character offsets of (line, UTF-8 byte column) positions, as the ast gives them."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def __call__(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))


def _span(node: ast.AST, at: _Offsets) -> tuple[int, int]:
    return (
        at(node.lineno, node.col_offset),  # type: ignore[attr-defined]
        at(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
    )


def _gap_edit(
    source: str, at: _Offsets, left: ast.AST, right: ast.AST, pattern: str, new: str
) -> tuple[int, int, str] | None:
    """The operator between two operands: its span and text, when the gap holds just it."""
    start = _span(left, at)[1]
    end = _span(right, at)[0]
    gap = source[start:end]
    if "#" in gap or "\\" in gap:
        return None
    match = re.fullmatch(rf"(\s*\)*\s*)({pattern})(\s*\(*\s*)", gap)
    if match is None:
        return None
    op_start = start + match.start(2)
    op_end = start + match.end(2)
    return op_start, op_end, new


def _functions(tree: ast.AST) -> Iterator[tuple[str, ast.AST]]:
    """Top-level functions and methods (not nested ones: their parent covers them)."""

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                yield prefix + child.name, child
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def mutations(source: str) -> list[Mutation]:
    """Every candidate mutation in the module's functions, in source order (deterministic).

    Docstrings, decorators, default values and annotations are left alone: only statements in
    function bodies change. A source that does not parse has none.
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    at = _Offsets(source)
    found: list[Mutation] = []
    for name, func in _functions(tree):
        for stmt in func.body:  # type: ignore[attr-defined]
            for node in ast.walk(stmt):
                found.extend(_node_mutations(name, node, source, at))
    found = sorted(set(found), key=lambda m: (m.start, m.end, m.kind, m.new))
    return found


def _node_mutations(name: str, node: ast.AST, source: str, at: _Offsets) -> Iterator[Mutation]:
    def make(kind: str, start: int, end: int, new: str) -> Mutation:
        return Mutation(name, kind, node.lineno, start, end, source[start:end], new)  # type: ignore[attr-defined]

    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return  # a docstring
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        op = type(node.ops[0])
        edit = _gap_edit(
            source, at, node.left, node.comparators[0], _COMPARE_TEXT[op], _COMPARE_SWAPS[op]
        )
        if edit:
            start, end, new = edit
            # Show the whole comparison in the description by editing its span.
            whole = _span(node, at)
            text = source[whole[0] : whole[1]]
            if "\n" not in text:
                yield make(
                    "compare",
                    whole[0],
                    whole[1],
                    text[: start - whole[0]] + new + text[end - whole[0] :],
                )
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOP_SWAPS:
        pattern, new = _BINOP_SWAPS[type(node.op)]
        edit = _gap_edit(source, at, node.left, node.right, pattern, new)
        whole = _span(node, at)
        text = source[whole[0] : whole[1]]
        if edit and "\n" not in text and not _is_string_concat(node):
            start, end, new = edit
            yield make(
                "binop", whole[0], whole[1], text[: start - whole[0]] + new + text[end - whole[0] :]
            )
    elif isinstance(node, ast.BoolOp) and len(node.values) == 2:
        pattern, new = _BOOL_SWAPS[type(node.op)]
        edit = _gap_edit(source, at, node.values[0], node.values[1], pattern, new)
        whole = _span(node, at)
        text = source[whole[0] : whole[1]]
        if edit and "\n" not in text:
            start, end, new = edit
            yield make(
                "boolop",
                whole[0],
                whole[1],
                text[: start - whole[0]] + new + text[end - whole[0] :],
            )
    elif isinstance(node, ast.Constant) and isinstance(node.value, int):
        start, end = _span(node, at)
        text = source[start:end]
        if isinstance(node.value, bool):
            yield make("constant", start, end, "False" if node.value else "True")
        elif re.fullmatch(r"\d", text) and node.value <= 2:
            yield make("constant", start, end, str(node.value + 1))
    elif isinstance(node, ast.If | ast.While):
        start, end = _span(node.test, at)
        text = source[start:end]
        if "\n" in text or isinstance(node.test, ast.Constant | ast.Compare):
            return  # a comparison's flip is already a `compare` mutation
        simple = isinstance(node.test, ast.Name | ast.Attribute | ast.Call | ast.Subscript)
        if isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
            inner = _span(node.test.operand, at)
            yield make("negate", start, end, source[inner[0] : inner[1]])
        else:
            negated = f"not {text}" if simple else f"not ({text})"
            yield make("negate", start, end, negated)


def _is_string_concat(node: ast.BinOp) -> bool:
    """Whether strings are being joined (`-` on them would only raise a TypeError)."""
    return any(
        isinstance(sub, ast.JoinedStr)
        or (isinstance(sub, ast.Constant) and isinstance(sub.value, str))
        for sub in ast.walk(node)
    )
